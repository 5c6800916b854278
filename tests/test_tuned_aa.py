"""scripts/tuned_aa.py: the tuned A/A on real runs. Its resampling on planted pools (seconds), and the script end to
end on the spec's smoke profile (a real pool, trained through the engine's store)."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def aa():
    path = REPO / "scripts" / "tuned_aa.py"
    spec = importlib.util.spec_from_file_location("tuned_aa", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tuned_aa"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("tuned_aa", None)


def planted_spec():
    h = SimpleNamespace(name="a beats b", metric="test/acc", better="a", worse="b", direction="higher", role="primary")
    return SimpleNamespace(tuning=SimpleNamespace(direction="lower"), hypotheses=[h])


def test_a_choice_made_on_noise_shows_as_false_positives_that_nested_tuning_removes(aa):
    """Planted: the tuning score is pure noise, the final value is the grid index exactly (no seed noise). Arms that
    choose once differ by a constant whenever their choices differ, and every such repetition is a verdict; nested
    choices vary seed by seed inside both arms, so the differences change sign and the test holds."""
    rng = np.random.default_rng(0)
    pool = 64
    val = rng.normal(size=(5, pool))  # pure noise: any grid value may win
    finals = {"test/acc": np.repeat(np.arange(5.0)[:, None], pool, axis=1)}
    out = aa.resample(planted_spec(), val, finals, draws=100, n=11, seed=1)
    once, nested = out["best of 1"], out["nested"]
    assert once["arms_chose_differently"] > 0.7  # 5 equally likely values: 80% in expectation
    fp_once = once["hypotheses"]["a beats b"]["false_positive"]
    assert fp_once == once["arms_chose_differently"]  # a differing choice is a verdict (constant differences: p = 2/2^11)
    assert nested["hypotheses"]["a beats b"]["false_positive"] < 0.1 < fp_once
    assert sum(out["best of 3"]["chosen_share"].values()) == pytest.approx(1.0)


def test_a_landscape_with_a_clear_best_value_adds_nothing(aa):
    """Planted: one value is best on every seed by far: both arms always choose it, and the final runs (identical
    distributions) give the A/A's plain false-positive rate, near alpha."""
    rng = np.random.default_rng(2)
    pool = 64
    val = rng.normal(size=(5, pool)) * 0.01
    val[2] -= 10.0
    finals = {"test/acc": rng.normal(size=(5, pool))}
    out = aa.resample(planted_spec(), val, finals, draws=150, n=11, seed=3)
    for proc in ("best of 1", "best of 3", "nested"):
        assert out[proc]["arms_chose_differently"] == 0.0
        assert out[proc]["chosen_share"]["2"] == 1.0
        assert out[proc]["hypotheses"]["a beats b"]["false_positive"] < 0.12
    with pytest.raises(SystemExit, match="raise --pool"):
        aa.resample(planted_spec(), val[:, :40], {"test/acc": finals["test/acc"][:, :40]}, draws=2, n=11, seed=3)


@pytest.mark.integration  # trains a small pool (tens of seconds)
def test_the_script_trains_a_pool_through_the_store_and_resumes(aa, tmp_path):
    out = tmp_path / "aa.json"
    args = ["--setting", "mlp-digits", "--profile", "smoke", "--pool", "10", "--seeds", "2", "--draws", "20",
            "--out", str(tmp_path / "store"), "--result", str(out)]
    assert aa.main(args) == 0
    result = json.loads(out.read_text())
    cell = result["settings"]["mlp-digits"]
    assert cell["landscape"]["grid"] == [0.01, 0.1]  # the smoke profile's grid
    assert all(row["failed"] == 0 for row in cell["landscape"]["tuning_score"])
    assert set(cell["procedures"]) == {"best of 1", "best of 3", "nested"}
    runs = list((tmp_path / "store").rglob("run.json"))
    assert len(runs) == 20  # 2 grid values x 10 seeds (best of 3 needs 2 x 3 tuning + 2 x 2 final seeds)
    assert aa.main([*args, "--no-train"]) == 0  # resampling stored pools only, nothing trained
    assert json.loads(out.read_text()) == result  # the same draws from the same pool
    # a second setting run alone keeps the first's results (a setting at a time, as the real pools are trained)
    other = {**result["settings"]["mlp-digits"], "procedures": {
        p: {**v, "hypotheses": {h: {**r, "false_positive": 0.5} for h, r in v["hypotheses"].items()}}
        for p, v in cell["procedures"].items()}}
    out.write_text(json.dumps({**result, "settings": {"elsewhere": other, **result["settings"]}}))
    assert aa.main([*args, "--no-train"]) == 0
    merged = json.loads(out.read_text())
    assert set(merged["settings"]) == {"elsewhere", "mlp-digits"} and merged["settings"]["mlp-digits"] == cell
    assert merged["catalog_default_primary_worst"] == 0.5 and merged["meets_bar"] is False  # the worst over every setting
