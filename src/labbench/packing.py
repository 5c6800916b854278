"""How a run shares the machine with the runs a launcher packs beside it: cores and GPUs.

Cores: joblib runs ``n_jobs`` runs at once, each of which would otherwise start one torch
thread per core (on a 2-core machine two such runs slow each other down several-fold), so
each gets ``cores // n_jobs``; submitit jobs get ``cpus_per_task`` when it is set.

GPUs: joblib's worker processes know nothing of GPUs, and submitit's local executor gives
every job the same ``CUDA_VISIBLE_DEVICES``: left alone, every run of a sweep starts on
GPU 0. Each single-GPU run claims the first free GPU through an exclusive ``flock`` on a
file per GPU and holds it while it trains. The operating system drops the lock when the
run ends or its process dies, so a crashed run never keeps a GPU, and runs that finish out
of order free their GPU for the next one. With more runs at once than GPUs the extra runs
wait.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

GPU_ACCELERATORS = ("gpu", "cuda")


def lock_dir() -> Path:
    """Machine-wide, so concurrent sweeps share the GPUs too (``LABBENCH_GPU_LOCK_DIR`` moves it)."""
    default = Path(tempfile.gettempdir()) / f"labbench-gpu-locks-{os.getuid()}"
    return Path(os.environ.get("LABBENCH_GPU_LOCK_DIR", default))


def _is_joblib(launcher: DictConfig) -> bool:
    return str(launcher.get("_target_", "")).endswith("JoblibLauncher")


def _is_submitit(launcher: DictConfig, local_only: bool = False) -> bool:
    target = str(launcher.get("_target_", ""))
    return "submitit" in target and (not local_only or target.endswith("LocalLauncher"))


def share_cores(launcher: DictConfig) -> None:
    """Give this run its share of the cores under a launcher that packs runs into local processes."""
    import torch

    if _is_joblib(launcher):
        cores = os.cpu_count() or 1
        n_jobs = int(launcher.get("n_jobs") or 1)
        n_jobs = cores if n_jobs < 0 else n_jobs
        torch.set_num_threads(max(1, cores // max(1, n_jobs)))
    elif _is_submitit(launcher) and launcher.get("cpus_per_task"):
        torch.set_num_threads(int(launcher.cpus_per_task))


def wants_one_gpu(launcher: DictConfig, trainer: DictConfig) -> bool:
    """A single-GPU run started by a launcher that packs runs into local processes."""
    packing = _is_joblib(launcher) or _is_submitit(launcher, local_only=True)
    single = trainer.get("devices", 1) in (1, "1")  # a run given devices=[k] keeps its GPU
    return packing and single and str(trainer.get("accelerator", "cpu")) in GPU_ACCELERATORS


@contextlib.contextmanager
def claimed_gpu(count: int, directory: Path | None = None, poll_s: float = 1.0) -> Iterator[int]:
    """Hold the first free GPU index in ``range(count)`` for the duration of the block."""
    import fcntl

    directory = directory or lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(count):
            handle = open(directory / f"gpu{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll_s)


@contextlib.contextmanager
def one_gpu_per_run(cfg: DictConfig, launcher: DictConfig) -> Iterator[int | None]:
    """Under a packing launcher on a machine with several GPUs, hold a free GPU for this run
    and give its index (the run trains on it: ``trainer.devices=[k]``, outside the run's
    identity); anywhere else give None and change nothing."""
    import torch

    count = torch.cuda.device_count() if wants_one_gpu(launcher, cfg.trainer) else 0
    if count < 2:
        yield None
        return
    with claimed_gpu(count) as index:
        yield index
