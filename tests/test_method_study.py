"""scripts/method_study.py with very few draws: its rules match the real code, the result is well formed,
and two properties that hold whatever the draws (seconds, no training)."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def study():
    path = REPO / "scripts" / "method_study.py"
    spec = importlib.util.spec_from_file_location("method_study", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["method_study"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("method_study", None)


def test_vectorized_rules_agree_with_stats_compare(study):
    # draw by draw against labbench.ablation.stats.compare, the old bootstrap-t code and scipy's wilcoxon
    assert study.self_check(per_cell=1, ns=(4, 10))["passed"]


def test_small_study_structure_and_obvious_properties(study):
    ns = (4, 5, 20)
    result = study.run_study(draws=120, ns=ns, scenarios=("normal", "discrete"), check=False)
    assert set(result["aa_false_positive"]) == set(result["power_supported"]) == {"normal", "discrete"}
    assert result["draws"] == 120 and result["numpy_seed"] == study.SEED
    for scenario, by_n in result["aa_false_positive"].items():
        assert set(by_n) == {str(n) for n in ns}
        for cell in by_n.values():
            assert set(cell) == set(study.RULES)
            for rule in cell.values():
                assert 0.0 <= rule["rate"] <= 1.0 and rule["mc_se"] >= 0.0
                assert rule["supported"] + rule["contradicted"] == round(rule["rate"] * 120)
        # 4 or 5 seeds: the sign-flip test's smallest p is 2/16 or 2/32 > 0.05, so the default never decides
        assert by_n["4"]["default"]["rate"] == 0.0 and by_n["5"]["default"]["rate"] == 0.0
        assert by_n["4"]["sign_flip"]["rate"] == 0.0
        assert set(result["power_supported"][scenario]) == {"0.5", "1.0", "2.0"}
    # a 2-SD shift with 20 seeds under normal outcomes is found almost always
    assert result["power_supported"]["normal"]["2.0"]["20"]["default"]["rate"] > 0.9
    assert result["power_supported"]["normal"]["2.0"]["4"]["default"]["rate"] == 0.0
    assert set(result["summary"]) == set(study.RULES)
    assert np.isclose(result["scenarios"]["normal"]["sd_diff"], np.sqrt(2.0))


@pytest.mark.unit
def test_gatekeeping_gives_the_primary_its_power_and_keeps_the_family_error(study):
    """The family study runs labbench's own apply_family: with the primary true and 4 null secondaries,
    the primary alone at alpha is supported far more often than under Holm over all five, and no rule
    confirms a null secondary more than rarely."""
    cell = study.family_cell("primary true, secondaries null", k=4, n=8, draws=300, seed=0, rho=0.0)
    assert cell["gatekeeping"]["primary_supported"] > cell["holm_all"]["primary_supported"] + 0.2
    assert cell["gatekeeping"]["fwer"] <= 0.08 and cell["holm_all"]["fwer"] <= 0.08
    gated = study.family_cell("primary null, secondaries true", k=2, n=8, draws=300, seed=0, rho=0.0)
    assert gated["gatekeeping"]["secondary_supported"] < 0.1 < gated["holm_all"]["secondary_supported"]


@pytest.mark.unit
def test_the_drift_rule_rarely_flags_a_constant_effect_and_the_old_rule_often_did(study):
    cell = study.drift_cell(shift=1.0, rho=0.0, n=8, draws=300, seed=0)
    assert cell["drift"] <= 0.10 < 0.3 < cell["old"]


@pytest.mark.unit
def test_tuning_per_arm_adds_false_positives_that_nested_tuning_does_not(study):
    """Two identical arms tuned on their own seeds choose different rates in a steep valley, and the final comparison
    then finds the real difference between those rates; tuning each final seed on its own makes the tuning part of
    every paired difference, and the A/A control comes back to alpha."""
    once = study.tuned_aa_cell(1.0, "best, 1 tuning seed", n=8, draws=400, seed=0)
    nested = study.tuned_aa_cell(1.0, "best, 1 tuning seed per final seed (nested)", n=8, draws=400, seed=0)
    assert once["false_positive"] > 0.1 and nested["false_positive"] <= 0.075
    assert 0.3 < once["arms_chose_differently"] < 0.8


@pytest.mark.unit
def test_one_holm_family_over_the_map_holds_its_error_where_the_old_double_correction_did_not(study):
    """maps.across_cells itself: with each hypothesis null in one cell of a 4 x 4 map, Holm within the cell and again
    across the cells let each null through at its raw p (about 4 x 2.5% of maps err); one family over the 16 pairs
    keeps the map at alpha, and still supports nearly every clearly true pair."""
    cell = study.map_cell("each hypothesis null in one cell", n=10, draws=300, seed=0, rho=0.0)
    assert cell["map family"]["fwer"] <= 0.065 and cell["within, then across"]["fwer"] > 0.09
    assert cell["map family"]["true_supported"] > 0.9


def test_the_vectorized_margin_rule_is_stats_compare_with_skew_robust(study):
    """The margin rows of the study use labbench's rule for margins (Hall's t where a seed falls short), row by row."""
    from labbench.ablation.stats import compare

    rng = np.random.default_rng(5)
    d = np.vstack([math.exp(0.5) - rng.lognormal(0.0, 1.0, (40, 8)), rng.normal(size=(40, 8)) + 1.0,
                   rng.lognormal(0.0, 1.0, (40, 8)) - 3.0])  # means below 0, some rows with a seed across it
    p = study.margin_rule_p(d)
    for row, p_row in zip(d, p):
        c = compare(row, np.zeros(8), "higher", skew_robust=True)
        assert p_row == pytest.approx(c.p_value, rel=1e-9, abs=1e-12)
    cell = study.margin_cell("left-skewed (lognormal, sigma 1)", 8, 2000, study.SEED)
    assert cell["skew-corrected"] < cell["plain"]  # the correction guards against the tail the plain rule misses
    power = study.margin_cell("normal, +3 SD", 8, 2000, study.SEED)
    assert power["skew-corrected"] > 0.98  # and keeps a large true effect
