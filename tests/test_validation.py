"""What validation warns about beyond "the spec can run" (issue 26): hypotheses that repeat one another, and
metrics that sit at a ceiling or floor on every run."""

from __future__ import annotations

import numpy as np
import pytest

from labbench.ablation import spec as specs
from labbench.ablation.validation import duplicate_hypotheses


@pytest.mark.unit
def test_two_hypotheses_on_the_same_sides_and_metric_are_flagged(tmp_path):
    from test_ablation import write_spec

    warnings = duplicate_hypotheses(specs.load("adam-vs-sgd"))
    assert len(warnings) == 1 and warnings[0].startswith("hypotheses 2 (") and "3 (" in warnings[0]
    assert "compare sgd and adam on test/acc" in warnings[0] and "margins -0.005, 0" in warnings[0]
    hyps = [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"},
            {"metric": "val/loss", "better": "b", "worse": "a", "direction": "lower"},  # the same differences, turned round
            {"metric": "test/acc", "better": "a", "worse": "b", "direction": "higher"}]  # another metric: fine
    (line,) = duplicate_hypotheses(specs.load(write_spec(tmp_path, "dup", hypotheses=hyps)))
    assert line.startswith("hypotheses 1 (") and " 2 (" in line and "3 (" not in line
    assert duplicate_hypotheses(specs.load("xavier-vs-kaiming")) == []


def test_labbench_validate_prints_the_warning(tmp_path):
    from conftest import cli

    proc = cli("labbench", "validate", "adam-vs-sgd", "--profile", "smoke", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning:" in proc.stdout and "the same per-seed differences" in proc.stdout


@pytest.mark.unit
def test_a_metric_equal_on_every_seed_of_every_arm_is_flagged_uninformative():
    from labbench.ablation.board import plain_sentence
    from labbench.ablation.report import _warnings
    from labbench.ablation.results import constant_value

    at_ceiling = {"a": [1.0] * 8, "b": [float(np.float32(1.0))] * 7 + [float("nan")]}
    assert constant_value(at_ceiling, ["a", "b"]) == 1.0
    # equal fractions as float32 numbers differ by rounding only: still one value
    assert constant_value({"a": [float(np.float32(0.3))] * 4, "b": [0.3] * 4}, ["a", "b"]) == pytest.approx(0.3)
    assert constant_value({"a": [1.0] * 8, "b": [1.0] * 7 + [0.999]}, ["a", "b"]) is None
    assert constant_value({"a": [1.0]}, ["a"]) is None  # one value says nothing

    h = {"name": "sinusoidal is close to learned", "metric": "test/acc", "verdict": "supported", "constant": 1.0, "n": 8,
         "mean_diff": 0.0, "ci_low": float("nan"), "ci_high": float("nan"), "margin": -0.02, "undertrained": []}
    assert plain_sentence(h).startswith("Uninformative: every seed of every arm gave 1 (a ceiling or floor)")
    (line,) = _warnings({"hypotheses": [h]})
    assert "**uninformative**" in line and "`test/acc`" in line
    assert plain_sentence({**h, "constant": None}) == ""
