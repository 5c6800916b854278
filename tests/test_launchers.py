"""Sweeps through Hydra launchers: joblib and submitit packing, the Slurm config, ablations via a launcher."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import cli
from test_ablation import write_spec

from labbench.ablation import engine
from labbench.ablation import spec as specs
from labbench.ablation.store import Store

SHORT = ["data=synthetic", "trainer.max_steps=10", "trainer.val_check_interval=5", "logger=csv", "trainer.enable_progress_bar=false"]


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/run.json"))]


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_joblib_packs_runs_and_splits_the_cores(tmp_path):
    result = cli("labbench-train", "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", *SHORT, "seed=0,1,2",
                 f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    records = _records(tmp_path)
    assert sorted(r["config"]["seed"] for r in records) == [0, 1, 2]  # one record per job, in a folder named by run id
    assert all(r["status"] == "completed" and (tmp_path / r["run_id"]).is_dir() for r in records)
    assert {r["provenance"]["device"]["torch_threads"] for r in records} == {max(1, (os.cpu_count() or 1) // 2)}


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_submitit_local_runs_one_record_per_job(tmp_path):
    result = cli("labbench-train", "-m", "hydra/launcher=submitit_local", *SHORT, "seed=0,1",
                 f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    records = _records(tmp_path)
    assert sorted(r["config"]["seed"] for r in records) == [0, 1]
    assert all(r["status"] == "completed" for r in records)


def test_slurm_launcher_config_composes(tmp_path):
    result = cli("labbench-train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in result.stdout
    assert "partition: gpu" in result.stdout and "gpus_per_node: 1" in result.stdout


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_a_failed_run_does_not_stop_the_sweep(tmp_path):
    # batch_size=100000 is larger than the training split: that run fails, the other completes.
    result = cli("labbench-train", "-m", *SHORT, "data.batch_size=16,100000", f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    records = {r["config"]["data"]["batch_size"]: r for r in _records(tmp_path)}
    assert set(records) == {16, 100000}, result.stderr[-2000:]
    assert records[16]["status"] == "completed"
    assert records[100000]["status"] == "failed" and "data.batch_size" in records[100000]["error"]["message"]


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_reproduce_through_a_launcher_then_resume(tmp_path):
    spec = specs.load(write_spec(tmp_path, "packed"))
    root = tmp_path / "out"
    first = engine.reproduce(spec, "smoke", root=root, wandb=False, launcher=["local", "hydra.launcher.n_jobs=2"])
    assert first.counts["completed"] == 6 and first.counts["skipped"] == 0
    store = Store(root, "packed", "smoke")
    assert all(store.record(r.run_id)["status"] == "completed" for r in first.plan.final_runs)
    assert not (store.runs_dir / "sweep_summary.json").exists()  # the ablation aggregates its runs itself

    # Runs finished out of order or were lost: only the missing one runs again.
    lost = first.plan.final_runs[3]
    (store.run_dir(lost.run_id) / "run.json").unlink()
    second = engine.reproduce(spec, "smoke", root=root, wandb=False, launcher=["local", "hydra.launcher.n_jobs=2"])
    assert second.counts["completed"] == 1 and second.counts["skipped"] == 5
    third = engine.reproduce(spec, "smoke", root=root, wandb=False)  # in-process: finds everything done
    assert third.counts["skipped"] == 6
    assert third.verdict["hypotheses"] == first.verdict["hypotheses"]


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_cli_reproduce_keeps_launcher_overrides_out_of_the_plan(tmp_path):
    path = write_spec(tmp_path, "cli-packed")
    result = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--out", str(tmp_path / "out"), "--no-wandb",
                 "--launcher", "local", "hydra.launcher.n_jobs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "cli-packed" / "smoke" / "plan.json").is_file()  # no override-specific plan
    again = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--out", str(tmp_path / "out"), "--no-wandb", cwd=tmp_path)
    assert again.returncode == 0 and "all already stored (reused): nothing to train" in again.stdout, again.stdout[-2000:]
    result = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--out", str(tmp_path / "out"),
                 "hydra.launcher.n_jobs=2", cwd=tmp_path)
    assert result.returncode != 0 and "need --launcher NAME" in (result.stderr + result.stdout)
