"""One answer per claim (issue 26, items 1-3 and 9): a primary hypothesis tested alone, secondaries under Holm only
once it is decided, sanity checks outside the family, the size a claim names, and the claim-level answer."""

from __future__ import annotations

import math

import pytest

from labbench.ablation import spec as specs
from labbench.ablation.results import claim_answer, judge


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


@pytest.mark.unit
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


@pytest.mark.unit
def test_a_failed_check_makes_the_answer_setup_failed(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("test/loss", role="sanity")])
    out = judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "test/loss": (NOISE, ZERO, ZERO)}), {})
    assert [h["verdict"] for h in out] == ["supported", "inconclusive"]
    answer = claim_answer(out)
    assert answer["answer"] == "setup failed" and "test/loss a>b" in answer["because"]


@pytest.mark.unit
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


@pytest.mark.unit
def test_without_a_primary_the_family_is_every_hypothesis_but_the_checks(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc"), _h("val/acc"), _h("test/loss", role="sanity")])
    out = _by_name(judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (UP, ZERO, ZERO),
                                          "test/loss": (UP, ZERO, ZERO)}), {}))
    assert out["test/acc"]["p_holm"] == pytest.approx(2 * out["test/acc"]["p_value"])
    assert claim_answer(list(out.values())) is None  # no primary declared: no claim-level answer


@pytest.mark.unit
def test_an_undertrained_primary_leaves_the_claim_not_shown(tmp_path):
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("val/acc", "c", "b")])
    gates = {"a": [{"metric": "test/acc", "passed": False, "mean": 0.1, "bar": 0.5}]}
    out = judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (ZERO, ZERO, UP)}), gates)
    assert [h["verdict"] for h in out] == ["undertrained", "exploratory"]
    answer = claim_answer(out)
    assert answer["answer"] == "not shown" and "competence gate" in answer["because"]


@pytest.mark.unit
def test_a_difference_whose_interval_does_not_clear_the_claimed_size_is_smaller_than_claimed(tmp_path):
    small = [v * 0.01 for v in UP]  # clearly positive, about 0.01
    spec = _spec(tmp_path, [_h("test/acc", role="primary", min_effect=0.05, min_effect_source="the claim: 'many weights'")])
    out = judge(spec, _values(**{"test/acc": (small, ZERO, ZERO)}), {})
    assert out[0]["verdict"] == "smaller than claimed" and out[0]["verdict_raw"] == "supported"
    assert claim_answer(out)["answer"] == "smaller than claimed"
    out = judge(spec, _values(**{"test/acc": ([v * 0.1 for v in UP], ZERO, ZERO)}), {})  # about 0.1, interval above 0.05
    assert out[0]["verdict"] == "supported" and claim_answer(out)["answer"] == "holds here"


@pytest.mark.unit
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


# ----------------------------------------------------------------------------- regime checks, arms predicted to fail
def _records_spec(tmp_path, name, arms, hypotheses, **raw_extra):
    import yaml

    raw = {"name": name, "claim": "planted", "factors": [], "base": ["data=synthetic"], "arms": {a: [] for a in arms},
           "hypotheses": hypotheses, "profiles": {"smoke": {"seeds": 8}}, **raw_extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return specs.load(str(path))


def _verdicts(spec, records):
    from labbench.ablation.results import check_gates, check_regime, values_by_arm

    values = {h.metric: values_by_arm(spec, records, h.metric) for h in spec.hypotheses}
    return judge(spec, values, check_gates(spec, records), check_regime(spec, records)), check_regime(spec, records)


@pytest.mark.unit
def test_a_failed_regime_check_makes_its_hypotheses_out_of_regime_not_inconclusive(tmp_path):
    from test_verdicts import record

    spec = _records_spec(tmp_path, "regime", ["sat", "nonsat"], [
        {"name": "the saturating cost starves", "metric": "val/loss", "better": "nonsat", "worse": "sat", "direction": "lower", "role": "primary"},
        {"name": "nonsat learns", "metric": "test/acc", "better": "nonsat", "worse": "sat", "direction": "higher"},
    ], regime=[{"name": "the discriminator is near-optimal", "metric": "test/acc", "arms": ["sat"], "threshold": 0.99,
                "direction": "higher", "hypotheses": ["the saturating cost starves"]}])
    records = {"sat": [record(1.0 + 0.01 * i, acc=0.87) for i in range(8)], "nonsat": [record(0.5 + 0.01 * i, acc=0.95) for i in range(8)]}
    (starves, learns), regime = _verdicts(spec, records)
    assert regime[0]["met"] is False and regime[0]["arms"]["sat"]["mean"] == pytest.approx(0.87)
    assert starves["verdict"] == "out of regime" and starves["out_of_regime"] == ["the discriminator is near-optimal"]
    assert math.isnan(starves["p_holm"])  # out of the family, like an undertrained hypothesis
    assert learns["verdict"] == "exploratory"  # the primary was not decided
    answer = claim_answer([starves, learns])
    assert answer["answer"] == "out of regime" and "near-optimal" in answer["because"]
    # the precondition met: the same runs are judged
    records["sat"] = [record(1.0 + 0.01 * i, acc=0.995) for i in range(8)]
    (starves, learns), regime = _verdicts(spec, records)
    assert regime[0]["met"] and starves["verdict"] == "supported" and learns["verdict"] == "contradicted"


@pytest.mark.unit
def test_a_regime_bar_may_be_another_arms_mean(tmp_path):
    """``threshold: {arm: NAME}`` with ``fraction``: "the uncorrected first step is at least 3 times the corrected one"."""
    from test_verdicts import record

    hyp = [{"name": "early loss", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "role": "primary"}]
    check = {"name": "b's accuracy at least 1.5 times a's", "metric": "test/acc", "arms": ["b"], "threshold": {"arm": "a"},
             "fraction": 1.5, "direction": "higher"}
    spec = _records_spec(tmp_path, "rel", ["a", "b"], hyp, regime=[check])
    assert spec.regime[0].threshold == "arm:a"
    records = {"a": [record(0.5, acc=0.4 + 0.01 * i) for i in range(8)], "b": [record(0.9, acc=0.7) for _ in range(8)]}
    (early,), regime = _verdicts(spec, records)
    assert regime[0]["bar"] == pytest.approx(1.5 * 0.435) and regime[0]["met"]  # 0.7 > 0.6525
    records["b"] = [record(0.9, acc=0.6) for _ in range(8)]  # 0.6 < 0.6525: not met, the primary out of regime
    (early,), regime = _verdicts(spec, records)
    assert not regime[0]["met"] and early["verdict"] == "out of regime"
    from labbench.ablation.report import _regime_lines

    assert "1.5 x `a`'s mean" in "\n".join(_regime_lines({"regime": regime}))
    for bad in ({"arm": "nope"}, {"arm": "b"}, {"arms": "a"}):
        with pytest.raises(specs.SpecError, match="threshold"):
            _records_spec(tmp_path, "rel2", ["a", "b"], hyp, regime=[{**check, "threshold": bad}])


@pytest.mark.unit
def test_an_arm_predicted_to_fail_is_not_gated_and_its_fails_to_learn_rate_is_decided(tmp_path):
    from test_verdicts import record

    spec = _records_spec(tmp_path, "fails", ["pre", "post"], [
        {"name": "Post-LN stalls more often", "metric": "fails_to_learn", "better": "pre", "worse": "post", "direction": "lower",
         "role": "primary"},
        {"name": "Pre-LN has the lower loss", "metric": "val/loss", "better": "pre", "worse": "post", "direction": "lower"},
    ], gates=[{"metric": "test/acc", "threshold": "chance", "fraction": 5}], predicted_to_fail=["post"])  # bar 0.5
    # seven Post-LN seeds stall at chance, one learns; Pre-LN learns on every seed
    records = {"pre": [record(0.5 + 0.01 * i, acc=0.9) for i in range(8)],
               "post": [record(2.3, acc=0.1) for _ in range(7)] + [record(0.6, acc=0.85)]}
    (stalls, loss), _ = _verdicts(spec, records)
    assert stalls["kind"] == "rate" and stalls["mean_diff"] == pytest.approx(7 / 8)
    assert stalls["p_value"] == pytest.approx(2 / 128) and stalls["verdict"] == "supported"  # the exact McNemar test
    assert loss["undertrained"] == [] and loss["verdict"] == "supported"  # post is not gated: its failure is the finding
    assert claim_answer([stalls, loss])["answer"] == "holds here"
    from labbench.ablation.report import predicted_text

    assert predicted_text(stalls) == "`pre` fails to learn less often than `post`"  # not "diverges"


@pytest.mark.unit
def test_regime_and_predicted_failure_are_checked_in_the_spec(tmp_path):
    hyp = [{"name": "h", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}]
    with pytest.raises(specs.SpecError, match="predicts to fail: an arm predicted to fail is not gated"):
        _records_spec(tmp_path, "g", ["a", "b"], hyp, gates=[{"metric": "test/acc", "threshold": 0.5, "arms": ["b"]}],
                      predicted_to_fail=["b"])
    with pytest.raises(specs.SpecError, match="predicted_to_fail names"):
        _records_spec(tmp_path, "p", ["a", "b"], hyp, predicted_to_fail=["c"])
    with pytest.raises(specs.SpecError, match="declare gates"):
        _records_spec(tmp_path, "f", ["a", "b"], [{**hyp[0], "metric": "fails_to_learn"}])
    with pytest.raises(specs.SpecError, match=r"regime\[0\].hypotheses names \['nope'\]"):
        _records_spec(tmp_path, "r", ["a", "b"], hyp, regime=[{"name": "x", "metric": "test/acc", "arms": ["a"], "threshold": 0.9,
                                                                "direction": "higher", "hypotheses": ["nope"]}])
    with pytest.raises(specs.SpecError, match="is missing 'direction'"):
        _records_spec(tmp_path, "r2", ["a", "b"], hyp, regime=[{"name": "x", "metric": "test/acc", "arms": ["a"], "threshold": 0.9}])


def test_a_reproduction_opens_with_the_answer_and_shows_checks_and_regime(tmp_path):
    import json

    from test_ablation import write_spec

    from labbench.ablation import engine

    hypotheses = [
        {"name": "a has the lower loss", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "role": "primary"},
        {"name": "the data are learnable", "metric": "test/acc", "better": "a", "worse": 0.0, "direction": "higher", "role": "sanity"},
        {"name": "a is more accurate", "metric": "test/acc", "better": "a", "worse": "b", "direction": "higher"},
    ]
    regime = [{"name": "accuracy beyond certainty", "metric": "test/acc", "arms": ["a"], "threshold": 1.5, "direction": "higher",
               "hypotheses": ["a is more accurate"]}]
    spec = specs.load(write_spec(tmp_path, "answered", hypotheses=hypotheses, regime=regime))
    engine.reproduce(spec, "smoke", root=tmp_path / "runs", wandb=False)
    folder = tmp_path / "runs" / "answered" / "smoke"
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["primary"] == "a has the lower loss" and verdict["answer"]["answer"] in ("not shown", "setup failed")
    assert "3 seeds (smoke profile)" in verdict["answer"]["setting"] and "Synthetic data" in verdict["answer"]["setting"]
    roles = {h["name"]: (h["role"], h["verdict"]) for h in verdict["hypotheses"]}
    assert roles["a is more accurate"] == ("secondary", "out of regime") and verdict["regime"][0]["met"] is False
    text = (folder / "report.md").read_text()
    assert text.index("## Answer: **") < text.index("## Verdict") < text.index("### Checks of the setup") < text.index("### Regime checks")
    assert "| the data are learnable |" in text.split("### Checks of the setup")[1]
    assert "a has the lower loss (**primary**)" in text


@pytest.mark.unit
def test_with_a_primary_a_gate_derives_from_a_failure_baseline_and_a_quality_bar_is_refused(tmp_path):
    from test_verdicts import record

    from labbench.ablation.results import check_gates

    primary = [{"name": "a beats b", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "role": "primary"}]
    with pytest.raises(specs.SpecError, match=r"gates\[0\].threshold 0.9 is a fixed quality bar.*threshold: failure"):
        _records_spec(tmp_path, "bar", ["a", "b"], primary, gates=[{"metric": "test/acc", "threshold": 0.9}])
    spec = _records_spec(tmp_path, "floor", ["a", "b"], primary, gates=[{"metric": "val/loss", "threshold": "failure", "fraction": 0.9}])
    records = {"a": [record(1.5) for _ in range(8)], "b": [record(2.2) for _ in range(8)]}  # the failure value of val/loss: 2.3
    gates = check_gates(spec, records)
    assert gates["a"][0]["bar"] == pytest.approx(0.9 * 2.3) and gates["a"][0]["passed"] and not gates["b"][0]["passed"]
    # without a primary a number is still accepted (the specs written before roles)
    _records_spec(tmp_path, "old", ["a", "b"], [{**primary[0], "role": "secondary"}], gates=[{"metric": "test/acc", "threshold": 0.9}])


@pytest.mark.unit
def test_the_seed_warning_counts_the_family_the_first_decision_is_made_in(tmp_path):
    """With a primary, the first decision is the primary alone (6 seeds can decide it whatever the secondaries); without
    one, Holm across every hypothesis but the checks; the checks never count."""
    from labbench.ablation.engine import first_family, seed_warnings

    many = [_h("test/acc", role="primary"), _h("val/acc"), _h("val/loss"), _h("test/loss"), _h("train/loss", role="sanity")]
    spec = _spec(tmp_path, many)
    assert first_family(spec) == 1
    assert not any("cannot" in w for w in seed_warnings(spec, "smoke", 6))
    five = seed_warnings(spec, "smoke", 5)
    assert "cannot give any verdict on the primary hypothesis (tested alone)" in five[0] and "at least 6 seeds" in five[0]
    plain = _spec(tmp_path, [{**h, "role": "secondary"} if h.get("role") == "primary" else h for h in many], name="plain")
    assert first_family(plain) == 4  # the sanity check stays out
    assert "4 hypothesis(es)" in seed_warnings(plain, "smoke", 6)[0] and "at least 8 seeds" in seed_warnings(plain, "smoke", 6)[0]


@pytest.mark.unit
def test_a_sanity_check_that_comes_out_the_same_everywhere_is_not_flagged_uninformative(tmp_path):
    """A check states a value true by construction (a rank of exactly 1): a constant there is the expected outcome; the
    same constant on a hypothesis that compares arms is a ceiling, flagged."""
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("val/acc"), _h("test/loss", role="sanity")])
    ones = [1.0] * 8
    out = _by_name(judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (ones, ones, ones),
                                          "test/loss": (ones, ones, ones)}), {}))
    assert out["test/loss"]["constant"] is None and out["val/acc"]["constant"] == 1.0


@pytest.mark.unit
def test_a_margin_verdict_says_which_failure_rate_its_seeds_do_not_exclude(tmp_path):
    """docs/method.md, "Margins": 8 seeds all beyond the margin still allow a 31% rate of seeds that fall short."""
    from labbench.ablation.report import _warnings

    spec = _spec(tmp_path, [_h("test/acc", role="primary", margin=-0.5), _h("val/acc", "a", 0.2)])
    out = _by_name(judge(spec, _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (UP, ZERO, ZERO)}), {}))
    primary = out["test/acc"]
    assert primary["short_of_margin"] == 0 and primary["short_rate_bound"] == pytest.approx(1 - 0.05 ** (1 / 8))  # 0.312
    one_short = _by_name(judge(spec, _values(**{"test/acc": (UP[:7] + [-1.0], ZERO, ZERO), "val/acc": (UP, ZERO, ZERO)}), {}))
    from scipy.stats import beta

    assert one_short["test/acc"]["short_of_margin"] == 1
    assert one_short["test/acc"]["short_rate_bound"] == pytest.approx(beta.ppf(0.95, 2, 7))  # Clopper-Pearson, 1 of 8
    lines = _warnings({"hypotheses": [primary]})
    assert any("0 of 8 seeds fell short of the margin; a rate of such seeds up to 31% is not excluded" in line for line in lines)
    plain = _by_name(judge(_spec(tmp_path, [_h("test/acc", role="primary")], name="plain"), _values(**{"test/acc": (UP, ZERO, ZERO)}), {}))
    assert "short_rate_bound" not in plain["test/acc"]  # a plain difference has no margin to fall short of


@pytest.mark.unit
def test_a_margin_or_reference_hypothesis_is_judged_with_the_skew_corrected_t(tmp_path):
    """Issue 26, item 8: a margin (or fixed-reference) hypothesis whose seeds lean toward the unpredicted side is not
    called supported on the symmetric tests alone; a zero-margin one on the same numbers keeps the plain rule."""
    skewed = [0.88, 0.79, 0.54, 1.36, -0.2, -0.44, 1.33, 1.13]
    spec = _spec(tmp_path, [_h("test/acc", role="primary"), _h("val/acc", margin=-0.5), _h("val/loss", better=0.5, worse="b")])
    shifted = [d + 0.5 for d in skewed]  # a - b = skewed + 0.5: the margin's null shifted into place
    out = _by_name(judge(spec, _values(**{"test/acc": (shifted, ZERO, ZERO), "val/acc": (skewed, [0.5] * 8, ZERO),
                                          "val/loss": (ZERO, [0.5 + d for d in skewed], ZERO)}), {}))
    from labbench.ablation.stats import compare, skew_corrected_t

    assert out["test/acc"]["p_t"] == pytest.approx(compare(shifted, ZERO, "higher").p_t)  # no margin: the plain t
    assert out["val/acc"]["p_t"] == pytest.approx(skew_corrected_t([d - 0.5 for d in skewed], margin=-0.5))
    assert out["val/acc"]["verdict_raw"] == "inconclusive" != compare([d - 0.5 for d in skewed], ZERO, "higher", -0.5).verdict
    assert out["val/loss"]["p_t"] == pytest.approx(skew_corrected_t(skewed))  # a fixed reference (0.5) the same way


@pytest.mark.unit
def test_a_control_reads_a_decided_primary_as_a_false_positive_never_as_holds(tmp_path):
    from labbench.ablation.board import answer_counts

    from test_ablation import write_spec

    hyp = [_h("test/acc", role="primary")]
    spec = specs.load(write_spec(tmp_path, "aa", hypotheses=hyp, control=True))
    (tmp_path / "plain").mkdir()
    plain = specs.load(write_spec(tmp_path / "plain", "aa", hypotheses=hyp))
    assert spec.control and not plain.control  # hashed: declaring a control changes what its report means
    assert specs.fingerprint(spec, "smoke") != specs.fingerprint(plain, "smoke")
    decided = judge(spec, {"test/acc": {"a": UP, "b": ZERO}}, {})
    answer = claim_answer(decided, control=True)
    assert answer["answer"] == "false positive" and "identical arms" in answer["because"]
    assert claim_answer(decided)["answer"] == "holds here"  # the same runs, read as a claim
    # in either direction: a contradicted primary between identical arms is as false as a supported one
    assert claim_answer(judge(spec, {"test/acc": {"a": ZERO, "b": UP}}, {}), control=True)["answer"] == "false positive"
    quiet = judge(spec, {"test/acc": {"a": NOISE, "b": ZERO}}, {})
    assert claim_answer(quiet, control=True)["answer"] == "no false positive"
    # arms that did not learn tested nothing: the control is not shown, never "no false positive"
    untested = [{**quiet[0], "verdict": "undertrained", "undertrained": True}]
    assert claim_answer(untested, control=True)["answer"] == "not shown"
    # the README's counts keep a control out of the claims' tally
    reports = [{"name": "aa", "claim_id": "A/A", "control": True, "answer": {"answer": "false positive"}},
               {"name": "x", "claim_id": "B1", "answer": {"answer": "holds here"}}]
    counts = answer_counts(reports)
    assert counts.startswith("Claims by answer: holds here: 1 (B1).") and "Controls, not counted with the claims" in counts
    assert "A/A false positive" in counts


@pytest.mark.unit
def test_a_control_must_have_identical_arms_on_their_own_seeds(tmp_path):
    from test_ablation import write_spec

    with pytest.raises(specs.SpecError, match=r"control: true declares identical arms, but arm\(s\) \['b'\] have overrides"):
        specs.load(write_spec(tmp_path, "bad", control=True, arms={"a": [], "b": {"overrides": ["model.width=8"], "seed_offset": 50}}))
    with pytest.raises(specs.SpecError, match="a different seed_offset per arm"):
        specs.load(write_spec(tmp_path, "same", control=True, arms={"a": [], "b": []}))
    with pytest.raises(specs.SpecError, match="an A/A control varies nothing"):
        specs.load(write_spec(tmp_path, "factor", control=True, factors=["model.width"]))
    with pytest.raises(specs.SpecError, match="control must be true or false"):
        specs.load(write_spec(tmp_path, "word", control="yes"))
    # a setting may not make the arms differ either: its per-arm overrides would turn the control into a comparison
    settings = {"one": {"why": "w", "overrides": ["model.width=8"]},
                "two": {"why": "w", "overrides": [], "arms": {"b": ["model.depth=3"]}}}
    with pytest.raises(specs.SpecError, match=r"settings\.two\.arms gives the arms different overrides"):
        specs.load(write_spec(tmp_path, "per-setting", control=True, settings=settings))
    same = {"one": {"why": "w", "overrides": []}, "two": {"why": "w", "overrides": [], "arms": {"a": ["model.depth=3"], "b": ["model.depth=3"]}}}
    assert specs.load(write_spec(tmp_path, "both-arms", control=True, settings=same)).control


@pytest.mark.unit
def test_every_answer_word_has_a_style_in_the_terminal_summary():
    """``labbench reproduce`` colours the one-setting answer by its word: a word without a style crashed the summary
    after the runs had finished (the A/A controls' first re-run)."""
    from labbench.ablation.results import ANSWERS, CONTROL_ANSWERS
    from labbench.cli import ANSWER_STYLE

    assert set(ANSWERS) | set(CONTROL_ANSWERS.values()) <= set(ANSWER_STYLE)


@pytest.mark.unit
def test_a_hypothesis_whose_differences_repeat_another_ones_is_flagged_with_the_report_warning(tmp_path):
    """adam-vs-sgd's gap hypothesis: with both nets at training accuracy 1.0 on every seed, (train - test) of one arm
    minus the other's is the test-accuracy difference itself, the primary's numbers again."""
    from labbench.ablation.report import _warnings
    from labbench.ablation.results import mark_repeats

    hyps = [_h("test/acc", role="primary"), _h("val/acc"), _h("train/acc", better="b", worse="a"), _h("test/loss")]
    spec = _spec(tmp_path, hyps)
    gap = [u + 0.01 * (-1) ** i for i, u in enumerate(UP)]  # another difference: not flagged
    values = _values(**{"test/acc": (UP, ZERO, ZERO), "val/acc": (UP, ZERO, ZERO), "train/acc": (UP, ZERO, ZERO),
                        "test/loss": (gap, ZERO, ZERO)})
    out = judge(spec, values, {})
    mark_repeats(spec, values, out)
    by = _by_name(out)
    assert by["val/acc"]["repeats"] == {"hypothesis": "test/acc a>b", "as": "the same"}
    assert by["train/acc"]["repeats"] == {"hypothesis": "test/acc a>b", "as": "the negated"}  # turned round
    assert "repeats" not in by["test/acc"] and "repeats" not in by["test/loss"]
    warned = [w for w in _warnings({"hypotheses": out}) if "**repeats**" in w]
    assert len(warned) == 2 and '"val/acc a>b" **repeats** "test/acc a>b" here' in warned[0]


@pytest.mark.unit
def test_a_report_chose_once_where_its_arms_tuned_apart_on_shared_seeds_not_where_nested_or_led():
    """board.chose_once reads what ran: two arms each choosing once (one block) is the tuned A/A's risky procedure;
    a block per final seed is nested; one arm choosing for a follower puts both at one value."""
    from labbench.ablation.board import chose_once

    def arm(blocks, followed=None):
        return {"seeds": list(range(8)), "tuned": {"value": 0.1, "per_block": [0.1] * blocks, **({"followed": followed} if followed else {})}}

    assert chose_once({"arms": {"a": arm(1), "b": arm(1)}})
    assert chose_once({"arms": {"a": arm(2), "b": arm(2)}})  # tuning.repeats re-chooses, but one value runs every seed
    assert not chose_once({"arms": {"a": arm(8), "b": arm(8)}})  # nested
    assert not chose_once({"arms": {"a": arm(1), "b": arm(1, followed="a")}})
    assert chose_once({"arms": {"a": arm(1), "b": {"seeds": list(range(8))}}})  # a tuned arm against a fixed one
    assert not chose_once({"arms": {"a": {"seeds": [0]}, "b": {"seeds": [0]}}})  # untuned
