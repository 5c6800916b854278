"""``labbench``: list, show, reproduce and report named ablations."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table

from labbench.ablation import spec as specs
from labbench.ablation.report import difference_text, predicted_text

console = Console()
VERDICT_STYLE = {"supported": "bold green", "contradicted": "bold red", "inconclusive": "yellow", "undertrained": "magenta",
                 "smaller than claimed": "green", "exploratory": "dim", "out of regime": "magenta"}
ANSWER_STYLE = {"holds here": "bold green", "smaller than claimed": "green", "does not hold here": "bold red",
                "not shown": "yellow", "out of regime": "magenta", "setup failed": "bold magenta",
                "no false positive": "bold green", "false positive": "bold red"}  # the last two: an A/A control's


def catalog() -> list[dict]:
    """Every named ablation as data: what ``labbench list`` shows, and ``--json`` prints."""
    from labbench.ablation.engine import count_runs, estimated_minutes

    out = []
    for name in specs.available():
        s = specs.load(name)
        out.append({
            "name": s.name, "claim_id": s.claim_id, "claim": s.claim, "sources": list(s.sources), "reference": s.reference,
            "arms": [a.name for a in s.arms],
            "settings": s.setting_names(),
            "profiles": {p.name: {"runs": count_runs(s, p.name), "estimated_minutes": estimated_minutes(s, p.name), "seeds": p.seeds,
                                  "description": p.description} for p in s.profiles.values()},
        })
    return out


def cmd_list(args: argparse.Namespace) -> int:
    entries = catalog()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if console.width < NARROW:  # a table's claim column would be a few characters wide: one block per spec

        for e in entries:
            quick = e["profiles"].get("quick") or next(iter(e["profiles"].values()))
            minutes = f", ~{quick['estimated_minutes']:g} min" if quick.get("estimated_minutes") is not None else ""
            settings = f"; settings: {', '.join(e['settings'])}" if e.get("settings") else ""
            console.print(f"[bold]{e['name']}[/]" + (f" ({e['claim_id']})" if e["claim_id"] else "")
                          + f": quick {quick['runs']} runs{minutes}; arms: {', '.join(e['arms'])}{escape(settings)}", highlight=False)
            console.print(f"  {escape(e['claim'])}", highlight=False)
        return 0
    table = Table(title="named ablations", show_lines=True)
    width = max(len(e["name"]) for e in entries)
    table.add_column("name", no_wrap=True, min_width=width)  # never wrapped: `labbench list | grep NAME` finds it
    for col in ("claim", "sources", "arms", "profiles: runs, est. minutes"):
        table.add_column(col, overflow="fold")
    for e in entries:
        profiles = "\n".join(
            f"{name}: {p['runs']} runs, ~{p['estimated_minutes']:g} min" if p["estimated_minutes"] is not None
            else f"{name}: {p['runs']} runs" for name, p in e["profiles"].items()
        )
        claim = f"[bold]{e['claim_id']}[/] {e['claim']}" if e["claim_id"] else e["claim"]
        table.add_row(e["name"], claim, "\n".join(e["sources"]), "\n".join(e["arms"]), profiles)
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from labbench.ablation.plan import arm_differences, arm_overrides, merge_overrides
    from labbench.config import compose, run_config

    s = _one_spec(specs.load(args.name), args)
    profile = args.profile
    s.profile(profile)
    if args.json:
        resolved = {arm.name: run_config(compose(merge_overrides(arm_overrides(s, arm.name, profile, args.overrides), ["seed=0"])))
                    for arm in s.arms}
        print(json.dumps({"name": s.name, "path": str(s.path), "profile": profile, "spec": s.raw, "arms": resolved,
                          "differences": arm_differences(s, profile, args.overrides, resolve=True), "factors": list(s.factors)},
                         indent=2, default=str))
        return 0
    console.rule(f"[bold]{s.label}[/] spec ({s.path})")
    # soft_wrap: long lines run on (the terminal wraps them) instead of being re-wrapped, so the YAML still reads as YAML
    console.print(yaml.safe_dump(s.raw, sort_keys=False, allow_unicode=True), soft_wrap=True, highlight=False, markup=False)
    for arm in s.arms:
        overrides = merge_overrides(arm_overrides(s, arm.name, profile, args.overrides), ["seed=0"])
        console.rule(f"arm [bold]{arm.name}[/] ({profile} profile, seed 0): resolved config")
        # every key the run receives (identity_config would drop those at a neutral value, e.g. data.train_size: null)
        console.print(yaml.safe_dump(run_config(compose(overrides)), sort_keys=False), soft_wrap=True, highlight=False, markup=False)
    console.rule("keys on which the arms differ")
    diffs = arm_differences(s, profile, args.overrides, resolve=True)
    table = Table("key", *[a.name for a in s.arms])
    for column in table.columns:
        column.overflow = "fold"  # a value such as model._target_ is folded, never cut to "labbench.models.…"
    for key, by_arm in diffs.items():
        table.add_row(key, *[str(by_arm[a.name]) for a in s.arms])
    console.print(table if diffs else "none (arms differ only in their seeds)")
    console.print(f"declared factors: {', '.join(s.factors) or '-'}")
    if s.tuning is not None:
        console.print(f"tuned per arm: {s.tuning.label} over {dict(s.tuning.grid)} on {s.tuning.metric}")
    return 0


NARROW = 120  # below this many columns a table of numbers breaks them mid-token: print one block per row instead


def _verdict_table(verdict: dict):
    """The verdicts as a table, or, on a terminal narrower than ``NARROW``, one block per hypothesis (no number is ever
    cut: ``-0.001281`` never shows as ``-0.0012``)."""
    rows = []
    for h in verdict["hypotheses"]:
        raw = f" (raw: {h['verdict_raw']})" if h.get("verdict_raw", h["verdict"]) != h["verdict"] else ""
        role = "" if h.get("role", "secondary") == "secondary" else f" [{h['role']}]"
        # every text escaped: "[primary]" or a pair "[a, b]" is text, not rich markup (it would vanish)
        rows.append((escape(h["name"] + role), escape(h["metric"]), escape(predicted_text(h).replace("`", "")), escape(difference_text(h)),
                     f"{h['prob_improvement']:.2f}", f"{h.get('p_holm', float('nan')):.3g}",
                     f"[{VERDICT_STYLE[h['verdict']]}]{h['verdict']}[/]{escape(raw)}"))
    if console.width < NARROW:
        from rich.console import Group
        from rich.text import Text

        blocks = [Text.from_markup(f"[bold]{escape(verdict['name'])} ({verdict['profile']})[/]")]
        for name, metric, predicted, diff, prob, p, word in rows:
            blocks.append(Text.from_markup(f"{name}\n  {word}; {predicted} on {metric}\n  difference {diff}; P(impr.) {prob}; p (Holm) {p}"))
        return Group(*blocks)
    table = Table(title=f"{verdict['name']} ({verdict['profile']})")
    for col in ("hypothesis", "metric", "predicted"):
        table.add_column(col, overflow="fold")
    for col in ("difference [95% CI]", "P(impr.)", "p (Holm)"):
        table.add_column(col, no_wrap=True)  # numbers whole
    table.add_column("verdict", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _summary(outcome, spec, elapsed: float | None = None) -> None:
    answer = outcome.verdict.get("answer")
    if answer:
        console.print(f"answer: [{ANSWER_STYLE[answer['answer']]}]{answer['answer']}[/] ({answer['because']}; primary: "
                      f"{answer['primary']}) in {answer['setting']}", soft_wrap=True)
    console.print(_verdict_table(outcome.verdict))

    from labbench.ablation.report import caveats

    for line in caveats(outcome.verdict):
        console.print(f"[bold yellow]caveat:[/] {escape(line.replace('**', '').replace('`', ''))}", soft_wrap=True)
    arms = Table(title="arms", title_justify="left")
    arms.add_column("arm")
    arms.add_column("runs")
    metric = spec.hypotheses[0].metric
    arms.add_column(f"{metric} mean ± std")
    for name, a in outcome.verdict["arms"].items():
        m = a["metrics"][metric]
        tuned = f" ({spec.tuning.show(a['tuned']['value'])})" if a.get("tuned") else ""
        arms.add_row(name + tuned, ", ".join(f"{v} {k}" for k, v in a["status_counts"].items()), f"{m['mean']:.4g} ± {m['std']:.3g}")
    console.print(arms)
    if outcome.counts:
        done = ", ".join(f"{v} {k}" for k, v in outcome.counts.items() if v)
        console.print(f"runs: {done}" + (f" in {elapsed / 60:.1f} min" if elapsed else ""))
    console.print(f"report: {outcome.report}\nverdict: {outcome.report.parent / 'verdict.json'}")


def cmd_validate(args: argparse.Namespace) -> int:
    """``labbench validate NAME|PATH``: everything ``reproduce`` checks before it runs (in every setting), and nothing else."""
    from labbench.ablation.validation import primary_refusal, tuning_refusal

    top = specs.load(args.name)
    refusal = primary_refusal(top) or tuning_refusal(top)
    if refusal:
        raise specs.SpecError(refusal)
    for s in [top] if not top.settings else [top.in_setting(n) for n in _setting_names(top, args)]:
        _validate_one(s, args)
    return 0


def _validate_one(s, args: argparse.Namespace) -> None:
    from labbench.ablation.engine import seed_warnings
    from labbench.ablation.validation import data_warnings, duplicate_hypotheses, loss_warnings, method_warnings, power_lines, validate

    profiles = [args.profile] if args.profile else list(s.profiles)
    validate(s, args.profile, args.overrides)
    console.print(f"[bold green]valid[/]: {s.label} ({s.path}), profiles {', '.join(profiles)}: every arm composes, every "
                  "_target_ imports and binds its arguments, the arms differ only on "
                  f"{', '.join(s.factors) or 'their seeds'}, every metric has a declared direction")
    for name in profiles:
        for line in seed_warnings(s, name):
            console.print(f"[bold yellow]warning ({name}):[/] {line}")
        for line in data_warnings(s, name, args.overrides):
            console.print(f"[bold yellow]warning ({name}):[/] {line}", soft_wrap=True)
    for line in [*duplicate_hypotheses(s), *method_warnings(s), *loss_warnings(s, "smoke")]:
        console.print(f"[bold yellow]warning:[/] {line}", soft_wrap=True)
    for name in profiles:
        lines, warnings = power_lines(s, s.profile(name).seeds)
        for line in lines:
            console.print(f"{name}: {line}", soft_wrap=True)
        for line in warnings:
            console.print(f"[bold yellow]warning ({name}):[/] {line}", soft_wrap=True)


def cmd_reproduce(args: argparse.Namespace) -> int:
    s = specs.load(args.name)
    s.profile(args.profile)
    launcher = _split_launcher(args)
    if not s.settings:
        _reproduce_one(s, args, launcher)
        return 0
    from labbench.ablation.settings import answer_across

    names = _setting_names(s, args)
    outcomes = [_reproduce_one(s.in_setting(name), args, launcher) for name in names]
    if names == s.setting_names():
        _across_summary(*answer_across(s, args.profile, outcomes, args.report_dir, args.out))
    return 0


def _setting_names(s, args: argparse.Namespace) -> list[str]:
    """The settings a command acts on: ``--setting NAME`` or, without it, every setting of the spec."""
    if getattr(args, "setting", None):
        s.in_setting(args.setting)  # a clear error for an unknown name
        return [args.setting]
    return s.setting_names()


def _one_spec(s, args: argparse.Namespace):
    """Commands that act on one setting (show, pilot, plan, map): the spec in ``--setting NAME``, required when the spec
    declares settings."""
    if not s.settings:
        if getattr(args, "setting", None):
            raise specs.SpecError(f"{s.name} declares no settings; leave out --setting")
        return s
    if not getattr(args, "setting", None):
        raise specs.SpecError(f"{s.name} is answered in settings {', '.join(s.setting_names())}: this command acts on one; "
                              "add --setting NAME")
    return s.in_setting(args.setting)


def _across_summary(verdict: dict, report: Path) -> None:
    answer = verdict["answer"]
    console.rule(f"[bold]{verdict['name']}[/] across its settings")
    console.print(f"answer: [bold]{answer['answer']}[/] ({answer['because']})", soft_wrap=True)
    console.print(f"report: {report}\nverdict: {report.parent / 'verdict.json'}")


def _count_runs(s, args: argparse.Namespace) -> int:
    from labbench.ablation.engine import count_runs

    return count_runs(s, args.profile, args.seeds)


def _grow(progress: Progress, task, n: int) -> None:
    """Raise a progress bar's total by the ``n`` runs ``tuning.extend`` added past a grid's edge."""
    total = next(t.total for t in progress.tasks if t.id == task)
    progress.update(task, total=(total or 0) + n)


def _reproduce_one(s, args: argparse.Namespace, launcher: list[str]):
    import time

    from labbench.ablation.engine import remaining_minutes, reproduce, seed_warnings, stored_runs
    from labbench.ablation.validation import data_warnings, duplicate_hypotheses, loss_warnings, method_warnings, power_lines

    absent = data_warnings(s, args.profile, args.overrides)
    if absent and stored_runs(s, args.profile, args.seeds, args.overrides, args.out) < _count_runs(s, args):
        raise specs.SpecError(f"{s.label}, profile {args.profile!r}: {absent[0]} Nothing was run.")

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=console, transient=False)
    task = None

    def on_start(total: int) -> None:
        nonlocal task
        stored = stored_runs(s, args.profile, args.seeds, args.overrides, args.out)
        est = remaining_minutes(s.profile(args.profile).estimated_minutes, total, stored)
        console.print(f"[bold]{s.label}[/] ({args.profile}): {total} runs planned" + _time_line(total, stored, est))
        for line in [*seed_warnings(s, args.profile, args.seeds), *duplicate_hypotheses(s), *method_warnings(s),
                     *loss_warnings(s, args.profile)]:
            console.print(f"[bold yellow]warning:[/] {line}", soft_wrap=True)
        power, weak = power_lines(s, args.seeds or s.profile(args.profile).seeds)
        for line in power:
            console.print(line, soft_wrap=True)
        for line in weak:
            console.print(f"[bold yellow]warning:[/] {line}", soft_wrap=True)
        task = progress.add_task("runs", total=total)

    def label(run) -> str:
        tried = f" {s.tuning.show(run.tuned_value)}" if run.stage == "tune" and s.tuning is not None and run.tuned_value is not None else ""
        return f"{run.stage} {run.arm} seed {run.seed}{tried}"

    def on_begin(run) -> None:
        progress.update(task, description=f"{label(run)}: running")

    def on_done(run, status: str) -> None:
        said = "trained by another process sharing the store" if status == "elsewhere" else status
        progress.update(task, advance=1, description=f"{label(run)}: {said}")

    def on_more(n: int) -> None:
        _grow(progress, task, n)
        console.print(f"tuning.extend: {n} more run(s) past a grid's edge", soft_wrap=True)

    start = time.perf_counter()
    report_dir = (Path(args.report_dir) / s.setting) if args.report_dir and s.setting else args.report_dir
    with progress:
        outcome = reproduce(
            s, args.profile, args.seeds, args.overrides, args.out, args.jobs, not args.no_wandb, args.retry_failed,
            report_dir, on_start, on_done, launcher, on_begin, on_more,
        )
    elapsed = time.perf_counter() - start
    _summary(outcome, s, elapsed)
    _measured_line(s, args, outcome, elapsed)
    if not args.no_wandb and not launcher:
        from labbench.ablation.store import Store, default_root
        from labbench.loggers import wandb_note

        console.print(wandb_note(Store(args.out or default_root(), s.store_name, args.profile).runs_dir, s.name), soft_wrap=True)
    return outcome


def _time_line(total: int, stored: int, minutes: float | None) -> str:
    """What is left to train: ", 64 already stored (reused); about 120 min on a 2-core CPU for the rest"."""
    if total and stored >= total:
        return ", all already stored (reused): nothing to train"
    line = f", {stored} already stored (reused)" if stored else ""
    if minutes is not None:
        line += f"; about {minutes:.3g} min on a 2-core CPU" + (" for the rest" if stored else "") + " (the spec's estimate)"
    return line


def _measured_line(s, args: argparse.Namespace, outcome, elapsed: float) -> None:
    """After a reproduction: the time it took against the spec's estimate, and with ``--update-estimate`` the measured
    figure written into the spec (a run reused from the store costs nothing, so the time per trained run is scaled)."""
    from labbench.ablation.engine import count_runs
    from labbench.ablation.spec_edit import set_profile_value
    from labbench.record import _cpu_name

    trained = sum(v for k, v in outcome.counts.items() if k not in ("skipped", "elsewhere"))
    if outcome.counts.get("elsewhere"):
        console.print(f"shared store: {trained} runs trained here, {outcome.counts['elsewhere']} by another process "
                      "(each run is claimed before it starts: none trained twice)", soft_wrap=True)
    if not trained:
        return
    total = count_runs(s, args.profile, args.seeds)
    minutes = elapsed / 60 * total / trained
    estimate = s.profile(args.profile).estimated_minutes
    said = f"the spec estimated {estimate:g} min" if estimate is not None else "the spec gives no estimate"
    # a tenth of a minute, or two significant digits below one minute (a smoke profile's seconds never round to 0)
    shown = f"{minutes:.1f}" if minutes >= 1 else f"{minutes:.2g}"
    console.print(f"measured: {elapsed / 60:.2g} min for {trained} runs trained here, about {shown} min for all {total} on "
                  f"this machine ({said})", soft_wrap=True)
    if args.update_estimate:
        from datetime import date

        path, _ = set_profile_value(s, args.profile, "estimated_minutes", shown,
                                    f"measured by labbench reproduce --update-estimate, {_cpu_name()}, {date.today().isoformat()}")
        console.print(f"wrote estimated_minutes: {shown} into profile {args.profile!r} of {path}", soft_wrap=True)
    elif estimate is None or abs(minutes - estimate) > 0.25 * estimate:
        console.print("to write it into the spec: the same command with --update-estimate", soft_wrap=True)


def _split_launcher(args: argparse.Namespace) -> list[str]:
    """``--launcher NAME`` plus the ``hydra.launcher.*`` overrides, which leave ``args.overrides``.

    They say where runs execute, not what they are: they stay out of the plan and run ids.
    """
    launcher_overrides = [o for o in args.overrides if o.startswith("hydra.launcher.")]
    args.overrides = [o for o in args.overrides if not o.startswith("hydra.launcher.")]
    if launcher_overrides and not args.launcher:
        raise SystemExit("hydra.launcher.* overrides need --launcher NAME (local, slurm, or a Hydra launcher such as joblib)")
    return [args.launcher, *launcher_overrides] if args.launcher else []


def cmd_map(args: argparse.Namespace) -> int:
    from labbench.ablation.engine import count_runs, remaining_minutes, seed_warnings, stored_runs
    from labbench.ablation.maps import cell_overrides, cells, estimated_minutes, map_seed_warnings, parse_axes, run_map, suggested_axes, validate_axes
    from labbench.ablation.plan import final_seeds

    s = _one_spec(specs.load(args.name), args)
    s.profile(args.profile)
    axes = parse_axes(args.axis) if args.axis else suggested_axes(s)
    validate_axes(s, args.profile, axes, args.overrides)  # before anything runs
    n_cells = len(cells(axes))
    per_cell = count_runs(s, args.profile, args.seeds)
    total = n_cells * per_cell
    stored = sum(stored_runs(s, args.profile, args.seeds, [*args.overrides, *cell_overrides(cell)], args.out) for cell in cells(axes))
    est = remaining_minutes(estimated_minutes(s, args.profile, n_cells), total, stored)
    console.print(f"[bold]{s.name}[/] map ({args.profile}): {n_cells} cells x {per_cell} runs = {total} runs" + _time_line(total, stored, est))
    n_seeds = len(final_seeds(s, args.profile, args.seeds))
    for line in [*seed_warnings(s, args.profile, args.seeds), *map_seed_warnings(n_seeds, len(s.hypotheses), n_cells)]:
        console.print(f"[bold yellow]warning:[/] {line}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    with progress:
        task = progress.add_task("runs", total=total)
        result = run_map(
            s, args.profile, axes, args.seeds, args.overrides, args.out, args.jobs, not args.no_wandb, args.map_dir,
            on_cell=lambda cell: progress.update(task, description=" ".join(f"{k}={v}" for k, v in cell.items())),
            on_done=lambda run, status: progress.advance(task),
            on_more=lambda n: _grow(progress, task, n),
        )
    table = Table(title=f"{s.name} verdict map", show_lines=False)
    keys = list(axes)
    for k in keys:
        table.add_column(k)
    for h in s.hypotheses:
        table.add_column(h.name, overflow="fold")
    for c in result["cells"]:
        table.add_row(*[c["cell"][k] for k in keys], *[
            f"[{VERDICT_STYLE[h['verdict']]}]{h['verdict']}[/] {h['mean_diff']:.3g}" for h in c["hypotheses"]])
    console.print(table)
    console.print(f"runs: {', '.join(f'{v} {k}' for k, v in result['counts'].items() if v)}")
    console.print(f"map: {result['dir']}/map.md")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from labbench.ablation.engine import rebuild_report

    s = specs.load(args.name)
    if not s.settings:
        _summary(rebuild_report(s, args.profile, args.out, args.report_dir, args.overrides), s)
        return 0
    from labbench.ablation.settings import rebuild_all

    outcomes, verdict, report = rebuild_all(s, args.profile, _setting_names(s, args), args.report_dir, args.out, args.overrides)
    for outcome in outcomes:
        _summary(outcome, specs.load(args.name).in_setting(outcome.verdict["setting"]["name"]))
    if verdict is not None:
        _across_summary(verdict, report)
    return 0


def cmd_pilot(args: argparse.Namespace) -> int:
    """``labbench pilot NAME``: size the profile's budget from the standard-practice arm alone (or, for per-family
    budgets, each arm's from that arm alone, one pilot after the other; ``--arm`` runs one of them)."""
    from labbench.ablation.pilot import arm_pilots, chosen_overrides, run_pilot, write_budget

    s = _one_spec(specs.load(args.name), args)
    if s.pilot is None:
        raise specs.SpecError(f"{s.label} has no `pilot` section: {{arm, candidates, seeds, metric, late_progress}} says how a "
                              "profile's budget is sized from the standard-practice arm alone (experiments/README.md, key "
                              "`pilot`; `labbench new` writes a spec with one)")
    every = arm_pilots(s, args.arm)
    failed = 0
    for one in every:
        report_dir = (Path(args.report_dir) / one.pilot.arm if args.report_dir and one.pilot.per_arm else args.report_dir)
        console.print(f"[bold]{one.name}[/] pilot: arm [bold]{one.pilot.arm}[/]"
                      + (f" (per-arm budgets: {', '.join(one.pilot.arms)})" if one.pilot.per_arm else "")
                      + f", {len(one.pilot.candidates)} candidate budget(s), {one.pilot.seeds} seeds each, cheapest first")
        result = run_pilot(one, args.out, not args.no_wandb, report_dir,
                           on_done=lambda run, status: console.print(f"  {run.stage} seed {run.seed}: {status}"), stop_at_first=not args.all,
                           jobs=args.jobs, retry_failed=args.retry_failed)
        table = Table(title=f"{one.name} pilot ({one.pilot.arm})")
        for col in ("#", "overrides", "gates", "late share", "met"):
            table.add_column(col, overflow="fold")
        for c in result["candidates"]:
            gates = ", ".join(f"{g['metric']} {g['mean']:.4g} vs {g['bar']:.4g}" for g in c["gates"]) or "-"
            table.add_row(str(c["index"]), " ".join(c["overrides"]), gates, f"{c['late_share_mean']:.3g}", "yes" if c["met"] else "no")
        console.print(table)
        chosen = chosen_overrides(result)
        console.print(f"chosen budget: {' '.join(chosen)}" if chosen else "[bold red]no candidate met the rule[/]")
        if chosen and args.write_profile:
            # reloaded first: an earlier arm's pilot may have written its budget into the same file
            fresh = _one_spec(specs.load(str(one.path)), args)
            fresh = dataclasses.replace(fresh, pilot=fresh.pilot.for_arm(one.pilot.arm)) if one.pilot.per_arm else fresh
            path = write_budget(fresh, result)
            console.print(f"wrote it into profile {one.pilot.profile!r} of {path}"
                          + (f" (arm_overrides.{one.pilot.arm})" if one.pilot.per_arm else ""), soft_wrap=True)
        failed += chosen is None
    return 0 if not failed else 1


def cmd_plan(args: argparse.Namespace) -> int:
    from labbench.ablation.multirun import multirun_commands, shell
    from labbench.ablation.validation import validate
    from labbench.ablation.store import Store, default_root

    s = _one_spec(specs.load(args.name), args)
    launcher = _split_launcher(args)
    validate(s, args.profile, args.overrides)
    store = Store(args.out or default_root(), s.name, args.profile)
    stage, commands = multirun_commands(s, args.profile, store, args.overrides, args.seeds, not args.no_wandb)
    launcher = [f"hydra/launcher={launcher[0]}", *launcher[1:]] if launcher else []
    print(f"# {s.label} ({args.profile}), {'tuning' if stage == 'tune' else 'final'} stage: one Hydra multirun per arm")
    same = (f" --setting {s.setting}" if s.setting else "") + (f" --out {args.out}" if args.out else "")
    for command in commands:
        print(shell([*command, *launcher]))
    if stage == "tune":
        print(f"# when these are done, run `labbench plan {s.ref} --profile {args.profile}{same}` again for the final stage")
    else:
        print(f"# then aggregate (runs nothing already stored): labbench reproduce {s.ref} --profile {args.profile}{same}"
              + (f" --seeds {args.seeds}" if args.seeds else "") + ("" if not args.overrides else " " + " ".join(args.overrides)))
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    """``labbench new NAME``: a commented spec to edit (a worked example: label smoothing, two settings, a primary).

    ``--arm NAME:OVERRIDES`` (two or more), ``--factor KEY`` and ``--metric KEY`` write the user's own arms, factors and
    metrics into it instead of the example's (the factors, if not given, are the keys the arms' overrides set); the
    primary hypothesis then compares the second arm with the first on the first metric, in that metric's direction."""
    from importlib import resources

    from labbench.ablation.spec import SETTING_NAME

    if not SETTING_NAME.fullmatch(args.name):
        raise specs.SpecError(f"{args.name!r}: a spec name is lower-case letters, digits and '-' (it names the file and a folder)")
    path = Path(args.dir) / f"{args.name}.yaml"
    if path.exists():
        raise specs.SpecError(f"{path} exists already; choose another name or --dir (nothing was written)")
    text = resources.files("labbench.ablation").joinpath("spec_template.yaml").read_text()
    text = text.replace("name: NAME ", f"name: {args.name} ", 1).replace("PATH", str(path))
    text = _template_with(text, args.arm or [], args.factor or [], args.metric or [])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    what = "your arms in the worked example" if args.arm else "a worked example (label smoothing in two settings)"
    console.print(f"wrote {path}: {what}, to edit into your claim.", soft_wrap=True)
    console.print(f"next: labbench validate {path}\n      labbench pilot {path} --setting digits --write-profile\n"
                  f"      labbench reproduce {path} --profile quick", soft_wrap=True)
    return 0


def _template_with(text: str, arm_args: list[str], factors: list[str], metrics: list[str]) -> str:
    """The template's example arms, factors and metrics replaced by the ones given on the command line (lines edited
    in place, so every comment stays)."""
    import re

    from labbench.directions import UnknownMetric, direction
    from labbench.tasks.classify import ClassificationTask

    arms: list[tuple[str, list[str]]] = []
    for item in arm_args:
        name, sep, overrides = item.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise specs.SpecError(f"--arm {item!r}: write NAME:OVERRIDES, e.g. --arm adam:'optimizer=adam optimizer.lr=0.001'")
        arms.append((name, overrides.split()))
    if arm_args and len(arms) < 2:
        raise specs.SpecError("--arm: an ablation compares two or more arms; give --arm once per arm")
    if len({n for n, _ in arms}) < len(arms):
        raise specs.SpecError(f"--arm: arm names must differ, got {[n for n, _ in arms]}")
    if arms:
        keys = [o.split("=", 1)[0].lstrip("+~") for _, ov in arms for o in ov]
        factors = factors or list(dict.fromkeys(keys))
        if not factors:
            raise specs.SpecError("--arm: the arms set no config key; give each its overrides, e.g. --arm sgd:optimizer=sgd")
        listed = "\n".join(f"  {n}: [{', '.join(ov)}]" for n, ov in arms)
        text = re.sub(r"^  plain: \[loss=ce\]\n  smoothed: \[loss=label_smoothing\]$", listed, text, count=1, flags=re.M)
        first, second = arms[0][0], arms[1][0]
        text = text.replace("better: smoothed", f"better: {second}").replace("worse: plain", f"worse: {first}")
        text = re.sub(r"^  arm: plain", f"  arm: {first}", text, count=1, flags=re.M)  # the pilot sizes the budget on the first arm
        text = text.replace("- name: label smoothing gives the higher test accuracy", f"- name: {second} beats {first} (edit into the claim's own words)")
        text = text.replace("- name: label smoothing gives the lower calibration error", f"- name: {second} beats {first} on a second metric (edit)")
    if factors:
        text = re.sub(r"^factors: \[loss\]", f"factors: [{', '.join(factors)}]", text, count=1, flags=re.M)
    if metrics:
        text = re.sub(r"^metrics: \[test/acc, test/nll, test/ece\]", f"metrics: [{', '.join(metrics)}]", text, count=1, flags=re.M)
        hypothesis_metrics = [metrics[0], metrics[1] if len(metrics) > 1 else metrics[0]]
        for old, new, old_dir in (("metric: test/acc", hypothesis_metrics[0], "higher"), ("metric: test/ece ", hypothesis_metrics[1] + " ", "lower")):
            try:
                said = direction(new.strip(), ClassificationTask)
            except UnknownMetric:
                said = old_dir  # a metric of another task: its direction is the user's to write (validate checks)
            block_start = text.index(old)
            block_end = text.index("direction:", block_start)
            line_end = text.index("\n", block_end)
            text = text[:block_start] + f"metric: {new}" + text[block_start + len(old):block_end] + \
                re.sub(r"direction: \w+", f"direction: {said if said != 'neither' else old_dir}", text[block_end:line_end], count=1) + text[line_end:]
    return text


def cmd_export(args: argparse.Namespace) -> int:
    """``labbench export NAME``: every run of the stored ablation as a table (CSV or JSON), one row per run."""
    from labbench.ablation.export import runs_table, to_csv
    from labbench.ablation.plan import Plan
    from labbench.ablation.store import Store, default_root

    top = specs.load(args.name)
    rows = []
    for s in [top] if not top.settings else [top.in_setting(n) for n in _setting_names(top, args)]:
        store = Store(args.out or default_root(), s.store_name, args.profile)
        plan = Plan.from_dict(store.load_plan(args.overrides))
        rows += [{**({"setting": s.setting} if s.setting else {}), **row} for row in runs_table(s, plan, store)]
    text = json.dumps(rows, indent=2, default=str) if args.format == "json" else to_csv(rows)
    if args.file:
        Path(args.file).write_text(text)
        console.print(f"{len(rows)} runs written to {args.file}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``labbench compare A B``: two reports' hypotheses side by side (smoke vs quick, two spec versions, two people)."""
    from labbench.ablation.export import compare, load_verdict

    result = compare(load_verdict(args.a), load_verdict(args.b))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    table = Table(title=f"{result['names'][0]}: A = {args.a}, B = {args.b}")
    for col in ("hypothesis", "A: verdict, effect [95% CI], n", "B: verdict, effect [95% CI], n"):
        table.add_column(col, overflow="fold")

    def cell(side):
        if side is None:
            return "-"
        fmt = lambda x: "n/a" if x is None or (isinstance(x, float) and x != x) else f"{x:.4g}"  # noqa: E731
        return f"{side['verdict']}, {fmt(side['mean_diff'])} [{fmt(side['ci_low'])}, {fmt(side['ci_high'])}], {side['n']}"

    for row in result["rows"]:
        name = (f"[{row['setting']}] " if row["setting"] else "") + row["hypothesis"] + (" (changed)" if row["verdict_changed"] else "")
        table.add_row(name, cell(row["a"]), cell(row["b"]))
    console.print(table)
    console.print(f"answers: A {result['answers'][0] or '-'}; B {result['answers'][1] or '-'}", soft_wrap=True)
    for note in result["notes"]:
        console.print(f"[bold yellow]note:[/] {note}", soft_wrap=True)
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    """``labbench site``: every claim, hypothesis and verdict on one static site (opens from file://)."""
    from labbench.site import SiteError, build

    try:
        built = build(args.source, args.out, tuple(args.specs or ()))
    except (SiteError, FileNotFoundError, specs.SpecError) as err:
        console.print(f"[bold red]error:[/] {escape(str(err))}")  # escaped: "[a, b]" in a message is text, not markup
        return 2
    console.print(f"site: {built.claims} claims, {built.hypotheses} hypotheses from {args.source}; "
                  f"{built.written} files written, {built.removed} stale removed", soft_wrap=True)
    console.print(f"open: {(built.out / 'index.html').resolve().as_uri()}", soft_wrap=True)
    return 0


SHARED_OPTIONS = {
    "seeds": (["--seeds"], {"type": int, "default": None, "help": "number of seeds per arm (default: the profile's)"}),
    "jobs": (["--jobs"], {"type": int, "default": 1, "help": "parallel worker processes (default 1: in this process)"}),
    "out": (["--out"], {"default": None, "help": "root folder of ablation runs (default: outputs/ablations)"}),
    "report_dir": (["--report-dir"], {"default": None, "help": "write report.md / verdict.json / plots here instead"}),
    "no_wandb": (["--no-wandb"], {"action": "store_true", "help": "CSV logs only (no W&B runs)"}),
    "setting": (["--setting"], {"default": None, "help": "one of the spec's settings (labbench show NAME lists them); "
                                "reproduce, report and validate act on every setting without it"}),
    "launcher": (["--launcher"], {"default": None, "help": "run through a Hydra launcher: local (joblib processes) or slurm, labbench's (conf/hydra/launcher), "
                                  "or any installed Hydra launcher by name (joblib, submitit_local), "
                                  "with hydra.launcher.* overrides among the overrides"}),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labbench", description="Named ablations: test a claim about deep learning with seeds, statistics and a verdict.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,show,validate,reproduce,pilot,plan,map,report,new,export,compare,site}")

    p = sub.add_parser("list", help="every named ablation: claim, sources, arms, profiles, estimated time")
    p.add_argument("--json", action="store_true", help="the same content as JSON, for scripts")
    p.set_defaults(func=cmd_list)

    def add(p: argparse.ArgumentParser, *names: str) -> None:
        """The ablation name, --profile, and the named options shared by several commands."""
        p.add_argument("name", help="ablation name (see `labbench list`) or path to a spec .yaml")
        p.add_argument("--profile", default="quick", help="smoke | quick | full (default: quick)")
        for name in ("setting", *names):
            flags, kwargs = SHARED_OPTIONS[name]
            p.add_argument(*flags, **kwargs)

    p = sub.add_parser("show", help="the spec, each arm's resolved config and the keys on which arms differ")
    add(p)
    p.add_argument("--json", action="store_true", help="the spec, each arm's resolved config and the differences as JSON")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every arm")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("validate", help="check a spec before anything runs: composition, _target_ arguments, factors, metrics")
    p.add_argument("name", help="ablation name (see `labbench list`) or path to a spec .yaml")
    p.add_argument("--profile", default=None, help="one profile (default: every profile of the spec)")
    p.add_argument(*SHARED_OPTIONS["setting"][0], **SHARED_OPTIONS["setting"][1])
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every arm")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("reproduce", help="run what is missing, aggregate, print the verdicts, write the report")
    add(p, "seeds", "jobs", "out", "report_dir", "no_wandb", "launcher")
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again, tuning runs before a value is chosen from them (default: they count as failed)")
    p.add_argument("--update-estimate", action="store_true",
                   help="write the measured time into the profile's estimated_minutes in the spec file (comments kept)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every run (e.g. trainer.max_steps=100)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("pilot", help="size a profile's budget from the standard-practice arm alone (the spec's pilot section)")
    add(p, "out", "report_dir", "no_wandb", "jobs")
    p.add_argument("--all", action="store_true", help="run every candidate, not only up to the first that meets the rule")
    p.add_argument("--arm", default=None, help="per-arm budgets (pilot.arms): pilot this arm only (default: each listed arm in turn)")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again, tuning runs before a value is chosen from them")
    p.add_argument("--write-profile", action="store_true",
                   help="write the chosen budget into the piloted profile's overrides in the spec file (comments kept)")
    p.set_defaults(func=cmd_pilot)

    p = sub.add_parser("plan", help="print the plan as Hydra multirun commands (for any Hydra launcher)")
    add(p, "seeds", "out", "no_wandb", "launcher")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every run")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("map", help="reproduce at every cell of a 1- or 2-axis grid: where does the claim hold?")
    add(p, "seeds", "jobs", "out", "no_wandb")
    p.add_argument("--axis", action="append", default=[], metavar="KEY=v1,v2,...", help="an axis (give one or two; default: the spec's suggested axes)")
    p.add_argument("--map-dir", default=None, help="write map.md / map.json / heat maps here")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every run")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("report", help="rebuild the report from stored runs only, running nothing")
    add(p, "out", "report_dir")
    p.add_argument("overrides", nargs="*", help="the overrides the reproduction was run with, if any")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("new", help="write a commented spec to edit: a worked example with a primary hypothesis and two settings")
    p.add_argument("name", help="the new ablation's name (lower-case letters, digits, '-'); the file is NAME.yaml")
    p.add_argument("--dir", default=".", help="the folder to write it in (default: here); add it to $LABBENCH_SPECS to use the name")
    p.add_argument("--arm", action="append", metavar="NAME:OVERRIDES",
                   help="an arm and its overrides, e.g. --arm sgd:optimizer=sgd --arm adam:'optimizer=adam optimizer.lr=0.001' (two or more)")
    p.add_argument("--factor", action="append", metavar="KEY", help="a config key the arms may differ on (default: the keys the arms set)")
    p.add_argument("--metric", action="append", metavar="KEY",
                   help="a metric to report, e.g. test/acc; the first is the primary hypothesis's, the second the secondary's")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("export", help="every stored run of an ablation as a table (CSV or JSON): arm, seed, tuned value, outcome, metrics")
    add(p, "out")
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json")
    p.add_argument("--file", default=None, help="write here instead of standard output")
    p.add_argument("overrides", nargs="*", help="the overrides the reproduction was run with, if any")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="two reports' hypotheses side by side (report folders or verdict.json files)")
    p.add_argument("a", help="a report folder (docs/results/NAME/quick) or its verdict.json")
    p.add_argument("b", help="the other one")
    p.add_argument("--json", action="store_true", help="the comparison as JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("site", help="a static site of every claim and verdict (index, forest plot, a page per claim); no server needed")
    p.add_argument("--source", default="docs/results", help="committed results (default: docs/results) or a store (outputs/ablations)")
    p.add_argument("--out", default="outputs/site", help="the site's folder (default: outputs/site); the committed copy is docs/site")
    p.add_argument("--specs", nargs="+", default=None, metavar="PATH",
                   help="spec files (or folders of them) of your own claims, outside experiments/: their results are checked against "
                        "them and shown in a section of their own")
    p.set_defaults(func=cmd_site)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may follow options (`reproduce NAME --launcher local hydra.launcher.n_jobs=2`),
    # which argparse alone cannot match to the earlier positional list.
    args, unknown = parser.parse_known_args(argv)
    stray = [u for u in unknown if u.startswith("-") or "=" not in u or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if unknown:
        args.overrides = [*args.overrides, *unknown]
    try:
        return args.func(args)
    except (specs.SpecError, FileNotFoundError) as err:
        console.print(f"[bold red]error:[/] {escape(str(err))}")  # escaped: "[a, b]" in a message is text, not markup
        return 2


if __name__ == "__main__":
    sys.exit(main())
