"""A claim answered in several pre-registered settings (issue 28, item 2): the spec's ``settings``, each an ordinary
reproduction with its own budget and store folder, and one answer across them (Holm across the settings' primaries)."""

from __future__ import annotations

import json

import pytest
import yaml

from labbench.ablation import spec as specs
from labbench.ablation.settings import across_settings, corrected_answers
from test_ablation import write_spec
from conftest import cli

PRIMARY = {"name": "a beats b", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "role": "primary"}
SETTINGS = {
    "wide": {"why": "the mechanism needs width (a reference)", "description": "synthetic clusters, width 32",
             "overrides": ["model.width=32"], "profiles": {"smoke": {"overrides": ["trainer.max_steps=6"], "seeds": 2}}},
    "deep": {"why": "the mechanism needs depth (another reference)", "overrides": ["model.depth=4", "model.width=16"],
             "arms": {"b": ["model.width=8"]}},
}


def _spec(tmp_path, **changes):
    return specs.load(write_spec(tmp_path, "claim", **{"hypotheses": [PRIMARY], "settings": SETTINGS, "factors": ["model.width"], **changes}))


@pytest.mark.unit
def test_a_setting_is_the_spec_with_its_overrides_its_own_budget_and_its_own_store(tmp_path):
    spec = _spec(tmp_path)
    assert spec.setting_names() == ["deep", "wide"] and spec.store_name == "claim"  # the file's order (this one's dump sorts)
    wide = spec.in_setting("wide")
    assert wide.setting == "wide" and wide.store_name == "claim/wide" and wide.label == "claim/wide"
    assert wide.base[-1] == "model.width=32" and wide.base[0] == "data=synthetic"  # the spec's base, then the setting's
    assert wide.profile("smoke").seeds == 2 and wide.profile("smoke").overrides == ("trainer.max_steps=6",)
    deep = spec.in_setting("deep")
    assert deep.arm("b").overrides == ("model.width=8",) and deep.arm("b").seed_offset == 50  # an arm said in this setting
    assert wide.arm("b").overrides == ()
    assert deep.profile("smoke").seeds == 3 and deep.profile("smoke").overrides == ()  # the spec's own profile
    assert wide.settings[0].why.startswith("the mechanism needs width")
    with pytest.raises(specs.SpecError, match="no setting 'tall'; settings: deep, wide"):
        spec.in_setting("tall")


@pytest.mark.unit
def test_each_setting_hashes_its_own_contents_and_the_claim_hashes_them_all(tmp_path):
    before = _spec(tmp_path)
    changed = {**SETTINGS, "deep": {**SETTINGS["deep"], "overrides": ["model.depth=5", "model.width=16"]}}
    after = _spec(tmp_path, settings=changed)
    fp = specs.fingerprint
    assert fp(before.in_setting("wide"), "smoke") == fp(after.in_setting("wide"), "smoke")  # its report stands
    assert fp(before.in_setting("deep"), "smoke") != fp(after.in_setting("deep"), "smoke")  # re-run
    assert fp(before, "smoke") != fp(after, "smoke")  # and the claim's answer across them
    # the reason is prose (like a comment): rewording it re-runs nothing
    reworded = {**SETTINGS, "wide": {**SETTINGS["wide"], "why": "said otherwise"}}
    assert fp(_spec(tmp_path, settings=reworded).in_setting("wide"), "smoke") == fp(before.in_setting("wide"), "smoke")


@pytest.mark.unit
@pytest.mark.parametrize("settings, message", [
    ({"wide": {"overrides": ["model.width=32"]}}, "settings.wide.why is required"),
    ({"Wide Net": {"why": "x"}}, "must be lower-case letters"),
    ({"wide": {"why": "x", "profiles": {"huge": {"seeds": 4}}}}, "names profile 'huge'"),
    ({"wide": {"why": "x", "profiles": {"smoke": {"budget": 4}}}}, "unknown key\\(s\\) budget"),
    ({"wide": {"why": "x", "colour": "red"}}, "unknown key\\(s\\) colour in settings.wide"),
    ({"wide": {"why": "x", "arms": {"c": ["model.width=1"]}}}, "must map arms of the spec \\(a, b\\)"),
])
def test_a_malformed_setting_is_refused_with_what_is_valid(tmp_path, settings, message):
    with pytest.raises(specs.SpecError, match=message):
        _spec(tmp_path, settings=settings)


@pytest.mark.unit
def test_a_setting_may_run_a_subset_of_the_arms_and_keeps_what_the_subset_can_test(tmp_path):
    """settings.NAME.only_arms and settings.NAME.gates (C1's language model has no bidirectional arm): the hypotheses, gates, regime checks and
    tuning entries on the other arms are left out of that setting; the primary and the pilot arm never are."""
    arms = {"a": [], "b": {"overrides": [], "seed_offset": 50}, "c": ["model.width=8"]}
    second = {"name": "c beats b", "metric": "val/loss", "better": "c", "worse": "b", "direction": "lower"}
    gates = [{"metric": "val/acc", "threshold": "chance", "fraction": 1.0, "arms": ["a", "c"]},
             {"metric": "val/acc", "threshold": "chance", "fraction": 1.0, "arms": ["c"]}]
    regime = [{"name": "c moves", "metric": "val/acc", "arms": ["c"], "threshold": "chance", "direction": "higher"},
              {"name": "a moves", "metric": "val/acc", "arms": ["a", "c"], "threshold": "chance", "direction": "higher",
               "hypotheses": ["a beats b", "c beats b"]}]
    tuning = {"param": "optimizer.lr", "grid": {"a": [0.01, 0.1], "c": [0.01, 0.1]}, "follow": {"b": "a"},
              "metric": "val/loss", "direction": "lower", "seeds": 1}
    settings = {"all": {"why": "every arm means something here"},
                "two": {"why": "c means nothing in this model", "only_arms": ["a", "b"]}}
    spec = _spec(tmp_path, arms=arms, hypotheses=[PRIMARY, second], gates=gates, regime=regime, tuning=tuning, settings=settings,
                 pilot={"arm": "a", "profile": "smoke", "candidates": [["trainer.max_steps=4"]]})
    full, two = spec.in_setting("all"), spec.in_setting("two")
    assert [a.name for a in full.arms] == ["a", "b", "c"] and len(full.hypotheses) == 2
    assert [a.name for a in two.arms] == ["a", "b"]
    assert [h.name for h in two.hypotheses] == ["a beats b"]  # "c beats b" cannot be tested without c
    assert [g.arms for g in two.gates] == [("a",)]  # the c-only gate left out, the shared one cut to a
    assert [(c.name, tuple(c.arms), tuple(c.hypotheses)) for c in two.regime] == [("a moves", ("a",), ("a beats b",))]
    assert set(two.tuning.grid) == {"a"} and dict(two.tuning.follow) == {"b": "a"}
    assert specs.fingerprint(spec, "smoke") != specs.fingerprint(_spec(tmp_path, arms=arms, hypotheses=[PRIMARY, second], gates=gates,
        regime=regime, tuning=tuning, settings={**settings, "two": {"why": "x"}}, pilot={"arm": "a", "profile": "smoke", "candidates": [["trainer.max_steps=4"]]}), "smoke")
    with pytest.raises(specs.SpecError, match="leaves out an arm of the primary hypothesis 'a beats b'"):
        _spec(tmp_path, arms=arms, hypotheses=[PRIMARY], settings={"x": {"why": "y", "only_arms": ["a", "c"]}}).in_setting("x")
    with pytest.raises(specs.SpecError, match="leaves out the pilot's arm 'c'"):
        _spec(tmp_path, arms=arms, hypotheses=[PRIMARY], settings={"x": {"why": "y", "only_arms": ["a", "b"]}},
              pilot={"arm": "c", "profile": "smoke", "metric": "val/loss", "candidates": [["trainer.max_steps=4"]]}).in_setting("x")
    own = {**settings, "two": {**settings["two"], "gates": [{"metric": "val/loss", "threshold": "failure", "fraction": 0.9, "arms": ["a"]}]}}
    gated = _spec(tmp_path, arms=arms, hypotheses=[PRIMARY, second], gates=gates, regime=regime, tuning=tuning, settings=own,
                  pilot={"arm": "a", "profile": "smoke", "candidates": [["trainer.max_steps=4"]]})
    assert [(g.metric, g.threshold) for g in gated.in_setting("two").gates] == [("val/loss", "failure")]  # the setting's own gates
    assert [g.metric for g in gated.in_setting("all").gates] == ["val/acc", "val/acc"]
    assert specs.fingerprint(gated, "smoke") != specs.fingerprint(spec, "smoke")
    with pytest.raises(specs.SpecError, match="settings.two.gates must be a list"):
        _spec(tmp_path, arms=arms, settings={**settings, "two": {"why": "y", "gates": "none"}})
    with pytest.raises(specs.SpecError, match="only_arms must list arms of the spec"):
        _spec(tmp_path, arms=arms, settings={"x": {"why": "y", "only_arms": ["d"]}})


def _verdict(name, answer, p, verdict, mean=1.0):
    primary = {"name": "h", "role": "primary", "p_value": p, "mean_diff": mean, "margin": 0.0, "verdict": verdict,
               "ci_low": mean / 2, "ci_high": mean * 1.5}
    return {"setting": {"name": name}, "answer": {"answer": answer}, "hypotheses": [primary]}


@pytest.mark.unit
def test_the_answer_across_settings_counts_each_setting_after_holm_across_their_primaries():
    floor = 2 / 256  # the sign-flip floor at 8 seeds: survives x 2
    both = [_verdict("a", "holds here", floor, "supported"), _verdict("b", "holds here", floor, "supported")]
    assert across_settings(["a", "b"], corrected_answers(both))["answer"] == "holds in 2 of 2 settings"
    split = [_verdict("a", "holds here", floor, "supported"), _verdict("b", "does not hold here", floor, "contradicted", -1.0)]
    assert across_settings(["a", "b"], corrected_answers(split))["answer"] == "setting-dependent"
    # p 0.04 holds alone, but not when two settings each had their chance: Holm makes it 0.08
    marginal = [_verdict("a", "holds here", 0.04, "supported"), _verdict("b", "not shown", 0.5, "inconclusive")]
    answers = corrected_answers(marginal)
    assert [a["answer"] for a in answers] == ["not shown", "not shown"] and answers[0]["p_across"] == pytest.approx(0.08)
    across = across_settings(["a", "b"], answers)
    assert across["answer"] == "not shown" and "a: not shown (alone: holds here; not after Holm across the 2 settings, p 0.08)" in across["because"]
    # a setting out of regime leaves the family: the other is corrected for nothing
    regime = [_verdict("a", "holds here", 0.04, "supported"), _verdict("b", "out of regime", 0.5, "out of regime")]
    assert across_settings(["a", "b"], corrected_answers(regime))["answer"] == "holds in 1 of 2 settings"
    none = [_verdict("a", "out of regime", 0.5, "out of regime"), _verdict("b", "out of regime", 0.5, "out of regime")]
    assert across_settings(["a", "b"], corrected_answers(none))["answer"] == "out of regime"


@pytest.mark.unit
def test_a_control_across_settings_counts_its_false_positives_after_holm():
    floor = 2 / 256
    one = [{**_verdict("a", "false positive", floor, "supported"), "control": True},
           {**_verdict("b", "no false positive", 0.5, "inconclusive"), "control": True}]
    answers = corrected_answers(one)
    assert [a["answer"] for a in answers] == ["false positive", "no false positive"]
    assert across_settings(["a", "b"], answers, control=True)["answer"] == "false positive in 1 of 2 settings"
    # a false positive at p 0.04 alone is none after Holm across two settings (p 0.08)
    marginal = [{**_verdict("a", "false positive", 0.04, "supported"), "control": True},
                {**_verdict("b", "no false positive", 0.5, "inconclusive"), "control": True}]
    answers = corrected_answers(marginal)
    assert [a["answer"] for a in answers] == ["no false positive", "no false positive"]
    assert across_settings(["a", "b"], answers, control=True)["answer"] == "no false positive in 2 of 2 settings"


@pytest.mark.integration
def test_reproduce_answers_every_setting_and_report_rebuilds_the_same_answer(tmp_path):
    path = write_spec(tmp_path, "claim", hypotheses=[PRIMARY], settings=SETTINGS, factors=["model.width"], profiles={"smoke": {"seeds": 3}})
    out = tmp_path / "store"
    done = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--no-wandb", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "claim/wide (smoke)" in done.stdout and "across its settings" in done.stdout
    combined = json.loads((out / "claim" / "smoke" / "verdict.json").read_text())
    assert [s["name"] for s in combined["settings"]] == ["deep", "wide"]
    for s in combined["settings"]:
        report = out / "claim" / "smoke" / s["report"]
        assert report.is_file() and s["report"] == f"../{s['name']}/smoke/report.md"
        own = json.loads((report.parent / "verdict.json").read_text())
        assert own["setting"]["name"] == s["name"] and own["spec_hash"] == s["spec_hash"]
    wide = json.loads((out / "claim" / "wide" / "smoke" / "verdict.json").read_text())
    assert wide["arms"]["a"]["seeds"] == [0, 1]  # the setting's own seeds and budget
    assert {h["setting"] for h in combined["hypotheses"]} == {"wide", "deep"}
    assert combined["answer"]["answer"] and combined["answer"]["primary"] == "a beats b"
    # the runs are stored under each setting: a rebuild trains nothing and gives the same answer
    rebuilt = cli("labbench", "report", str(path), "--profile", "smoke", "--out", str(out), "--report-dir", str(tmp_path / "again"), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    again = json.loads((tmp_path / "again" / "verdict.json").read_text())
    assert again["answer"] == combined["answer"] and (tmp_path / "again" / "deep" / "report.md").is_file()
    # one setting alone: its report, no claim-level answer
    single = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--no-wandb", "--out", str(out), "--setting", "deep", cwd=tmp_path)
    assert single.returncode == 0 and "across its settings" not in single.stdout and "nothing to train" in single.stdout


@pytest.mark.unit
def test_commands_that_act_on_one_setting_ask_for_it_by_a_valid_name(tmp_path):
    path = write_spec(tmp_path, "claim", hypotheses=[PRIMARY], settings=SETTINGS, factors=["model.width"])
    shown = cli("labbench", "show", str(path), "--profile", "smoke", cwd=tmp_path)
    assert shown.returncode == 2 and "answered in settings deep, wide" in shown.stdout and "--setting NAME" in shown.stdout
    bad = cli("labbench", "validate", str(path), "--setting", "tall", cwd=tmp_path)
    assert bad.returncode == 2 and "no setting 'tall'; settings: deep, wide" in bad.stdout
    ok = cli("labbench", "validate", str(path), "--profile", "smoke", cwd=tmp_path)
    assert ok.returncode == 0 and "claim/wide" in ok.stdout and "claim/deep" in ok.stdout


@pytest.mark.unit
def test_the_pilot_writes_a_settings_budget_into_that_setting(tmp_path):
    from labbench.ablation.pilot import write_budget

    pilot = {"arm": "a", "metric": "val/loss", "candidates": [["trainer.max_steps=4"], ["trainer.max_steps=8"]], "profile": "smoke"}
    path = write_spec(tmp_path, "claim", hypotheses=[PRIMARY], settings=SETTINGS, factors=["model.width"], pilot=pilot)
    spec = specs.load(str(path)).in_setting("deep")
    from labbench.ablation.pilot import pilot_fingerprint

    result = {"pilot_hash": pilot_fingerprint(spec), "chosen": 1, "candidates": [{"overrides": c} for c in pilot["candidates"]]}
    write_budget(spec, result)
    raw = yaml.safe_load(path.read_text())
    assert raw["settings"]["deep"]["profiles"]["smoke"]["overrides"] == ["trainer.max_steps=8"]
    assert "profiles" not in raw["settings"]["wide"] or raw["settings"]["wide"]["profiles"]["smoke"]["overrides"] == ["trainer.max_steps=6"]
    assert raw["profiles"] == {"smoke": {"seeds": 3}}  # the spec's own profile untouched
    # written again: replaced, not appended
    result["chosen"] = 0
    write_budget(specs.load(str(path)).in_setting("deep"), result)
    assert yaml.safe_load(path.read_text())["settings"]["deep"]["profiles"]["smoke"]["overrides"] == ["trainer.max_steps=4"]


@pytest.mark.unit
def test_a_language_model_pilot_counts_progress_from_the_bigram_baseline():
    from labbench.ablation.pilot import late_share

    record = {"curves": {"val/loss": [[100, 3.0], [200, 2.5], [400, 2.3]]}, "failure_values": {"val/loss": 4.33},
              "baselines": {"val/bigram": 2.545}, "metrics": {"final": {"val/loss": 2.3}}}
    from_failure = late_share(record, "val/loss", "lower")
    assert from_failure["late_share"] == pytest.approx((2.5 - 2.3) / (4.33 - 2.3))  # 0.099: levelled off, it seems
    from_bigram = late_share(record, "val/loss", "lower", "bigram")
    assert from_bigram["start"] == 2.545 and from_bigram["late_share"] == pytest.approx((2.5 - 2.3) / (2.545 - 2.3))  # 0.82
    with pytest.raises(specs.SpecError, match="record no 'val/trigram'|not one of"):
        late_share(record, "val/loss", "lower", "trigram")


@pytest.mark.unit
def test_a_revision_note_is_prose_shown_in_the_report_and_the_readme_row(tmp_path):
    """Issue 28: the README row says what changed and why; rewording it re-runs nothing."""
    from labbench.ablation.board import rows

    plain = _spec(tmp_path)
    revised = _spec(tmp_path, revised="the comparator now matches the claim")
    assert revised.revised == "the comparator now matches the claim"
    assert specs.fingerprint(plain, "smoke") == specs.fingerprint(revised, "smoke")
    assert specs.fingerprint(plain.in_setting("wide"), "smoke") == specs.fingerprint(revised.in_setting("wide"), "smoke")
    verdict = {"name": "claim", "claim_id": "B9", "revised": revised.revised, "answer": {"answer": "holds in 1 of 2 settings"},
               "_path": tmp_path / "claim" / "quick" / "verdict.json",
               "hypotheses": [{"name": "h", "setting": "wide", "n": 8, "mean_diff": 0.5, "ci_low": 0.2, "ci_high": 0.8, "margin": 0.0,
                               "verdict": "supported", "metric": "test/acc", "better": "a", "worse": "b", "direction": "higher"}]}
    (row,) = [r for _, r in rows([verdict], tmp_path)]
    assert "answer: **holds in 1 of 2 settings**<br>revised: the comparator now matches the claim" in row and "| [wide] h |" in row


def test_the_setting_line_says_epochs_when_the_budget_is_in_epochs():
    """B10 budgets in epochs (max_steps -1): the answer's setting line said '-1 steps'."""
    from types import SimpleNamespace

    from labbench.ablation.results import setting_line

    def record(steps, epochs):
        return {"config": {"data": {"_target_": "x.MNIST5k"}, "model": {"_target_": "x.MLP"},
                           "trainer": {"max_steps": steps, "max_epochs": epochs}}}

    plan = SimpleNamespace(seeds=list(range(11)), profile="quick")
    assert setting_line(None, plan, [record(-1, 15), record(-1, 15)]) == "MNIST5k data, MLP model, 15 epochs, 11 seeds (quick profile)"
    assert setting_line(None, plan, [record(225, None), record(3600, None)]) == "MNIST5k data, MLP model, 225-3600 steps, 11 seeds (quick profile)"


@pytest.mark.unit
def test_a_setting_may_tune_over_its_own_grid_and_check_its_own_regime(tmp_path):
    """Helpers' wish (issue 28): a setting whose rates live elsewhere (another optimizer's scale, a GPU's batch) gives
    its profile a tuning_grid; a setting whose precondition reads another metric gives its own regime checks."""
    tuning = {"param": "optimizer.lr", "grid": [0.01, 0.1], "metric": "val/loss", "direction": "lower"}
    regime = [{"name": "b learns here", "metric": "test/acc", "arms": ["b"], "threshold": 0.2, "direction": "higher",
               "hypotheses": ["a beats b"]}]
    settings = {**SETTINGS,
                "wide": {**SETTINGS["wide"], "profiles": {"smoke": {"seeds": 2, "tuning_grid": [0.3, 1.0]}}, "regime": regime}}
    spec = _spec(tmp_path, tuning=tuning, settings=settings)
    wide, deep = spec.in_setting("wide"), spec.in_setting("deep")
    assert wide.tuning_grid("smoke") == {"a": (0.3, 1.0), "b": (0.3, 1.0)} and deep.tuning_grid("smoke") == {"a": (0.01, 0.1), "b": (0.01, 0.1)}
    assert [c.name for c in wide.regime] == ["b learns here"] and deep.regime == ()
    (tmp_path / "plain").mkdir()
    plain = _spec(tmp_path / "plain", tuning=tuning).in_setting("wide")  # the same setting on the spec's own grid
    assert specs.fingerprint(wide, "smoke") != specs.fingerprint(plain, "smoke")  # its grid is part of what its report answers
    bad = {**SETTINGS, "wide": {**SETTINGS["wide"], "regime": {"name": "not a list"}}}
    with pytest.raises(specs.SpecError, match="settings.wide.regime must be a list of regime checks"):
        _spec(tmp_path, tuning=tuning, settings=bad)
