"""``report.md``, ``verdict.json`` and the plots, built only from stored run records.

Everything here is a pure function of the spec, the plan and the records: rebuilding a
report from the same runs gives the same files, byte for byte.
"""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from labbench.ablation.plan import Plan
from labbench.ablation.results import CONTROL_READING, GATE_FREE, final_records
from labbench.ablation.spec import Spec
from labbench.ablation.store import Store
from labbench.record import write_json_atomic

CURVE_KEYS = ("train/loss", "val/loss", "val/acc")
FIGURE_DPI = 200  # 2x: the site shows each plot at half its pixels (site.render.display_size), sharp on high-density screens


def _as_float(x: Any) -> float:
    """A score as stored: a float, or "nan" once it has been through JSON; NaN for anything else."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def unscored_warning(tuned: dict[str, Any]) -> str:
    """A tuned arm's mark when some of its tuning runs have no score (failed, missing, or never logged the metric):
    the choice was made without them, and a value none of whose runs scored could not be chosen at all."""
    lost = tuned.get("unscored") or {}
    if not lost:
        return ""
    scores = tuned.get("scores") or {}
    unscorable = [v for v in lost if math.isnan(_as_float(scores.get(v)))]  # a mean of none (a diverged run's inf is a score)
    where = ", ".join(f"{n} at {v}" + (" (none of its runs scored: it could not be chosen)" if v in unscorable else "")
                      for v, n in lost.items())
    chosen = ("no value has a score: nothing was chosen" if scores and len(unscorable) == len(scores)
              else "the value was chosen without them")
    return (f" **{sum(lost.values())} tuning run(s) without a score ({where}): {chosen}; `--retry-failed` runs the "
            "failed ones again before choosing (a run that completed without logging the metric stays without one)**")


def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        return f"{x:.{digits}g}"
    return str(x)


def _ci(d: dict) -> str:
    return f"[{_f(d['ci_low'])}, {_f(d['ci_high'])}]"


def side_text(side: Any) -> str:
    """A hypothesis side in words: an arm, a number, or a pair's gap."""
    if isinstance(side, (list, tuple)):
        return f"(`{side[0]}` - `{side[1]}`)"
    return f"`{side}`"


def predicted_text(h: dict) -> str:
    """What the hypothesis predicts, e.g. "`pre` lower than `post`" or a rate or a gap."""
    word = "lower" if h["direction"] == "lower" else "higher"
    margin = f" by > {_f(h['margin'])}" if h.get("margin") else ""
    if h.get("kind") == "rate":  # diverged, or fails_to_learn (misses its competence gate)
        event = "fails to learn" if h.get("metric") == "fails_to_learn" else "diverges"
        return f"{side_text(h['better'])} {event} {'less' if word == 'lower' else 'more'} often than {side_text(h['worse'])}"
    return f"{side_text(h['better'])} {word} than {side_text(h['worse'])}{margin}"


def difference_text(h: dict) -> str:
    if h["n"] > 1 and math.isnan(h["ci_low"]) and math.isfinite(h["mean_diff"]):
        return f"{_f(h['mean_diff'])} (every seed the same: no interval)"
    return f"{_f(h['mean_diff'])} [{_f(h['ci_low'])}, {_f(h['ci_high'])}]"


def parameters_text(records: list[dict | None]) -> str:
    """The model's parameter count in an arm's runs, ``19,466``; ``19,466 to 19,690`` where they
    differ; ``-`` where no run recorded one (every run failed before its model was built)."""
    counts = sorted({int(r["model"]["parameters"]) for r in records if r and (r.get("model") or {}).get("parameters") is not None})
    if not counts:
        return "-"
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,} to {counts[-1]:,}"


def verdict_text(h: dict) -> str:
    """The adjusted verdict, with the raw one beside it where Holm changed it."""
    text = f"**{h['verdict']}**"
    if h.get("verdict_raw") and h["verdict_raw"] != h["verdict"]:
        text += f" (raw: {h['verdict_raw']})"
    if h.get("unsettled"):
        text += " *unsettled*"
    return text


PROBE_FAMILIES = {  # per-layer probe keys are averaged over layers into one curve per run
    "probe/grad_norm/total": "gradient norm (all weights)",
    "probe/loss_spikes": "loss spikes (running count)",
    "probe/loss_spike_events": "loss-spike bursts (running count)",
    "probe/update_ratio/": "update / weight ratio (mean over layers)",
    "probe/act_std/": "activation std (mean over layers)",
    "probe/dead_fraction/": "dead-unit fraction (mean over layers)",
    "probe/attn_entropy/": "attention entropy, nats (mean over layers)",
}


def probe_curves(record: dict) -> dict[str, list[list[float]]]:
    """One curve per probe family present in the record (layers averaged step by step)."""
    curves = record.get("curves", {})
    out: dict[str, list[list[float]]] = {}
    for key in PROBE_FAMILIES:
        members = [points for name, points in curves.items() if name == key or (key.endswith("/") and name.startswith(key))]
        if not members:
            continue
        by_step: dict[int, list[float]] = {}
        for points in members:
            for step, value in points:
                by_step.setdefault(int(step), []).append(float(value))
        out[key] = [[step, sum(v) / len(v)] for step, v in sorted(by_step.items())]
    return out


def mean_band(series: list[dict[int, float]]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Mean and std over runs at every step any run logged. Inside a run's own span (its first to its last logged
    step) its value at a step it did not log is the last one it logged: a running count logged only when it changes
    (``probe/loss_spikes``) is still that count between changes, and averaging only the runs that happened to log at
    a step would mix a few seeds' jumps into the mean. Outside its span a run has no value (a diverged run ends)."""
    steps = sorted(set().union(*series))
    grid = np.full((len(series), len(steps)), np.nan)
    for i, run in enumerate(series):
        first, last, value = min(run), max(run), np.nan
        for j, t in enumerate(steps):
            value = run.get(t, value)
            if first <= t <= last:
                grid[i, j] = value
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where no run has a finite value: NaN, a gap in the line
        return steps, np.nanmean(grid, axis=0), np.nanstd(grid, axis=0)


def _plot_panels(curves_by_arm: dict[str, list[dict]], keys: list[str], titles: dict[str, str], path: Path) -> bool:
    """One panel per key: per arm, the mean over runs with a band of +-1 std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(c.get(k) for runs in curves_by_arm.values() for c in runs)]
    if not keys:
        return False
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for arm, runs in curves_by_arm.items():
            series = [dict((int(s), float(v)) for s, v in c.get(key, [])) for c in runs]
            series = [s for s in series if s]
            if not series:
                continue
            steps, mean, std = mean_band(series)
            (line,) = ax.plot(steps, mean, label=f"{arm} (n={len(series)})", marker="o" if len(steps) < 3 else None)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(titles.get(key, key))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)
    return True


def _completed(records: dict[str, list[dict | None]]) -> dict[str, list[dict]]:
    return {arm: [r for r in recs if r and r.get("status") == "completed"] for arm, recs in records.items()}


def plot_curves(records: dict[str, list[dict | None]], path: Path, keys: tuple[str, ...] = CURVE_KEYS) -> bool:
    """Learning curves per arm: mean over seeds with a band of +-1 std."""
    curves = {arm: [r.get("curves", {}) for r in recs] for arm, recs in _completed(records).items()}
    return _plot_panels(curves, list(keys), {}, path)


def plot_figures(store: Store, records: dict[str, list[dict | None]], path: Path, name: str) -> bool:
    """The runs' own figure ``name`` (e.g. sample grids) side by side: per arm, its first completed seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for arm, recs in _completed(records).items():
        for rec in recs:
            file = (rec.get("figures") or {}).get(name)
            if file and (store.run_dir(rec["run_id"]) / file).is_file():
                panels.append((f"{arm} (seed {rec['config']['seed']})", store.run_dir(rec["run_id"]) / file))
                break
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
    for ax, (title, file) in zip(axes[0], panels):
        ax.imshow(plt.imread(file))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)
    return True


def plot_probes(records: dict[str, list[dict | None]], path: Path) -> bool:
    """Training-dynamics probes per arm (when the runs had probes on)."""
    curves = {arm: [probe_curves(r) for r in recs] for arm, recs in _completed(records).items()}
    return _plot_panels(curves, list(PROBE_FAMILIES), PROBE_FAMILIES, path)


def plot_metrics(verdict: dict, path: Path) -> bool:
    """Per hypothesis metric: every seed's value per arm (a line joins a seed's values: the design is paired), with the
    mean and its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(h["metric"] for h in verdict["hypotheses"]))
    if not metrics:
        return False
    arms = list(verdict["arms"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.0, 1.3 * len(arms)) * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        # the design is paired (arms share seeds): a thin line joins each seed's values across the arms, at the same offset
        per_arm = [np.array(verdict["arms"][arm]["metrics"][metric]["values"], dtype=float) for arm in arms]
        n = max((len(v) for v in per_arm), default=0)
        offsets = np.linspace(-0.12, 0.12, n) if n > 1 else np.zeros(max(n, 1))
        for k in range(n):
            ys = [v[k] if k < len(v) else np.nan for v in per_arm]
            ax.plot(np.arange(len(arms)) + offsets[k], ys, color="grey", alpha=0.35, linewidth=0.6, zorder=1)
        for i, arm in enumerate(arms):
            m = verdict["arms"][arm]["metrics"][metric]
            vals = per_arm[i]
            ax.scatter(i + offsets[: len(vals)], vals, s=14, alpha=0.7, zorder=2)
            if math.isfinite(m["mean"]):
                low = m["ci_low"] if math.isfinite(m["ci_low"]) else m["mean"]
                high = m["ci_high"] if math.isfinite(m["ci_high"]) else m["mean"]
                ax.errorbar(i + 0.3, m["mean"], yerr=[[m["mean"] - low], [high - m["mean"]]], fmt="o", color="black", capsize=3)
        ax.set_xticks(range(len(arms)), arms, rotation=20, ha="right", fontsize=8)
        ax.set_title(metric)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)
    return True


def _provenance(records: list[dict]) -> dict[str, Any]:
    provs = [r.get("provenance", {}) for r in records]
    commits = sorted({str(p.get("git_commit")) for p in provs})
    dirty = any(p.get("git_dirty") for p in provs)
    versions = provs[0].get("versions", {}) if provs else {}
    devices = sorted({f"{p.get('device', {}).get('accelerator')} ({p.get('device', {}).get('cpu')}, {p.get('device', {}).get('torch_threads')} threads)" for p in provs})
    precisions = sorted({str(p.get("precision")) for p in provs})
    return {"commits": commits, "dirty": dirty, "versions": versions, "devices": devices, "precisions": precisions}


def _setup_rows(spec: Spec, plan: Plan, records: dict[str, list[dict | None]]) -> list[tuple[str, str]]:
    first = next((r for recs in records.values() for r in recs if r), None)
    rows = []
    if first:
        cfg = first["config"]
        data = first.get("data", {})
        splits = ", ".join(f"{k} {v:,}" for k, v in (data.get("splits") or {}).items()) or "-"
        shape = " x ".join(str(d) for d in data["input_shape"]) if isinstance(data.get("input_shape"), (list, tuple)) else data.get("input_shape", "-")
        rows.append(("data", f"`{cfg['data']['_target_'].rsplit('.', 1)[-1]}`: {splits} examples; input {shape}"))
        rows.append(("model", f"`{cfg['model']['_target_'].rsplit('.', 1)[-1]}` " + ", ".join(
            f"{k}={v}" for k, v in cfg["model"].items() if k not in ("_target_", "activation", "norm"))))
        trainer = cfg["trainer"]
        length = f"{trainer['max_steps']} steps" if trainer.get("max_steps", -1) > 0 else f"{trainer.get('max_epochs')} epochs"
        budget = f"{length}, batch {cfg['data']['batch_size']} (the first arm's), precision {trainer['precision']}"
        if spec.pilot is not None and spec.pilot.profile == plan.profile and not plan.extra_overrides:
            option, folder = (f" --setting {spec.setting}", f"pilot/{spec.setting}") if spec.setting else ("", "pilot")
            budget += (f"; sized before any comparison by the pilot on `{spec.pilot.arm}` alone "
                       f"(`labbench pilot {spec.ref}{option}`, docs/results/{spec.name}/{folder}/pilot.md)")
            if spec.pilot.fallback == "largest":
                budget += ("; when no candidate meets the pilot's rule it takes the largest, the most this profile's time "
                           "cap affords (the pilot says whether it did)")
        rows.append(("budget", budget))
    rows.append(("base overrides", " ".join(f"`{o}`" for o in spec.base) or "-"))
    rows.append(("profile overrides", " ".join(f"`{o}`" for o in spec.profile(plan.profile).overrides) or "-"))
    if plan.extra_overrides:
        rows.append(("command-line overrides", " ".join(f"`{o}`" for o in plan.extra_overrides)))
    rows.append(("seeds", ", ".join(str(s) for s in plan.seeds) + " (shared by all arms: paired)"))
    if spec.tuning is not None:
        t = spec.tuning
        grid = spec.tuning_grid(plan.profile)
        fixed = [a.name for a in spec.arms if a.name not in grid and a.name not in t.follow]
        untuned = f"; not tuned (the base value): {', '.join(f'`{a}`' for a in fixed)}" if fixed else ""
        rows.append(("tuning", f"`{t.label}` per arm on `{t.metric}` ({t.direction} is better), {len(next(iter(grid.values())))} values x {t.seeds} seed(s) per arm, validation split only{untuned}"))
        for arm, info in plan.tuned.items():
            if info.get("followed"):
                rows.append((f"tuned `{arm}`", f"`{t.show(info['value'])}`: the value tuned for `{info['followed']}` (tuning.follow; "
                                               "no tuning of its own)"))
                continue
            edge = " **on the edge of its grid: the optimum may lie outside it**" if info.get("on_edge") else ""
            scores = ", ".join(f"{k}: {_f(v)}" for k, v in info["scores"].items())
            never = " **no value of its grid cleared the competence gate**" if info.get("cleared_gate") is False else ""
            if info.get("uninformative"):
                never += " **every value scored the same: the tuning could not choose (the first listed was kept)**"
            never += unscored_warning(info)
            added = (f"; beyond the declared grid's edge (tuning.extend: {t.extend}) also tried {', '.join(str(v) for v in info['extended'])}"
                     if info.get("extended") else "")
            rows.append((f"tuned `{arm}`", f"`{t.show(info['value'])}`{edge}{never} (grid scores {scores}{added})"))
        if t.nested:
            choices = "; ".join(f"`{arm}`: {', '.join(str(v) for v in info.get('per_block', [])[:len(plan.seeds)])}"
                                for arm, info in plan.tuned.items())
            rows.append(("tuning noise", f"nested (tuning.nested): final seed i ran at the value chosen on its own block i of "
                         f"{t.seeds} tuning seed(s) ({choices}; the pooled choice above is shown, not used), so the "
                         "choice's noise lies inside every paired difference and the intervals cover it"))
        elif t.repeats > 1:
            choices = "; ".join(f"`{arm}`: {', '.join(str(v) for v in info.get('per_block', []))}"
                                f"{'' if info.get('blocks_agree') else ' **(the blocks disagree)**'}" for arm, info in plan.tuned.items())
            rows.append(("tuning noise", f"chosen again on each of {t.repeats} disjoint blocks of {t.seeds} tuning seed(s): {choices}. "
                         "The verdict's intervals cover the final runs' seed-to-seed variance, not the variance of the choice; "
                         "blocks that disagree say the choice itself is noisy"))
        else:
            rows.append(("tuning noise", f"the tuned values are chosen once, on {t.seeds} tuning seed(s) apart from the final seeds; "
                         "the intervals above cover seed-to-seed variance of the final runs, not the variance of that choice "
                         "(tuning.repeats: k re-chooses on k disjoint seed blocks and shows whether they agree)"))
    return rows


def _landscape_lines(spec: Spec, plan: Plan) -> list[str]:
    """With two keys tuned jointly: each arm's validation scores as a table (rows: the first key,
    columns: the second), the picture in which Loshchilov & Hutter read whether the best
    setting of one key moves with the other."""
    t = spec.tuning
    if t is None or len(t.params) != 2 or not plan.tuned:
        return []
    lines = ["### Tuning landscape", "",
             f"Mean `{t.metric}` on the validation split per `{t.params[0]}` (rows) and `{t.params[1]}` (columns); "
             f"**bold**: the arm's choice.", ""]
    for arm, info in plan.tuned.items():
        if info.get("followed"):
            continue  # took another arm's value: no landscape of its own
        values = [ast.literal_eval(k) for k in info["scores"]]
        rows = sorted({v[0] for v in values})
        cols = sorted({v[1] for v in values})
        chosen = tuple(info["value"])
        lines += [f"`{arm}`", "", "| | " + " | ".join(f"`{c}`" for c in cols) + " |", "|---|" + "---|" * len(cols)]
        for r in rows:
            cells = []
            for c in cols:
                score = info["scores"].get(repr((r, c)))
                text = "-" if score is None else _f(score)
                cells.append(f"**{text}**" if (r, c) == chosen else text)
            lines.append(f"| `{r}` | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _warnings(verdict: dict) -> list[str]:
    out = []
    needed = verdict.get("seeds_needed")
    for h in verdict["hypotheses"]:
        if h.get("decidable") is False and h["verdict"] != "undertrained":
            out.append(f"- **Too few seeds for any verdict on \"{h['name']}\"**: {h['n']} paired seeds; with this many "
                       f"hypotheses the method needs at least {needed} (docs/method.md), so it is inconclusive whatever the runs show.")
        if h["verdict"] == "undertrained":
            arms = ", ".join(sorted({f"`{m['arm']}`" for m in h["undertrained"]}))
            out.append(f"- \"{h['name']}\" is **undertrained**: {arms} missed a competence gate (below); no direction is read from it.")
        if h.get("gates_waived"):
            arms = ", ".join(sorted({f"`{m['arm']}`" for m in h["gates_waived"]}))
            out.append(f"- \"{h['name']}\" takes no competence gate ({GATE_FREE[h['gate_free']]}): its verdict stands "
                       f"although {arms} missed one (below); it says nothing about the trained models.")
        if h.get("out_of_regime"):
            out.append(f"- \"{h['name']}\" is **out of regime**: the check(s) {', '.join(h['out_of_regime'])} failed (below); "
                       "this setting could not show the mechanism.")
        if h.get("short_rate_bound") is not None and h["verdict"] in ("supported", "smaller than claimed"):
            out.append(f"- \"{h['name']}\": {h['short_of_margin']} of {h['n']} seeds fell short of the margin; a rate of such "
                       f"seeds up to {h['short_rate_bound']:.0%} is not excluded (one-sided 95%): a mean beyond a margin does not "
                       "rule out rare failures (docs/method.md, \"Margins\").")
        if h.get("repeats") and h["verdict"] != "undertrained":
            out.append(f"- \"{h['name']}\" **repeats** \"{h['repeats']['hypothesis']}\" here: every seed gives {h['repeats']['as']} "
                       "difference (a component at a ceiling or floor, such as a training accuracy of 1.0 on every run, makes the "
                       "two metrics one), so it adds no evidence of its own, whatever its verdict.")
        if h.get("constant") is not None and h["verdict"] != "undertrained":
            out.append(f"- \"{h['name']}\" is **uninformative**: every seed of every arm gave {_f(h['constant'])} on "
                       f"`{h['metric']}` (a ceiling or floor), so the metric cannot tell the arms apart here, whatever the verdict.")
        split = h.get("tuned_split") or {}
        for a in split.get("arms", []):
            if a["depends"]:
                (g1, g2) = a["groups"]
                out.append(f"- \"{h['name']}\" **depends on the tuned value**: the seeds where `{a['arm']}`'s nested tuning chose "
                           f"{g1['value']} ({g1['n']}) differ by {_f(g1['mean'], 3)} on average, those where it chose {g2['value']} "
                           f"({g2['n']}) by {_f(g2['mean'], 3)}, on the other side of the hypothesis's margin (exact permutation "
                           f"p {_f(a['p_value'], 3)}): the verdict is the mixture the tuning drew, not an effect at either value "
                           "(docs/method.md, \"Tuning\").")
    return out


def caveats(verdict: dict) -> list[str]:
    """What a reader must know beside the verdict table, one markdown line each: the report's warnings, a tuned value on
    its grid's edge, a verdict still moving at the end of the budget. The terminal prints them under its table too."""
    out = [line.removeprefix("- ") for line in _warnings(verdict)]
    for arm, a in verdict.get("arms", {}).items():
        tuned = a.get("tuned") or {}
        if tuned.get("on_edge"):
            out.append(f"`{arm}`'s tuned value {tuned.get('value')} is **on the edge of its grid**: the optimum may lie outside it, "
                       "and the arm may be compared below its best.")
        if tuned.get("unscored"):
            out.append(f"`{arm}`'s tuning:{unscored_warning(tuned)}")
    for h in verdict["hypotheses"]:
        if h.get("unsettled"):
            out.append(f"\"{h['name']}\" is **unsettled**: the effect still moved over the last half of the budget; a longer run "
                       "may answer differently.")
    return out


def _gate_lines(verdict: dict) -> list[str]:
    rows = [(arm, g) for arm, a in verdict["arms"].items() for g in a.get("gates", [])]
    if not rows:
        return ["Competence gates: none declared by this spec: verdicts are read without checking that the arms learned.", ""]
    lines = ["### Competence gates", "", "An arm has learned when its mean over its seeds (a diverged run at its failure value, "
             "as in the hypotheses) beats the bar (a baseline the data gives, or a number the spec fixed before any run). "
             "*close*: the mean is within half a standard error of the bar, so the gate's outcome is close to chance.", "",
             "| arm | metric | bar | arm's mean (n) | gap | passed |", "|---|---|---|---|---|---|"]
    for arm, g in rows:
        bar = g["threshold"] if isinstance(g["threshold"], (int, float)) else f"{_f(g['fraction'])} x {g['threshold']}"
        better = "below" if g["direction"] == "lower" else "above"
        lines.append(f"| `{arm}` | `{g['metric']}` | {better} {bar} = {_f(g['bar'])} | {_f(g['mean'])} ({g['n']}) | "
                     f"{_f(g['gap'], 3)} | {'yes' if g['passed'] else '**no**'}{' (*close*)' if g.get('close') else ''} |")
    return lines + [""]


def _regime_lines(verdict: dict) -> list[str]:
    checks = verdict.get("regime") or []
    if not checks:
        return []
    lines = ["### Regime checks", "", "Measured preconditions for the claim's mechanism, fixed before any run. Where one fails, "
             "the hypotheses it guards are *out of regime*: this setting could not show the mechanism, which says nothing "
             "for or against the claim.", "", "| check | metric | arm | bar | arm's mean (n) | met |", "|---|---|---|---|---|---|"]
    for c in checks:
        side = "above" if c["direction"] == "higher" else "below"
        threshold = f"`{c['threshold'][4:]}`'s mean" if str(c["threshold"]).startswith("arm:") else c["threshold"]
        bar = threshold if isinstance(threshold, (int, float)) else f"{_f(c['fraction'])} x {threshold}"
        for arm, a in c["arms"].items():
            lines.append(f"| {c['name']} | `{c['metric']}` | `{arm}` | {side} {bar} = {_f(c['bar'])} | {_f(a['mean'])} ({a['n']}) | "
                         f"{'yes' if a['met'] else '**no**'} |")
    return lines + [""]


def _trajectory_lines(verdict: dict) -> list[str]:
    rows = [h for h in verdict["hypotheses"] if h.get("trajectory")]
    if not rows:
        return []
    lines = ["### Stability over the budget", "",
             "Each verdict judged again at earlier evaluations of the same runs (raw, before Holm); the last column is the "
             "per-seed change of the difference from the half-way evaluation to the end, tested like a hypothesis. "
             "*unsettled*: that change is decided, so the effect was still moving and a longer run may answer differently.", "",
             "| hypothesis | " + " | ".join(["1/4", "1/2", "3/4", "end"]) + " | change, 1/2 to end (p) |", "|---|---|---|---|---|---|"]
    for h in rows:
        by_fraction = {p["fraction"]: p for p in h["trajectory"]}
        cells = [f"{by_fraction[f]['verdict']} ({_f(by_fraction[f]['mean_diff'], 3)}, step {by_fraction[f]['step']})"
                 if f in by_fraction else "-" for f in (0.25, 0.5, 0.75, 1.0)]
        d = h.get("drift")
        change = f"{_f(d['change'], 3)} ({_f(d['p_value'], 3)})" if d else "-"
        lines.append(f"| {h['name']}{' *unsettled*' if h.get('unsettled') else ''} | " + " | ".join(cells) + f" | {change} |")
    return lines + [""]


def _hypothesis_row(h: dict) -> str:
    name = f"{h['name']} (**primary**)" if h.get("role") == "primary" else h["name"]
    if h.get("min_effect") is not None:
        name += f"; claimed size {_f(h['min_effect'])} ({h.get('min_effect_source', '')})"
    return (f"| {name} | `{h['metric']}` | {predicted_text(h)} | {difference_text(h)} | {_f(h.get('effect_size'), 3)} | "
            f"{_f(h['prob_improvement'], 3)} | {_f(h.get('p_value'), 3)} / {_f(h.get('p_holm'), 3)} | {h['n']} | {verdict_text(h)} |")


def _batchnorm_lines(bn: dict | None) -> list[str]:
    """What the BatchNorm arms' evaluations read: the declared choice, why, and what the records say."""
    if not bn:
        return []
    read = bn.get("arms") or {}
    detail = []
    for arm, value in read.items():
        splits = ", ".join(f"{split} {value.get(split)}" for split in ("val", "test"))
        size = value.get("batch_size") or "the training batch"
        extra = f" ({value['batches']} training batches of {size})" if value.get("batches") else ""
        detail.append(f"`{arm}`: {splits}{extra}")
    text = f"BatchNorm evaluation: **{bn.get('statistics') or 'undeclared'}** statistics."
    if bn.get("why"):
        text += f" {bn['why']}"
    if detail:
        text += " Read by the runs: " + "; ".join(detail) + "."
    return [text, ""]


def render(spec: Spec, plan: Plan, verdict: dict, records: dict[str, list[dict | None]], plots: dict[str, bool]) -> str:
    all_records = [r for recs in records.values() for r in recs if r]
    prov = _provenance(all_records)
    lines = [f"# {spec.label}: `{plan.profile}` profile", ""]
    lines += [f"> **Claim{f' ({spec.claim_id})' if spec.claim_id else ''}.** {spec.claim}", ""]
    if spec.setting:
        s = spec.settings[0]
        lines += [f"**Setting `{s.name}`**{': ' + s.description if s.description else ''}. One of the claim's settings: the "
                  "answer across them is the claim's own report, one folder up in the committed results. "
                  f"Why here: {s.why}", ""]
    if spec.sources:
        lines += ["Sources: " + "; ".join(spec.sources) + ".", ""]
    if spec.reference:
        lines += [f"Reference: {spec.reference}", ""]
    if spec.notes:
        lines += [f"Note: {spec.notes}", ""]
    if spec.revised:
        lines += [f"**Revised.** {spec.revised}", ""]
    lines += _batchnorm_lines(verdict.get("batchnorm_eval"))
    answer = verdict.get("answer")
    if answer:
        lines += [f"## Answer: **{answer['answer']}**", "",
                  f"From the primary hypothesis, \"{answer['primary']}\": {answer['because']}. Setting: {answer['setting']}. "
                  + (CONTROL_READING if spec.control else
                     "The answer holds in this setting and at this scale, nothing more."), ""]

    hypotheses = [h for h in verdict["hypotheses"] if h.get("role") != "sanity"]
    checks = [h for h in verdict["hypotheses"] if h.get("role") == "sanity"]
    lines += ["## Verdict", "",
              "| hypothesis | metric | predicted | difference (95% CI) | effect size | P(improvement) | p (raw / Holm) | n | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [_hypothesis_row(h) for h in hypotheses]
    procedure = ("The primary hypothesis is tested alone at alpha; once it is decided, the secondary ones are judged under "
                 "Holm's correction among themselves (serial gatekeeping), else they are exploratory: raw p, no verdict. "
                 if answer else "The verdict is after Holm's correction across this ablation's hypotheses. ")
    lines += ["", "The difference is oriented so that a positive value means the predicted-better arm did better "
              "(for a loss: the other arm's value minus its value; for a pair `(a - b)`: the gap per seed). "
              f"{procedure}Family-wise alpha {_f(verdict.get('alpha', 0.05))}; raw verdicts are shown where the correction "
              "changed them. Verdicts hold at the scale this profile ran, nothing more.", ""]
    if checks:
        lines += ["### Checks of the setup", "",
                  "True by construction or checks that the setup is what the claim needs: each judged alone, outside the "
                  "family, never counted as support. A check that is not supported fails the setup.", "",
                  "| check | metric | predicted | difference (95% CI) | p | n | verdict |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {h['name']} | `{h['metric']}` | {predicted_text(h)} | {difference_text(h)} | {_f(h.get('p_value'), 3)} | "
                  f"{h['n']} | {verdict_text(h)} |" for h in checks]
        lines += [""]
    warnings = _warnings(verdict)
    if warnings:
        lines += warnings + [""]
    notes = [f"- {h['name']}: {h['note']}" for h in verdict["hypotheses"] if h.get("note")]
    if notes:
        lines += notes + [""]
    lines += _gate_lines(verdict)
    lines += _regime_lines(verdict)
    lines += _trajectory_lines(verdict)

    metric_names = list(next(iter(verdict["arms"].values()))["metrics"])
    lines += ["## Arms", "", "| arm | overrides | runs | parameters | " + " | ".join(f"`{m}` mean ± std [95% CI]" for m in metric_names) + " |",
              "|---|---|---|---|" + "---|" * len(metric_names)]
    for arm, a in verdict["arms"].items():
        counts = ", ".join(f"{v} {k}" for k, v in a["status_counts"].items())
        cells = [f"{_f(m['mean'])} ± {_f(m['std'])} {_ci(m)}" for m in a["metrics"].values()]
        lines.append(f"| `{arm}` | {' '.join(f'`{o}`' for o in a['overrides']) or '-'} | {counts} | {parameters_text(records.get(arm, []))} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Diverged and failed runs are kept and counted in `runs`. A diverged run counts at its metric's declared "
              "failure value (what a model that learned nothing scores, e.g. ln K for a classifier's loss, chance accuracy); "
              "a failed run, or a diverged one on a metric without a failure value, has no value there. `parameters`: the "
              "model's parameter count in the arm's final runs (a range where its seeds differ).", ""]

    lines += ["## Setup", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _setup_rows(spec, plan, records)]
    lines += [""]

    lines += _landscape_lines(spec, plan)
    lines += ["## Plots", ""]
    if plots.get("curves"):
        lines += ["Learning curves (mean over seeds, band = ±1 std):", "", "![learning curves](curves.png)", ""]
    if plots.get("probes"):
        lines += ["Probes (mean over seeds, band = ±1 std; per-layer probes averaged over layers):", "", "![probes](probes.png)", ""]
    if plots.get("samples"):
        lines += ["Samples of each arm's first seed (its run's `samples.png`; 2-D data: samples over the data in grey, x = mode centres):", "", "![samples](samples.png)", ""]
    if plots.get("reconstructions"):
        lines += ["Reconstructions of validation images (pairs: original, reconstruction):", "", "![reconstructions](reconstructions.png)", ""]
    if plots.get("metrics"):
        lines += ["Hypothesis metrics, one dot per seed, black = mean with its 95% interval:", "", "![hypothesis metrics](metrics.png)", ""]

    lines += ["## Method", "", f"Statistics: {verdict['method']}.", "",
              f"Runs: {verdict['runs']['final']} final, {verdict['runs']['tuning']} tuning, {verdict['runs']['missing']} missing; "
              f"total training wall time {_f(verdict['wall_time_s'] / 60, 3)} min.", ""]
    lines += ["## Provenance", "", "| | |", "|---|---|",
              f"| commit | {', '.join(prov['commits'])}{' (uncommitted changes)' if prov['dirty'] else ''} |",
              f"| versions | {', '.join(f'{k} {v}' for k, v in prov['versions'].items())} |",
              f"| device | {'; '.join(prov['devices'])} |",
              f"| precision | {', '.join(prov['precisions'])} |",
              f"| spec | `{spec.path.name}`, hash `{verdict.get('spec_hash', '-')}` (this profile's settings, gates and hypotheses) |", ""]
    cmd = f"labbench reproduce {spec.ref} --profile {plan.profile}" + (f" --setting {spec.setting}" if spec.setting else "")
    if plan.seeds != list(range(spec.profile(plan.profile).seeds)):
        cmd += f" --seeds {len(plan.seeds)}"
    if plan.extra_overrides:
        cmd += " " + " ".join(plan.extra_overrides)
    lines += ["## Reproduce", "", "```bash", cmd, "```", ""]
    return "\n".join(lines)


def write_report(spec: Spec, plan: Plan, store: Store, verdict: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    records = final_records(plan, store)
    plots = {
        "curves": plot_curves(records, out_dir / "curves.png", spec.curves or CURVE_KEYS),
        "samples": plot_figures(store, records, out_dir / "samples.png", "samples"),
        "reconstructions": plot_figures(store, records, out_dir / "reconstructions.png", "reconstructions"),
        "probes": plot_probes(records, out_dir / "probes.png"),
        "metrics": plot_metrics(verdict, out_dir / "metrics.png"),
    }
    write_json_atomic(out_dir / "verdict.json", verdict)
    path = out_dir / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render(spec, plan, verdict, records, plots))
    tmp.replace(path)
    return path
