"""Run planned runs that are not done yet: in this process, or in J worker processes.

In-process is the default (a new Python costs ~6 s of imports here). With ``jobs > 1`` a
spawn-based process pool runs them in parallel, each worker with ``cores // jobs`` torch
threads. Every run writes its own record atomically, so an interrupted ablation loses at
most the runs in flight, and a failed run never stops the others.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from labbench.ablation.plan import PlannedRun, merge_overrides
from labbench.ablation.store import Store

ProgressFn = Callable[[PlannedRun, str], None]


def _train_one(overrides: Sequence[str], run_dir: str) -> str:
    """Compose and train one run; returns its status (the record holds the rest)."""
    from labbench.config import compose
    from labbench.train import run

    try:
        return run(compose(overrides), run_dir)["status"]
    except Exception:  # noqa: BLE001 - the failed record is on disk; the ablation goes on
        return "failed"


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def logging_overrides(group: str, arm: str, tags: Sequence[str], seed: int, stage: str, wandb: bool) -> list[str]:
    """Loggers and progress bars: not part of a run's identity (its id stays the same)."""
    common = ["trainer.enable_progress_bar=false"]
    if not wandb:
        return [*common, "logger=csv"]
    tag_list = ",".join(tags)
    return [
        *common,
        f"logger.wandb.group={group}",
        f"logger.wandb.job_type={arm}",
        f"logger.wandb.tags=[{tag_list}]",
        f"logger.wandb.name={arm}-{stage}-s{seed}",
    ]


def execute(
    runs: Sequence[PlannedRun],
    store: Store,
    group: str,
    tags: Sequence[str],
    jobs: int = 1,
    wandb: bool = True,
    retry_failed: bool = False,
    on_done: ProgressFn | None = None,
) -> dict[str, int]:
    """Run every run of ``runs`` without a finished record; returns counts by outcome."""
    counts = {"skipped": 0, "completed": 0, "diverged": 0, "failed": 0}
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
        overrides = merge_overrides(r.overrides, logging_overrides(group, r.arm, tags, r.seed, r.stage, wandb))
        return list(overrides), str(store.run_dir(r.run_id))

    def finish(r: PlannedRun, status: str) -> None:
        counts[status] = counts.get(status, 0) + 1
        if on_done:
            on_done(r, status)

    if jobs <= 1:
        for r in todo:
            finish(r, _train_one(*job(r)))
        return counts

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(_train_one, *job(r)): r for r in todo}
        try:
            for future in as_completed(futures):
                finish(futures[future], future.result())
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return counts

