"""One rule chooses a nuisance setting per arm, for ablations and for command-line sweeps alike."""

from __future__ import annotations

import math

import pytest

from labbench.tuning import best_setting, mean_scores, on_edge


def test_best_mean_wins_and_nothing_that_blew_up_does():
    scores = {"0.3": [0.2, math.inf], "0.1": [0.5, 0.5], "0.03": [0.3, 0.35], "0.01": [math.nan, math.nan]}
    best, means = best_setting(scores, "lower")
    assert best == "0.03" and means["0.03"] == pytest.approx(0.325)
    assert means["0.3"] == math.inf and math.isnan(means["0.01"])  # diverged without a failure value; all failed
    assert best_setting({"a": [0.8], "b": [0.9, math.nan]}, "higher")[0] == "b"  # a failed run is left out, not scored
    assert best_setting({"a": [math.nan]}, "lower")[0] is None
    assert best_setting({"a": [1.0], "b": [1.0]}, "lower")[0] == "a"  # ties: the first listed
    with pytest.raises(ValueError, match="lower or higher"):
        best_setting({"a": [1.0]}, "minimize")
    assert mean_scores({"a": [1.0, 3.0]}) == {"a": 2.0}


def test_edge_of_what_was_tried():
    assert on_edge(0.03, [0.3, 0.1, 0.03]) and on_edge(0.3, [0.3, 0.1]) and not on_edge(0.1, [0.3, 0.1, 0.03])
    assert not on_edge(0.1, [0.1])  # one value tried: no edge to speak of
    assert not on_edge("adam", ["adam", "sgd"])


def test_tuning_repeats_choose_again_on_disjoint_seed_blocks(tmp_path):
    import yaml

    from labbench.ablation import spec as specs
    from labbench.ablation.plan import TUNING_SEED_BASE, tuning_runs
    from labbench.ablation.results import choose_tuned

    raw = {"name": "rep", "claim": "c", "factors": [], "base": ["data=synthetic"], "arms": {"a": [], "b": {"overrides": [], "seed_offset": 50}},
           "hypotheses": [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}],
           "tuning": {"param": "optimizer.lr", "grid": [0.01, 0.1], "metric": "val/loss", "direction": "lower", "repeats": 2},
           "profiles": {"smoke": {"seeds": 2}}}
    (tmp_path / "rep.yaml").write_text(yaml.safe_dump(raw))
    spec = specs.load(str(tmp_path / "rep.yaml"))
    runs = tuning_runs(spec, "smoke", [])
    assert sorted({r.seed for r in runs if r.arm == "a"}) == [TUNING_SEED_BASE, TUNING_SEED_BASE + 1]  # two disjoint blocks
    assert sorted({r.seed for r in runs if r.arm == "b"}) == [TUNING_SEED_BASE + 50, TUNING_SEED_BASE + 51]
    # arm a: block 0 prefers 0.01, block 1 prefers 0.1; arm b prefers 0.1 in both
    loss = {("a", 0, 0.01): 0.5, ("a", 0, 0.1): 0.6, ("a", 1, 0.01): 0.9, ("a", 1, 0.1): 0.55,
            ("b", 0, 0.01): 0.9, ("b", 0, 0.1): 0.4, ("b", 1, 0.01): 0.8, ("b", 1, 0.1): 0.45}
    offset = {"a": 0, "b": 50}
    records = {r.run_id: {"status": "completed", "metrics": {"final": {"val/loss": loss[(r.arm, r.seed - TUNING_SEED_BASE - offset[r.arm], r.tuned_value)]}},
                          "curves": {}} for r in runs}

    class Store:
        def record(self, run_id):
            return records[run_id]

    tuned = choose_tuned(spec, "smoke", runs, Store())
    assert tuned["a"]["per_block"] == [0.01, 0.1] and not tuned["a"]["blocks_agree"]
    assert tuned["a"]["value"] == 0.1  # pooled: mean 0.575 beats 0.7
    assert tuned["b"]["per_block"] == [0.1, 0.1] and tuned["b"]["blocks_agree"] and tuned["b"]["value"] == 0.1


def test_the_next_value_repeats_the_grids_spacing_beyond_its_edge():
    from labbench.tuning import next_value

    grid = [0.001, 0.003, 0.01, 0.03]
    assert next_value(0.001, grid) == 0.000333  # a half-decade below, 3 significant digits
    assert next_value(0.03, grid) == 0.09
    assert next_value(0.01, grid) is None  # not on an edge
    assert next_value(-1.0, [-1.0, 0.0, 1.0]) == -2.0  # a grid through zero steps by its difference
    assert next_value(2, [1, 2]) == 4.0
    assert next_value("a", ["a", "b"]) is None


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_tuning_extends_past_an_edge_on_the_arms_own_scores(tmp_path):
    """A grid far below a workable rate puts every arm's best on the upper edge; extend walks on from there."""
    import yaml

    from labbench.ablation import engine
    from labbench.ablation import spec as specs

    raw = {"name": "edge", "claim": "planted", "factors": ["model.width"], "base": ["data=synthetic", "model=mlp", "trainer.max_steps=20",
                                                                                    "trainer.val_check_interval=10"],
           "arms": {"narrow": ["model.width=8"], "wide": ["model.width=16"]},
           "hypotheses": [{"metric": "val/loss", "better": "wide", "worse": "narrow", "direction": "lower"}],
           "tuning": {"param": "optimizer.lr", "grid": [0.00001, 0.0001], "metric": "val/loss", "direction": "lower", "extend": 2},
           "profiles": {"smoke": {"seeds": 1}}}
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = specs.load(str(path))
    announced: list[int] = []
    planned: list[int] = []
    outcome = engine.reproduce(spec, "smoke", root=tmp_path / "runs", wandb=False, on_start=planned.append,
                               on_more=announced.append)
    assert planned == [2 * 2 + 2] and sum(announced) == 4  # the declared grid first; the 4 runs past its edge told as added
    for arm in ("narrow", "wide"):
        tried = sorted(r.tuned_value for r in outcome.plan.tuning_runs if r.arm == arm)
        info = outcome.plan.tuned[arm]
        assert tried == [0.00001, 0.0001, 0.001, 0.01]  # two steps past the upper edge, a decade each
        assert info["extended"] == [0.001, 0.01] and set(info["scores"]) == {repr(v) for v in tried}
        assert info["value"] == min(tried, key=lambda v: info["scores"][repr(v)])
    rebuilt = engine.rebuild_report(spec, "smoke", root=tmp_path / "runs")
    assert rebuilt.plan.tuned == outcome.plan.tuned and len(rebuilt.plan.tuning_runs) == 8  # the plan on disk lists them all
    assert "also tried 0.001, 0.01" in rebuilt.report.read_text()


def test_tuning_runs_without_a_score_are_named_and_retry_failed_runs_them_before_choosing(tmp_path):
    """A tuning run that failed (or whose record is gone) has no score: the choice goes on without it, as the
    store's promise that one crash loses no other run requires, but the tuned arm says so, value by value, in its
    verdict data, its report row and the caveats, so that a grid whose runs crashed cannot steer a budget or a verdict
    unseen; ``--retry-failed`` runs the failed tuning runs again before the choice is made from them."""
    import json

    import yaml

    from labbench.ablation import engine
    from labbench.ablation import spec as specs
    from labbench.ablation.metrics import metric_value
    from labbench.ablation.report import caveats

    raw = {"name": "lost", "claim": "planted", "factors": ["model.width"], "base": ["data=synthetic", "model=mlp", "trainer.max_steps=10",
                                                                                    "trainer.val_check_interval=5"],
           "arms": {"narrow": ["model.width=8"], "wide": ["model.width=16"]},
           "hypotheses": [{"metric": "val/loss", "better": "wide", "worse": "narrow", "direction": "lower"}],
           "tuning": {"param": "optimizer.lr", "grid": [0.01, 0.1], "metric": "val/loss", "direction": "lower", "seeds": 2},
           "profiles": {"smoke": {"seeds": 1}}}
    path = tmp_path / "lost.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = specs.load(str(path))
    root = tmp_path / "runs"
    outcome = engine.reproduce(spec, "smoke", root=root, wandb=False)
    assert all("unscored" not in info for info in outcome.plan.tuned.values())
    assert "without a score" not in outcome.report.read_text()
    crashed = [r for r in outcome.plan.tuning_runs if r.arm == "wide" and r.tuned_value == 0.1]
    assert len(crashed) == 2
    records = [root / "lost" / "smoke" / "runs" / r.run_id / "run.json" for r in crashed]
    completed = [json.loads(p.read_text()) for p in records]

    def fail(i: int) -> None:
        records[i].write_text(json.dumps({**completed[i], "status": "failed", "error": "planted", "metrics": {}}))

    fail(0)
    again = engine.reproduce(spec, "smoke", root=root, wandb=False)  # a failed run counts as done: not run again
    assert json.loads(records[0].read_text())["status"] == "failed"
    wide = again.plan.tuned["wide"]
    assert wide["unscored"] == {"0.1": 1} and "unscored" not in again.plan.tuned["narrow"]
    assert wide["scores"]["0.1"] == pytest.approx(metric_value(completed[1], "val/loss"))  # the mean of the run left
    line = ("**1 tuning run(s) without a score (1 at 0.1): the value was chosen without them; `--retry-failed` runs the failed "
            "ones again before choosing")
    assert line in " ".join(again.report.read_text().split())
    assert any(c.startswith("`wide`'s tuning: " + line) for c in caveats(again.verdict))

    retried = engine.reproduce(spec, "smoke", root=root, wandb=False, retry_failed=True)  # run again, then chosen from
    assert json.loads(records[0].read_text())["status"] == "completed"
    assert "unscored" not in retried.plan.tuned["wide"] and retried.plan.tuned == outcome.plan.tuned  # the same run, again

    fail(0), fail(1)  # no run of 0.1 scored: it cannot be chosen, and the line says so
    lost = engine.reproduce(spec, "smoke", root=root, wandb=False).plan.tuned["wide"]
    assert lost["unscored"] == {"0.1": 2} and lost["value"] == 0.01 and math.isnan(lost["scores"]["0.1"])
    from labbench.ablation.report import unscored_warning
    assert "2 at 0.1 (none of its runs scored: it could not be chosen)" in unscored_warning(lost)
    assert "no value has a score: nothing was chosen" in unscored_warning({"unscored": {"0.01": 1}, "scores": {"0.01": "nan"}})


def test_an_arm_the_grid_leaves_out_is_not_tuned_and_keeps_the_base_value(tmp_path):
    """Keskar et al.'s protocol (fixed hyper-parameters) beside Shallue et al.'s (tuned) in one spec."""
    import yaml

    from labbench.ablation import engine
    from labbench.ablation import spec as specs

    raw = {"name": "part", "claim": "c", "factors": [], "base": ["data=synthetic", "optimizer.lr=0.004", "trainer.max_steps=4",
                                                             "trainer.val_check_interval=2"],
           "arms": {"fixed": [], "tuned": {"overrides": [], "seed_offset": 50}},
           "hypotheses": [{"metric": "val/loss", "better": "fixed", "worse": "tuned", "direction": "lower"}],
           "tuning": {"param": "optimizer.lr", "grid": {"tuned": [0.01, 0.1]}, "metric": "val/loss", "direction": "lower"},
           "profiles": {"smoke": {"seeds": 2, "tuning_grid": [0.02, 0.2]}}}
    (tmp_path / "part.yaml").write_text(yaml.safe_dump(raw))
    spec = specs.load(str(tmp_path / "part.yaml"))
    assert engine.count_runs(spec, "smoke") == 2 * 2 + 2  # two arms x two seeds, two tuning runs for one arm
    assert engine.stored_runs(spec, "smoke", root=tmp_path / "store") == 0
    outcome = engine.reproduce(spec, "smoke", root=tmp_path / "store", wandb=False)
    # a tuned arm's final runs are known from the stored plan: all six count as reusable; with other seeds only the tuning runs do
    assert engine.stored_runs(spec, "smoke", root=tmp_path / "store") == 6
    assert engine.stored_runs(spec, "smoke", seeds=3, root=tmp_path / "store") == 2  # only the tuning runs
    assert {r.arm for r in outcome.plan.tuning_runs} == {"tuned"} and set(outcome.plan.tuned) == {"tuned"}
    from labbench.ablation.store import Store

    store = Store(tmp_path / "store", "part", "smoke")
    lrs = {r.arm: store.record(r.run_id)["config"]["optimizer"]["lr"] for r in outcome.plan.final_runs}
    assert lrs["fixed"] == 0.004 and lrs["tuned"] in (0.02, 0.2)
    report = (tmp_path / "store" / "part" / "smoke" / "report.md").read_text()
    assert "not tuned (the base value): `fixed`" in report
    bad = {**raw, "name": "bad", "profiles": {"smoke": {"seeds": 2, "tuning_grid": {"fixed": [0.1], "tuned": [0.1]}}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(specs.SpecError, match="the arms tuning.grid tunes"):
        specs.load(str(tmp_path / "bad.yaml"))


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_two_keys_tuned_jointly_run_each_pair_and_the_report_shows_the_landscape(tmp_path):
    """B5's protocol: learning rate x weight decay on one grid (Loshchilov & Hutter 2019, Fig. 2)."""
    import yaml

    from labbench.ablation import engine
    from labbench.ablation import spec as specs
    from labbench.ablation.multirun import multirun_commands
    from labbench.ablation.store import Store
    from labbench.tuning import on_edge

    pairs = [[lr, wd] for lr in (0.001, 0.01) for wd in (0.0, 0.1)]
    raw = {"name": "joint", "claim": "c", "factors": [], "base": ["data=synthetic", "trainer.max_steps=4", "trainer.val_check_interval=2"],
           "arms": {"a": [], "b": {"overrides": [], "seed_offset": 50}},
           "hypotheses": [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}],
           "tuning": {"param": ["optimizer.lr", "optimizer.weight_decay"], "grid": pairs, "metric": "val/loss", "direction": "lower"},
           "profiles": {"smoke": {"seeds": 2}}}
    (tmp_path / "joint.yaml").write_text(yaml.safe_dump(raw))
    spec = specs.load(str(tmp_path / "joint.yaml"))
    assert spec.tuning.assignments((0.01, 0.1)) == ["optimizer.lr=0.01", "optimizer.weight_decay=0.1"]
    stage, commands = multirun_commands(spec, "smoke", Store(tmp_path / "store", "joint", "smoke"), wandb=False)
    assert stage == "tune" and len(commands) == 2 * 4  # one command per pair and arm: a joint grid is not a product
    outcome = engine.reproduce(spec, "smoke", root=tmp_path / "store", wandb=False)
    store = Store(tmp_path / "store", "joint", "smoke")
    tried = {(store.record(r.run_id)["config"]["optimizer"]["lr"], store.record(r.run_id)["config"]["optimizer"]["weight_decay"])
             for r in outcome.plan.tuning_runs if r.arm == "a"}
    assert tried == {tuple(p) for p in pairs}
    chosen = outcome.plan.tuned["a"]["value"]
    final = store.record(next(r.run_id for r in outcome.plan.final_runs if r.arm == "a"))["config"]["optimizer"]
    assert (final["lr"], final["weight_decay"]) == tuple(chosen)
    report = (tmp_path / "store" / "joint" / "smoke" / "report.md").read_text()
    assert "### Tuning landscape" in report and "| `0.001` |" in report and "`optimizer.weight_decay` (columns)" in report
    assert "`optimizer.lr x optimizer.weight_decay` per arm" in report
    assert on_edge((0.01, 0.0), [tuple(p) for p in pairs]) and not on_edge((0.1, 0.5), [(0.01, 0.0), (0.1, 0.5), (1.0, 1.0)])
    for bad, message in ((dict(raw["tuning"], extend=1), "must be 0"), (dict(raw["tuning"], grid=[[0.1]]), "a list of 2")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**raw, "name": "bad", "tuning": bad}))
        with pytest.raises(specs.SpecError, match=message):
            specs.load(str(tmp_path / "bad.yaml"))


def test_a_grid_whose_values_all_tie_is_flagged_as_uninformative(tmp_path):
    """Steps to a target that no rate reached: every value censored at the budget, the choice is arbitrary."""
    import yaml

    from labbench.ablation import spec as specs
    from labbench.ablation.plan import tuning_runs
    from labbench.ablation.results import choose_tuned

    raw = {"name": "tie", "claim": "c", "factors": [], "base": ["data=synthetic", "trainer.max_steps=300"],
           "arms": {"a": [], "b": {"overrides": [], "seed_offset": 50}},
           "hypotheses": [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower"}],
           "tuning": {"param": "optimizer.lr", "grid": [0.01, 0.1, 1.0], "metric": "val/acc>=0.9", "direction": "lower"},
           "profiles": {"smoke": {"seeds": 2}}}
    (tmp_path / "tie.yaml").write_text(yaml.safe_dump(raw))
    spec = specs.load(str(tmp_path / "tie.yaml"))
    runs = tuning_runs(spec, "smoke", [])
    never = {"status": "completed", "config": {"trainer": {"max_steps": 300}}, "curves": {"val/acc": [[100, 0.5], [300, 0.8]]}}
    reached = {**never, "curves": {"val/acc": [[100, 0.95], [300, 0.97]]}}

    class Store:
        def __init__(self, records):
            self.records = records

        def record(self, run_id):
            return self.records[run_id]

    tied = choose_tuned(spec, "smoke", runs, Store({r.run_id: never for r in runs}))
    assert tied["a"]["uninformative"] and tied["a"]["scores"] == {"0.01": 300.0, "0.1": 300.0, "1.0": 300.0}
    told = choose_tuned(spec, "smoke", runs, Store({r.run_id: reached if r.tuned_value == 0.1 else never for r in runs}))
    assert not told["a"]["uninformative"] and told["a"]["value"] == 0.1


@pytest.mark.unit
def test_one_se_prefers_the_smaller_rate_unless_a_larger_one_beats_it_by_more_than_the_noise():
    from labbench.tuning import choose, clears_edge, one_se_setting, standard_error

    # losses over 3 tuning seeds: 0.03 is best by 0.01, but its standard error is 0.02: 0.01 is within it
    scores = {0.01: [1.00, 1.02, 1.01], 0.03: [0.96, 1.03, 1.01], 0.1: [1.3, 1.4, 1.2]}
    assert standard_error(scores[0.03]) == pytest.approx(math.sqrt(((0.96 - 1) ** 2 + 0.03 ** 2 + 0.01 ** 2) / 2 / 3))
    assert best_setting(scores, "lower")[0] == 0.03
    assert one_se_setting(scores, "lower", [0.01, 0.03, 0.1])[0] == 0.01
    # a clear winner (better by far more than its standard error) still wins
    clear = {0.01: [1.20, 1.21, 1.19], 0.03: [1.00, 1.01, 0.99], 0.1: [1.3, 1.4, 1.2]}
    assert choose(clear, "lower", "one_se", [0.01, 0.03, 0.1])[0] == 0.03
    # one tuning seed gives no standard error: the best mean, as before
    assert choose({0.01: [1.01], 0.03: [1.0]}, "lower", "one_se", [0.01, 0.03])[0] == 0.03
    # walking past an edge needs the edge to beat its neighbour by more than the noise
    assert clears_edge(clear, "lower", 0.03, 0.01) and not clears_edge(scores, "lower", 0.03, 0.01)
    with pytest.raises(ValueError, match="best, one_se"):
        choose(scores, "lower", "median")


@pytest.mark.unit
def test_a_spec_with_a_primary_tunes_on_three_seeds(tmp_path):
    from test_ablation import write_spec

    from labbench.ablation import spec as specs

    tuning = {"param": "optimizer.lr", "grid": [0.001, 0.01], "metric": "val/loss", "direction": "lower"}
    primary = [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "role": "primary"}]
    robust = specs.load(write_spec(tmp_path, "robust", tuning=tuning, hypotheses=primary)).tuning
    assert (robust.seeds, robust.rule) == (3, "best")
    chosen = specs.load(write_spec(tmp_path, "chosen", tuning={**tuning, "rule": "one_se"}, hypotheses=primary)).tuning
    assert chosen.rule == "one_se"
    before = specs.load(write_spec(tmp_path, "before", tuning=tuning)).tuning
    assert (before.seeds, before.rule) == (1, "best")  # specs written before roles keep what they ran with
    with pytest.raises(specs.SpecError, match="tuning.rule must be best or one_se"):
        specs.load(write_spec(tmp_path, "bad", tuning={**tuning, "rule": "median"}))


def test_an_arm_can_follow_another_arms_tuned_value(tmp_path):
    """tuning.follow: Keskar et al.'s protocol at a fair rate, the large batch at the value tuned for the small one."""
    import yaml

    from labbench.ablation import engine
    from labbench.ablation import spec as specs
    from labbench.ablation.store import Store

    raw = {"name": "follow", "claim": "c", "factors": ["data.batch_size"],
           "base": ["data=synthetic", "optimizer.lr=0.004", "trainer.max_steps=4", "trainer.val_check_interval=2"],
           "arms": {"small": ["data.batch_size=16"], "large-same": ["data.batch_size=64"], "large-tuned": ["data.batch_size=64"]},
           "hypotheses": [{"metric": "val/loss", "better": "small", "worse": "large-same", "direction": "lower"}],
           "tuning": {"param": "optimizer.lr", "grid": {"small": [0.01, 0.1], "large-tuned": [0.01, 0.1]},
                      "follow": {"large-same": "small"}, "metric": "val/loss", "direction": "lower"},
           "profiles": {"smoke": {"seeds": 2}}}
    (tmp_path / "follow.yaml").write_text(yaml.safe_dump(raw))
    spec = specs.load(str(tmp_path / "follow.yaml"))
    assert spec.tuning.follow == {"large-same": "small"}
    outcome = engine.reproduce(spec, "smoke", root=tmp_path / "store", wandb=False)
    assert {r.arm for r in outcome.plan.tuning_runs} == {"small", "large-tuned"}  # the follower runs no tuning of its own
    assert outcome.plan.tuned["large-same"] == {"value": outcome.plan.tuned["small"]["value"], "followed": "small"}
    store = Store(tmp_path / "store", "follow", "smoke")
    lrs = {r.arm: store.record(r.run_id)["config"]["optimizer"]["lr"] for r in outcome.plan.final_runs}
    assert lrs["large-same"] == lrs["small"] == outcome.plan.tuned["small"]["value"]
    report = outcome.report.read_text()
    assert "the value tuned for `small` (tuning.follow" in report
    for bad in ({"large-same": "nobody"}, {"small": "large-tuned"}, {"large-same": "large-same"}):
        raw["tuning"]["follow"] = bad
        (tmp_path / "follow.yaml").write_text(yaml.safe_dump(raw))
        with pytest.raises(specs.SpecError, match="tuning.follow maps arms the grid leaves out to tuned arms"):
            specs.load(str(tmp_path / "follow.yaml"))


def test_nested_tuning_runs_each_final_seed_at_its_own_blocks_choice(tmp_path):
    """tuning.nested: final seed i at the value chosen on block i of the tuning seeds (the procedure that keeps a tuned
    A/A at alpha, docs/method.md); a follower takes its leader's choice seed by seed, so the pairs stay matched."""
    import yaml

    from labbench.ablation import engine
    from labbench.ablation import spec as specs
    from labbench.ablation.multirun import multirun_commands
    from labbench.ablation.plan import TUNING_SEED_BASE, final_value
    from labbench.ablation.store import Store

    raw = {"name": "nest", "claim": "c", "factors": [], "base": ["data=synthetic", "model=mlp", "model.width=8", "trainer.max_steps=6",
                                                             "trainer.val_check_interval=3"],
           "arms": {"a": [], "b": {"overrides": [], "seed_offset": 50}, "c": {"overrides": [], "seed_offset": 100}},
           "hypotheses": [{"metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "role": "primary"}],
           "tuning": {"param": "optimizer.lr", "grid": {"a": [0.0001, 0.03, 1.0], "b": [0.0001, 0.03, 1.0]}, "follow": {"c": "a"},
                      "metric": "val/loss", "direction": "lower", "nested": True},
           "profiles": {"smoke": {"seeds": 3}}}
    path = tmp_path / "nest.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = specs.load(str(path))
    assert (spec.tuning.nested, spec.tuning.seeds, spec.tuning.repeats) == (True, 1, 3)  # one seed per block, a block per final seed
    assert engine.count_runs(spec, "smoke") == 3 * 3 + 2 * 3 * 3  # final runs + two tuned arms x 3 values x 3 blocks
    outcome = engine.reproduce(spec, "smoke", root=tmp_path / "store", wandb=False)
    store = Store(tmp_path / "store", "nest", "smoke")
    for arm, offset in (("a", 0), ("b", 50)):
        per_block = outcome.plan.tuned[arm]["per_block"]
        for block in range(3):  # each block's choice is the best of that block's own runs
            runs = [r for r in outcome.plan.tuning_runs if r.arm == arm and r.seed == TUNING_SEED_BASE + offset + block]
            scores = {r.tuned_value: store.record(r.run_id)["metrics"]["final"]["val/loss"] for r in runs}
            assert per_block[block] == min(scores, key=scores.get)
    for r in outcome.plan.final_runs:  # final seed i at block i's choice; the follower at its leader's
        leader = "a" if r.arm == "c" else r.arm
        i = r.seed - {"a": 0, "b": 50, "c": 100}[r.arm]
        assert store.record(r.run_id)["config"]["optimizer"]["lr"] == outcome.plan.tuned[leader]["per_block"][i]
    assert "nested (tuning.nested): final seed i ran at the value chosen on its own block" in outcome.report.read_text()
    rebuilt = engine.rebuild_report(spec, "smoke", root=tmp_path / "store")
    assert rebuilt.plan.tuned == outcome.plan.tuned
    stage, commands = multirun_commands(spec, "smoke", store)
    assert stage == "final" and len(commands) == 9  # one command per arm and seed, each at its own value
    assert all(sum(o.startswith("optimizer.lr=") for o in c) == 1 for c in commands)

    # planted: blocks that disagree run at their own values, never at the pooled choice
    tuned = {"a": {"value": 0.03, "per_block": [1.0, None, 0.0001]}}
    assert [final_value(spec, tuned, "a", i) for i in range(3)] == [1.0, 0.03, 0.0001]  # a block where all failed: pooled
    with pytest.raises(specs.SpecError, match="run at most 3 seeds, or raise tuning.repeats"):
        final_value(spec, tuned, "a", 3)
    with pytest.raises(specs.SpecError, match="run at most 3 seeds"):
        engine.reproduce(spec, "smoke", seeds=4, root=tmp_path / "store", wandb=False)
    raw["tuning"]["repeats"] = 2
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(specs.SpecError, match="set repeats to at least 3"):
        specs.load(str(path))
    raw["tuning"].pop("repeats")
    raw["tuning"]["nested"] = "yes"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(specs.SpecError, match="tuning.nested must be true or false"):
        specs.load(str(path))
