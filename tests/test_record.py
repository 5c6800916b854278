"""Run identity, atomic records, and the curves read back from the CSV logger."""

from __future__ import annotations

import json
import os

import pytest

from labbench.config import compose, identity_config, run_id
from labbench.record import from_json_safe, read_curves, summarize_curves, write_json_atomic


def test_run_ids_of_existing_experiments_do_not_change():
    """Pinned ids: a new config key that is not a run's identity must go to NON_IDENTITY_KEYS,
    or every stored ablation run would be looked for under a new id and run again."""
    assert run_id(compose([])) == "f7ec5e3f6e32"
    assert run_id(compose(["preset=char_lm"])) == "de8b0e448f44"
    assert run_id(compose(["data=mnist5k", "model=cnn", "seed=3"])) == "1361ce3cc56c"
    assert run_id(compose(["data.on_device=false", "divergence.check_every=5", "sweep.objective=val/acc:max"])) == "f7ec5e3f6e32"
    # keys added later, at the value that reproduces the old runs, leave the id alone; another value changes it
    assert run_id(compose(["data.label_noise=0.0", "task.l1=0", "probes.never_active=false"])) == "f7ec5e3f6e32"
    assert run_id(compose(["data.label_noise=0.2"])) != "f7ec5e3f6e32" and run_id(compose(["task.train_pass=true"])) != "f7ec5e3f6e32"
    assert run_id(compose(["task.test_shift=0"])) == "f7ec5e3f6e32" and run_id(compose(["task.test_shift=2"])) != "f7ec5e3f6e32"


def test_run_id_ignores_where_and_how_a_run_reports():
    base = run_id(compose([]))
    assert run_id(compose(["paths.output_root=/elsewhere", "paths.data_dir=/data"])) == base
    assert run_id(compose(["logger=csv"])) == base
    assert run_id(compose(["trainer.enable_progress_bar=false"])) == base


@pytest.mark.parametrize("change", ["seed=1", "seed=0 optimizer.lr=0.002", "init=kaiming_normal", "trainer.max_steps=401", "data.order_seed=5"])
def test_run_id_changes_with_anything_that_changes_the_numbers(change):
    assert run_id(compose(change.split())) != run_id(compose([]))


def test_seed_zero_is_a_seed():
    assert run_id(compose(["seed=0"])) != run_id(compose(["seed=1"]))
    assert identity_config(compose(["seed=0"]))["seed"] == 0


def test_identity_config_names_paths_instead_of_resolving_them():
    ident = identity_config(compose(["data=mnist"]))
    assert ident["data"]["root"] == "<paths.data_dir>"
    assert "logger" not in ident and "hydra" not in ident


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "run.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2, "loss": float("nan"), "big": float("inf")})
    assert json.loads(path.read_text()) == {"a": 2, "loss": "nan", "big": "inf"}
    assert os.listdir(tmp_path) == ["run.json"]


def test_non_finite_numbers_survive_the_strict_json_round_trip(tmp_path):
    path = write_json_atomic(tmp_path / "v.json", {"ci": [float("nan"), float("inf"), -float("inf"), 1.5], "name": "nan-free"})
    stored = json.loads(path.read_text())
    assert stored["ci"][:3] == ["nan", "inf", "-inf"]  # strict JSON has no NaN
    back = from_json_safe(stored)
    assert back["ci"][0] != back["ci"][0] and back["ci"][1:] == [float("inf"), -float("inf"), 1.5] and back["name"] == "nan-free"


def test_atomic_write_keeps_the_old_file_when_serialization_fails(tmp_path):
    path = tmp_path / "run.json"
    write_json_atomic(path, {"status": "completed"})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"status": object()})
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert os.listdir(tmp_path) == ["run.json"]


def test_curves_from_lightning_csv(tmp_path):
    csv_file = tmp_path / "metrics.csv"
    csv_file.write_text(
        "epoch,step,train/loss,val/acc,val/loss\n"
        "0,9,2.0,,\n"
        "0,19,1.0,,\n"
        "0,19,,0.5,0.9\n"
        "1,29,0.5,,\n"
        "1,39,,0.8,0.7\n"
        "2,49,,0.7,0.8\n"
    )
    curves = read_curves(csv_file)
    assert curves["train/loss"] == [[9, 2.0], [19, 1.0], [29, 0.5]]
    final, best = summarize_curves(curves, {"val/acc": "higher", "val/loss": "lower", "train/loss": "lower"})
    assert final == {"train/loss": 0.5, "val/acc": 0.7, "val/loss": 0.8}
    assert best == {"val/acc": {"value": 0.8, "step": 39}, "val/loss": {"value": 0.7, "step": 39}}
    # No declared direction, no best: nothing is guessed from the name.
    assert summarize_curves(curves, {})[1] == {}


def test_best_follows_the_declared_direction_not_the_name():
    """val/elbo is a log-likelihood bound: higher is better, though its name says nothing."""
    from labbench.directions import directions_of

    curves = {"val/elbo": [[10, -120.0], [20, -95.0], [30, -101.0]], "val/kl": [[10, 3.0], [20, 9.0], [30, 4.0]]}
    directions = directions_of(curves, "labbench.tasks.vae.VAETask")
    assert directions == {"val/elbo": "higher", "val/kl": "neither"}
    assert summarize_curves(curves, directions)[1] == {"val/elbo": {"value": -95.0, "step": 20}}
