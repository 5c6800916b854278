"""From stored run records to numbers: per-arm values, tuning choices, and the verdicts.

A diverged or failed run is never dropped: it counts in its arm's status counts, and for
every metric its value is the worst value any final run of the ablation reached on that
metric (the claim "this arm trains worse" must not improve because its worst runs blew up).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from labbench.ablation.metrics import metric_value, parse_metric
from labbench.ablation.plan import Plan, PlannedRun
from labbench.ablation.spec import Spec, is_reference
from labbench.ablation.stats import METHOD, compare, summarize
from labbench.ablation.store import Store

OK = "completed"


def metric_direction(spec: Spec, expr: str) -> str:
    """Which values are better: the hypothesis's word if one uses it, else by the metric's name."""
    for h in spec.hypotheses:
        if h.metric == expr:
            return h.direction
    if spec.tuning is not None and spec.tuning.metric == expr:
        return spec.tuning.direction
    key = parse_metric(expr).key
    return "higher" if key.endswith("acc") or "ratio" in key else "lower"


def _raw_values(records: list[dict | None], expr: str) -> list[float]:
    return [metric_value(r, expr) if r is not None and r.get("status") == OK else math.nan for r in records]


def _worst(values: list[float], direction: str) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if direction == "lower" else min(finite)


def values_by_arm(spec: Spec, records: dict[str, list[dict | None]], expr: str) -> dict[str, list[float]]:
    """Per arm, per seed: the metric, with diverged / failed / non-finite runs set to the worst."""
    raw = {arm: _raw_values(recs, expr) for arm, recs in records.items()}
    worst = _worst([v for vs in raw.values() for v in vs], metric_direction(spec, expr))
    out = {}
    for arm, recs in records.items():
        out[arm] = [
            v if math.isfinite(v) else (worst if rec is not None else math.nan)  # missing runs stay missing
            for v, rec in zip(raw[arm], recs)
        ]
    return out


def _side(values: dict[str, list[float]], side: str | float, other: str | float) -> list[float]:
    """One side of a hypothesis, per seed: an arm's values, or a fixed reference repeated."""
    if is_reference(side):
        return [float(side)] * len(values[other])
    return values[side]


def choose_tuned(spec: Spec, profile: str, runs: list[PlannedRun], store: Store) -> dict[str, dict[str, Any]]:
    """Per arm, the grid value with the best mean tuning metric (validation split only)."""
    if spec.tuning is None:
        return {}
    t = spec.tuning
    by_arm: dict[str, list[tuple[Any, dict | None]]] = {}
    for r in runs:
        by_arm.setdefault(r.arm, []).append((r.tuned_value, store.record(r.run_id)))
    all_values = [metric_value(rec, t.metric) for pairs in by_arm.values() for _, rec in pairs if rec and rec.get("status") == OK]
    worst = _worst(all_values, t.direction)
    tuned = {}
    for arm, pairs in by_arm.items():
        scores: dict[str, list[float]] = {}
        for value, rec in pairs:
            v = metric_value(rec, t.metric) if rec and rec.get("status") == OK else math.nan
            scores.setdefault(repr(value), []).append(v if math.isfinite(v) else worst)
        grid = list(spec.tuning_grid(profile)[arm])
        means = [sum(scores[repr(v)]) / len(scores[repr(v)]) for v in grid]
        finite = [(m, i) for i, m in enumerate(means) if math.isfinite(m)]
        if not finite:
            best_i = 0
        else:
            best_i = (min if t.direction == "lower" else max)(finite)[1]
        tuned[arm] = {
            "value": grid[best_i],
            "scores": {repr(v): m for v, m in zip(grid, means)},
            "on_edge": len(grid) > 1 and best_i in (0, len(grid) - 1),
        }
    return tuned


def final_records(plan: Plan, store: Store) -> dict[str, list[dict | None]]:
    records: dict[str, list[dict | None]] = {}
    for r in plan.final_runs:
        records.setdefault(r.arm, []).append(store.record(r.run_id))
    return records


def analyze(spec: Spec, plan: Plan, store: Store) -> dict[str, Any]:
    """The machine-readable result of an ablation (``verdict.json``)."""
    records = final_records(plan, store)
    metrics = list(dict.fromkeys([*(h.metric for h in spec.hypotheses), *spec.metrics]))
    values = {m: values_by_arm(spec, records, m) for m in metrics}

    arms = {}
    for arm in spec.arms:
        recs = records.get(arm.name, [])
        status = Counter(r.get("status", "missing") if r else "missing" for r in recs)
        arms[arm.name] = {
            "overrides": list(arm.overrides),
            "seeds": [r.seed for r in plan.final_runs if r.arm == arm.name],
            "status_counts": dict(sorted(status.items())),
            "tuned": plan.tuned.get(arm.name),
            "metrics": {m: {**summarize(values[m][arm.name]).as_dict(), "values": values[m][arm.name]} for m in metrics},
        }

    hypotheses = []
    for h in spec.hypotheses:
        better, worse = _side(values[h.metric], h.better, h.worse), _side(values[h.metric], h.worse, h.better)
        pairs = [(b, w) for b, w in zip(better, worse) if math.isfinite(b) and math.isfinite(w)]
        c = compare([b for b, _ in pairs], [w for _, w in pairs], h.direction, h.margin)
        hypotheses.append({"name": h.name, "metric": h.metric, "better": h.better, "worse": h.worse,
                           "direction": h.direction, "margin": h.margin, "note": h.note, **c.as_dict()})

    all_records = [r for recs in records.values() for r in recs if r]
    tuning_records = [store.record(r.run_id) for r in plan.tuning_runs]
    return {
        "name": spec.name,
        "claim_id": spec.claim_id,
        "claim": spec.claim,
        "profile": plan.profile,
        "method": METHOD,
        "hypotheses": hypotheses,
        "arms": arms,
        "runs": {
            "final": len(plan.final_runs),
            "tuning": len(plan.tuning_runs),
            "missing": sum(1 for recs in records.values() for r in recs if r is None),
        },
        "wall_time_s": round(sum(r.get("wall_time_s", 0.0) for r in [*all_records, *(t for t in tuning_records if t)]), 1),
    }
