"""``reproduce`` and ``report``: the two things a user does with a named ablation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labbench.ablation import plan as planning
from labbench.ablation.execute import execute
from labbench.ablation.plan import Plan, PlannedRun
from labbench.ablation.report import write_report
from labbench.ablation.results import analyze, pending_tuning
from labbench.ablation.spec import Spec, SpecError
from labbench.ablation.store import Store
from labbench.ablation.validation import validate

ProgressFn = Callable[[PlannedRun, str], None]


@dataclass
class Outcome:
    plan: Plan
    verdict: dict[str, Any]
    report: Path
    counts: dict[str, int]


def one_setting(spec: Spec) -> None:
    """A spec that declares settings runs one setting at a time (``spec.in_setting(name)``; ``labbench.ablation.settings``
    answers them all): its bare base is none of them."""
    if spec.settings and not spec.setting:
        raise SpecError(f"{spec.name} is answered in settings ({', '.join(spec.setting_names())}): run one with "
                        f"--setting NAME, or all of them (labbench reproduce {spec.name} without --setting)")


def count_runs(spec: Spec, profile: str, seeds: int | None = None) -> int:
    if spec.settings and not spec.setting:  # a claim answered in several settings: all of them
        return sum(count_runs(spec.in_setting(name), profile, seeds) for name in spec.setting_names())
    n_seeds = seeds if seeds is not None else spec.profile(profile).seeds
    if spec.tuning is None:
        return len(spec.arms) * n_seeds
    grid = spec.tuning_grid(profile)
    tuning = sum(len(values) for values in grid.values()) * spec.tuning.seeds * spec.tuning.repeats
    return len(spec.arms) * n_seeds + tuning


def stored_runs(spec: Spec, profile: str, seeds: int | None = None, extra: Sequence[str] = (),
                root: str | Path | None = None) -> int:
    """How many of the runs :func:`count_runs` counts are already done in the store (a re-run reuses them).

    Tuning runs and an untuned spec's final runs are known before anything runs; a tuned spec's final runs depend on
    the tuned values, so they count only once a stored plan with the same seeds names them.
    """
    from labbench.ablation.store import default_root

    extra = list(extra)
    store = Store(root or default_root(), spec.store_name, profile)
    final_seeds = planning.final_seeds(spec, profile, seeds)
    ids = {r.run_id for r in planning.tuning_runs(spec, profile, extra)}
    if spec.tuning is None:
        ids |= {r.run_id for r in planning.final_runs(spec, profile, extra, final_seeds, {})}
    elif store.plan_path(extra).is_file():
        saved = Plan.from_dict(store.load_plan(extra))
        if saved.seeds == final_seeds:
            ids |= {r.run_id for r in saved.final_runs}
    return sum(store.is_done(run_id) for run_id in ids)


def estimated_minutes(spec: Spec, profile: str) -> float | None:
    """The profile's time estimate; for a claim answered in several settings, the sum of theirs (None if one lacks it)."""
    if spec.settings and not spec.setting:
        each = [spec.in_setting(name).profile(profile).estimated_minutes for name in spec.setting_names()]
        return None if any(m is None for m in each) else sum(each)
    return spec.profile(profile).estimated_minutes


def remaining_minutes(estimate: float | None, total: int, stored: int) -> float | None:
    """A profile's estimate scaled to the runs still to train (stored ones cost nothing)."""
    return None if estimate is None or total <= 0 else estimate * (total - stored) / total


def first_family(spec: Spec) -> int:
    """How many hypotheses share the first decision's correction: the primary alone where one is declared (the
    secondaries wait for it), else every hypothesis but the sanity checks (Holm across them)."""
    if any(h.role == "primary" for h in spec.hypotheses):
        return 1
    return max(1, sum(1 for h in spec.hypotheses if h.role != "sanity"))


def seed_warnings(spec: Spec, profile: str, seeds: int | None = None) -> list[str]:
    """What to tell the user before running: hypotheses that no outcome could decide with these seeds."""
    from labbench.ablation.stats import RECOMMENDED_SEEDS, can_decide, seeds_needed

    n = seeds if seeds is not None else spec.profile(profile).seeds
    k = first_family(spec)
    if not can_decide(n, k):
        what = "the primary hypothesis (tested alone)" if any(h.role == "primary" for h in spec.hypotheses) else f"{k} hypothesis(es)"
        return [f"{n} paired seeds cannot give any verdict on {what}: the sign-flip test"
                + (" with Holm's correction" if k > 1 else "") + f" needs at least {seeds_needed(k)} seeds (docs/method.md); "
                "nothing will be decided (a competence gate missed says undertrained first)"]
    if n < RECOMMENDED_SEEDS:
        return [f"{n} paired seeds: a verdict is possible, but the method recommends {RECOMMENDED_SEEDS}+ (docs/method.md: power)"]
    return []


def tune_arms(
    spec: Spec, profile: str, extra: Sequence[str], store: Store, run_all: Callable[[list[PlannedRun]], None],
    retry_failed: bool = False,
) -> tuple[list[PlannedRun], dict[str, dict[str, Any]]]:
    """Per-arm tuning (results.pending_tuning: the declared grid, then values past an edge with
    ``tuning.extend``), running each pending batch; returns every tuning run and the choices.
    ``retry_failed``: a failed tuning run runs once more before the choice is made from it (not after)."""
    passed: set[PlannedRun] = set()
    while True:
        pending, runs, tuned = pending_tuning(spec, profile, extra, store, retry_failed, {r.run_id for r in passed})
        if not pending:
            break
        run_all(pending)
        passed.update(pending)
    stored = [r for r in runs if r not in passed]
    if stored:
        run_all(stored)  # already in the store: counted as skipped, and listed in the plan
    return runs, tuned


def reproduce(
    spec: Spec,
    profile: str = "quick",
    seeds: int | None = None,
    extra: Sequence[str] = (),
    root: str | Path | None = None,
    jobs: int = 1,
    wandb: bool = True,
    retry_failed: bool = False,
    report_dir: str | Path | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: ProgressFn | None = None,
    launcher: Sequence[str] = (),
    on_begin: Callable[[PlannedRun], None] | None = None,
    on_more: Callable[[int], None] | None = None,
) -> Outcome:
    """Plan, run what is missing (tuning first), aggregate, and write the report.

    ``launcher``: run through a Hydra launcher (option, then its overrides) instead of here.
    ``on_more``: told how many runs ``tuning.extend`` adds past a grid's edge, runs ``on_start``'s count left out
    (it counts the declared grid: how far an arm walks on is known only from its scores).
    """
    from labbench.ablation.store import default_root

    extra = list(extra)
    one_setting(spec)
    validate(spec, profile, extra)
    store = Store(root or default_root(), spec.store_name, profile)
    plan = Plan(spec.name, profile, planning.final_seeds(spec, profile, seeds), extra)
    plan.tuning_runs = planning.tuning_runs(spec, profile, extra)
    if on_start:
        on_start(count_runs(spec, profile, len(plan.seeds)))
    tags = [t for t in (spec.claim_id, profile, spec.setting) if t]
    counts: dict[str, int] = {}

    def run_all(runs: list[PlannedRun]) -> None:
        store.save_plan(plan.as_dict())  # before running: an interrupted ablation can still be reported
        for k, v in execute(runs, store, spec.name, tags, jobs, wandb, retry_failed, on_done, launcher, on_begin).items():
            counts[k] = counts.get(k, 0) + v

    if plan.tuning_runs:
        declared = {r.run_id for r in plan.tuning_runs}

        def run_tuning(runs: list[PlannedRun]) -> None:
            beyond = [r for r in runs if r.run_id not in declared]
            declared.update(r.run_id for r in beyond)
            if beyond and on_more:
                on_more(len(beyond))
            plan.tuning_runs = list(dict.fromkeys([*plan.tuning_runs, *runs]))  # the plan on disk lists every run tried
            run_all(runs)

        plan.tuning_runs, plan.tuned = tune_arms(spec, profile, extra, store, run_tuning, retry_failed)
    plan.final_runs = planning.final_runs(spec, profile, extra, plan.seeds, plan.tuned)
    run_all(plan.final_runs)
    store.save_plan(plan.as_dict())
    verdict = analyze(spec, plan, store)
    report = write_report(spec, plan, store, verdict, Path(report_dir) if report_dir else default_report_dir(store, extra))
    return Outcome(plan, verdict, report, counts)


def rebuild_report(
    spec: Spec, profile: str = "quick", root: str | Path | None = None, report_dir: str | Path | None = None, extra: Sequence[str] = ()
) -> Outcome:
    """Rebuild ``report.md`` and ``verdict.json`` from stored runs only; runs nothing."""
    from labbench.ablation.store import default_root

    one_setting(spec)
    store = Store(root or default_root(), spec.store_name, profile)
    plan = Plan.from_dict(store.load_plan(list(extra)))
    verdict = analyze(spec, plan, store)
    report = write_report(spec, plan, store, verdict, Path(report_dir) if report_dir else default_report_dir(store, extra))
    return Outcome(plan, verdict, report, {})


def default_report_dir(store: Store, extra: Sequence[str]) -> Path:
    """The ablation's folder; a report with overrides goes beside its plan, named the same."""
    return store.dir if not extra else store.plan_path(extra).with_suffix("")
