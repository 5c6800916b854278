"""Budgets sized from the standard arm alone (labbench pilot), spec hashes, and the new metric forms."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import yaml

from labbench.ablation import spec as specs
from labbench.ablation.metrics import has_curve, metric_value, parse_metric
from labbench.ablation.pilot import late_share, one_arm, pilot_fingerprint, profile_agrees, run_pilot, write_budget
from labbench.directions import direction


def write_spec(tmp_path: Path, **changes) -> specs.Spec:
    raw = {
        "name": "piloted", "claim": "planted", "factors": ["optimizer.lr"],
        "base": ["data=synthetic", "model=mlp", "model.width=16", "trainer.log_every_n_steps=1"],
        "arms": {"standard": ["optimizer.lr=0.1"], "other": ["optimizer.lr=0.01"]},
        "metrics": ["val/loss"],
        "hypotheses": [{"metric": "val/loss", "better": "standard", "worse": "other", "direction": "lower"}],
        "gates": [{"metric": "test/acc", "threshold": "chance"}, {"metric": "val/loss", "threshold": 5.0, "arms": ["other"]}],
        "profiles": {"smoke": {"seeds": 2}, "quick": {"seeds": 8, "overrides": ["trainer.max_steps=12", "trainer.val_check_interval=6"]}},
        "pilot": {"arm": "standard", "seeds": 2, "metric": "val/loss", "late_progress": 0.5,
                  "candidates": [["trainer.max_steps=4", "trainer.val_check_interval=2"], ["trainer.max_steps=12", "trainer.val_check_interval=6"]]},
    }
    raw.update(changes)
    path = tmp_path / "piloted.yaml"
    path.write_text(yaml.safe_dump(raw))
    return specs.load(str(path))


def curve_record(points, failure=2.3):
    return {"status": "completed", "curves": {"val/loss": [[s, v] for s, v in points]}, "metrics": {"final": {"val/loss": points[-1][1]}},
            "failure_values": {"val/loss": failure}}


def test_late_share_is_the_progress_made_in_the_last_half_from_the_failure_value():
    # from ln 10 = 2.3 down to 0.3: 2.0 of progress; at half the budget (step 50) 0.5, so 0.2 of it came late
    rec = curve_record([(25, 1.0), (50, 0.5), (75, 0.4), (100, 0.3)])
    share = late_share(rec, "val/loss", "lower")
    assert share["start"] == 2.3 and share["half"] == 0.5 and share["end"] == 0.3
    assert share["late_share"] == pytest.approx(0.2 / 2.0)
    # higher-is-better metrics the other way round; a run that got worse than where it started never levelled off
    acc = {"status": "completed", "curves": {"val/acc": [[50, 0.8], [100, 0.9]]}, "metrics": {"final": {"val/acc": 0.9}},
           "failure_values": {"val/acc": 0.1}}
    assert late_share(acc, "val/acc", "higher")["late_share"] == pytest.approx(0.1 / 0.8)
    assert late_share(curve_record([(50, 2.5), (100, 2.4)]), "val/loss", "lower")["late_share"] == math.inf
    # without a failure value, progress counts from the first logged value
    assert late_share(curve_record([(0, 1.0), (50, 0.6), (100, 0.5)], failure=None) | {"failure_values": {}}, "val/loss", "lower")[
        "late_share"] == pytest.approx(0.1 / 0.5)
    # the spec's declared failure value comes first (a VAE's loss has none in the task: from its first evaluation the
    # fall already made looks like no progress, 0.1 of 0.5 here; from the independent-pixel loss 2.3, 0.1 of 1.8)
    rec = curve_record([(25, 1.0), (50, 0.6), (100, 0.5)], failure=None) | {"failure_values": {}}
    assert late_share(rec, "val/loss", "lower", declared={"val/loss": 2.3})["late_share"] == pytest.approx(0.1 / 1.8)
    assert late_share(curve_record([(50, 0.5), (100, 0.3)]), "val/loss", "lower", declared={"test/loss": 9.0})["start"] == 2.3
    assert late_share(curve_record([(50, 0.5), (100, 0.3)]), "val/loss", "lower", declared={"val/loss": 3.3})["start"] == 3.3
    with pytest.raises(specs.SpecError, match="two logged evaluations"):
        late_share(curve_record([(100, 0.3)]), "val/loss", "lower")


def test_a_pilot_section_is_checked_with_clear_errors(tmp_path):
    with pytest.raises(specs.SpecError, match="pilot.arm names 'nope'"):
        write_spec(tmp_path, pilot={"arm": "nope", "candidates": [["trainer.max_steps=4"]]})
    with pytest.raises(specs.SpecError, match="candidates must be a non-empty list"):
        write_spec(tmp_path, pilot={"arm": "standard", "candidates": []})
    with pytest.raises(specs.SpecError, match="unknown key"):
        write_spec(tmp_path, pilot={"arm": "standard", "candidates": [["trainer.max_steps=4"]], "budget": 3})
    with pytest.raises(specs.SpecError, match="late_progress must lie in"):
        write_spec(tmp_path, pilot={"arm": "standard", "candidates": [["trainer.max_steps=4"]], "late_progress": 1.5})
    spec = write_spec(tmp_path)
    cut = one_arm(spec)
    assert [a.name for a in cut.arms] == ["standard"] and [g.metric for g in cut.gates] == ["test/acc"]  # the other arm's gate left out


def test_the_pilot_runs_the_standard_arm_alone_and_picks_the_first_budget_that_meets_the_rule(tmp_path):
    spec = write_spec(tmp_path)
    result = run_pilot(spec, root=tmp_path / "runs", out_dir=tmp_path / "pilot")
    stored = json.loads((tmp_path / "pilot" / "pilot.json").read_text())
    assert stored["chosen"] == result["chosen"] and (tmp_path / "pilot" / "pilot.md").is_file()
    arms = {json.loads(p.read_text())["config"]["optimizer"]["lr"] for p in (tmp_path / "runs").rglob("run.json")}
    assert arms == {0.1}  # only the standard arm ran: nothing to compare
    for c in result["candidates"]:
        assert len(c["runs"]) == 2 and all(r["status"] == "completed" for r in c["runs"])
        shares = [r["late_share"] for r in c["runs"]]
        assert c["late_share_mean"] == pytest.approx(sum(shares) / 2)
        assert c["met"] == (all(g["passed"] for g in c["gates"]) and c["late_share_mean"] <= 0.5)
    if result["chosen"] is not None:
        assert all(not c["met"] for c in result["candidates"][: result["chosen"]])
        assert len(result["candidates"]) == result["chosen"] + 1  # stops at the first that meets the rule


@pytest.mark.integration  # two pilots, one through a worker pool: ~35 s on 2 cores
def test_a_pilot_in_two_worker_processes_gives_the_same_figures(tmp_path):
    """``labbench pilot --jobs 2`` trains a candidate's independent runs in parallel; the budget and
    every figure are those of the one-process pilot (each run sets its own thread count)."""
    spec = write_spec(tmp_path)
    one = run_pilot(spec, root=tmp_path / "one", out_dir=tmp_path / "p1")
    two = run_pilot(spec, root=tmp_path / "two", out_dir=tmp_path / "p2", jobs=2)

    def figures(result):
        return [(c["tuned"], [(r["run_id"], r.get("late_share"), r.get("gate_values")) for r in c["runs"]]) for c in result["candidates"]]

    assert two["chosen"] == one["chosen"] and figures(two) == figures(one)


def test_a_capped_pilot_falls_back_to_its_largest_candidate_and_says_so(tmp_path):
    unmeetable = {"arm": "standard", "seeds": 1, "metric": "val/loss", "late_progress": 1e-9, "fallback": "largest",
                  "candidates": [["trainer.max_steps=4", "trainer.val_check_interval=2"], ["trainer.max_steps=6", "trainer.val_check_interval=3"]]}
    spec = write_spec(tmp_path, pilot=unmeetable, gates=[{"metric": "val/loss", "threshold": 0.0}])  # a gate no run passes
    result = run_pilot(spec, root=tmp_path / "runs", out_dir=tmp_path / "pilot")
    assert not any(c["met"] for c in result["candidates"]) and len(result["candidates"]) == 2
    assert result["chosen"] == 1 and result["capped"] is True
    assert "capped budget:** `trainer.max_steps=6`" in (tmp_path / "pilot" / "pilot.md").read_text()
    assert "lacks the chosen candidate" in profile_agrees(spec, result)[0]  # the quick profile still says 12 steps
    plain = write_spec(tmp_path, pilot={**unmeetable, "fallback": "none"}, gates=[{"metric": "val/loss", "threshold": 0.0}])
    assert run_pilot(plain, root=tmp_path / "runs", out_dir=tmp_path / "plain")["chosen"] is None  # same runs, no budget
    with pytest.raises(specs.SpecError, match="pilot.fallback 'max' is not one of none, largest"):
        write_spec(tmp_path, pilot={**unmeetable, "fallback": "max"})


def test_the_profile_must_carry_the_committed_pilots_budget(tmp_path):
    spec = write_spec(tmp_path)
    result = {"pilot_hash": pilot_fingerprint(spec), "chosen": 1,
              "candidates": [{"overrides": ["trainer.max_steps=4", "trainer.val_check_interval=2"]},
                             {"overrides": ["trainer.max_steps=12", "trainer.val_check_interval=6"]}]}
    assert profile_agrees(spec, result) == []
    assert "lacks the chosen candidate" in profile_agrees(spec, {**result, "chosen": 0})[0]
    assert "no candidate met the rule" in profile_agrees(spec, {**result, "chosen": None})[0]
    # the budget keys the candidates set do not change the pilot's hash; anything else it depends on does
    moved = write_spec(tmp_path, profiles={"smoke": {"seeds": 2}, "quick": {"overrides": ["trainer.max_steps=4", "trainer.val_check_interval=2"]}})
    assert pilot_fingerprint(moved) == pilot_fingerprint(spec)
    changed = write_spec(tmp_path, base=["data=synthetic", "model=mlp", "model.width=32", "trainer.log_every_n_steps=1"])
    assert "another version of the spec" in profile_agrees(changed, result)[0]


SPEC_TEXT = """\
# a comment that must survive
name: piloted
claim: planted
factors: [optimizer.lr]
base: [data=synthetic, model=mlp]
arms:
  standard: [optimizer.lr=0.1]
  other: [optimizer.lr=0.01]
metrics: [val/loss]
hypotheses:
  - {metric: val/loss, better: standard, worse: other, direction: lower}
profiles:
  smoke:
    seeds: 2
  quick:
    description: the piloted one
    seeds: 8
    overrides:                  # a block list, as several specs write theirs
      - "trainer.max_steps='${labbench.div:400,${data.batch_size}}'"
      - trainer.val_check_interval=2
    estimated_minutes: 1        # kept
pilot:
  arm: standard
  seeds: 2
  metric: val/loss
  candidates:
    - [trainer.max_steps=4, trainer.val_check_interval=2]
    - ["trainer.max_steps='${labbench.div:1200,${data.batch_size}}'", trainer.val_check_interval=6]
"""


@pytest.mark.unit
def test_write_profile_puts_the_chosen_budget_into_the_spec_and_keeps_the_rest(tmp_path):
    path = tmp_path / "piloted.yaml"
    path.write_text(SPEC_TEXT)
    spec = specs.load(str(path))
    chosen = ["trainer.max_steps='${labbench.div:1200,${data.batch_size}}'", "trainer.val_check_interval=6"]
    result = {"pilot_hash": pilot_fingerprint(spec), "chosen": 1,
              "candidates": [{"overrides": ["trainer.max_steps=4", "trainer.val_check_interval=2"]}, {"overrides": chosen}]}
    assert profile_agrees(spec, result)  # the profile still holds the old budget
    write_budget(spec, result)
    text = path.read_text()
    written = specs.load(str(path))
    assert written.profile("quick").overrides == tuple(chosen) and profile_agrees(written, result) == []
    assert "# a comment that must survive" in text and "estimated_minutes: 1        # kept" in text
    assert "description: the piloted one" in text and written.profile("smoke").seeds == 2
    write_budget(written, {**result, "pilot_hash": pilot_fingerprint(written)})  # a second write changes nothing
    assert path.read_text() == text
    with pytest.raises(specs.SpecError, match="chose no budget"):
        write_budget(written, {**result, "chosen": None})


def test_a_reports_spec_hash_follows_what_the_report_depends_on(tmp_path):
    spec = write_spec(tmp_path)
    h = specs.fingerprint(spec, "quick")
    assert len(h) == 12
    # another profile's settings, the time estimate, the pilot and the map do not count ...
    assert specs.fingerprint(write_spec(tmp_path, profiles={"smoke": {"seeds": 3}, "quick": {
        "seeds": 8, "overrides": ["trainer.max_steps=12", "trainer.val_check_interval=6"], "estimated_minutes": 3}}), "quick") == h
    assert specs.fingerprint(write_spec(tmp_path, pilot=None, map={"axes": {"model.width": [8, 16]}}), "quick") == h
    # ... settings, hypotheses and gates do; a map's hash also covers its axes
    assert specs.fingerprint(write_spec(tmp_path, metrics=["val/loss", "test/acc"]), "quick") != h
    assert specs.fingerprint(write_spec(tmp_path, gates=[]), "quick") != h
    mapped = write_spec(tmp_path, map={"axes": {"model.width": [8, 16]}})
    assert specs.fingerprint(mapped, "quick", map_axes=True) != specs.fingerprint(write_spec(tmp_path, map={"axes": {"model.width": [8]}}), "quick", map_axes=True)


def test_an_early_window_is_the_mean_of_the_values_logged_inside_it():
    rec = {"curves": {"train/loss": [[0, 2.0], [10, 1.0], [20, 0.6], [30, 0.1]]}}
    assert metric_value(rec, "train/loss@0:20") == pytest.approx((2.0 + 1.0 + 0.6) / 3)
    assert metric_value(rec, "train/loss@10:10") == 1.0
    assert math.isnan(metric_value(rec, "train/loss@40:50"))
    assert metric_value(rec, "train/loss@20") == 0.6  # the single-step form is unchanged
    assert parse_metric("train/loss@0:100").window == (0, 100)
    assert has_curve([{"status": "completed", **rec}], "train/loss@0:20") == []  # pinned: no stability points
    with pytest.raises(ValueError, match="first step 30 is after its last 10"):
        parse_metric("train/loss@30:10")


def test_the_spread_kept_at_init_is_lower_is_better():
    assert direction("init/act_std_log_ratio", "labbench.tasks.classify.ClassificationTask") == "lower"
    assert direction("init/act_std_ratio", "labbench.tasks.classify.ClassificationTask") == "neither"


def test_labbench_pilot_from_the_command_line(tmp_path):
    from conftest import cli

    spec = write_spec(tmp_path)
    proc = cli("labbench", "pilot", str(spec.path), "--no-wandb", "--out", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "p"), cwd=tmp_path)
    result = json.loads((tmp_path / "p" / "pilot.json").read_text())
    assert proc.returncode == (0 if result["chosen"] is not None else 1), proc.stdout + proc.stderr
    assert "standard" in proc.stdout and ("chosen budget" in proc.stdout or "no candidate met the rule" in proc.stdout)
    assert "Chosen budget" in (tmp_path / "p" / "pilot.md").read_text() or result["chosen"] is None
    none = cli("labbench", "pilot", "aa-control", "--setting", "mlp-digits", cwd=tmp_path)
    said = " ".join(none.stdout.split())
    assert none.returncode == 2 and "has no `pilot` section" in said and "experiments/README.md, key `pilot`" in said


PER_ARM = {"arms": ["standard", "other"], "seeds": 1, "metric": "val/loss", "late_progress": 0.5, "fallback": "largest",
           "candidates": [["trainer.max_steps=4", "trainer.val_check_interval=2"], ["trainer.max_steps=6", "trainer.val_check_interval=3"]]}


def test_per_arm_budgets_are_declared_checked_and_each_arm_runs_at_its_own(tmp_path):
    """Issue 28 (D4): model families with recipes of their own get a budget each, from that arm's own pilot, written
    into the profile's ``arm_overrides``; the planner gives each arm its own (later than the profile's overrides)."""
    from labbench.ablation import plan as planning

    with pytest.raises(specs.SpecError, match="arm .*or arms .*not both"):
        write_spec(tmp_path, pilot={**PER_ARM, "arm": "standard"})
    with pytest.raises(specs.SpecError, match="pilot.arms names 'nope'"):
        write_spec(tmp_path, pilot={**PER_ARM, "arms": ["standard", "nope"]})
    with pytest.raises(specs.SpecError, match="arm_overrides must map arms"):
        write_spec(tmp_path, pilot=PER_ARM, profiles={"smoke": {"seeds": 2}, "quick": {"arm_overrides": {"nope": ["trainer.max_steps=4"]}}})
    quick = {"seeds": 2, "overrides": ["trainer.max_steps=12", "trainer.val_check_interval=6"],
             "arm_overrides": {"other": ["trainer.max_steps=6", "trainer.val_check_interval=3"]}}
    spec = write_spec(tmp_path, pilot=PER_ARM, profiles={"smoke": {"seeds": 2}, "quick": quick})
    assert spec.pilot.per_arm and spec.pilot.arm == "standard" and spec.pilot.for_arm("other").arm == "other"
    steps = {r.arm: next(o for o in r.overrides if o.startswith("trainer.max_steps=")) for r in planning.final_runs(spec, "quick", [], [0], {})}
    assert steps == {"standard": "trainer.max_steps=12", "other": "trainer.max_steps=6"}  # the arm's own budget wins
    # each arm's budget in the report hash: another budget for one arm, another fingerprint
    other = write_spec(tmp_path, pilot=PER_ARM, profiles={"smoke": {"seeds": 2}, "quick": {**quick, "arm_overrides": {"other": ["trainer.max_steps=4"]}}})
    assert specs.fingerprint(other, "quick") != specs.fingerprint(spec, "quick")
    # profile_agrees reads the piloted arm's entry
    for_other = dataclasses.replace(spec, pilot=spec.pilot.for_arm("other"))
    result = {"pilot_hash": pilot_fingerprint(for_other), "chosen": 1,
              "candidates": [{"overrides": PER_ARM["candidates"][0]}, {"overrides": PER_ARM["candidates"][1]}]}
    assert profile_agrees(for_other, result) == []
    assert "arm_overrides.other" in profile_agrees(for_other, {**result, "chosen": 0})[0]


def test_the_pilot_command_sizes_each_arm_alone_and_writes_each_budget(tmp_path, monkeypatch):
    from labbench.cli import main

    monkeypatch.setenv("WANDB_MODE", "disabled")
    spec = write_spec(tmp_path, pilot=PER_ARM, profiles={"smoke": {"seeds": 2}, "quick": {"seeds": 8}})
    assert main(["pilot", str(spec.path), "--out", str(tmp_path / "store"), "--no-wandb", "--report-dir", str(tmp_path / "report"),
                 "--write-profile"]) == 0
    for arm, lr in (("standard", 0.1), ("other", 0.01)):
        stored = json.loads((tmp_path / "report" / arm / "pilot.json").read_text())
        assert stored["arm"] == arm and stored["per_arm"] is True and stored["chosen"] is not None
        configs = {json.loads((tmp_path / "store" / "piloted" / "quick" / "runs" / r["run_id"] / "run.json").read_text())["config"]["optimizer"]["lr"]
                   for c in stored["candidates"] for r in c["runs"]}
        assert configs == {lr}  # each arm's pilot ran that arm alone
        assert f"--arm {arm}" in (tmp_path / "report" / arm / "pilot.md").read_text()
    again = specs.load(str(spec.path))
    written = again.profile("quick").arm_overrides
    chosen = {arm: json.loads((tmp_path / "report" / arm / "pilot.json").read_text()) for arm in ("standard", "other")}
    assert written == {arm: tuple(r["candidates"][r["chosen"]]["overrides"]) for arm, r in chosen.items()}
    assert again.profile("quick").overrides == ()  # the profile's own overrides untouched
    for arm, r in chosen.items():
        assert profile_agrees(dataclasses.replace(again, pilot=again.pilot.for_arm(arm)), r) == []
    assert main(["pilot", str(spec.path), "--arm", "nope", "--out", str(tmp_path / "store"), "--no-wandb"]) != 0


@pytest.mark.unit
def test_the_pilot_table_marks_a_candidate_whose_tuning_runs_had_no_score(tmp_path):
    """A budget rests on its candidate's tuning: where some tuning runs failed, the table says so beside the value, and
    `labbench pilot --retry-failed` is accepted (it runs them again before the choice)."""
    from labbench.ablation.pilot import render

    spec = write_spec(tmp_path, factors=["model.width"], arms={"standard": ["model.width=16"], "other": ["model.width=8"]},
                      tuning={"param": "optimizer.lr", "grid": [0.01, 0.1], "metric": "val/loss", "direction": "lower"})
    candidate = {"index": 0, "overrides": ["trainer.max_steps=4"], "gates": [], "runs": [], "late_share_mean": 0.0, "met": True,
                 "tuned": {"value": 0.01, "on_edge": False}}
    result = {"name": "piloted", "profile": "quick", "arm": "standard", "metric": "val/loss", "seeds": 2, "late_progress": 0.5,
              "progress_from": "failure", "gates": [], "pilot_hash": "x", "candidates": [candidate], "chosen": 0, "capped": False}
    assert "without a score" not in render(spec, result)
    candidate["tuned"].update(unscored={"0.1": 1}, scores={"0.01": 0.5, "0.1": 0.7})
    assert "`optimizer.lr=0.01` **1 tuning run(s) without a score (1 at 0.1): the value was chosen without them; `--retry-failed`" \
        in render(spec, result)
    from labbench.cli import build_parser

    assert build_parser().parse_args(["pilot", "x", "--retry-failed"]).retry_failed is True
    assert build_parser().parse_args(["pilot", "x"]).retry_failed is False
