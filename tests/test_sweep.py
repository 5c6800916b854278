"""Nuisance tuning from the command line: the objective a sweeper ranks by, the per-arm
summary, and real grid and Optuna sweeps through labbench-train."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import cli

from labbench.ablation.metrics import metric_value
from labbench.sweep import SUMMARY_NAME, objective_value, summarize

SHORT = ["data=synthetic", "trainer.max_steps=20", "trainer.val_check_interval=10", "logger=csv", "trainer.enable_progress_bar=false"]


def _record(status="completed", val_loss=(0.9, 0.5, 0.7), lr=0.1, init="xavier_normal", seed=0) -> dict:
    return {
        "status": status,
        "choices": {"init": init},
        "config": {"seed": seed, "optimizer": {"lr": lr}},
        "curves": {"val/loss": [[10 * (i + 1), v] for i, v in enumerate(val_loss)]},
        "metrics": {"final": {"val/loss": val_loss[-1]}},
    }


def test_objective_is_the_metric_of_a_completed_run_and_worst_otherwise():
    assert objective_value(_record(), "val/loss:min", "minimize") == 0.5
    assert objective_value(_record(), "val/loss", "minimize") == 0.7
    assert objective_value(_record(status="diverged"), "val/loss:min", "minimize") == math.inf
    assert objective_value(_record(status="failed"), "val/loss:min", "maximize") == -math.inf
    assert objective_value(None, "val/loss:min", "minimize") == math.inf
    assert objective_value(_record(val_loss=(math.nan,)), "val/loss", "minimize") == math.inf
    with pytest.raises(ValueError, match="minimize, maximize"):
        objective_value(_record(), "val/loss", "lower")


def test_summary_picks_the_best_mean_setting_per_arm_and_flags_the_grid_edge():
    records = []
    losses = {("xavier_normal", 0.3): (0.6, 0.8), ("xavier_normal", 0.1): (0.4, 0.5), ("xavier_normal", 0.03): (0.45, 0.46),
              ("kaiming_normal", 0.3): (0.2, None), ("kaiming_normal", 0.1): (0.5, 0.5), ("kaiming_normal", 0.03): (0.3, 0.35)}
    for (init, lr), per_seed in losses.items():
        for seed, loss in enumerate(per_seed):
            records.append(_record("diverged" if loss is None else "completed", (loss or 1.0,), lr, init, seed))
    summary = summarize(records, ["init", "optimizer.lr", "seed"], ["optimizer.lr"], "val/loss:min", "minimize")
    best = {a["arm"]["init"]: a for a in summary["arms"]}
    assert summary["arm_keys"] == ["init"] and summary["tuned"] == ["optimizer.lr"]
    assert best["xavier_normal"]["best"] == {"optimizer.lr": 0.1}  # mean 0.45 beats 0.455 and 0.7
    assert best["xavier_normal"]["objective"] == pytest.approx(0.45) and best["xavier_normal"]["on_edge"] == []
    # 0.3 has the lowest single loss but one seed diverged: it scores inf, so 0.03 wins, at the grid's edge
    assert best["kaiming_normal"]["best"] == {"optimizer.lr": 0.03} and best["kaiming_normal"]["on_edge"] == ["optimizer.lr"]
    assert best["kaiming_normal"]["runs"] == 6


def test_swept_keys_drop_the_append_prefixes():
    from omegaconf import OmegaConf

    from labbench.sweep import swept_keys

    hydra = OmegaConf.create({"overrides": {"task": ["++trainer.max_steps=10,20", "+probes.x=1,2", "init=a,b", "seed=0"]},
                              "sweeper": {"params": {"optimizer.lr": "interval(0.001, 0.1)"}}})
    assert swept_keys(hydra) == ["trainer.max_steps", "probes.x", "init", "optimizer.lr"]


def test_an_objective_the_run_never_logged_is_a_clear_error():
    record = _record()
    record["curves"]["val/d_loss"] = record["curves"].pop("val/loss")  # a GAN logs no val/loss
    with pytest.raises(ValueError, match=r"logged no val/loss; its validation metrics: val/d_loss"):
        objective_value(record, "val/loss:min", "minimize")


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/run.json"))]


def test_grid_sweep_tunes_the_learning_rate_per_arm(tmp_path):
    result = cli("labbench-train", "-m", *SHORT, "init=xavier_normal,kaiming_normal", "optimizer.lr=0.3,0.003", "seed=0",
                 f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert len(records) == 4 and all(r["status"] == "completed" for r in records)
    summary = json.loads((tmp_path / SUMMARY_NAME).read_text())
    assert summary["arm_keys"] == ["init"] and {a["arm"]["init"] for a in summary["arms"]} == {"xavier_normal", "kaiming_normal"}
    for arm in summary["arms"]:
        mine = [r for r in records if r["choices"]["init"] == arm["arm"]["init"]]
        best = min(mine, key=lambda r: metric_value(r, "val/loss:min"))
        assert arm["best"] == {"optimizer.lr": best["config"]["optimizer"]["lr"]}
        assert arm["objective"] == pytest.approx(metric_value(best, "val/loss:min"))
    assert "best optimizer.lr per arm" in result.stdout


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_optuna_sweep_minimizes_the_objective_reproducibly(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

    def sweep(folder: Path) -> tuple[dict, list[dict]]:
        result = cli("labbench-train", "-m", "hydra/sweeper=tpe", "hydra.sweeper.n_trials=3", *SHORT, "seed=5",
                     "optimizer.lr=tag(log, interval(1e-3, 1.0))", f"hydra.sweep.dir={folder}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        return yaml.safe_load((folder / "optimization_results.yaml").read_text()), _records(folder)

    found, records = sweep(tmp_path / "a")
    assert len(records) == 3
    lrs = sorted(r["config"]["optimizer"]["lr"] for r in records)
    assert len(set(lrs)) == 3 and all(1e-3 <= lr <= 1.0 for lr in lrs)
    best = min(records, key=lambda r: metric_value(r, "val/loss:min"))
    assert found["best_value"] == pytest.approx(metric_value(best, "val/loss:min"))
    assert found["best_params"]["optimizer.lr"] == pytest.approx(best["config"]["optimizer"]["lr"])
    _, again = sweep(tmp_path / "b")
    assert sorted(r["config"]["optimizer"]["lr"] for r in again) == lrs  # the sampler is seeded by the run seed


def test_run_config_carries_the_sweep_settings_without_changing_run_ids():
    from labbench.config import compose, run_id

    cfg = compose(SHORT)
    assert cfg.sweep.objective == "val/loss:min" and cfg.sweep.direction == "minimize"
    assert run_id(cfg) == run_id(compose([*SHORT, "sweep.objective=val/acc:max", "sweep.direction=maximize"]))


def test_tpe_without_the_optuna_plugin_names_the_install_command(monkeypatch):
    import importlib.util

    from labbench.train import require_plugins

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "optuna" in name else real(name, *a))
    with pytest.raises(SystemExit, match=r'pip install "labbench\[optuna\]"'):
        require_plugins(["-m", "hydra/sweeper=tpe", "optimizer.lr=interval(0.001, 1)"])
    require_plugins(["-m", "optimizer.lr=0.1,0.01"])  # a grid needs no plugin
