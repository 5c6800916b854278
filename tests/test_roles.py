"""One answer per claim (issue 26, items 1-3 and 9): a primary hypothesis tested alone, secondaries under Holm only
once it is decided, sanity checks outside the family, the size a claim names, and the claim-level answer."""

from __future__ import annotations

import pytest

from labbench.ablation import spec as specs
from labbench.ablation.results import claim_answer, judge

pytestmark = pytest.mark.unit

UP = [1.0, 1.2, 0.9, 1.1, 1.3, 0.8, 1.0, 1.2]  # every seed of "a" above "b" by about 1: p = 2/256 with 8 seeds
ZERO = [0.0] * 8
NOISE = [0.5, -0.4, 0.3, -0.6, 0.2, -0.1, 0.4, -0.3]


def _spec(tmp_path, hypotheses, name="roles"):
    from test_ablation import write_spec

    arms = {"a": [], "b": {"overrides": [], "seed_offset": 50}, "c": {"overrides": [], "seed_offset": 100}}
    return specs.load(write_spec(tmp_path, name, arms=arms, hypotheses=hypotheses))


def _h(metric, better="a", worse="b", **extra):
    return {"name": f"{metric} {better}>{worse}", "metric": metric, "better": better, "worse": worse, "direction": "higher", **extra}


def _values(**per_metric):
    return {m: {"a": list(a), "b": list(b), "c": list(c)} for m, (a, b, c) in per_metric.items()}


def _by_name(out):
    return {h["name"].split(" ")[0]: h for h in out}


def test_a_sanity_check_stands_outside_the_family_and_never_counts_as_support(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("val/acc"), _h("test/loss", role="sanity")])
    out = _by_name(judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (UP, ZERO, ZERO),
                                          "test/loss": (UP, ZERO, ZERO)}), {}))
    # the one secondary is alone in its Holm family: the check did not join it
    assert out["val/acc"]["p_holm"] == out["val/acc"]["p_value"] and out["val/acc"]["verdict"] == "supported"
    assert out["test/loss"]["role"] == "sanity" and out["test/loss"]["verdict"] == "supported"
    assert out["test/acc"]["p_holm"] == out["test/acc"]["p_value"]  # the primary is tested alone at alpha
    answer = claim_answer(list(out.values()))
    assert answer["answer"] == "holds here" and answer["primary"] == "test/acc a>b"


def test_a_failed_check_makes_the_answer_setup_failed(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("test/loss", role="sanity")])
    out = judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "test/loss": (NOISE, ZERO, ZERO)}), {})
    assert [h["verdict"] for h in out] == ["supported", "inconclusive"]
    answer = claim_answer(out)
    assert answer["answer"] == "setup failed" and "test/loss a>b" in answer["because"]


def test_secondaries_are_exploratory_until_the_primary_is_decided(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("val/acc"), _h("val/loss", "a", "c")])
    values = _values(**{"test/acc": (NOISE, ZERO, ZERO), "val/acc": (UP, ZERO, ZERO), "val/loss": (UP, ZERO, ZERO)})
    out = _by_name(judge(spec, values, {}))
    assert out["test/acc"]["verdict"] == "inconclusive"
    assert out["val/acc"]["verdict"] == out["val/loss"]["verdict"] == "exploratory"  # p = 2/256, still no verdict
    assert out["val/acc"]["p_value"] < 0.01
    assert claim_answer(list(out.values()))["answer"] == "not shown"
    # the primary decided: the secondaries are judged under Holm among themselves (two of them: p x 2)
    values["test/acc"] = {"a": UP, "b": ZERO, "c": ZERO}
    out = _by_name(judge(spec, values, {}))
    assert out["val/acc"]["verdict"] == "supported" and out["val/acc"]["p_holm"] == pytest.approx(2 * out["val/acc"]["p_value"])


def test_without_a_primary_the_family_is_every_hypothesis_but_the_checks(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc"), _h("val/acc"), _h("test/loss", role="sanity")])
    out = _by_name(judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (UP, ZERO, ZERO),
                                          "test/loss": (UP, ZERO, ZERO)}), {}))
    assert out["test/acc"]["p_holm"] == pytest.approx(2 * out["test/acc"]["p_value"])
    assert claim_answer(list(out.values())) is None  # no primary declared: no claim-level answer


def test_an_undertrained_primary_leaves_the_claim_not_shown(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("val/acc", "c", "b")])
    gates = {"a": [{"metric": "test/acc", "passed": False, "mean": 0.1, "bar": 0.5}]}
    out = judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (ZERO, ZERO, UP)}), gates)
    assert [h["verdict"] for h in out] == ["undertrained", "exploratory"]
    answer = claim_answer(out)
    assert answer["answer"] == "not shown" and "competence gate" in answer["because"]


def test_a_difference_whose_interval_does_not_clear_the_claimed_size_is_smaller_than_claimed(tmp_path):
    small = [v * 0.01 for v in UP]  # clearly positive, about 0.01
    spec = _spec(tmp_path, [_h("test/acc", role="primary", min_effect=0.05, min_effect_source="the claim: 'many weights'")])
    out = judge(spec, _values(**{"test/acc": (small, ZERO, ZERO)}), {})
    assert out[0]["verdict"] == "smaller than claimed" and out[0]["verdict_raw"] == "supported"
    assert claim_answer(out)["answer"] == "smaller than claimed"
    out = judge(spec, _values(**{"test/acc": ([v * 0.1 for v in UP], ZERO, ZERO)}), {})  # about 0.1, interval above 0.05
    assert out[0]["verdict"] == "supported" and claim_answer(out)["answer"] == "holds here"


def test_roles_and_sizes_are_checked_in_the_spec(tmp_path):
    with pytest.raises(specs.SpecError, match="2 say role: primary"):
        _spec(tmp_path, [_h("test/acc", role="primary"), _h("val/acc", role="primary")], "two")
    with pytest.raises(specs.SpecError, match="role must be one of primary, secondary, sanity"):
        _spec(tmp_path, [_h("test/acc", role="headline")], "bad")
    with pytest.raises(specs.SpecError, match="min_effect_source is required"):
        _spec(tmp_path, [_h("test/acc", min_effect=0.05)], "nosource")
    with pytest.raises(specs.SpecError, match="do not go together"):
        _spec(tmp_path, [_h("test/acc", min_effect=0.05, min_effect_source="x", margin=-0.01)], "margin")
    with pytest.raises(specs.SpecError, match="a number > 0"):
        _spec(tmp_path, [_h("test/acc", min_effect=-1, min_effect_source="x")], "negative")
