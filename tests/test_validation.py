"""What validation warns about beyond "the spec can run" (issue 26): hypotheses that repeat one another, and
metrics that sit at a ceiling or floor on every run."""

from __future__ import annotations

import numpy as np
import pytest

from labbench.ablation import spec as specs
from labbench.ablation.validation import duplicate_hypotheses
from test_ablation import write_spec


@pytest.mark.unit
def test_two_hypotheses_on_the_same_sides_and_metric_are_flagged(tmp_path):
    # adam-vs-sgd's first version: "SGD matches Adam (within half a point)" and "SGD beats Adam" were the same differences
    first = [{"metric": "test/loss", "better": "adam", "worse": "sgd", "direction": "lower"},
             {"metric": "test/acc", "better": "sgd", "worse": "adam", "direction": "higher", "margin": -0.005},
             {"metric": "test/acc", "better": "sgd", "worse": "adam", "direction": "higher"}]
    arms = {"adam": [], "sgd": {"overrides": [], "seed_offset": 50}}
    warnings = duplicate_hypotheses(specs.load(write_spec(tmp_path, "first", arms=arms, hypotheses=first)))
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

    first = [{"metric": "test/acc", "better": "sgd", "worse": "adam", "direction": "higher", "margin": -0.005, "role": "primary"},
             {"metric": "test/acc", "better": "sgd", "worse": "adam", "direction": "higher"}]  # adam-vs-sgd's first version
    path = write_spec(tmp_path, "first", arms={"adam": [], "sgd": {"overrides": [], "seed_offset": 50}}, hypotheses=first)
    proc = cli("labbench", "validate", str(path), "--profile", "smoke", cwd=tmp_path)
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


@pytest.mark.unit
def test_power_at_one_sd_matches_the_simulation_and_the_seed_floor():
    from labbench.ablation.stats import power, seeds_for_power

    assert 0.60 <= power(8, 1) <= 0.67  # the study: 62.5-65.7% at 8 seeds for a primary tested alone
    assert 0.75 <= power(10, 1) <= 0.81
    assert power(8, 1) > power(8, 2) > power(8, 4) > 0  # a larger Holm family costs power
    assert power(8, 7) == 0.0  # 7 x 0.0078 > 0.05: no outcome could pass
    assert power(8, 1) == power(8, 1)  # seeded: the same question, the same figure
    assert seeds_for_power(0.8) == 11


@pytest.mark.unit
def test_validate_reports_power_and_a_primary_sets_the_default_seeds(tmp_path):
    from test_ablation import write_spec

    from labbench.ablation.validation import power_lines

    hyps = [{"name": f"h{i}", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "margin": -0.01 * i}
            for i in range(4)]
    lines, warnings = power_lines(specs.load(write_spec(tmp_path, "flat", hypotheses=hyps)), 8)
    assert lines == ["power at a 1-SD effect with 8 paired seeds: each of 4 hypothesis(es) 24% (no primary declared: Holm over all)"]
    assert "below 50%" in warnings[0]
    with_primary = [{**hyps[0], "role": "primary"}, *hyps[1:]]
    spec = specs.load(write_spec(tmp_path, "primary", hypotheses=with_primary, profiles={"smoke": {}}))
    assert spec.profile("smoke").seeds == 11  # the fewest seeds giving the primary 80% at 1 SD
    lines, warnings = power_lines(spec, 11)
    from labbench.ablation.stats import power

    assert lines[0].endswith(f"the primary {100 * power(11, 1):.0f}% (tested alone)") and power(11, 1) >= 0.8
    assert "each of 3 hypothesis(es)" in lines[1] and "once the primary is decided" in lines[1]


@pytest.mark.unit
def test_a_spec_written_before_roles_is_told_what_keeps_it_from_an_answer(tmp_path):
    from labbench.ablation.validation import method_warnings

    # a first version as the catalog's were written (warmup's, say): no primary, a fixed quality bar for a gate
    bar = specs.load(write_spec(tmp_path, "bar", gates=[{"metric": "test/acc", "threshold": 0.9}]))
    lines = method_warnings(bar)
    assert lines[0].startswith("no primary hypothesis") and "gates[0] (test/acc beyond 0.9) is a fixed quality bar" in lines[1]
    # a first version whose gate is the chance baseline: no primary, one setting (not the shipped ones, which move on)
    chance = specs.load(write_spec(tmp_path, "old", gates=[{"metric": "val/acc", "threshold": "chance", "fraction": 1.5}]))
    assert len(method_warnings(chance)) == 2 and method_warnings(chance)[1].startswith("answered in one setting")
    assert method_warnings(specs.load("grad-clipping")) == []  # re-registered under the method: a primary, two settings
    # the same, answered with its arms tuned once before the tuned A/A control measured that procedure: told so
    # (the tuning is the one warning of those with a primary, baseline gates and two settings)
    from labbench.ablation.validation import TUNED_ONCE
    for once in sorted(n for n in TUNED_ONCE if not specs.load(n).control)[:1]:  # the list shrinks as they are re-run nested
        assert [w[:40] for w in method_warnings(specs.load(once))] == ["its arms' optimizer.lr is chosen once on"]
    assert method_warnings(specs.load("batch-size")) == []  # the same, re-registered with nested tuning: nothing to warn


def test_reading_loss_across_arms_whose_losses_differ_is_warned(tmp_path):
    """Issue 27, item 2: with label smoothing test/loss is the smoothed criterion; compare test/nll."""
    from test_ablation import write_spec

    from labbench.ablation.validation import loss_warnings

    arms = {"plain": ["loss=ce"], "smooth": ["loss=label_smoothing"]}
    h = {"name": "smoothing helps", "metric": "test/loss", "better": "smooth", "worse": "plain", "direction": "lower"}
    spec = specs.load(write_spec(tmp_path, "ls", factors=["loss"], arms=arms, hypotheses=[h]))
    lines = loss_warnings(spec, "smoke")
    assert any(line.startswith('hypothesis "smoothing helps" reads test/loss') and "compare test/nll" in line for line in lines)
    assert any(line.startswith("curve val/loss") for line in lines)  # the default curves
    fixed = specs.load(write_spec(tmp_path, "ls", factors=["loss"], arms=arms, curves=["train/loss", "val/nll"],
                                  hypotheses=[{**h, "metric": "test/nll"}]))
    assert loss_warnings(fixed, "smoke") == []
    same = specs.load(write_spec(tmp_path, "ls", hypotheses=[{**h, "better": "a", "worse": "b"}]))
    assert loss_warnings(same, "smoke") == []  # one loss for every arm: */loss compares models


def test_validate_refuses_a_spec_without_a_primary_but_the_first_versions_waiting_for_their_successors(tmp_path):
    """Issue 26: a spec without a primary gives no claim-level answer, so `labbench validate` refuses it; the catalog's
    first versions are excused only while their pre-registered successors wait, and the list holds exactly those."""
    from conftest import REPO, cli
    from test_ablation import write_spec

    from labbench.ablation.validation import FIRST_VERSIONS, primary_refusal

    path = write_spec(tmp_path, "headless")
    refused = cli("labbench", "validate", str(path), "--profile", "smoke", cwd=tmp_path)
    assert refused.returncode == 2 and "names no primary hypothesis: mark the claim's headline with `role: primary`" in " ".join(refused.stdout.split())
    for first in sorted(FIRST_VERSIONS)[:1]:  # the list shrinks to nothing as the successors run
        assert primary_refusal(specs.load(first)) is None
        copy = tmp_path / f"{first}.yaml"  # the same first version outside the shipped folder is a new spec: refused
        copy.write_text((REPO / "experiments" / f"{first}.yaml").read_text())
        assert primary_refusal(specs.load(str(copy))) is not None
    headless = {name for name in specs.available() if not any(h.role == "primary" for h in specs.load(name).hypotheses)}
    assert headless == set(FIRST_VERSIONS), "FIRST_VERSIONS must list exactly the shipped specs without a primary"
    waiting = {p.stem for p in (REPO / "docs" / "preregistered").glob("*.yaml")}
    assert set(FIRST_VERSIONS) <= waiting, f"first versions without a pre-registered successor: {sorted(set(FIRST_VERSIONS) - waiting)}"


@pytest.mark.unit
def test_validate_refuses_a_primary_whose_arms_choose_their_rates_once_but_the_catalogs_answers_made_before(tmp_path):
    """Issue 26, item 6: the tuned A/A control found choosing once (best of 3 shared tuning seeds) above its bar, so a new
    spec with a primary whose arms choose their own values must tune nested; one arm choosing for all (`follow`) puts
    the arms at one value and passes; the catalog's answers made before are excused, and the list holds exactly those."""
    from conftest import REPO, cli
    from test_ablation import write_spec

    from labbench.ablation.validation import TUNED_ONCE, chooses_once, method_warnings, tuning_refusal

    primary = [{"name": "a beats b", "role": "primary", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}]
    arms = {"a": ["model.width=8"], "b": ["model.width=16"]}
    tuning = {"param": "optimizer.lr", "grid": [0.01, 0.1], "metric": "val/loss", "direction": "lower"}
    once = specs.load(write_spec(tmp_path, "once", factors=["model.width"], arms=arms, hypotheses=primary, tuning=tuning))
    assert chooses_once(once) and once.tuning.seeds == 3
    refused = cli("labbench", "validate", str(once.path), "--profile", "smoke", cwd=tmp_path)
    said = " ".join(refused.stdout.split())
    assert refused.returncode == 2 and "chooses each tuned arm's optimizer.lr once" in said and "Set `tuning.nested: true`" in said
    nested = specs.load(write_spec(tmp_path, "nested", factors=["model.width"], arms=arms, hypotheses=primary,
                                   tuning={**tuning, "nested": True}))
    assert tuning_refusal(once) in method_warnings(once)  # `reproduce` prints it (validate refuses)
    assert not chooses_once(nested) and tuning_refusal(nested) is None
    led = specs.load(write_spec(tmp_path, "led", factors=["model.width"], arms=arms, hypotheses=primary,
                                tuning={**tuning, "grid": {"a": [0.01, 0.1]}, "follow": {"b": "a"}}))
    assert not chooses_once(led) and tuning_refusal(led) is None  # one choice for both arms
    alone = specs.load(write_spec(tmp_path, "alone", factors=["model.width"], arms=arms, hypotheses=primary,
                                  tuning={**tuning, "grid": {"a": [0.01, 0.1]}}))
    assert chooses_once(alone) and tuning_refusal(alone)  # a tuned arm against a fixed one: its choice's noise is between them
    assert tuning_refusal(specs.load(write_spec(tmp_path, "headless", tuning=tuning))) is None  # no primary: refused for that
    for shipped in sorted(TUNED_ONCE)[:1]:  # one still tuned once (the list shrinks as they are re-run nested)
        assert tuning_refusal(specs.load(shipped)) is None
        copy = tmp_path / f"{shipped}.yaml"  # the same spec outside the shipped folder is a new spec: refused
        copy.write_text((REPO / "experiments" / f"{shipped}.yaml").read_text())
        assert tuning_refusal(specs.load(str(copy))) is not None
    excused = {n for n in specs.available()
               if chooses_once(s := specs.load(n)) and any(h.role == "primary" for h in s.hypotheses)}
    assert excused == set(TUNED_ONCE), "TUNED_ONCE must list exactly the shipped specs with a primary that choose once"
    waiting = [specs.load(str(p)) for p in (REPO / "docs" / "preregistered").glob("*.yaml")]
    assert [s.name for s in waiting if tuning_refusal(s)] == [], "a pre-registered spec the method would refuse"
    controls = {n for n in TUNED_ONCE if specs.load(n).control}  # the A/A control measures choosing once: it stays so
    assert set(TUNED_ONCE) - controls <= {s.name for s in waiting}, \
        f"answers tuned once without a nested successor pre-registered: {sorted(set(TUNED_ONCE) - controls - {s.name for s in waiting})}"
