"""Run planned runs that are not done yet: in this process, in J worker processes, or through a Hydra launcher.

In-process is the default (a new Python costs ~6 s of imports here). With ``jobs > 1`` a
spawn-based process pool runs them in parallel; each run sets its own torch thread count from
its config (``threads``, 1 by default), so a run's numbers do not depend on ``jobs`` (a worker
starts at ``cores // jobs``, what a run with ``threads=null`` keeps). With a ``launcher`` (``joblib``, ``submitit_local``, ``slurm``, ...) the runs go
out as ``labbench-train -m`` sweeps, one per group of runs that differ only in their seed,
into the same store under the same run ids. Every run writes its own record atomically,
so an interrupted ablation loses at most the runs in flight, and a failed run never stops
the others; runs finishing out of order change nothing. Several processes may fill one store
at once: each trains only runs it has claimed (:class:`labbench.ablation.store.Claims`), and
waits at the end for the runs others hold, so every process ends with every record.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from labbench.ablation.multirun import into_store
from labbench.ablation.plan import PlannedRun, logging_overrides, merge_overrides
from labbench.ablation.store import Claims, Store

ProgressFn = Callable[[PlannedRun, str], None]


def _train_one(overrides: Sequence[str], run_dir: str) -> str:
    """Compose and train one run; returns its status (the record holds the rest)."""
    from labbench.config import compose
    from labbench.train import run

    try:
        return run(compose(overrides), run_dir)["status"]
    except Exception:  # noqa: BLE001 - the failed record is on disk; the ablation goes on
        return "failed"


def _init_worker(threads: int, parent_poll_s: float = 2.0) -> None:
    import torch

    torch.set_num_threads(threads)
    threading.Thread(target=_stop_with_parent, args=(os.getppid(), parent_poll_s), daemon=True, name="stop-with-parent").start()


def _stop_with_parent(parent: int, poll_s: float, grace_s: float = 60.0) -> None:
    """End this pool worker once the process that started it is gone.

    A ``reproduce`` killed on its own (``kill PID``, not its process group) leaves its pool's workers waiting on a queue
    nobody writes to, each holding a model and its data (about 1 GB a worker for a Transformer run) until the machine
    restarts. A worker whose parent changed (re-parented to init) sends itself SIGTERM: a run in progress records itself
    ``interrupted`` (Lightning turns the signal into an exception at its next step, and a resumed ablation runs it again);
    an idle worker ends at once; ``grace_s`` later it exits whatever it was doing."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os._exit(1)


def execute(
    runs: Sequence[PlannedRun],
    store: Store,
    group: str,
    tags: Sequence[str],
    jobs: int = 1,
    wandb: bool = True,
    retry_failed: bool = False,
    on_done: ProgressFn | None = None,
    launcher: Sequence[str] = (),
    on_begin: Callable[[PlannedRun], None] | None = None,
    poll_s: float = 2.0,
) -> dict[str, int]:
    """Run every run of ``runs`` without a finished record; returns counts by outcome.

    ``on_begin(run)``: called as a run starts here (one process: a progress bar names the run being trained, not the last
    one finished).

    ``launcher``: a Hydra launcher option and its overrides (``["joblib",
    "hydra.launcher.n_jobs=2"]``); empty runs here (``jobs`` decides how).

    A run another process has claimed is not started here; once this process has nothing else to do it
    polls (every ``poll_s``) until that run's record appears (counted ``elsewhere``) or its claim goes
    stale (its process died: the run is taken over and trained here).
    """
    counts = {"skipped": 0, "completed": 0, "diverged": 0, "failed": 0, "elsewhere": 0}
    todo = []
    for r in runs:
        if store.is_done(r.run_id, retry_failed):
            counts["skipped"] += 1
            if on_done:
                on_done(r, "skipped")
        else:
            todo.append(r)

    def job(r: PlannedRun) -> tuple[list[str], str]:
        run_dir = store.run_dir(r.run_id)
        if run_dir.exists():  # a killed or interrupted attempt: start clean (no stale W&B run to sync)
            shutil.rmtree(run_dir)
        seed = "${seed}" if launcher else r.seed  # a sweep over seeds names each W&B run by its own seed
        overrides = merge_overrides(r.overrides, logging_overrides(group, r.arm, tags, wandb, seed, r.stage))
        return list(overrides), str(store.run_dir(r.run_id))

    def finish(r: PlannedRun, status: str) -> None:
        counts[status] = counts.get(status, 0) + 1
        if on_done:
            on_done(r, status)

    with Claims(store) as claims:
        remaining = list(todo)

        def next_claimed() -> PlannedRun | None:
            """The next run to train here: claimed just before it starts, so processes sharing the store share the
            work; runs finished elsewhere meanwhile are counted on the way."""
            for r in list(remaining):
                if store.is_done(r.run_id, retry_failed):
                    remaining.remove(r)
                    finish(r, "elsewhere")
                elif claims.take(r.run_id):
                    remaining.remove(r)
                    if store.is_done(r.run_id, retry_failed):  # finished between the look and the claim
                        claims.release(r.run_id)
                        finish(r, "elsewhere")
                        continue
                    return r
            return None

        def train_here(r: PlannedRun) -> None:
            if on_begin:
                on_begin(r)
            finish(r, _train_one(*job(r)))
            claims.release(r.run_id)

        if launcher:
            mine = []
            while (r := next_claimed()) is not None:
                mine.append(r)
            for overrides, group_runs in _sweeps(mine, [job(r)[0] for r in mine]):
                _launch(overrides, [r.seed for r in group_runs], store, launcher)
                for r in group_runs:
                    record = store.record(r.run_id)
                    finish(r, record.get("status", "failed") if record else "failed")
                    claims.release(r.run_id)
        if jobs <= 1 or launcher:
            while remaining:  # with a launcher: only runs another process held, whose claim went stale
                r = next_claimed()
                if r is None:
                    time.sleep(poll_s)  # every run left is another process's: wait for its record or its death
                else:
                    train_here(r)
            return counts

        threads = max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
            in_flight: dict = {}
            try:
                while remaining or in_flight:
                    while len(in_flight) < jobs and (r := next_claimed()) is not None:
                        in_flight[pool.submit(_train_one, *job(r))] = r
                    if not in_flight:
                        time.sleep(poll_s)
                        continue
                    done, _ = wait(in_flight, timeout=poll_s, return_when=FIRST_COMPLETED)
                    for future in done:
                        r = in_flight.pop(future)
                        finish(r, future.result())
                        claims.release(r.run_id)
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return counts


def _sweeps(runs: Sequence[PlannedRun], overrides: Sequence[list[str]]) -> list[tuple[list[str], list[PlannedRun]]]:
    """Group runs whose overrides differ only in ``seed=``: each group is one Hydra sweep over seeds."""
    groups: dict[tuple[str, ...], list[PlannedRun]] = {}
    for r, ov in zip(runs, overrides):
        groups.setdefault(tuple(o for o in ov if not o.startswith("seed=")), []).append(r)
    return [(list(key), group) for key, group in groups.items()]


def _launch(overrides: Sequence[str], seeds: Sequence[int], store: Store, launcher: Sequence[str]) -> None:
    """One ``labbench-train -m`` sweep over ``seeds`` through the launcher, runs written into the store.

    A sweep that exits with an error still leaves each run's record (failed runs write
    theirs); runs without one are counted as failed by the caller.
    """
    option, *launcher_overrides = launcher
    command = [
        str(Path(sys.executable).parent / "labbench-train"), "-m", *overrides,
        f"seed={','.join(str(s) for s in seeds)}",
        f"hydra/launcher={option}", *launcher_overrides,
        *into_store(store),
    ]
    subprocess.run(command, check=False)
