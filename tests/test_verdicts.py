"""Verdicts a careful scientist would sign: gates, divergence as an outcome, interactions, stability."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from labbench.ablation import report
from labbench.ablation import spec as specs
from labbench.ablation.plan import Plan, PlannedRun
from labbench.ablation.results import analyze, check_gates, judge, values_by_arm

SEEDS = 8


def make_spec(tmp_path: Path, arms: list[str], hypotheses: list[dict], gates: list | None = None, name: str = "planted") -> specs.Spec:
    raw = {"name": name, "claim": "planted", "factors": [], "base": ["data=synthetic"],
           "arms": {a: [] for a in arms}, "hypotheses": hypotheses, "profiles": {"smoke": {"seeds": SEEDS}}}
    if gates:
        raw["gates"] = gates
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return specs.load(str(path))


def record(loss: float | None, acc: float = 0.9, status: str = "completed", curve: list[tuple[int, float]] | None = None) -> dict:
    final = {} if loss is None else {"val/loss": loss, "test/acc": acc}
    curves = {"val/loss": [[s, v] for s, v in curve]} if curve else {}
    return {"status": status, "metrics": {"final": final, "directions": {"val/loss": "lower", "test/acc": "higher"}},
            "curves": curves, "failure_values": {"val/loss": 2.3, "test/acc": 0.1},
            "baselines": {"test/chance": 0.1, "val/bigram": 2.5}, "config": {"task": {"_target_": "labbench.tasks.classify.ClassificationTask"}}}


def verdicts(spec, records):
    metrics = {h.metric for h in spec.hypotheses}
    values = {m: values_by_arm(spec, records, m) for m in metrics}
    return judge(spec, values, check_gates(spec, records))


def test_an_arm_below_its_gate_makes_its_hypotheses_undertrained(tmp_path):
    spec = make_spec(tmp_path, ["good", "bad", "other"], [
        {"name": "good beats bad", "metric": "val/loss", "better": "good", "worse": "bad", "direction": "lower"},
        {"name": "good beats other", "metric": "val/loss", "better": "good", "worse": "other", "direction": "lower"},
    ], gates=[{"metric": "test/acc", "threshold": "chance", "fraction": 1.5}])  # bar: 1.5 x 0.1
    rng = np.random.default_rng(0)
    records = {"good": [record(0.5 + 0.01 * rng.normal(), 0.9) for _ in range(SEEDS)],
               "bad": [record(2.0 + 0.01 * rng.normal(), 0.12) for _ in range(SEEDS)],  # at chance: did not learn
               "other": [record(0.9 + 0.01 * rng.normal(), 0.8) for _ in range(SEEDS)]}
    first, second = verdicts(spec, records)
    assert first["verdict"] == first["verdict_raw"] == "undertrained"  # never "supported", however large the gap
    assert first["undertrained"][0]["arm"] == "bad" and first["undertrained"][0]["bar"] == pytest.approx(0.15)
    assert first["undertrained"][0]["gap"] == pytest.approx(0.12 - 0.15)
    assert second["verdict"] == "supported"
    assert math.isnan(first["p_holm"]) and second["p_holm"] == second["p_value"]  # undertrained leaves Holm's family


def test_a_value_at_initialization_takes_no_gate_but_the_same_metric_later_does(tmp_path):
    """Entropy at step 0 is read before any update: an arm that later fails to learn does not undo it."""
    spec = make_spec(tmp_path, ["scaled", "unscaled"], [
        {"name": "scaled has more entropy at init", "metric": "probe/h@0", "better": "scaled", "worse": "unscaled", "direction": "higher"},
        {"name": "scaled has more entropy at the end", "metric": "probe/h", "better": "scaled", "worse": "unscaled", "direction": "higher"},
        {"name": "scaled has more entropy after 10 steps", "metric": "probe/h@10", "better": "scaled", "worse": "unscaled", "direction": "higher"},
    ], gates=[{"metric": "test/acc", "threshold": "chance", "fraction": 1.5}])
    rng = np.random.default_rng(3)

    def run(h0, acc):
        rec = record(1.0, acc)
        rec["curves"]["probe/h"] = [[0, h0 + 0.01 * rng.normal()], [10, 2.0 + 0.01 * rng.normal()], [20, 1.0 + 0.01 * rng.normal()]]
        rec["metrics"]["directions"]["probe/h"] = "higher"
        return rec

    records = {"scaled": [run(3.0, 0.9) for _ in range(SEEDS)], "unscaled": [run(0.8, 0.12) for _ in range(SEEDS)]}  # unscaled at chance
    at_init, at_end, later = verdicts(spec, records)
    assert at_init["gate_free"] == "init" and at_init["undertrained"] == []
    assert [m["arm"] for m in at_init["gates_waived"]] == ["unscaled"]  # said in the report, not hidden
    assert at_init["verdict"] == "supported" and at_init["mean_diff"] == pytest.approx(2.2, abs=0.05)
    assert at_end["verdict"] == later["verdict"] == "undertrained"  # trained values keep the gate
    assert at_end["gate_free"] is None and later["gates_waived"] == []
    lines = report._warnings({"hypotheses": [at_init, at_end], "seeds_needed": 7})
    assert "takes no competence gate (measured at initialization (step 0), before any update)" in lines[0]
    assert "`unscaled` missed one" in lines[0] and "**undertrained**" in lines[1]


def test_planted_divergence_gives_a_rate_verdict_and_the_declared_failure_value(tmp_path):
    spec = make_spec(tmp_path, ["pre", "post"], [
        {"name": "post diverges more often", "metric": "diverged", "better": "pre", "worse": "post", "direction": "lower"},
        {"name": "pre has the lower loss", "metric": "val/loss", "better": "pre", "worse": "post", "direction": "lower"},
    ])
    records = {"pre": [record(1.0 + 0.01 * i) for i in range(SEEDS)],
               "post": [record(None, status="diverged") for _ in range(SEEDS - 1)] + [record(1.2)]}
    rate, loss = verdicts(spec, records)
    assert rate["kind"] == "rate" and rate["mean_diff"] == pytest.approx(7 / 8)
    assert rate["p_value"] == pytest.approx(2 / 128) and rate["verdict_raw"] == "supported"
    assert values_by_arm(spec, records, "val/loss")["post"][:2] == [2.3, 2.3]  # the declared failure value
    assert loss["verdict_raw"] == "supported"


def test_planted_interaction_is_found_and_a_null_one_is_not(tmp_path):
    arms = ["post-warm", "pre-warm", "post-nowarm", "pre-nowarm"]
    h = {"name": "warmup shrinks the gap", "metric": "val/loss", "better": ["post-warm", "pre-warm"],
         "worse": ["post-nowarm", "pre-nowarm"], "direction": "lower"}
    spec = make_spec(tmp_path, arms, [h])
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 0.3, SEEDS)  # shared by all arms of a seed: pairing removes it

    def arm(offset):
        return [record(1.0 + offset + s + 0.02 * rng.normal()) for s in seed_effect]

    planted = {"post-warm": arm(0.05), "pre-warm": arm(0.0), "post-nowarm": arm(0.5), "pre-nowarm": arm(0.0)}
    (found,) = verdicts(spec, planted)
    assert found["kind"] == "interaction" and found["mean_diff"] == pytest.approx(0.45, abs=0.05)
    assert found["verdict"] == "supported"
    null = {"post-warm": arm(0.3), "pre-warm": arm(0.0), "post-nowarm": arm(0.3), "pre-nowarm": arm(0.0)}  # same gap
    (none,) = verdicts(spec, null)
    assert none["verdict"] == "inconclusive"


def test_verdict_that_flips_late_is_unsettled(tmp_path):
    spec = make_spec(tmp_path, ["a", "b"], [{"name": "a beats b", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}])
    rng = np.random.default_rng(2)
    records = {"a": [], "b": []}
    for _ in range(SEEDS):
        noise = 0.01 * rng.normal(size=8)
        # a is better until 3/4 of the budget, then b overtakes it
        records["a"].append(record(1.1 + noise[0], curve=[(25, 1.0 + noise[1]), (50, 0.8 + noise[2]), (75, 0.7 + noise[3]), (100, 1.1 + noise[0])]))
        records["b"].append(record(0.6 + noise[4], curve=[(25, 1.5 + noise[5]), (50, 1.2 + noise[6]), (75, 0.9 + noise[7]), (100, 0.6 + noise[4])]))
    (h,) = _analyze(spec, records)["hypotheses"]
    assert [p["verdict"] for p in h["trajectory"]] == ["supported", "supported", "supported", "contradicted"]
    assert [p["step"] for p in h["trajectory"]] == [25, 50, 75, 100]
    assert h["verdict"] == "contradicted" and h["unsettled"]


def test_interaction_sides_are_checked(tmp_path):
    with pytest.raises(specs.SpecError, match="a pair is two arms"):
        make_spec(tmp_path, ["a", "b"], [{"metric": "val/loss", "better": ["a", "c"], "worse": ["b", "a"], "direction": "lower"}])
    with pytest.raises(specs.SpecError, match="not a pair with one arm"):
        make_spec(tmp_path, ["a", "b"], [{"metric": "val/loss", "better": ["a", "b"], "worse": "b", "direction": "lower"}])
    with pytest.raises(specs.SpecError, match="threshold must be a number or a baseline"):
        make_spec(tmp_path, ["a", "b"], [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}],
                  gates=[{"metric": "test/acc", "threshold": "trigram"}])


def test_a_group_the_model_does_not_take_is_refused():
    from labbench.config import compose
    from labbench.train import build

    with pytest.raises(ValueError, match=r"norm=batch: labbench.models.VAE takes no norm group.*it takes: activation"):
        build(compose(["preset=vae", "norm=batch"]))
    with pytest.raises(ValueError, match="labbench.models.DDPM takes no norm group"):
        build(compose(["preset=diffusion_ring", "norm=group"]))
    build(compose(["preset=vae"]))  # the default norm (none) is fine
    _, model, _ = build(compose(["preset=diffusion"]))
    assert model.fixed_norm.startswith("group")


def test_gpu_trainer_without_a_gpu_is_one_clear_sentence(tmp_path):
    import torch

    from labbench.config import compose
    from labbench.train import run

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="needs a CUDA GPU and this machine has none.*use trainer=cpu"):
        run(compose(["trainer=gpu", "logger=csv"]), tmp_path / "run")


def test_validate_catches_a_misspelled_target_argument(tmp_path):
    from labbench.ablation.validation import validate

    spec = make_spec(tmp_path, ["a", "b"], [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}])
    validate(spec, "smoke")
    with pytest.raises(specs.SpecError, match=r"model \(labbench.models.MLP\): got an unexpected keyword argument 'widht'; it takes: .*width"):
        validate(spec, "smoke", ["+model.widht=64"])
    bad = make_spec(tmp_path, ["a", "b"], [{"metric": "val/accuracy", "better": "a", "worse": "b", "direction": "higher"}], name="badmetric")
    with pytest.raises(specs.SpecError, match="no direction is declared for metric 'val/accuracy'"):
        validate(bad, "smoke")


def test_an_interpolated_difference_outside_the_factors_is_caught(tmp_path):
    """The arms differ in data.batch_size only, but the learning rate follows it by interpolation:
    covered when batch size is a factor, caught when it is not."""
    from labbench.ablation.validation import validate

    lr = "optimizer.lr='${labbench.mul:0.001,${data.batch_size}}'"
    raw = {"name": "interp", "claim": "c", "factors": ["data.batch_size"], "base": ["data=synthetic", lr],
           "arms": {"small": ["data.batch_size=8"], "large": ["data.batch_size=32"]},
           "hypotheses": [{"metric": "val/loss", "better": "small", "worse": "large", "direction": "lower"}],
           "profiles": {"smoke": {"seeds": 2}}}
    path = tmp_path / "interp.yaml"
    path.write_text(yaml.safe_dump(raw))
    validate(specs.load(str(path)), "smoke")
    raw["base"] = ["data=synthetic"]
    raw["arms"] = {"small": ["data.batch_size=8", "+trainer.max_epochs='${data.batch_size}'"], "large": ["data.batch_size=8", "+trainer.max_epochs=9"]}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(specs.SpecError, match=r"resolved configs differ on keys outside the declared factors.*trainer.max_epochs"):
        validate(specs.load(str(path)), "smoke")


def test_cli_validate_and_bad_seed_counts_are_one_sentence(capsys):
    from labbench.cli import main

    assert main(["validate", "aa-control", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "cannot give any verdict" in out  # 3 smoke seeds: said before anything runs
    assert main(["validate", "aa-control", "--profile", "smoke", "+model.widht=3"]) == 2
    assert "unexpected keyword argument 'widht'" in capsys.readouterr().out
    assert main(["reproduce", "xavier-vs-kaiming", "--seeds", "0", "--no-wandb"]) == 2
    assert "--seeds must be at least 1" in " ".join(capsys.readouterr().out.split())


def test_data_baselines_for_the_gates():
    """What a model that learned nothing scores, computed by labbench from the data (hand-checkable values)."""
    from labbench.config import compose
    from labbench.train import build

    dm, _, _ = build(compose(["preset=gan_ring"]))
    ring = dm.baselines()
    assert ring["test/modes"] == 8.0 and ring["test/hq_share"] > 0.98  # the data covers its own modes
    dm, _, _ = build(compose(["preset=char_lm"]))
    text = dm.baselines()
    assert 3.2 < text["train/unigram"] < 3.4 and 2.4 < text["train/bigram"] < 2.55  # tiny Shakespeare: ~3.30 / ~2.48 nats
    dm, _, _ = build(compose(["data=digits"]))
    y = dm.splits["test"][1]
    assert dm.baselines()["test/chance"] == pytest.approx(float(y.bincount().max()) / len(y))


def test_review_findings_stay_fixed(tmp_path):
    """Tuning never prefers a setting whose completed runs logged inf; a step shared by 1/4 and 1/2
    of the budget still counts for the last-half check; a factor name is not a prefix match."""
    from labbench.ablation.validation import _derived_from_factor
    from labbench.ablation.results import tuning_value
    from labbench.tuning import best_setting

    spec = make_spec(tmp_path, ["a", "b"], [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}])
    blew = {"status": "completed", "metrics": {"final": {"val/loss": float("inf")}}, "curves": {}}
    scores = {"0.1": [0.5, tuning_value(blew, "val/loss", "lower")], "0.01": [0.6, 0.6]}
    assert best_setting(scores, "lower")[0] == "0.01"
    assert _derived_from_factor({"x": "${lr_warmup}"}, "x", ["lr"]) is False
    assert _derived_from_factor({"x": "${labbench.mul:2,${lr}}"}, "x", ["lr"]) is True


def test_a_profile_without_seeds_gets_the_methods_recommendation(tmp_path):
    from labbench.ablation.stats import RECOMMENDED_SEEDS

    raw = {"name": "defaults", "claim": "c", "factors": [], "base": ["data=synthetic"], "arms": {"a": [], "b": []},
           "hypotheses": [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}],
           "profiles": {"smoke": {"seeds": 2}, "quick": {}}}
    (tmp_path / "defaults.yaml").write_text(yaml.safe_dump(raw))
    spec = specs.load(str(tmp_path / "defaults.yaml"))
    assert spec.profile("quick").seeds == RECOMMENDED_SEEDS == 8 and spec.profile("smoke").seeds == 2


@pytest.mark.unit
def test_gates_read_the_values_the_hypotheses_read_and_flag_a_close_call(tmp_path):
    """Issue 26: one rule for gate means and hypothesis means. Three of eight seeds diverged: the hypotheses count
    them at the failure value (accuracy 0.1), so the gate does too, and the arm no longer passes on its survivors."""
    spec = make_spec(tmp_path, ["a", "b"], [
        {"name": "a beats b", "metric": "test/acc", "better": "a", "worse": "b", "direction": "higher"},
    ], gates=[{"metric": "test/acc", "threshold": 0.7}])
    records = {"a": [record(0.5, 0.9) for _ in range(5)] + [record(None, status="diverged") for _ in range(3)],
               "b": [record(0.5, 0.8 + 0.001 * i) for i in range(SEEDS)]}
    gates = check_gates(spec, records)
    (gate_a,) = gates["a"]
    assert gate_a["n"] == 8 and gate_a["mean"] == pytest.approx((5 * 0.9 + 3 * 0.1) / 8) and not gate_a["passed"]
    assert values_by_arm(spec, records, "test/acc")["a"][-1] == 0.1
    # a mean within half a standard error of the bar is a close call
    close = {"a": [record(0.5, 0.7 + (0.05 if i % 2 else -0.05) + 0.001) for i in range(SEEDS)], "b": records["b"]}
    (gate_close,) = check_gates(spec, close)["a"]
    assert gate_close["passed"] and gate_close["close"] and not gates["b"][0]["close"]


def _analyze(spec, records, tuned=None):
    class FakeStore:
        def __init__(self):
            self.by_id = {f"{arm}-{i}": r for arm, recs in records.items() for i, r in enumerate(recs)}

        def record(self, run_id):
            return self.by_id.get(run_id)

    plan = Plan("planted", "smoke", list(range(SEEDS)), [])
    plan.final_runs = [PlannedRun(arm, i, "final", (), f"{arm}-{i}") for arm in records for i in range(SEEDS)]
    plan.tuned = tuned or {}  # what the plan's tuning chose per arm (nested: ``per_block``, a value per final seed)
    return analyze(spec, plan, FakeStore())


@pytest.mark.unit
def test_a_constant_effect_near_the_threshold_is_not_unsettled(tmp_path):
    """Issue 26: the old rule flagged any verdict change in the last half, which fires on p near 0.05; a constant
    effect whose verdict flips between evaluations by noise alone is settled: the effect did not drift."""
    spec = make_spec(tmp_path, ["a", "b"], [{"name": "a beats b", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}])
    rng = np.random.default_rng(5)
    records = {"a": [], "b": []}
    for _ in range(SEEDS):  # b worse than a by 0.01 on average at every evaluation, seed noise 0.012
        a = [1.0 + 0.01 * rng.normal() for _ in range(4)]
        b = [x + 0.01 + 0.012 * rng.normal() for x in a]
        records["a"].append(record(a[-1], curve=list(zip((25, 50, 75, 100), a))))
        records["b"].append(record(b[-1], curve=list(zip((25, 50, 75, 100), b))))
    (h,) = _analyze(spec, records)["hypotheses"]
    late = {p["verdict"] for p in h["trajectory"] if p["fraction"] >= 0.5}
    assert len(late) > 1  # the verdict flipped in the last half: the old rule would have said unsettled
    assert not h["unsettled"] and not h["drift"]["decided"] and h["drift"]["from_step"] == 50


@pytest.mark.unit
def test_a_time_to_a_threshold_is_shown_along_the_budget_but_not_tested_for_drift(tmp_path):
    """b never reaches the bar: read at each earlier evaluation it counts at that step, so the difference grows with
    the cut by construction (0, 25, 50, 75 steps behind a at 1/4 ... end). That is censoring, not a moving effect:
    no drift test, no *unsettled*; each point's difference is at most the step it was read at."""
    spec = make_spec(tmp_path, ["a", "b"], [{"name": "a reaches the bar sooner", "metric": "val/loss<=0.5", "better": "a",
                                              "worse": "b", "direction": "lower"}])
    records = {"a": [], "b": []}
    for i in range(SEEDS):
        records["a"].append(record(0.4, curve=[(25, 0.4 - 0.001 * i), (50, 0.3), (75, 0.3), (100, 0.3)]))
        records["b"].append(record(0.9, curve=[(25, 1.0), (50, 0.9), (75, 0.9), (100, 0.9 + 0.001 * i)]))
        for rec in (records["a"][-1], records["b"][-1]):
            rec["config"]["trainer"] = {"max_steps": 100}
    (h,) = _analyze(spec, records)["hypotheses"]
    assert [p["mean_diff"] for p in h["trajectory"]] == [0.0, 25.0, 50.0, 75.0]
    assert h["drift"] is None and not h["unsettled"]


@pytest.mark.unit
def test_a_run_that_diverged_late_counts_as_what_it_was_at_earlier_evaluations():
    from labbench.ablation.metrics import truncated
    from labbench.ablation.results import run_value

    late = {**record(None, status="diverged", curve=[(25, 1.0), (50, 0.8), (75, 0.7)]), "divergence": {"step": 90, "reason": "nan"}}
    assert run_value(truncated(late, 50), "val/loss") == 0.8  # it was training normally at step 50
    assert run_value(truncated(late, 100), "val/loss") == 2.3  # from the step it diverged: the failure value
    assert run_value(late, "val/loss") == 2.3


@pytest.mark.unit
def test_a_value_read_at_a_step_before_the_run_diverged_is_what_it_measured_there():
    """A check at initialisation (``init/act_std_log_ratio@0``) of a run that blew up later keeps its reading: it does
    not turn into the failure value (or NaN, where the metric declares none) and drop the seed from the check."""
    from labbench.ablation.results import run_value

    late = {**record(None, status="diverged", curve=[(0, 1.7), (50, 0.8), (75, 0.7)]), "divergence": {"step": 90, "reason": "nan"}}
    late["curves"]["init/act_std_log_ratio"] = [[0, 0.31]]
    assert run_value(late, "init/act_std_log_ratio@0") == pytest.approx(0.31)  # no failure value declared: NaN before
    assert run_value(late, "val/loss@50") == 0.8       # logged before step 90
    assert run_value(late, "val/loss@90") == 2.3       # the step it diverged on: the failure value
    assert run_value(late, "val/loss@0:80") == 2.3     # a window keeps the failure value
    assert math.isnan(run_value({**late, "divergence": None}, "init/act_std_log_ratio@0"))  # no step recorded: no reading
    assert run_value({**late, "divergence": {"step": 0, "reason": "nan"}}, "val/loss@0") == 2.3


@pytest.mark.unit
def test_the_caveats_beside_a_verdict_table_name_the_edge_the_unsettled_and_the_untested():
    """Issue 27, item 7: what the report warns about is printed under the terminal's table as well."""
    from labbench.ablation.report import caveats

    h = {"name": "a beats b", "verdict": "supported", "n": 8, "metric": "test/acc", "unsettled": True}
    gap = {"arm": "b", "metric": "test/acc", "mean": 0.2, "bar": 0.5}
    verdict = {"hypotheses": [h, {**h, "name": "c beats b", "unsettled": False, "verdict": "undertrained", "undertrained": [gap]}],
               "arms": {"a": {"tuned": {"value": 0.3, "on_edge": True}}, "b": {"tuned": {"value": 0.01, "on_edge": False}}}}
    lines = caveats(verdict)
    assert any(line.startswith("`a`'s tuned value 0.3 is **on the edge of its grid**") for line in lines)
    assert not any("`b`'s tuned" in line for line in lines)
    assert any(line.startswith("\"a beats b\" is **unsettled**") for line in lines)
    assert any(line.startswith("\"c beats b\" is **undertrained**: `b` missed a competence gate") for line in lines)


def _kid_arms(worse_values: list[float], per_block: list[float] | None) -> dict:
    """`a` at 0.4 on every seed; `b`'s per-seed values, tuned per seed to ``per_block`` (nested) or not tuned."""
    return {"a": {"tuned": None, "metrics": {"test/kid": {"values": [0.4] * len(worse_values)}}},
            "b": {"tuned": {"per_block": per_block} if per_block else None, "metrics": {"test/kid": {"values": worse_values}}}}


@pytest.mark.unit
def test_an_effect_that_changes_side_with_the_tuned_value_is_found_by_an_exact_permutation_test():
    """b's 5 seeds tuned to 0.003 are 1.0 worse than a, its 3 tuned to 0.009 0.1 better: of the C(8,3) = 56 ways to
    split the 8 differences, only the observed one is that far apart, so the two-sided exact p is 2/56."""
    from labbench.ablation.results import tuned_value_split

    h = {"better": "a", "worse": "b", "metric": "test/kid", "direction": "lower", "margin": 0.0}
    split = tuned_value_split(h, _kid_arms([1.4] * 5 + [0.3] * 3, [0.003] * 5 + [0.009] * 3))
    (arm,) = split["arms"]
    assert arm["arm"] == "b" and arm["p_value"] == pytest.approx(2 / 56)
    assert [(g["value"], g["n"], round(g["mean"], 9)) for g in arm["groups"]] == [("0.003", 5, 1.0), ("0.009", 3, -0.1)]
    assert split["depends"]
    # the same groups on one side of the margin (an effect of another size at each value, not another sign): no flag
    same_side = tuned_value_split(h, _kid_arms([1.4] * 5 + [0.5] * 3, [0.003] * 5 + [0.009] * 3))
    assert same_side["arms"][0]["p_value"] == pytest.approx(2 / 56) and not same_side["depends"]
    # opposite sides but indistinguishable groups (noise): no flag
    noisy = tuned_value_split(h, _kid_arms([0.5, 0.3, 0.6, 0.2, 0.45, 0.35, 0.55, 0.3], [0.003] * 5 + [0.009] * 3))
    assert not noisy["depends"] and noisy["arms"][0]["p_value"] > 0.05
    assert tuned_value_split(h, _kid_arms([1.4] * 8, None)) is None  # nothing tuned per seed: nothing to split
    assert tuned_value_split(h, _kid_arms([1.4] * 8, [0.003] * 7 + [0.009])) is None  # one seed is not a group


@pytest.mark.unit
def test_the_report_and_the_readme_name_an_answer_that_depends_on_the_tuned_value(tmp_path):
    from labbench.ablation.board import TUNED_VALUE_MARK, claim_rows, tuned_value_dependent
    from labbench.ablation.report import caveats

    spec = make_spec(tmp_path, ["a", "b"], [{"name": "a beats b", "metric": "val/loss", "better": "a", "worse": "b",
                                             "direction": "lower", "role": "primary"}])
    records = {"a": [record(0.4) for _ in range(SEEDS)], "b": [record(1.4 if i < 5 else 0.3) for i in range(SEEDS)]}
    assert _analyze(spec, records)["hypotheses"][0]["tuned_split"] is None  # the plan tuned nothing
    verdict = _analyze(spec, records, tuned={"b": {"per_block": [0.003] * 5 + [0.009] * (SEEDS - 5)}})
    assert verdict["hypotheses"][0]["tuned_split"]["depends"]  # analyze itself finds it
    assert any("**depends on the tuned value**" in line and "chose 0.003 (5)" in line for line in caveats(verdict))
    # an older verdict file without the field: the README computes it from the arms it lists
    del verdict["hypotheses"][0]["tuned_split"]
    verdict["_path"] = str(tmp_path / "docs" / "results" / "planted" / "quick" / "verdict.json")
    assert tuned_value_dependent(verdict) == [""]
    (row,) = claim_rows([verdict], tmp_path)
    assert f"**{verdict['answer']['answer']}** {TUNED_VALUE_MARK}" in row
