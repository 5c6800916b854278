"""From stored run records to numbers: per-run values, gates, tuning choices, and the verdicts.

What a run counts as, per metric (never a value borrowed from other runs):
- a completed run: its logged value;
- a diverged run: the failure value of the metric (what a model that learned nothing
  scores: the task declares it, e.g. ln K for a classifier's loss, 1/K for its accuracy;
  the spec's ``failure`` may declare or replace one). Without one it has no value there,
  and the report counts it apart. A value read at a point before the step it diverged on
  (``init/act_std_log_ratio@0``) is what it measured then, as for a completed run;
- a failed (crashed) or missing run: no value; it is counted, never dropped silently.
The outcome ``diverged`` reads 1 / 0 per run (diverged / completed) for divergence-rate
hypotheses, decided by the exact sign-flip (McNemar) test.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from labbench.ablation.metrics import has_curve, metric_value, parse_metric, truncated
from labbench.ablation.plan import Plan, PlannedRun, planned_run, tuning_block, tuning_runs, tuning_seeds
from labbench.ablation.spec import Gate, Hypothesis, Spec, arms_of, fingerprint, is_pair, is_reference
from labbench.ablation.stats import ALPHA, METHOD, can_decide, compare, decide, holm, power, resolution, seeds_needed, summarize
from labbench.ablation.store import Store
from labbench.directions import UnknownMetric, direction
from labbench.tuning import best_setting, choose, clears_edge, next_value, on_edge

OK, DIVERGED = "completed", "diverged"
OUTCOME = "diverged"  # the metric expression of divergence-rate hypotheses
FAILS = "fails_to_learn"  # per seed 1 when the run misses a competence gate (an arm predicted to fail)


def batchnorm_eval(spec: Spec, profile: str, records: dict[str, list[dict | None]]) -> dict[str, Any] | None:
    """The declared BatchNorm evaluation statistics and what the runs' records say they read, per arm
    (None: no arm has BatchNorm)."""
    decision = spec.batchnorm_decision(profile)
    read = {arm: next(((r.get("evaluation") or {}).get("batchnorm") for r in recs if r), None) for arm, recs in records.items()}
    read = {arm: value for arm, value in read.items() if value}
    if decision is None and not read:
        return None
    return {"statistics": decision.statistics if decision else None, "why": decision.why if decision else "", "arms": read}


def metric_direction(records: list[dict | None], expr: str) -> str:
    """The declared direction of ``expr``'s metric: from the records, or their task's declaration."""
    if expr in (OUTCOME, FAILS) or parse_metric(expr).derived:  # fewer steps to a threshold, a smaller rise: better
        return "lower"
    key = parse_metric(expr).key
    for rec in records:
        if rec and key in (rec.get("metrics") or {}).get("directions", {}):
            return rec["metrics"]["directions"][key]
    for rec in records:
        target = ((rec or {}).get("config") or {}).get("task", {}).get("_target_")
        if target:
            return direction(key, target)
    raise UnknownMetric(f"no run record says which values of {expr!r} are better (no completed run logged it)")


def failure_value(record: dict, expr: str, declared: Mapping[str, float]) -> float:
    """What a diverged run counts as on ``expr``: ``declared`` (a spec's ``failure``), else the task's; NaN if none."""
    key = parse_metric(expr).key
    if key in declared:
        return float(declared[key])
    return float(record.get("failure_values", {}).get(key, math.nan))


def run_value(record: dict | None, expr: str, declared: Mapping[str, float] = {}) -> float:
    """One run's value of ``expr`` (module docstring: diverged runs take the failure value)."""
    if record is None:
        return math.nan
    status = record.get("status")
    if expr == OUTCOME:
        return {OK: 0.0, DIVERGED: 1.0}.get(status, math.nan)
    m = parse_metric(expr)
    if m.derived:  # a step count or a rise: read from the curve, whatever the outcome
        if m.threshold is not None and status in (OK, DIVERGED):
            return metric_value(record, expr)  # never reached before it diverged: censored at the budget
        return metric_value(record, expr) if status == OK else math.nan
    if status == OK:
        value = metric_value(record, expr)
        if math.isfinite(value):
            return value
        return failure_value(record, expr, declared) if _blew_up(record, expr) else math.nan
    if status == DIVERGED:
        if m.step is not None:  # a point read before the step it diverged on (an @0 check at initialisation) is what the
            earlier = truncated(record, m.step)  # run measured there: as it stood then, it had not diverged yet. Windows
            if earlier["status"] == OK:           # keep the failure value (their mean would mix the two)
                return run_value(earlier, expr, declared)
        return failure_value(record, expr, declared)
    return math.nan


def tuning_value(record: dict | None, expr: str, better: str, declared: Mapping[str, float] = {}) -> float:
    """A run's value when choosing a setting: :func:`run_value`, but a diverged run without a failure
    value is the worst value there is (a setting must never win because its runs blew up)."""
    value = run_value(record, expr, declared)
    blew_up = record is not None and (record.get("status") == DIVERGED or (record.get("status") == OK and _blew_up(record, expr)))
    if math.isnan(value) and blew_up:
        return math.inf if better == "lower" else -math.inf
    return value


def _blew_up(record: dict, expr: str) -> bool:
    """A completed run that logged an inf/NaN value of ``expr``'s metric (logged, not merely absent) took a
    non-finite step. Only a non-finite value counts: a step or window form (``probe/loss_spikes@200``) with no
    logged point inside has no value, and a finite final value must not turn that into the failure value."""
    key = parse_metric(expr).key
    final = (record.get("metrics") or {}).get("final", {})
    if key in final and not math.isfinite(float(final[key])):
        return True
    return any(not math.isfinite(float(v)) for _, v in (record.get("curves") or {}).get(key, []))


def values_by_arm(spec: Spec, records: dict[str, list[dict | None]], expr: str) -> dict[str, list[float]]:
    """Per arm, per seed: the run's value of ``expr`` (see :func:`run_value`; ``fails_to_learn``: :func:`missed_gate`)."""
    if expr == FAILS:
        flat = [r for recs in records.values() for r in recs if r]
        return {arm: [missed_gate(spec, r, flat) for r in recs] for arm, recs in records.items()}
    return {arm: [run_value(r, expr, spec.failure) for r in recs] for arm, recs in records.items()}


def missed_gate(spec: Spec, record: dict | None, flat: list[dict]) -> float:
    """1 when this run's value misses any of the spec's competence gates (a diverged run at its failure value
    does), 0 when it passes them all, NaN when it has no value (a failed run): the per-seed outcome of a
    fails-to-learn rate, for an arm the claim predicts to fail (not gated itself)."""
    outcome = 0.0
    for gate in spec.gates:
        value, bar = run_value(record, gate.metric, spec.failure), gate_threshold(gate, flat, spec.failure)
        if not (math.isfinite(value) and math.isfinite(bar)):
            return math.nan
        better = metric_direction(flat, gate.metric)
        if not (value < bar if better == "lower" else value > bar):
            outcome = 1.0
    return outcome


def _side(values: dict[str, list[float]], side: Any, n: int) -> list[float]:
    """One side of a hypothesis, per seed: an arm, a fixed number, or a pair's difference (a - b)."""
    if is_reference(side):
        return [float(side)] * n
    if is_pair(side):
        a, b = values[side[0]], values[side[1]]
        return [x - y for x, y in zip(a, b)]
    return values[side]


def gate_threshold(gate: Gate, records: list[dict], declared: Mapping[str, float] = {}) -> float:
    """The gate's bar: a number, or ``fraction`` x a baseline the runs recorded for the metric's split (``failure``:
    the metric's failure value, ``declared`` by the spec or else the task's)."""
    if is_reference(gate.threshold):
        return float(gate.threshold)
    if gate.threshold == "failure":  # what a model that learned nothing scores: the spec's declared value, else the task's
        key = parse_metric(gate.metric).key
        for rec in records:
            value = failure_value(rec, key, declared) if rec else math.nan
            if math.isfinite(value):
                return gate.fraction * value
        return math.nan
    split = parse_metric(gate.metric).key.split("/", 1)[0]
    name = f"{split}/{gate.threshold}"
    for rec in records:
        if rec and name in rec.get("baselines", {}):
            return gate.fraction * float(rec["baselines"][name])
    return math.nan


def check_gates(spec: Spec, records: dict[str, list[dict | None]]) -> dict[str, list[dict[str, Any]]]:
    """Per arm, every gate that applies to it: the arm's mean against the bar.

    The mean is over the same per-seed values the hypotheses read (:func:`run_value`: a diverged
    run at its failure value, where one is declared): one rule for gates and hypotheses, so an
    arm whose seeds blow up cannot pass its gate on the seeds that happened to survive. An arm
    passes when that mean is better than the bar in the metric's declared direction; an arm with
    no value fails it (nothing learned to look at). ``close``: the mean is within half a standard
    error of the bar, so whether the arm passed is close to a coin toss (the report flags it).
    """
    flat = [r for recs in records.values() for r in recs if r]
    out: dict[str, list[dict[str, Any]]] = {arm: [] for arm in records}
    for gate in spec.gates:
        bar = gate_threshold(gate, flat, spec.failure)
        better = metric_direction(flat, gate.metric)
        for arm in gate.arms or [a for a in records if a not in spec.predicted_to_fail]:  # an arm predicted to fail is not gated
            vals = [run_value(r, gate.metric, spec.failure) for r in records.get(arm, [])]
            vals = [v for v in vals if math.isfinite(v)]
            summary = summarize(vals)
            mean = summary.mean
            passed = math.isfinite(mean) and math.isfinite(bar) and (mean < bar if better == "lower" else mean > bar)
            se = summary.std / math.sqrt(summary.n) if summary.n > 1 else math.nan
            out[arm].append({"metric": gate.metric, "threshold": gate.threshold, "fraction": gate.fraction, "bar": bar,
                             "direction": better, "mean": mean, "n": len(vals), "passed": passed, "se": se,
                             "close": bool(math.isfinite(se) and math.isfinite(bar) and abs(mean - bar) < 0.5 * se),
                             "gap": (mean - bar) if math.isfinite(mean) and math.isfinite(bar) else math.nan})
    return out


def check_regime(spec: Spec, records: dict[str, list[dict | None]]) -> list[dict[str, Any]]:
    """Every regime check: per arm, the mean over its seeds (the values hypotheses read) against the bar.

    ``met``: every arm of the check is beyond the bar on the check's side. A check with an arm that has
    no value is not met (the precondition was not shown).
    """
    flat = [r for recs in records.values() for r in recs if r]
    out = []
    for check in spec.regime:
        if isinstance(check.threshold, str) and check.threshold.startswith("arm:"):  # another arm's mean, times fraction
            other = [v for v in (run_value(r, check.metric, spec.failure) for r in records.get(check.threshold[4:], [])) if math.isfinite(v)]
            bar = check.fraction * summarize(other).mean if other else math.nan
        else:
            bar = gate_threshold(Gate(check.metric, check.threshold, check.fraction), flat, spec.failure)
        arms = {}
        for arm in check.arms:
            summary = summarize([v for v in (run_value(r, check.metric, spec.failure) for r in records.get(arm, [])) if math.isfinite(v)])
            beyond = math.isfinite(summary.mean) and math.isfinite(bar) and (summary.mean > bar if check.direction == "higher" else summary.mean < bar)
            arms[arm] = {"mean": summary.mean, "n": summary.n, "met": beyond}
        out.append({"name": check.name, "metric": check.metric, "threshold": check.threshold, "fraction": check.fraction, "bar": bar,
                    "direction": check.direction, "arms": arms, "met": all(a["met"] for a in arms.values()),
                    "hypotheses": list(check.hypotheses) or [h.name for h in spec.hypotheses], "note": check.note})
    return out


def choose_tuned(spec: Spec, profile: str, runs: list[PlannedRun], store: Store) -> dict[str, dict[str, Any]]:
    """Per arm, the grid value with the best mean tuning metric (validation split only).

    The rule is :mod:`labbench.tuning`'s, shared with command-line sweeps. ``cleared_gate``: whether any value of the
    arm's grid cleared the spec's gates on the tuning metric (False: the grid never learned).
    """
    if spec.tuning is None:
        return {}
    t = spec.tuning
    by_arm: dict[str, list[tuple[Any, dict | None]]] = {}
    for r in runs:
        by_arm.setdefault(r.arm, []).append((r.tuned_value, store.record(r.run_id)))
    gates = [g for g in spec.gates if g.metric == t.metric]
    all_records = [rec for pairs in by_arm.values() for _, rec in pairs if rec]
    seeds_of = {r.run_id: r.seed for r in runs}
    tuned = {}
    for arm, pairs in by_arm.items():
        declared = list(spec.tuning_grid(profile)[arm])
        extended = sorted({r.tuned_value for r in runs if r.arm == arm and r.tuned_value not in declared})
        grid = sorted(declared + extended) if extended else declared  # values tried beyond an edge (tuning.extend)
        keys = [repr(v) for v in grid]
        scores: dict[str, list[float]] = {k: [] for k in keys}
        blocks: dict[int, dict[str, list[float]]] = {}
        unscored: dict[str, int] = {}  # per value, its tuning runs without a value: failed, missing, metric never logged
        for (value, rec), run in zip(pairs, [r for r in runs if r.arm == arm]):
            score = tuning_value(rec, t.metric, t.direction, spec.failure)
            scores.setdefault(repr(value), []).append(score)
            if math.isnan(score):
                unscored[repr(value)] = unscored.get(repr(value), 0) + 1
            blocks.setdefault(tuning_block(spec, arm, seeds_of[run.run_id]), {k: [] for k in keys})[repr(value)].append(score)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid)
        order = [repr(v) for v in (sorted(grid) if numeric else grid)]  # smallest first: what one_se prefers
        best, means = choose(scores, t.direction, t.rule, order)
        best_value = grid[keys.index(best)] if best is not None else grid[0]
        walk = True  # past an edge: under one_se only when the edge beats its neighbour by more than the noise
        if t.rule == "one_se" and best is not None and numeric and on_edge(best_value, grid) and len(order) > 1:
            inner = order[1] if best == order[0] else order[-2]
            walk = clears_edge(scores, t.direction, best, inner)
        per_block = [best_setting(blocks[b], t.direction)[0] for b in sorted(blocks)]
        per_block_values = [grid[keys.index(k)] if k is not None else None for k in per_block]
        cleared = None
        if gates:
            bars = [gate_threshold(g, all_records, spec.failure) for g in gates]
            finite = [m for m in means.values() if math.isfinite(m)]
            cleared = any(all(math.isfinite(b) and (m < b if t.direction == "lower" else m > b) for b in bars) for m in finite)
        tuned[arm] = {
            "value": best_value,
            "scores": {repr(v): means[repr(v)] for v in grid},
            "on_edge": best is not None and on_edge(best_value, grid),
            "rule": t.rule,
            "walk_past_edge": walk,
            "cleared_gate": cleared,
            "per_block": per_block_values,  # the choice on each disjoint block of tuning seeds
            "blocks_agree": len(set(map(repr, per_block_values))) == 1,
            "extended": extended,  # values added beyond the declared grid's edge
            "uninformative": len(grid) > 1 and len({means[repr(v)] for v in grid}) == 1,  # every value scored the same
            # the choice was made without these runs (a value none of whose runs has one cannot be chosen): said, not hidden
            **({"unscored": unscored} if unscored else {}),
        }
    return tuned


def pending_tuning(spec: Spec, profile: str, extra, store: Store, retry_failed: bool = False, attempted: Collection[str] = ()
                   ) -> tuple[list[PlannedRun], list[PlannedRun], dict[str, dict[str, Any]]]:
    """Where per-arm tuning stands, read from the store: ``(pending, tried, tuned)``.

    The procedure: the declared grid; then, while an arm's best value sits on an edge of
    what it tried, one more value beyond it (labbench.tuning.next_value), up to
    ``tuning.extend`` times, on each arm's own validation scores. ``pending``: the next
    batch of runs not yet in the store (empty once the procedure is complete); ``tried``:
    every run of the steps completed so far; ``tuned``: the choices from them. ``reproduce``
    and ``labbench plan`` both walk it, so both run the same tuning runs. ``retry_failed``: a failed
    run counts as not done, so it runs again before anything is chosen from it, unless its id is in
    ``attempted`` (already run again by this call: a run that fails twice is not retried for ever).
    """
    def done(r: PlannedRun) -> bool:
        return store.is_done(r.run_id, retry_failed=retry_failed and r.run_id not in attempted)

    runs = tuning_runs(spec, profile, extra)
    if not runs:
        return [], [], {}
    if not all(done(r) for r in runs):
        return [r for r in runs if not done(r)], [], {}
    tuned = choose_tuned(spec, profile, runs, store)
    for _ in range(spec.tuning.extend):
        added = []
        for arm, info in tuned.items():
            walk = info["on_edge"] and info.get("walk_past_edge", True)
            value = next_value(info["value"], [r.tuned_value for r in runs if r.arm == arm]) if walk else None
            if value is not None:
                added += [planned_run(spec, arm, profile, extra, seed, "tune", value) for seed in tuning_seeds(spec, arm)]
        if not added:
            break
        if not all(done(r) for r in added):
            return [r for r in added if not done(r)], runs, tuned
        runs = runs + added
        tuned = choose_tuned(spec, profile, runs, store)
    return [], runs, with_followers(spec, tuned)


def with_followers(spec: Spec, tuned: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``tuning.follow``: an arm that takes another arm's tuned value (Keskar et al.'s protocol: the large batch at the rate
    tuned for the small one) gets it, marked with the arm it followed; it ran no tuning of its own."""
    out = dict(tuned)
    for follower, leader in (spec.tuning.follow if spec.tuning is not None else {}).items():
        if leader in tuned:
            out[follower] = {"value": tuned[leader]["value"], "followed": leader}
            if spec.tuning.nested:  # each final seed at its leader's choice for that seed: the pairs stay matched
                out[follower]["per_block"] = tuned[leader]["per_block"]
    return out


def final_records(plan: Plan, store: Store) -> dict[str, list[dict | None]]:
    records: dict[str, list[dict | None]] = {}
    for r in plan.final_runs:
        records.setdefault(r.arm, []).append(store.record(r.run_id))
    return records


def hypothesis_kind(h: Hypothesis) -> str:
    if h.metric in (OUTCOME, FAILS):
        return "rate"
    return "interaction" if is_pair(h.better) or is_pair(h.worse) else "difference"


GATE_FREE = {
    "rate": "a rate of diverged or failed-to-learn seeds: whether the arms train at all",
    "threshold": "steps to a threshold: a run that never reaches it counts as its budget",
    "init": "measured at initialization (step 0), before any update",
}
GATE_FREE_SHORT = {"rate": "a rate", "threshold": "steps to a threshold", "init": "at initialization"}  # a table cell


def gate_free(h: Hypothesis) -> str | None:
    """Why the hypothesis takes no competence gate (a key of ``GATE_FREE``), or None when it takes them."""
    if hypothesis_kind(h) == "rate":
        return "rate"
    m = parse_metric(h.metric)
    if m.threshold is not None:
        return "threshold"
    return "init" if m.at_init else None


def short_of_margin(pairs: list[tuple[float, float]], h: Hypothesis) -> dict[str, Any]:
    """For a margin or fixed-reference hypothesis: how many seeds fell short of the margin, and the largest rate of such
    seeds the runs do not exclude (one-sided 95%, Clopper-Pearson; 1 - 0.05^(1/n) when none did).

    A mean beyond the margin says nothing of rare failures that did not happen in n seeds (docs/method.md, "Margins"):
    with 8 seeds and none short, a rate up to 31% is not excluded. The report prints it beside a supported verdict.
    """
    from scipy.stats import beta

    n = len(pairs)
    if n == 0:
        return {}
    oriented = [(w - b) if h.direction == "lower" else (b - w) for b, w in pairs]
    short = sum(1 for d in oriented if not d > h.margin)
    bound = 1.0 if short == n else float(beta.ppf(0.95, short + 1, n - short))
    return {"short_of_margin": short, "short_rate_bound": bound}


def constant_value(per_arm: dict[str, list[float]], arms: list[str]) -> float | None:
    """The one value every seed of every arm of a hypothesis gave (equal at float32 precision), else None.

    A metric at its ceiling or floor on every run (accuracy 1.0 everywhere, a rank of exactly 1)
    cannot tell the arms apart: whatever the verdict, the report flags it as uninformative (not for a
    ``sanity`` check, which states a value true by construction: there a constant is the expected outcome).
    """
    values = [v for arm in arms for v in per_arm.get(arm, []) if math.isfinite(v)]
    if len(values) < 2 or max(values) - min(values) > resolution(values):
        return None
    return values[0]


def mark_repeats(spec: Spec, values: dict[str, dict[str, list[float]]], hypotheses: list[dict[str, Any]]) -> None:
    """Sets ``repeats`` on a hypothesis whose per-seed differences are an earlier hypothesis's, or their negation, on
    every seed (equal at the float32 precision of the values): it adds no evidence of its own.

    ``labbench validate`` flags two hypotheses on the same arms and metric before anything runs; this catches what
    only the runs show, a derived metric that collapses onto another one when a component sits at a ceiling (a
    train-test gap when both arms fit their training split: 1.0 - test accuracy, the test accuracy's own difference).
    """
    seen: list[tuple[str, list[float], float]] = []
    for h, hyp in zip(hypotheses, spec.hypotheses):
        per_arm = values.get(hyp.metric)
        if not per_arm or h.get("kind") == "rate" or h.get("constant") is not None:
            continue
        diffs = _oriented(per_arm, hyp)
        if sum(1 for d in diffs if math.isfinite(d)) < 2:
            continue
        tol = 4 * resolution(*per_arm.values())
        for name, other, other_tol in seen:
            if len(other) != len(diffs) or any(math.isfinite(a) != math.isfinite(b) for a, b in zip(diffs, other)):
                continue
            pairs = [(a, b) for a, b in zip(diffs, other) if math.isfinite(a)]
            bound = max(tol, other_tol)
            for sign, word in ((1.0, "the same"), (-1.0, "the negated")):
                if all(abs(a - sign * b) <= bound for a, b in pairs) and any(abs(a) > bound for a, _ in pairs):
                    h["repeats"] = {"hypothesis": name, "as": word}
                    break
            if h.get("repeats"):
                break
        seen.append((h["name"], diffs, tol))


def judge(spec: Spec, values: dict[str, dict[str, list[float]]], gates: dict[str, list[dict]],
          regime: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every hypothesis's comparison and verdicts (raw and after Holm across the ablation's hypotheses).

    A hypothesis on an arm that missed a gate is ``undertrained`` and leaves Holm's family:
    it was not tested. Three kinds take no gate (``gate_free`` says which): divergence rates
    are about whether the arms train at all; steps to a threshold (``val/acc>=0.9``) count a
    run that never reaches the target as the budget, so the metric is defined for an arm that
    learned slowly or not at all, and being slow is what such a hypothesis asks about; and a
    value at initialization (``probe/attn_entropy/mean@0``) is read before the first update,
    so it describes the untrained model whatever training does afterwards.
    """
    out = []
    for h in spec.hypotheses:
        kind = hypothesis_kind(h)
        per_arm = values[h.metric]
        n_seeds = max((len(v) for v in per_arm.values()), default=0)
        better, worse = _side(per_arm, h.better, n_seeds), _side(per_arm, h.worse, n_seeds)
        pairs = [(b, w) for b, w in zip(better, worse) if math.isfinite(b) and math.isfinite(w)]
        # a margin or a fixed reference: the t part corrected for skew (stats.skew_corrected_t; docs/method.md, "Margins")
        at_margin = kind != "rate" and bool(h.margin or is_reference(h.better) or is_reference(h.worse))
        c = compare([b for b, _ in pairs], [w for _, w in pairs], h.direction, h.margin, exact_only=kind == "rate", skew_robust=at_margin)
        free = gate_free(h)
        missed = [{"arm": arm, **g} for arm in arms_of(h) for g in gates.get(arm, []) if not g["passed"]]
        out.append({"name": h.name, "kind": kind, "metric": h.metric, "better": h.better, "worse": h.worse,
                    "direction": h.direction, "margin": h.margin, "note": h.note, **c.as_dict(),
                    "verdict_raw": c.verdict, "undertrained": [] if free else missed,
                    "gate_free": free, "gates_waived": missed if free else [],
                    # a check of the setup is meant to come out the same everywhere (a rank of exactly 1): not a ceiling
                    "constant": None if kind == "rate" or h.role == "sanity" else constant_value(per_arm, arms_of(h)),
                    **(short_of_margin(pairs, h) if at_margin else {})})
    failed = [c for c in (regime or []) if not c["met"]]
    for h, hyp in zip(out, spec.hypotheses):
        h["role"], h["min_effect"], h["min_effect_source"] = hyp.role, hyp.min_effect, hyp.min_effect_source
        h["out_of_regime"] = [c["name"] for c in failed if hyp.name in c["hypotheses"]]
    apply_family(out)
    return out


def apply_family(out: list[dict[str, Any]]) -> None:
    """The verdict of every hypothesis after the multiplicity procedure (docs/method.md, "Roles and the family").

    - ``sanity`` checks stand outside the family: each is judged alone at alpha and never counts as
      support (a check that is not supported fails the setup).
    - With a ``primary`` (serial gatekeeping): the primary is tested alone at alpha; once it is decided
      (supported or contradicted) the tested secondaries are judged under Holm at alpha; otherwise they
      are ``exploratory``: their raw p is shown, with no verdict word. The family-wise error of the
      confirmatory verdicts stays at alpha (a closed procedure; the simulation study measures it).
    - Without a primary: Holm across every tested hypothesis but the checks (the method before roles).

    An arm that missed its gate makes a hypothesis ``undertrained``, a failed regime check makes it ``out of
    regime``: either way it leaves the family. A supported
    hypothesis whose interval does not clear the size the claim names (``min_effect``) is ``smaller
    than claimed``.
    """
    for h in out:
        h["p_holm"] = math.nan
    tested = [h for h in out if not h["undertrained"] and not h.get("out_of_regime")]
    checks = [h for h in tested if h.get("role") == "sanity"]
    primary = next((h for h in tested if h.get("role") == "primary"), None)
    declared_primary = any(h.get("role") == "primary" for h in out)
    secondaries = [h for h in tested if h.get("role", "secondary") == "secondary"]
    for h in checks:
        h["p_holm"] = h["p_value"]
    if declared_primary:
        family = secondaries if primary is not None and decide(primary["p_value"], primary["mean_diff"], primary["margin"]) != "inconclusive" else []
        if primary is not None:
            primary["p_holm"] = primary["p_value"]
    else:
        family = secondaries
    for h, p in zip(family, holm([h["p_value"] for h in family])):
        h["p_holm"] = p
    judged = {id(h) for h in ([primary] if primary is not None else []) + family + checks}
    for h in out:
        if h["undertrained"]:
            h["verdict_raw"] = h["verdict"] = "undertrained"
        elif h.get("out_of_regime"):
            h["verdict_raw"] = h["verdict"] = "out of regime"
        elif id(h) in judged:
            h["verdict"] = size_verdict(h, decide(h["p_holm"], h["mean_diff"], h["margin"], ALPHA))
        else:
            h["verdict"] = "exploratory"
        alone = h is primary or any(h is c for c in checks)
        size = 1 if alone else max(1, len(family) or len(secondaries))
        h["decidable"] = can_decide(h["n"], size)
        h["power"] = power(h["n"], size) if h["n"] >= 2 else math.nan  # at a 1-SD effect, in this family (docs/method.md)


ANSWERS = ("holds here", "smaller than claimed", "does not hold here", "not shown", "out of regime", "setup failed")
# An A/A control's answers (spec ``control: true``): its arms are identical, so a decided primary is the method's error
CONTROL_ANSWERS = {"holds here": "false positive", "smaller than claimed": "false positive", "does not hold here": "false positive",
                   "not shown": "no false positive"}
# How every report reads a control's answer (one sentence, in a setting's report and in the across-settings one)
CONTROL_READING = ("A control, not a claim: its arms are the same config on other seeds, so a decided primary is a false "
                   "positive of the method (expected on about alpha of such runs), never a finding.")


def control_answer(answer: str) -> str:
    """The word an A/A control says for a claim's answer: ``false positive`` where its primary was decided (in either
    direction, whatever the size), ``no false positive`` where it was tested and not decided; ``setup failed`` /
    ``out of regime`` stay, and so does ``not shown`` where an arm missed its gate (the control tested nothing)."""
    return CONTROL_ANSWERS.get(answer, answer)


def claim_answer(hypotheses: list[dict[str, Any]], control: bool = False) -> dict[str, Any] | None:
    """The claim's one answer in this setting, from its primary hypothesis and its checks (None: no primary declared).

    ``setup failed``: a sanity check was not supported (the setup is not what the claim needs);
    ``out of regime``: a regime check the primary depends on failed;
    ``holds here`` / ``does not hold here``: the primary supported / contradicted; ``smaller than
    claimed``: supported, but its interval does not clear the size the claim names; ``not shown``:
    the primary inconclusive, or not tested (an arm it needs missed its gate). A control (``control``:
    identical arms) says ``false positive`` / ``no false positive`` instead (:func:`control_answer`): a
    "holds" between identical arms is the method's error, never a finding to count with the claims'.
    """
    primary = next((h for h in hypotheses if h.get("role") == "primary"), None)
    if primary is None:
        return None
    failed = [h["name"] for h in hypotheses if h.get("role") == "sanity" and h["verdict"] != "supported"]
    if failed:
        return {"answer": "setup failed", "primary": primary["name"], "because": f"check(s) not supported: {'; '.join(failed)}"}
    verdict = primary["verdict"]
    if verdict == "out of regime":
        return {"answer": "out of regime", "primary": primary["name"],
                "because": f"the regime check(s) it depends on failed: {'; '.join(primary['out_of_regime'])}"}
    answer = {"supported": "holds here", "smaller than claimed": "smaller than claimed", "contradicted": "does not hold here"}.get(verdict, "not shown")
    because = {"undertrained": "an arm the primary needs missed its competence gate",
               "inconclusive": "the primary hypothesis is inconclusive at these seeds"}.get(verdict, f"the primary hypothesis is {verdict}")
    if control and verdict != "undertrained":  # an untested control stays "not shown": it checked nothing
        because = f"a control with identical arms: {because}" + (" (a difference declared between identical arms)"
                                                                  if answer != "not shown" else "")
        answer = control_answer(answer)
    return {"answer": answer, "primary": primary["name"], "because": because}


def size_verdict(h: dict[str, Any], verdict: str) -> str:
    """``smaller than claimed``: supported, but the interval does not clear the size the claim names."""
    size = h.get("min_effect")
    if verdict != "supported" or size is None:
        return verdict
    low = h["ci_low"] if math.isfinite(h.get("ci_low", math.nan)) else h["mean_diff"]  # no spread: the difference is exact
    return verdict if low > size else "smaller than claimed"


STABILITY_POINTS = (0.25, 0.5, 0.75)  # fractions of the budget at which each verdict is judged again


def _oriented(values: dict[str, list[float]], hyp: Hypothesis) -> list[float]:
    """Per seed, the hypothesis's difference oriented so that positive is as predicted (NaN where a side is missing)."""
    n = max((len(v) for v in values.values()), default=0)
    better, worse = _side(values, hyp.better, n), _side(values, hyp.worse, n)
    return [(w - b) if hyp.direction == "lower" else (b - w) for b, w in zip(better, worse)]


def trajectory(spec: Spec, h: dict[str, Any], hyp: Hypothesis, records: dict[str, list[dict | None]]) -> list[dict[str, Any]]:
    """The hypothesis judged at earlier evaluation points of the same runs (no extra runs).

    At 1/4, 1/2, 3/4 of the budget (the last evaluation at or before each) and at the end;
    the raw verdict (before Holm) at each. Empty when the metric has no curve (a test value).
    Each point keeps its per-seed differences (``diffs``), which :func:`drift` compares.
    """
    flat = [r for recs in records.values() for r in recs if r]
    steps = has_curve(flat, hyp.metric)
    if not steps or h["kind"] == "rate":
        return []
    budget = max(steps)
    by_step: dict[int, float] = {}
    for fraction in STABILITY_POINTS:
        earlier = [s for s in steps if s <= fraction * budget and s < budget]
        if earlier:
            by_step[earlier[-1]] = fraction  # a step shared by two fractions keeps the later one (the last-half check)
    points = [{"fraction": f, "step": s} for s, f in sorted(by_step.items())]
    out = []
    for p in points + [{"fraction": 1.0, "step": None}]:
        at = {arm: [(truncated(r, p["step"]) if p["step"] is not None else r) if r else None for r in recs] for arm, recs in records.items()}
        values = {arm: [run_value(r, hyp.metric, spec.failure) for r in recs] for arm, recs in at.items()}
        n = max((len(v) for v in values.values()), default=0)
        better, worse = _side(values, hyp.better, n), _side(values, hyp.worse, n)
        pairs = [(b, w) for b, w in zip(better, worse) if math.isfinite(b) and math.isfinite(w)]
        c = compare([b for b, _ in pairs], [w for _, w in pairs], hyp.direction, hyp.margin)
        out.append({**p, "step": p["step"] if p["step"] is not None else budget, "mean_diff": c.mean_diff, "p_value": c.p_value,
                    "verdict": c.verdict, "diffs": _oriented(values, hyp)})
    out[-1].update(mean_diff=h["mean_diff"], p_value=h["p_value"], verdict=h["verdict_raw"])
    return out


def drift(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether the effect moved over the last half of the budget: the per-seed change of the difference from
    the half-way evaluation to the end, decided by the method's test (two-sided, alpha).

    *unsettled* means this change is decided: the effect was still moving when the runs stopped, so
    a longer budget may answer differently. Under a constant effect the change has mean 0 and the
    test's own error rate bounds the false alarm (docs/method.md measures it). It replaces a rule
    that flagged any verdict that changed in the last half, which fired on p-values near 0.05.
    """
    half = next((p for p in points if p["fraction"] == 0.5), None)
    if half is None or not points or points[-1]["fraction"] != 1.0:
        return None
    pairs = [(e, m) for e, m in zip(points[-1]["diffs"], half["diffs"]) if math.isfinite(e) and math.isfinite(m)]
    if len(pairs) < 2:
        return None
    c = compare([e for e, _ in pairs], [m for _, m in pairs], "higher")
    return {"from_step": half["step"], "to_step": points[-1]["step"], "change": c.mean_diff, "ci_low": c.ci_low,
            "ci_high": c.ci_high, "p_value": c.p_value, "decided": c.verdict != "inconclusive"}


def tuned_value_split(h: dict[str, Any], arms: Mapping[str, Any], alpha: float = ALPHA) -> dict[str, Any] | None:
    """Whether a hypothesis's effect changes side with the value an arm's nested tuning chose for each seed.

    Nested tuning runs final seed i at the value its own tuning seed chose. Where two values tie on the tuning metric
    but differ on the hypothesis's metric (the tuned A/A control's MNIST case), the seeds split into groups by value,
    and the mean over seeds is the mixture the tuning's coin happened to draw: the effect can be the claim's in one
    group and against it in the other. Per arm of the pair whose per-seed values differ, the seeds of its two most
    common values (2+ seeds each) are compared: the oriented differences (positive: as predicted, beyond the
    hypothesis's margin) by an exact two-sample permutation test of their means (scipy). ``depends``: the groups
    differ at ``alpha`` and their means lie on opposite sides of the margin. Without a dependence the test's own
    error bounds the false alarm at ``alpha`` per arm (the differences are exchangeable between groups). None: no arm
    of the pair was tuned per seed to more than one value, or the hypothesis is not a two-arm difference.
    """
    from scipy.stats import permutation_test

    better, worse = h.get("better"), h.get("worse")
    if not (isinstance(better, str) and isinstance(worse, str) and better in arms and worse in arms):
        return None
    values = {a: (arms[a].get("metrics") or {}).get(h["metric"], {}).get("values") or [] for a in (better, worse)}
    margin = h.get("margin") or 0.0
    sign = -1.0 if h["direction"] == "lower" else 1.0
    diffs = [sign * (b - w) - margin for b, w in zip(values[better], values[worse])]
    found = []
    for arm in (better, worse):
        per_block = ((arms[arm].get("tuned") or {}).get("per_block") or [])[: len(diffs)]
        groups: dict[str, list[float]] = {}
        for value, d in zip(per_block, diffs):
            if isinstance(d, float) and math.isfinite(d):
                groups.setdefault(repr(value), []).append(d)
        common = sorted((g for g in groups.items() if len(g[1]) >= 2), key=lambda g: -len(g[1]))[:2]
        if len(common) < 2:
            continue
        (v1, g1), (v2, g2) = common
        p = float(permutation_test((g1, g2), lambda x, y: sum(x) / len(x) - sum(y) / len(y), permutation_type="independent",
                                   n_resamples=math.inf, alternative="two-sided").pvalue)
        m1, m2 = sum(g1) / len(g1), sum(g2) / len(g2)
        found.append({"arm": arm, "groups": [{"value": v1, "n": len(g1), "mean": m1 + margin}, {"value": v2, "n": len(g2), "mean": m2 + margin}],
                      "p_value": p, "depends": p <= alpha and m1 * m2 < 0})
    if not found:
        return None
    return {"arms": found, "depends": any(f["depends"] for f in found)}


def analyze(spec: Spec, plan: Plan, store: Store) -> dict[str, Any]:
    """The machine-readable result of an ablation (``verdict.json``)."""
    records = final_records(plan, store)
    flat = [r for recs in records.values() for r in recs if r]
    metrics = list(dict.fromkeys([*(h.metric for h in spec.hypotheses), *spec.metrics]))
    values = {m: values_by_arm(spec, records, m) for m in metrics}
    gates = check_gates(spec, records)

    arms = {}
    for arm in spec.arms:
        recs = records.get(arm.name, [])
        status = Counter(r.get("status", "missing") if r else "missing" for r in recs)
        arms[arm.name] = {
            "overrides": list(arm.overrides),
            "seeds": [r.seed for r in plan.final_runs if r.arm == arm.name],
            "status_counts": dict(sorted(status.items())),
            "tuned": plan.tuned.get(arm.name),
            "gates": gates.get(arm.name, []),
            "metrics": {m: {**summarize(values[m][arm.name]).as_dict(), "values": values[m][arm.name]} for m in metrics},
        }

    regime = check_regime(spec, records)
    hypotheses = judge(spec, values, gates, regime)
    mark_repeats(spec, values, hypotheses)
    for h, hyp in zip(hypotheses, spec.hypotheses):
        points = [] if h["verdict"] == "undertrained" else trajectory(spec, h, hyp, records)
        # a time to a threshold is censored at the evaluation it is read at: an arm that has not reached it counts at
        # that step, so the difference grows with the cut by construction, not because the effect moved (no drift test)
        h["drift"] = None if parse_metric(hyp.metric).threshold is not None else drift(points)
        h["unsettled"] = bool(h["drift"] and h["drift"]["decided"])  # the effect still moved in the last half
        h["trajectory"] = [{k: v for k, v in p.items() if k != "diffs"} for p in points]
        h["tuned_split"] = tuned_value_split(h, arms)
    tuning_records = [store.record(r.run_id) for r in plan.tuning_runs]
    answer = claim_answer(hypotheses, control=spec.control)
    if answer is not None:
        answer["setting"] = setting_line(spec, plan, flat)
    return {
        "answer": answer,
        "primary": answer["primary"] if answer else None,
        "name": spec.name,
        "claim_id": spec.claim_id,
        "claim": spec.claim,
        **({"control": True} if spec.control else {}),
        **({"setting": setting_record(spec)} if spec.setting else {}),
        **({"revised": spec.revised} if spec.revised else {}),
        "profile": plan.profile,
        "spec_hash": fingerprint(spec, plan.profile),  # a changed spec makes this report stale (tests/test_committed_results.py)
        "method": METHOD,
        "batchnorm_eval": batchnorm_eval(spec, plan.profile, records),
        "regime": regime,
        "predicted_to_fail": list(spec.predicted_to_fail),
        "alpha": ALPHA,
        "seeds_needed": seeds_needed(1 if answer is not None else max(1, sum(1 for h in hypotheses if not h["undertrained"]
                                                                                   and h.get("role") != "sanity"))),
        "hypotheses": hypotheses,
        "arms": arms,
        "directions": {m: _safe_direction(flat, m) for m in metrics},
        "runs": {
            "final": len(plan.final_runs),
            "tuning": len(plan.tuning_runs),
            "missing": sum(1 for recs in records.values() for r in recs if r is None),
        },
        "wall_time_s": round(sum(r.get("wall_time_s", 0.0) for r in [*flat, *(t for t in tuning_records if t)]), 1),
    }


def setting_record(spec: Spec) -> dict[str, str] | None:
    """Which of the claim's settings a report answers (None: the spec declares no settings)."""
    if not spec.setting:
        return None
    s = spec.settings[0]
    return {"name": s.name, "why": s.why, "description": s.description}


def setting_line(spec: Spec, plan: Plan, records: list[dict]) -> str:
    """The setting an answer holds in, in one line: data, model, budget, seeds."""
    cfg = next((r.get("config") for r in records if r and r.get("config")), None) or {}

    def target(node: str) -> str:
        return str((cfg.get(node) or {}).get("_target_", "?")).rsplit(".", 1)[-1]

    def budget(r: dict) -> tuple[str, int] | None:
        """A run's budget: its steps, or its epochs when the steps are left open (-1: the budget is in epochs)."""
        trainer = (r.get("config") or {}).get("trainer", {})
        if (trainer.get("max_steps") or -1) > 0:
            return ("steps", trainer["max_steps"])
        return ("epochs", trainer["max_epochs"]) if trainer.get("max_epochs") else None

    budgets = sorted({b for r in records if r and (b := budget(r))})
    if not budgets:
        length = "? steps"
    else:
        unit = budgets[0][0]
        values = sorted(v for u, v in budgets if u == unit)
        length = f"{values[0]} {unit}" if len(values) == 1 else f"{values[0]}-{values[-1]} {unit}"
    seeds = len(plan.seeds)  # paired seeds (an A/A arm may draw its own range)
    return f"{target('data')} data, {target('model')} model, {length}, {seeds} seeds ({plan.profile} profile)"


def _safe_direction(records: list[dict | None], expr: str) -> str | None:
    try:
        return metric_direction(records, expr)
    except UnknownMetric:
        return None
