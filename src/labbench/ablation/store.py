"""Where an ablation's runs live: ``<root>/<name>/<profile>/runs/<run id>/run.json``.

Several processes may fill one store at once (two terminals, a Slurm array, a laptop and a
cluster sharing a folder): a process trains a run only after claiming it, by creating
``runs/<run id>.claim`` exclusively (``O_CREAT | O_EXCL``, atomic on local and network file
systems), so no run is trained twice. A claim names its host and process and is touched every
``HEARTBEAT_S`` while held; a claim whose process is gone (same host) or that has not been
touched for ``STALE_S`` (another host) is taken over.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labbench.record import RECORD_NAME, write_json_atomic

DONE = ("completed", "diverged", "failed")  # outcomes; "interrupted" or no record means: run it


def stopped_not_failed(record: dict[str, Any]) -> bool:
    """A ``failed`` record with no error: the run was stopped (a SIGTERM before 2026-12-07 wrote this, since
    ``train.run`` caught only Ctrl-C as an interruption), not failed, so it counts as interrupted and runs again.
    Every failure of the run itself records its error."""
    return record.get("status") == "failed" and not record.get("error")


def default_root() -> Path:
    return Path(os.environ.get("LABBENCH_OUTPUT_DIR", "outputs")) / "ablations"


class Store:
    def __init__(self, root: str | Path, name: str, profile: str) -> None:
        self.dir = Path(root) / name / profile
        self.runs_dir = self.dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def record(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / RECORD_NAME
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_done(self, run_id: str, retry_failed: bool = False) -> bool:
        record = self.record(run_id)
        if record is None:
            return False
        if stopped_not_failed(record):
            return False
        done = ("completed", "diverged") if retry_failed else DONE
        return record.get("status") in done

    def claim_path(self, run_id: str) -> Path:
        """Beside the run's folder, not in it: a fresh attempt clears the folder, never the claim."""
        return self.runs_dir / f"{run_id}.claim"

    def plan_path(self, extra: Sequence[str] = ()) -> Path:
        """``plan.json``; a plan with command-line overrides (or a map cell) gets its own file."""
        if not extra:
            return self.dir / "plan.json"
        digest = hashlib.sha256("\n".join(extra).encode()).hexdigest()[:10]
        return self.dir / "plans" / f"plan-{digest}.json"

    def save_plan(self, plan: dict) -> None:
        write_json_atomic(self.plan_path(plan.get("extra_overrides", ())), plan)

    def load_plan(self, extra: Sequence[str] = ()) -> dict:
        path = self.plan_path(extra)
        if not path.is_file():
            with_overrides = f" with overrides {' '.join(extra)}" if extra else ""
            raise FileNotFoundError(
                f"no stored runs for this ablation and profile{with_overrides}: {path} is missing; "
                f"run `labbench reproduce` first (with the same overrides, and the --out folder it used)"
            )
        return json.loads(path.read_text())


HEARTBEAT_S = 30.0  # a held claim is touched this often
STALE_S = 600.0     # a claim from another host untouched this long is abandoned


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class Claims:
    """The runs this process has claimed in one store; a context manager that touches them while held.

    ``take(run_id)`` is True when this process now holds the run (a fresh claim, or a stale one taken
    over); False while another live process holds it. ``release(run_id)`` after the run's record is
    written. Leaving the context releases whatever is still held."""

    def __init__(self, store: Store, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S) -> None:
        self.store, self.heartbeat_s, self.stale_s = store, heartbeat_s, stale_s
        self.host, self.pid = platform.node(), os.getpid()
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Claims:
        self._thread = threading.Thread(target=self._beat, name="labbench-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for run_id in list(self.held):
            self.release(run_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                for run_id in self.held:
                    try:
                        os.utime(self.store.claim_path(run_id))
                    except FileNotFoundError:
                        pass

    def take(self, run_id: str) -> bool:
        path = self.store.claim_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._create(path):
            return True
        holder = self.holder(run_id)
        if holder is None or not self.is_stale(path, holder):
            return False
        # take over: move the stale claim aside (atomic; of two takers only one rename succeeds), then claim afresh
        try:
            os.replace(path, path.with_name(f".{path.name}.stale-{uuid.uuid4().hex[:8]}"))
        except FileNotFoundError:
            return False
        for leftover in path.parent.glob(f".{path.name}.stale-*"):
            leftover.unlink(missing_ok=True)
        return self._create(path)

    def _create(self, path: Path) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({"host": self.host, "pid": self.pid, "claimed_at": time.time()}, f)
        with self._lock:
            self.held.add(path.name.removesuffix(".claim"))
        return True

    def holder(self, run_id: str) -> dict[str, Any] | None:
        """Who holds the run's claim (``{host, pid, claimed_at}``); None when nobody does. A claim still
        being written reads as held (by an unknown process), never as free."""
        path = self.store.claim_path(run_id)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            return {"host": None, "pid": None}

    def is_stale(self, path: Path, holder: dict[str, Any]) -> bool:
        if holder.get("host") == self.host and isinstance(holder.get("pid"), int):
            if holder["pid"] == self.pid:
                return False
            if not _pid_alive(holder["pid"]):
                return True
        try:  # another host, or a pid that may have been reused: a claim nobody touches is abandoned
            return time.time() - path.stat().st_mtime > self.stale_s
        except FileNotFoundError:
            return False

    def release(self, run_id: str) -> None:
        with self._lock:
            if run_id in self.held:
                self.held.discard(run_id)
                self.store.claim_path(run_id).unlink(missing_ok=True)
