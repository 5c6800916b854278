"""Stale results cannot hide: every committed report, map and pilot must match the spec in experiments/.

A report records the hash of the spec it came from (``labbench.ablation.spec.fingerprint``:
the profile's settings, gates and hypotheses). When a spec changes, its committed reports
stop matching and this test names them with the command that re-runs them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from labbench.ablation import spec as specs
from labbench.ablation.pilot import pilot_files, pilot_fingerprint, profile_agrees

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results"
REPORTS = sorted([*RESULTS.glob("*/*/verdict.json"), *RESULTS.glob("*/*/*/verdict.json")])  # a claim's, and each setting's
MAPS = sorted(RESULTS.glob("*/*/map.json"))


def _piloted() -> list[str]:
    """Every spec (or setting) with a pilot section, as ``name:setting:arm`` (the arm for per-arm budgets)."""
    out = []
    for name in specs.available():
        spec = specs.load(name)
        for one in ([spec.in_setting(s) for s in spec.setting_names()] if spec.settings else [spec]):
            if one.pilot is not None:
                out += [f"{name}:{one.setting or ''}:{a}" for a in one.pilot.arms] if one.pilot.per_arm else [f"{name}:{one.setting or ''}:"]
    return out


PILOTED = _piloted()


def stale(path: Path) -> str | None:
    """Why a committed verdict.json or map.json no longer matches its spec (None: it matches)."""
    result = json.loads(path.read_text())
    name, profile = result["name"], result["profile"]
    if name not in specs.available():
        return f"{path}: no spec named {name!r} in experiments/"
    spec = specs.load(name)
    if result.get("setting"):  # one setting's report (its record: name, why, ...) or map (its name), beside the claim's
        setting = result["setting"]["name"] if isinstance(result["setting"], dict) else result["setting"]
        if setting not in spec.setting_names():
            return f"{path}: {name} has no setting {setting!r} any more"
        spec = spec.in_setting(setting)
    is_map = path.name == "map.json"
    expected = specs.fingerprint(spec, profile, map_axes=is_map)
    again = f"labbench map {name} --profile {profile}" if is_map else f"labbench reproduce {name} --profile {profile}"
    if "spec_hash" not in result:
        return f"{path}: made before reports carried a spec hash; re-run it: {again}"
    if result["spec_hash"] != expected:
        return (f"{path}: made from another version of experiments/{name}.yaml (hash {result['spec_hash']}, now {expected}); "
                f"re-run it: {again} (or `labbench report` if only wording changed and the runs are stored)")
    return None


@pytest.mark.parametrize("path", REPORTS + MAPS, ids=[str(p.relative_to(RESULTS)) for p in REPORTS + MAPS])
def test_a_committed_report_matches_the_spec_it_came_from(path):
    problem = stale(path)
    assert problem is None, problem


@pytest.mark.parametrize("name", PILOTED)
def test_a_piloted_profile_carries_the_budget_its_committed_pilot_chose(name):
    name, setting, arm = name.split(":")
    spec = specs.load(name).in_setting(setting) if setting else specs.load(name)
    if arm:  # one arm of per-arm budgets: its own pilot, in pilot[/SETTING]/ARM/
        spec = dataclasses.replace(spec, pilot=spec.pilot.for_arm(arm))
    path = RESULTS / name / "pilot" / setting / arm / "pilot.json"
    option = (f" --setting {setting}" if setting else "") + (f" --arm {arm}" if arm else "")
    assert path.is_file(), f"{spec.label} has a pilot section but no committed pilot: run `labbench pilot {name}{option} --report-dir {path.parent}`"
    result = json.loads(path.read_text())
    if result["chosen"] is None:  # no budget was found: then no report of that profile may stand
        report = RESULTS / name / spec.pilot.profile / setting / "verdict.json" if setting else RESULTS / name / spec.pilot.profile / "verdict.json"
        assert result["pilot_hash"] == pilot_fingerprint(spec), f"{name}: the committed pilot is for another version of the spec"
        assert not report.exists(), f"{report}: the committed pilot found no budget at which {spec.pilot.arm} learned"
        return
    problems = profile_agrees(spec, result)
    assert not problems, "; ".join(problems)


def test_the_staleness_check_catches_a_changed_spec(tmp_path, monkeypatch):
    report = REPORTS[0]
    result = json.loads(report.read_text())
    copy = tmp_path / result["name"] / result["profile"] / "verdict.json"
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps({**result, "spec_hash": "0" * 12}))
    assert "another version" in stale(copy)
    copy.write_text(json.dumps({k: v for k, v in result.items() if k != "spec_hash"}))
    assert "before reports carried a spec hash" in stale(copy)


def test_the_readme_results_table_is_the_one_the_committed_reports_give():
    from labbench.ablation.board import markdown, replace_block

    root = RESULTS.parents[1]
    text = (root / "README.md").read_text()
    assert replace_block(text, markdown(RESULTS, root)) == text, "README.md's results table is out of date: run python scripts/readme_results.py"


def test_the_results_table_says_how_an_answer_differs_from_the_claim():
    from labbench.ablation.board import plain_sentence

    base = {"n": 8, "mean_diff": 0.5, "ci_low": 0.2, "ci_high": 0.8, "margin": 0.0, "decidable": True, "undertrained": []}
    assert plain_sentence({**base, "verdict": "supported"}) == ""
    assert "against the claim" in plain_sentence({**base, "verdict": "contradicted", "mean_diff": -0.5, "ci_low": -0.8, "ci_high": -0.2})
    assert "worse by 0.5 (95% CI [0.2, 0.8])" in plain_sentence({**base, "verdict": "contradicted", "mean_diff": -0.5, "ci_low": -0.8, "ci_high": -0.2})
    gap = {"arm": "post", "metric": "val/loss", "mean": 2.6, "bar": 2.42}
    assert plain_sentence({**base, "verdict": "undertrained", "undertrained": [gap]}) == (
        "Not tested: `post` did not pass the competence gate (`val/loss` 2.6 against a bar of 2.42).")
    assert "Too few seeds (4)" in plain_sentence({**base, "verdict": "inconclusive", "n": 4, "decidable": False})
    straddles = {**base, "ci_low": -0.1, "ci_high": 0.3}
    assert "Non-inferiority not shown" in plain_sentence({**straddles, "verdict": "inconclusive", "margin": -0.01})
    assert "noise" in plain_sentence({**straddles, "verdict": "inconclusive"})
    # an interval that excludes 0 beside an inconclusive verdict says what held the verdict back (issue 26)
    by_signs = plain_sentence({**base, "verdict": "inconclusive", "p_sign_flip": 0.0625, "p_value": 0.0625, "p_holm": 0.0625})
    assert by_signs.startswith("Not decided: the t-interval excludes 0, but the exact sign-flip test does not reject (p 0.0625)")
    by_holm = plain_sentence({**base, "verdict": "inconclusive", "p_sign_flip": 0.03125, "p_value": 0.03125, "p_holm": 0.125})
    assert "alone this hypothesis would pass (p 0.03125), but not after Holm's correction" in by_holm and "(p 0.125)" in by_holm
    waived = {**base, "verdict": "supported", "gate_free": "init", "gates_waived": [gap]}
    assert plain_sentence(waived) == ("Measured at initialization, before any update: `post` then missed the competence gate, "
                                      "so this says nothing about the trained models.")
    assert plain_sentence({**waived, **straddles, "verdict": "inconclusive"}).endswith("No difference the runs can tell from noise at this scale.")


def test_a_claim_whose_pilot_found_no_budget_gets_a_row_that_says_so(tmp_path):
    from labbench.ablation.board import unsized

    folder = tmp_path / "docs" / "results" / "prenorm-vs-postnorm" / "pilot"
    folder.mkdir(parents=True)
    gate = {"metric": "val/loss", "mean": 2.477, "bar": 2.418, "passed": False}
    folder.joinpath("pilot.json").write_text(json.dumps({
        "name": "prenorm-vs-postnorm", "profile": "quick", "arm": "pre-warm", "chosen": None,
        "candidates": [{"overrides": ["trainer.max_steps=3000"], "gates": [gate], "late_share_mean": 0.01}]}))
    ((order, row),) = unsized(tmp_path / "docs" / "results", tmp_path)
    assert order[:3] == (0, "A", 1)  # sorted with the reports in registry order
    assert row.startswith("| A1 [`prenorm-vs-postnorm`](docs/results/prenorm-vs-postnorm/pilot/pilot.md)")
    assert "**no budget yet**" in row and "`trainer.max_steps=3000`" in row and "`val/loss` 2.477 against a bar of 2.418" in row
    report = tmp_path / "docs" / "results" / "prenorm-vs-postnorm" / "quick"
    report.mkdir()
    (report / "verdict.json").write_text("{}")
    assert unsized(tmp_path / "docs" / "results", tmp_path) == []  # a report of that profile stands instead


def test_the_readme_says_which_budgets_were_capped_as_the_committed_pilots_do():
    """Issue 28, item 5: the README said every budget passed its gate and levelled off while three pilots were capped,
    and that D2/D3 had no quick budget while both had reports; the sentence is generated from the pilots now."""
    from labbench.ablation.board import budget_sentence

    sentence = budget_sentence(RESULTS, ROOT)
    assert sentence in README.read_text()
    pilots = [json.loads(p.read_text()) for p in pilot_files(RESULTS)]
    for pilot in pilots:
        if pilot.get("capped"):
            assert f"`{pilot['name']}" in sentence.split("capped", 1)[1]
    assert f"of {len(pilots)} committed pilots" in sentence
    assert "have no quick budget" not in README.read_text()


def test_the_readme_marks_every_answer_whose_arms_were_tuned_once_with_the_tuned_aa_rates():
    """Issue 26, item 6: the tuned A/A control found choosing once above its bar, so each committed answer made so is
    marked (the claims validation excuses, read from what ran) and the sentence quotes the control's measured rates."""
    from labbench.ablation.board import TUNED_AA, load_reports, tuned_once_claims, tuning_sentence
    from labbench.ablation.validation import TUNED_ONCE

    reports = load_reports(RESULTS)
    sentence = tuning_sentence(reports, ROOT)
    assert sentence and sentence in README.read_text()
    marked = {v["name"] for v in tuned_once_claims(reports)}
    assert marked == {n for n in TUNED_ONCE if not specs.load(n).control}
    aa = json.loads((ROOT / TUNED_AA).read_text())
    for name, info in aa["settings"].items():
        worst = max(h["false_positive"] for h in info["procedures"]["best of 3"]["hypotheses"].values())
        assert f"{100 * worst:.1f}% ({name})" in sentence
    waiting = {v.get("claim_id") or v["name"] for v in tuned_once_claims(reports) if (PREREG / f"{v['name']}.yaml").is_file()}
    if waiting:  # the successors waiting to run are named (each id once, after the sentence's last colon-list)
        said = sentence.split("Nested successors are pre-registered for ", 1)[1].split(" (", 1)[0]
        assert set(said.split(", ")) == waiting
    else:
        assert "Nested successors" not in sentence
    rows = [line for line in README.read_text().splitlines() if line.startswith("| ") and "](docs/results/" in line]
    for v in reports:
        row = next(r for r in rows if f"[`{v['name']}`]" in r)
        assert (" †" in row.split("|")[2]) == (v["name"] in marked), v["name"]


def test_the_readme_states_the_catalogs_measured_time_from_the_verdict_files():
    """Issue 28, item 6: the catalog's total time, measured (the runs' own wall times the verdict files sum), stated in
    the README, with the settings over the 20-minute cap named."""
    from labbench.ablation.board import load_reports, time_sentence

    sentence = time_sentence(load_reports(RESULTS), RESULTS)
    assert sentence in README.read_text()
    verdicts = [json.loads(p.read_text()) for p in RESULTS.glob("*/quick/verdict.json")]
    hours = sum(v.get("wall_time_s") or 0.0 for v in verdicts) / 3600
    assert f"trained for {hours:.1f} hours in all" in sentence
    for v in verdicts:
        for s in v.get("settings") or []:
            if (s.get("wall_time_s") or 0) > 2400:
                assert f"`{v['name']}/{s['name']}`" in sentence


def test_the_readme_leads_with_one_row_per_claim_and_its_answer():
    """Issue 29: the README's results lead with the claim-level table: every committed report has a row there, above
    the hypothesis table; a claim answered under the method shows its answer, an old-method report says it has none
    (its hypotheses tallied), never an answer word it does not have."""
    text = README.read_text()
    claims_part, hypotheses_part = text.split("Every hypothesis of every report", 1)
    for path in RESULTS.glob("*/quick/verdict.json"):
        v = json.loads(path.read_text())
        row = next(line for line in claims_part.splitlines() if f"[`{v['name']}`]" in line)
        answer = (v.get("answer") or {}).get("answer")
        if answer:
            # †: arms tuned once; ‡: the primary's effect changes side with the tuned value (the sentences below)
            assert any(f"| **{answer}**{mark} |" in row for mark in ("", " †", " ‡", " † ‡"))
            for s in v.get("settings") or []:
                assert f"{s['name']}: {s['answer']};" in row or f"{s['name']}: {s['answer']} ‡;" in row
        else:
            assert "| no claim-level answer yet | hypotheses: " in row
            tally = re.findall(r"(\d+) ([a-z ]+?)(?:,|\s\|)", row.split("hypotheses: ", 1)[1])
            assert {word: int(n) for n, word in tally} == {w: [h["verdict"] for h in v["hypotheses"]].count(w)
                                                          for w in {h["verdict"] for h in v["hypotheses"]}}
        assert f"[`{v['name']}`]" in hypotheses_part  # the hypotheses follow below


def test_an_out_of_regime_setting_says_in_its_readme_row_what_was_measured():
    """Issue 28, item 3: where a setting could not reach the claim's regime, its answer says the measured value: the row
    carries each failed check guarding the primary, the arm's mean from that setting's own verdict against the bar."""
    from labbench.ablation.report import _f

    text = README.read_text().split("Every hypothesis of every report", 1)[0]
    seen = 0
    for path in RESULTS.glob("*/quick/verdict.json"):
        v = json.loads(path.read_text())
        for s in v.get("settings") or []:
            if s.get("answer") != "out of regime":
                continue
            row = next(line for line in text.splitlines() if f"[`{v['name']}`]" in line)
            cell = next(part for part in row.split("<br>") if f"{s['name']}: out of regime;" in part)
            primary = next(h["name"] for h in v["hypotheses"] if h.get("role") == "primary" and h.get("setting") == s["name"])
            checks = json.loads((path.parent / s["name"] / "verdict.json").read_text())["regime"]
            missed = [(c, arm, a) for c in checks if primary in c["hypotheses"] for arm, a in c["arms"].items() if not a["met"]]
            assert missed, f"{v['name']}/{s['name']} is out of regime without a failed check on its primary"
            for c, arm, a in missed:
                assert f"`{c['metric']}` of `{arm}` {_f(a['mean'])} (n {a['n']}), needed" in cell, (v["name"], s["name"], c["name"])
                seen += 1
    assert seen, "no committed setting is out of regime: this test checks nothing"


def test_a_regime_miss_is_named_only_for_the_checks_that_guard_the_primary(tmp_path):
    from labbench.ablation.board import regime_misses

    check = {"metric": "test/train_acc", "direction": "higher", "bar": 0.98, "hypotheses": ["p"],
             "arms": {"a": {"mean": 0.9479, "n": 11, "met": False}, "b": {"mean": 0.99, "n": 11, "met": True}}}
    other = {**check, "metric": "test/gap", "hypotheses": ["q"]}
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "verdict.json").write_text(json.dumps({"regime": [check, other]}))
    v = {"_path": str(tmp_path / "verdict.json"), "settings": [{"name": "s", "answer": "out of regime", "report": "s/report.md"},
                                                             {"name": "t", "answer": "holds here", "report": "t/report.md"}]}
    assert regime_misses(v, {"name": "p", "setting": "s"}) == ["regime check missed: `test/train_acc` of `a` 0.9479 (n 11), needed above 0.98"]
    assert regime_misses(v, {"name": "p", "setting": "t"}) == []  # answered: nothing missed to say
    one = {"_path": "x", "answer": {"answer": "out of regime"}, "regime": [{**check, "direction": "lower", "bar": 0.5}]}
    assert regime_misses(one, {"name": "p"}) == ["regime check missed: `test/train_acc` of `a` 0.9479 (n 11), needed below 0.5"]


@pytest.mark.unit
def test_a_part_of_the_claim_contradicted_is_named_only_where_the_answer_favours_the_claim():
    """The answer is the primary's; a secondary (another part of the claim) contradicted in a setting whose answer
    favours the claim is named beside it. Not where the answer is already against or silent, not for a sanity check,
    an inconclusive part or a control."""
    from labbench.ablation.board import against_words, parts_against

    def hyp(name, setting, verdict, role="secondary"):
        return {"name": name, "setting": setting, "verdict": verdict, "role": role}

    v = {"answer": {"answer": "holds in 1 of 3 settings"},
         "settings": [{"name": "s", "answer": "holds here"}, {"name": "t", "answer": "not shown"},
                      {"name": "u", "answer": "smaller than claimed"}],
         "hypotheses": [hyp("p", "s", "supported", "primary"), hyp("part", "s", "contradicted"), hyp("other", "s", "inconclusive"),
                        hyp("check", "s", "contradicted", "sanity"), hyp("part", "t", "contradicted"),
                        hyp("part", "u", "contradicted"), hyp("more", "u", "contradicted")]}
    assert parts_against(v) == {"s": ["part"], "u": ["part", "more"]}
    assert parts_against({**v, "control": True}) == {}
    one = {"answer": {"answer": "holds here"}, "hypotheses": [hyp("p", None, "supported", "primary"), hyp("part", None, "contradicted")]}
    assert parts_against(one) == {"": ["part"]}
    assert parts_against({**one, "answer": {"answer": "does not hold here"}}) == {}
    assert against_words([]) == ""
    assert against_words(["a"]) == "; part of the claim contradicted here: a"
    assert against_words(["a", "b"]) == "; parts of the claim contradicted here (2): a; b"


def test_the_readme_names_every_part_of_a_claim_contradicted_beside_its_answer():
    """B3's "holds in 2 of 2 settings" covers its headline (degradation); on mlp-mnist1d its other part, "with residual
    links the deeper net is the better one", came out contradicted (the audit of 2026-12-07): its README row says so,
    as does every committed row with such a part."""
    from labbench.ablation.board import against_words, load_reports, parts_against

    readme = (ROOT / "README.md").read_text()
    rows = {line.split("`")[1]: line for line in readme.splitlines() if line.startswith("| ") and "`](docs/results/" in line
            and "/quick/report.md) | " in line and line.count(" | ") == 2}
    seen = 0
    for v in load_reports(RESULTS):
        for setting, names in parts_against(v).items():
            cell = next(piece for piece in rows[v["name"]].split("<br>") if piece.split(" | ")[-1].startswith(f"{setting}: "))
            assert against_words(names) in cell, (v["name"], setting)  # under its own setting, not another's
            seen += 1
    assert "mlp-mnist1d: holds here" in rows["residual-degradation"]
    assert "part of the claim contradicted here: with residual links the deeper net is the better one" in rows["residual-degradation"]
    assert seen >= 1


PREREG = ROOT / "docs" / "preregistered"
PREREGISTERED = sorted(PREREG.glob("*.yaml"))


@pytest.mark.unit
@pytest.mark.parametrize("path", PREREGISTERED, ids=[p.stem for p in PREREGISTERED])
def test_every_preregistered_spec_still_parses_in_every_setting_and_is_listed(path):
    """A pre-registered spec waits in docs/preregistered for its runs; the code moves on meanwhile. It must still parse
    (every key known, every setting derivable, the primary named) so that the next session runs it as registered, and
    docs/preregistered/README.md must say what changed in it."""
    spec = specs.load(path)
    assert any(h.role == "primary" for h in spec.hypotheses), f"{path.name} names no primary hypothesis"
    for name in spec.setting_names():
        spec.in_setting(name)
    assert f"`{path.name}`" in (ROOT / "docs" / "preregistered" / "README.md").read_text(), f"{path.name} is not listed in docs/preregistered/README.md"


def test_the_readme_main_job_quotes_its_committed_result():
    """The README's first command reproduces a committed report: the paragraph below it quotes that report's answer and
    measured run time, tied here to its verdict.json (issue 28, item 5: what the README says is true)."""
    text = README.read_text()
    command = re.search(r"bash scripts/setup\.sh && \.venv/bin/labbench reproduce (\S+) --profile (\w+)\n", text)
    assert command, "the README's first command is not `bash scripts/setup.sh && .venv/bin/labbench reproduce NAME --profile P`"
    name, profile = command.groups()
    verdict = json.loads((RESULTS / name / profile / "verdict.json").read_text())
    paragraph = text.split("The first answers", 1)[1].split("\n\n", 1)[0]
    assert f"docs/results/{name}/{profile}/report.md" in paragraph
    assert f"report.md): {verdict['answer']['answer']}." in " ".join(paragraph.split())
    assert f"{verdict['wall_time_s']:.0f} s in all" in paragraph
    assert verdict.get("settings") and len(verdict["settings"]) >= 2  # the main job shows a claim answered in two settings


def test_every_answered_report_answers_in_two_or_more_settings_at_eight_or_more_seeds():
    """Issue 28, done when: a report under the method (a claim-level answer) lists its settings, two or more, each with
    its own answer and run at 8 or more paired seeds. Reports of first versions (no answer) wait for their re-run."""
    answered = 0
    for path in sorted(RESULTS.glob("*/quick/verdict.json")):
        v = json.loads(path.read_text())
        if not v.get("answer"):
            continue
        answered += 1
        settings = v.get("settings") or []
        assert len(settings) >= 2, f"{path}: answered in {len(settings)} setting(s)"
        for s in settings:
            seeds = re.search(r"(\d+) seeds \(quick profile\)", s["line"])
            assert s.get("answer") and seeds and int(seeds.group(1)) >= 8, f"{path}: setting {s['name']}: {s.get('line')!r}"
    assert answered >= 10


def test_the_readme_marks_each_setting_whose_answer_depends_on_the_tuned_value():
    """A setting whose primary's effect changes side with the value nested tuning chose per seed carries the double
    dagger in its claim's row, and the sentence below names it; no other setting does (results.tuned_value_split on
    each committed verdict file)."""
    from labbench.ablation.board import TUNED_VALUE_MARK, load_reports, tuned_value_dependent

    text = README.read_text()
    claims_part = text.split("Every hypothesis of every report", 1)[0]
    sentence = next((line for line in text.splitlines() if line.startswith(f"{TUNED_VALUE_MARK} Depends on the tuned value")), "")
    for v in load_reports(RESULTS, "quick"):
        row = next(line for line in claims_part.splitlines() if f"[`{v['name']}`]" in line)
        marked = tuned_value_dependent(v)
        for s in v.get("settings") or []:
            assert (f"{s['name']}: {s['answer']} {TUNED_VALUE_MARK};" in row) == (s["name"] in marked), (v["name"], s["name"])
        assert bool(re.search(rf"\b{re.escape(v.get('claim_id') or v['name'])}\b", sentence)) == bool(marked)
    # the audited case, D1's conv-digits, was settled by D1's third version (tuned on the primary's KID); its fully
    # connected setting depends on the tuned value in turn (docs/method.md, "Tuning")
    assert "D1 (mlp-digits)" in sentence and "D1 (conv-digits)" not in sentence
