"""Where an ablation's runs live: ``<root>/<name>/<profile>/runs/<run id>/run.json``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labbench.record import RECORD_NAME, write_json_atomic

DONE = ("completed", "diverged", "failed")  # outcomes; "interrupted" or no record means: run it


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
        done = ("completed", "diverged") if retry_failed else DONE
        return record.get("status") in done

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
