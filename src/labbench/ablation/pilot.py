"""Size a profile's budget from the standard-practice arm alone, before any comparison.

A spec's ``pilot`` section names the arm (Pre-LN, Kaiming with ReLU, SGD with momentum,
BatchNorm at batch 32, ...) and candidate budgets, cheapest first. For each candidate in
turn the arm is tuned as the spec tunes it and trained on ``seeds`` seeds; the first
candidate at which

- the arm's mean passes every competence gate that applies to it, and
- the arm made at most ``late_progress`` of its progress on ``metric`` in the last half of
  the budget (progress measured from the metric's failure value, what a model that learned
  nothing scores, or from its first logged value when there is none)

is the budget: the model has learned and its curve has levelled off. No other arm runs, so
no comparison can steer the choice. When none does, a pilot with ``fallback: largest`` takes
the largest candidate (its candidates being what the profile's time cap affords) and marks
the result ``capped``: the verdicts then say ``undertrained`` for arms that miss a gate
there. The profile then carries the chosen candidate's overrides; ``pilot.json`` records
every candidate's figures and a test checks that the profile and the committed pilot agree.
The runs go into the ablation's store: the chosen candidate's tuning and seeds are the very
runs ``reproduce`` then reuses.

Per-family budgets (``pilot.arms``): each listed arm is piloted alone by the same rule, its result in
``pilot/ARM/`` and its budget in the profile's ``arm_overrides``; each budget depends on that arm's own
curve only, so no comparison steers it either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labbench.ablation import plan as planning
from labbench.ablation.execute import execute
from labbench.ablation.metrics import metric_value, parse_metric, truncated
from labbench.ablation.plan import merge_overrides, override_key
from labbench.ablation.report import _f, unscored_warning
from labbench.ablation.engine import tune_arms
from labbench.ablation.results import check_gates, metric_direction
from labbench.ablation.spec import Spec, SpecError
from labbench.ablation.spec_edit import set_profile_value
from labbench.ablation.store import Store
from labbench.ablation.validation import validate
from labbench.record import write_json_atomic

ProgressFn = Callable[[Any, str], None]


def pilot_fingerprint(spec: Spec) -> str:
    """A hash of what the pilot depends on: base, the pilot arm, tuning, gates, failure values,
    the pilot section, and the profile's overrides other than the keys the candidates set."""
    p = spec.pilot
    raw = spec.raw
    candidate_keys = {override_key(o) for c in p.candidates for o in c}
    profile = (raw["profiles"].get(p.profile) or {}).get("overrides") or []
    body = {
        "base": raw.get("base"),
        "arm": raw["arms"][p.arm],
        "tuning": raw.get("tuning"),
        "gates": raw.get("gates"),
        "failure": raw.get("failure"),
        "pilot": raw.get("pilot"),
        "profile_overrides": [o for o in profile if override_key(o) not in candidate_keys],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]


def pilot_files(results_dir: Path) -> list[Path]:
    """Every committed pilot (``pilot.json``) below ``results_dir``: one per claim, per setting
    (``NAME/pilot/SETTING/``) and per arm of a per-family pilot (``NAME/pilot[/SETTING]/ARM/``)."""
    return sorted(Path(results_dir).glob("*/pilot/**/pilot.json"))


def pilot_label(pilot: dict[str, Any]) -> str:
    """``name``, ``name/setting``, and ``/arm`` for one arm of a per-family pilot."""
    return pilot["name"] + (f"/{pilot['setting']}" if pilot.get("setting") else "") + (f"/{pilot['arm']}" if pilot.get("per_arm") else "")


def arm_pilots(spec: Spec, arm: str | None = None) -> list[Spec]:
    """The spec once per pilot to run: itself, or for per-family budgets once per arm (``arm``: only that one)."""
    if spec.pilot is None or not spec.pilot.per_arm:
        if arm is not None and spec.pilot is not None and arm != spec.pilot.arm:
            raise SpecError(f"{spec.label}: --arm {arm}: its pilot sizes one budget, from arm {spec.pilot.arm!r} "
                            "(per-arm budgets need pilot.arms)")
        return [spec]
    return [dataclasses.replace(spec, pilot=spec.pilot.for_arm(a)) for a in ([arm] if arm else spec.pilot.arms)]


def one_arm(spec: Spec) -> Spec:
    """The spec cut down to the pilot arm and the gates that apply to it (nothing to compare)."""
    arm = spec.pilot.arm
    gates = tuple(g for g in spec.gates if not g.arms or arm in g.arms)
    return dataclasses.replace(spec, arms=(spec.arm(arm),), gates=tuple(dataclasses.replace(g, arms=()) for g in gates))


def late_share(record: dict, expr: str, better: str, progress_from: str = "failure",
               declared: Mapping[str, float] = {}) -> dict[str, float]:
    """The share of a run's progress on ``expr`` made in the last half of its budget.

    Progress runs from the metric's failure value (``declared``, the spec's ``failure``, first: a task without one for
    the metric, such as a VAE's negative ELBO, would leave the first logged value, by which most of the fall has
    happened; then the task's; then the first logged value) to its value
    at the end; the value at half the budget is the last one logged at or before it. With
    ``progress_from`` a baseline the run recorded for the metric's split (``bigram``), progress
    counts from there: a language model's fall from ln V to the unigram and bigram entropies is
    learnt in the first steps and would otherwise pass for most of its progress. A run that ends
    no better than the baseline made no progress (an infinite late share).
    """
    key = parse_metric(expr).key
    points = record.get("curves", {}).get(key, [])
    if len(points) < 2:
        raise SpecError(f"pilot metric {expr!r} needs at least two logged evaluations per run (at or before half the budget "
                        "and at the end); log it more often (e.g. trainer.val_check_interval = max_steps / 4)")
    budget = max(int(s) for s, _ in points)
    start = float(declared[key] if key in declared else record.get("failure_values", {}).get(key, points[0][1]))
    if progress_from != "failure":
        baseline = f"{key.split('/', 1)[0]}/{progress_from}"
        if baseline not in record.get("baselines", {}):
            raise SpecError(f"pilot.progress_from {progress_from!r}: the runs record no {baseline!r} baseline (they record: "
                            f"{', '.join(sorted(record.get('baselines', {}))) or 'none'})")
        start = float(record["baselines"][baseline])
    half = metric_value(truncated(record, budget // 2), expr)
    end = metric_value(record, expr)
    sign = 1.0 if better == "lower" else -1.0
    total = sign * (start - end)
    late = sign * (half - end) / total if total > 0 and math.isfinite(half) else math.inf
    return {"start": start, "half": half, "end": end, "late_share": late}


def run_pilot(
    spec: Spec,
    root: str | Path | None = None,
    wandb: bool = False,
    out_dir: str | Path | None = None,
    on_done: ProgressFn | None = None,
    stop_at_first: bool = True,
    jobs: int = 1,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Try the candidates cheapest first; returns (and writes) ``pilot.json`` and ``pilot.md``.

    ``jobs`` worker processes train each batch of independent runs (a candidate's tuning grid,
    then its seeds); the numbers do not depend on it (each run sets its own thread count).
    ``retry_failed``: failed runs run again (tuning runs before the choice is made from them)."""
    from labbench.ablation.store import default_root

    if spec.pilot is None:
        raise SpecError(f"{spec.name} has no pilot section (how its budget is sized from the standard arm alone)")
    p = spec.pilot
    sub = one_arm(spec)
    store = Store(root or default_root(), spec.store_name, p.profile)
    tags = [t for t in (spec.claim_id, p.profile, spec.setting, "pilot") if t]
    result: dict[str, Any] = {
        "name": spec.name, **({"setting": spec.setting} if spec.setting else {}), "profile": p.profile, "arm": p.arm, "metric": p.metric, "seeds": p.seeds,
        "late_progress": p.late_progress, "progress_from": p.progress_from, "gates": [dataclasses.asdict(g) for g in sub.gates],
        "pilot_hash": pilot_fingerprint(spec), "candidates": [], "chosen": None, "capped": False,
        **({"per_arm": True} if p.per_arm else {}),  # one arm's budget of a per-family pilot (pilot.arms)
    }
    for index, candidate in enumerate(p.candidates):
        validate(sub, p.profile, list(candidate))
        tuning_runs, tuned = tune_arms(sub, p.profile, candidate, store,
                                       lambda runs: execute(runs, store, spec.name, tags, jobs, wandb, retry_failed, on_done),
                                       retry_failed)
        runs = planning.final_runs(sub, p.profile, candidate, list(range(p.seeds)), tuned)
        execute(runs, store, spec.name, tags, jobs, wandb, retry_failed, on_done)
        records = [store.record(r.run_id) for r in runs]
        done = [r for r in records if r and r.get("status") == "completed"]
        better = metric_direction(done or records, p.metric)
        per_seed = []
        for r, rec in zip(runs, records):
            row: dict[str, Any] = {"seed": r.seed, "run_id": r.run_id, "status": (rec or {}).get("status", "missing")}
            if rec and rec.get("status") == "completed":
                row.update(late_share(rec, p.metric, better, p.progress_from, spec.failure))
                row["gate_values"] = {g.metric: metric_value(rec, g.metric) for g in sub.gates}
            per_seed.append(row)
        gates = check_gates(sub, {p.arm: records})[p.arm]
        shares = [s.get("late_share", math.inf) for s in per_seed]
        late = sum(shares) / len(shares)
        met = all(g["passed"] for g in gates) and late <= p.late_progress and len(done) == len(records)
        result["candidates"].append({
            "index": index, "overrides": list(candidate), "tuned": tuned.get(p.arm), "runs": per_seed,
            "gates": gates, "late_share_mean": late, "met": met,
            "wall_time_s": round(sum(rec.get("wall_time_s", 0.0) for rec in records + [store.record(t.run_id) for t in tuning_runs] if rec), 1),
        })
        if met and result["chosen"] is None:
            result["chosen"] = index
            if stop_at_first:
                break
    if result["chosen"] is None and p.fallback == "largest":
        result["chosen"], result["capped"] = len(p.candidates) - 1, True
    out = Path(out_dir) if out_dir else store.dir / "pilot" / (p.arm if p.per_arm else "")
    write_pilot(spec, result, out)
    return result


def chosen_overrides(result: dict[str, Any]) -> list[str] | None:
    if result.get("chosen") is None:
        return None
    return result["candidates"][result["chosen"]]["overrides"]


def profile_agrees(spec: Spec, result: dict[str, Any]) -> list[str]:
    """What in the spec disagrees with a committed pilot (empty: the profile carries the chosen budget)."""
    problems = []
    if result.get("pilot_hash") != pilot_fingerprint(spec):
        problems.append(f"the pilot was run for another version of the spec (hash {result.get('pilot_hash')}, "
                        f"now {pilot_fingerprint(spec)}): run `labbench pilot {spec.name}` again")
    chosen = chosen_overrides(result)
    if chosen is None:
        problems.append("no candidate met the rule: the profile has no budget at which the standard arm learned")
        return problems
    prof = spec.profile(spec.pilot.profile)
    if spec.pilot.per_arm:
        profile, where = merge_overrides(prof.arm_overrides.get(spec.pilot.arm, ())), f"arm_overrides.{spec.pilot.arm}"
    else:
        profile, where = merge_overrides(prof.overrides), "overrides"
    missing = [o for o in chosen if o not in profile]
    if missing:
        problems.append(f"profile {spec.pilot.profile!r} lacks the chosen candidate's overrides {missing} (in its {where})")
    return problems


def write_budget(spec: Spec, result: dict[str, Any]) -> Path:
    """Set the piloted profile's ``overrides`` in the spec file to the chosen candidate; returns the file.

    A text edit of that one entry (a one-line ``overrides: [...]`` or a block of ``- item`` lines),
    so the file's comments and layout stay; the spec is loaded again afterwards and must then agree
    with the pilot (:func:`profile_agrees`), or the file is restored and the error raised. Until now
    this step was a hand edit after every pilot: written by the tool, the budget is the pilot's.
    """
    import yaml

    from labbench.ablation import spec as specs

    chosen = chosen_overrides(result)
    if chosen is None:
        raise specs.SpecError(f"{spec.label}: the pilot chose no budget; nothing to write")
    command = f"labbench pilot {spec.ref}" + (f" --setting {spec.setting}" if spec.setting else "")
    if spec.pilot.per_arm:  # this arm's budget beside the other arms' (each written by its own pilot)
        per_arm = {a: list(o) for a, o in spec.profile(spec.pilot.profile).arm_overrides.items()}
        per_arm[spec.pilot.arm] = list(chosen)
        flow = yaml.safe_dump({a: per_arm[a] for a in sorted(per_arm)}, default_flow_style=True, width=1_000_000).strip()
        key, comment = "arm_overrides", f"each arm's budget from its own pilot ({command} --write-profile)"
    else:
        flow = yaml.safe_dump(list(chosen), default_flow_style=True, width=1_000_000).strip()
        key, comment = "overrides", f"the pilot's choice ({command} --write-profile)"
    path, original = set_profile_value(spec, spec.pilot.profile, key, flow, comment)
    try:
        reloaded = specs.load(str(path))
        again = reloaded.in_setting(spec.setting) if spec.setting else reloaded
        if spec.pilot.per_arm:
            again = dataclasses.replace(again, pilot=again.pilot.for_arm(spec.pilot.arm))
        problems = profile_agrees(again, result)
        if problems:
            raise specs.SpecError(f"{path}: after writing the budget the spec still disagrees with its pilot: {'; '.join(problems)}")
    except Exception:
        path.write_text(original)
        raise
    return path


def render(spec: Spec, result: dict[str, Any]) -> str:
    p = spec.pilot
    lines = [f"# {spec.label}: pilot for the `{p.profile}` budget" + (f" of arm `{p.arm}`" if p.per_arm else ""), "",
             (f"Per-family budgets: each of the arms {', '.join(f'`{a}`' for a in p.arms)} is piloted alone by this rule and "
              f"runs at its own budget (the profile's `arm_overrides`). This is arm `{p.arm}`, alone," if p.per_arm else
              f"The standard-practice arm `{p.arm}` alone,") + f" {p.seeds} seeds per candidate, cheapest candidate first. "
             f"A candidate is the budget when the arm passes its competence gates and made at most "
             f"{p.late_progress:.0%} of its progress on `{p.metric}` in the last half of the budget "
             + (f"(from the spec's failure value for it, {spec.failure[parse_metric(p.metric).key]:g})"
                if p.progress_from == "failure" and parse_metric(p.metric).key in spec.failure else
                "(from the metric's failure value, or its first logged value)" if p.progress_from == "failure"
                else f"(counted from the `{p.progress_from}` baseline the runs record)") + ". No other arm ran.", ""]
    lines += ["| # | overrides | tuned | gates (mean vs bar) | `" + p.metric + "` start / half / end (mean) | late share | met |",
              "|---|---|---|---|---|---|---|"]
    for c in result["candidates"]:
        tuned = (f"`{spec.tuning.show(c['tuned']['value'])}`" + (" (edge)" if c["tuned"].get("on_edge") else "")
                 + unscored_warning(c["tuned"]) if c.get("tuned") else "-")
        gates = "; ".join(f"`{g['metric']}` {_f(g['mean'])} vs {_f(g['bar'])} {'pass' if g['passed'] else 'FAIL'}" for g in c["gates"]) or "-"
        done = [r for r in c["runs"] if "end" in r]
        mean = lambda k: sum(r[k] for r in done) / len(done) if done else math.nan  # noqa: E731
        curve = f"{_f(mean('start'))} / {_f(mean('half'))} / {_f(mean('end'))}"
        lines.append(f"| {c['index']} | {' '.join(f'`{o}`' for o in c['overrides'])} | {tuned} | {gates} | {curve} | "
                     f"{_f(c['late_share_mean'])} | {'**yes**' if c['met'] else 'no'} |")
    chosen = chosen_overrides(result)
    if result.get("capped"):
        lines += ["", f"**No candidate met the rule; capped budget:** {' '.join(f'`{o}`' for o in chosen)}: the largest "
                  f"candidate, the most the `{p.profile}` profile's time cap affords (the spec's `fallback: largest`). "
                  "Where an arm misses a competence gate at this budget its hypotheses are `undertrained`; where it passes "
                  "but was still improving, the verdicts hold at this budget only.", ""]
    else:
        lines += ["", f"**Chosen budget:** {' '.join(f'`{o}`' for o in chosen)}" if chosen else
                  "**No candidate met the rule**: the largest budget tried is not enough for the standard arm.", ""]
    setting = (f" --setting {spec.setting}" if spec.setting else "") + (f" --arm {p.arm}" if p.per_arm else "")
    lines += [f"Pilot hash `{result['pilot_hash']}`. Reproduce: `labbench pilot {spec.ref}{setting}`.", ""]
    return "\n".join(lines)


def write_pilot(spec: Spec, result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "pilot.json", result)
    tmp = out / "pilot.md.tmp"
    tmp.write_text(render(spec, result))
    tmp.replace(out / "pilot.md")
