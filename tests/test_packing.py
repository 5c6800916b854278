"""Runs packed on one machine: one GPU per run (claims by file lock, released on exit or death)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import torch
from omegaconf import OmegaConf

from labbench.packing import claimed_gpu, one_gpu_per_run, wants_one_gpu

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT_LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def test_concurrent_runs_hold_different_gpus_and_a_waiting_run_gets_the_one_freed(tmp_path):
    with claimed_gpu(2, tmp_path, poll_s=0.01) as first:
        second = claimed_gpu(2, tmp_path, poll_s=0.01)
        assert (first, second.__enter__()) == (0, 1)
        got: list[int] = []
        waiter = threading.Thread(target=lambda: got.append(_hold(tmp_path)))
        waiter.start()
        time.sleep(0.2)
        assert got == []  # both GPUs busy: the third run waits
        second.__exit__(None, None, None)  # the run on GPU 1 finishes first
        waiter.join(timeout=5)
        assert got == [1]


def _hold(directory) -> int:
    with claimed_gpu(2, directory, poll_s=0.01) as index:
        return index


def test_a_run_that_fails_or_dies_frees_its_gpu(tmp_path):
    with pytest.raises(RuntimeError):
        with claimed_gpu(1, tmp_path, poll_s=0.01):
            raise RuntimeError("training failed")
    assert _hold(tmp_path) == 0
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from labbench.packing import claimed_gpu\n"
        f"with claimed_gpu(1, Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=10)
    assert _hold(tmp_path) == 0  # the lock died with its process


@pytest.mark.parametrize("target,accelerator,devices,expected", [
    (JOBLIB, "gpu", 1, True),
    (SUBMITIT_LOCAL, "gpu", 1, True),
    (JOBLIB, "cpu", 1, False),       # CPU runs share cores instead (share_cores)
    (JOBLIB, "gpu", 2, False),       # a DDP run takes its devices itself
    (JOBLIB, "gpu", [3], False),     # a run pinned by hand keeps its GPU
    (BASIC, "gpu", 1, False),        # runs one after another: nothing to share
    (SLURM, "gpu", 1, False),        # Slurm gives each job its GPUs
])
def test_which_runs_claim_a_gpu(target, accelerator, devices, expected):
    launcher = OmegaConf.create({"_target_": target})
    trainer = OmegaConf.create({"accelerator": accelerator, "devices": devices})
    assert wants_one_gpu(launcher, trainer) is expected


def test_runs_under_joblib_on_a_multi_gpu_machine_get_distinct_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("LABBENCH_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    cfg = OmegaConf.create({"trainer": {"accelerator": "gpu", "devices": 1}})
    launcher = OmegaConf.create({"_target_": JOBLIB})
    with one_gpu_per_run(cfg, launcher) as a, one_gpu_per_run(cfg, launcher) as b:
        assert (a, b) == (0, 1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with one_gpu_per_run(cfg, launcher) as only:
        assert only is None  # one GPU: nothing to choose


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_claimed_gpu_trains_the_run_without_changing_its_id(tmp_path):
    from labbench.config import compose, run_id
    from labbench.train import run

    cfg = compose(["trainer=gpu", "trainer.max_steps=20", "trainer.val_check_interval=20", "logger=csv",
                   "trainer.enable_progress_bar=false"])
    index = torch.cuda.device_count() - 1
    record = run(cfg, tmp_path, gpu=index)
    assert record["status"] == "completed" and record["run_id"] == run_id(cfg)
    assert record["provenance"]["gpu_index"] == index
