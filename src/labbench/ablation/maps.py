"""Verdict maps: an ablation re-run at every cell of a 1- or 2-axis grid of settings.

Each cell is an ordinary reproduction with the cell's overrides added, so cells share the
ablation's store, run ids, resume and statistics with ``reproduce``: a map that shares
cells with an earlier map (or with a plain reproduction) runs only what is new.

Each cell's verdicts carry the ablation's own correction across its hypotheses. Beside each
cell's verdict the map gives the verdict after one Holm correction over every confirmatory
(hypothesis, cell) pair of the whole map, from the raw p-values: the reading that keeps the
family-wise error rate of the whole map at alpha. (Holm within a cell and then again across the
cells of one hypothesis does not: a null hypothesis in a cell whose other hypotheses are clearly
false keeps its raw p through both steps, and with one such null per hypothesis the map's error
grows with the number of hypotheses; docs/method.md measures both.) Where the seeds cannot pay
for that correction at all, the column says so (``cannot decide``) instead of passing for an
inconclusive result.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from labbench.ablation import engine
from labbench.ablation import plan as planning
from labbench.ablation.report import FIGURE_DPI
from labbench.ablation.spec import Spec, SpecError, fingerprint
from labbench.ablation.store import Store, default_root
from labbench.ablation.validation import validate
from labbench.config import compose
from labbench.record import from_json_safe, write_json_atomic

CORRECTION = (
    "each cell: the ablation's own correction across its hypotheses; the column 'across cells' applies one Holm "
    "correction over every confirmatory hypothesis of all the map's {k} cells (family-wise alpha over the whole map). "
    "Read per cell, about 0.05 x {k} verdicts per hypothesis may come out supported or contradicted by chance alone"
)
SYMBOL = {"supported": "S", "contradicted": "C", "inconclusive": "-", "undertrained": "U", "smaller than claimed": "s",
          "out of regime": "R", "exploratory": "E"}  # the letter in a heat-map cell; its legend lists the ones drawn


CANNOT_DECIDE = "cannot decide"


def _tested(hypothesis: dict[str, Any]) -> bool:
    """In the map's family: tested (an undertrained or out-of-regime hypothesis has no test) and confirmatory (a sanity
    check is judged alone, as in a cell)."""
    return hypothesis["verdict"] not in ("undertrained", "out of regime") and hypothesis.get("role") != "sanity"


def map_family(cells: list[dict[str, Any]]) -> dict[tuple[int, int], float]:
    """Holm-adjusted p over every tested confirmatory (cell, hypothesis) pair of the map, from the raw p-values.

    One family for the whole map is what holds its family-wise error at alpha whatever the pattern of true and
    null hypotheses across the cells (Holm's strong control); keys are (cell index, hypothesis index).
    """
    from labbench.ablation.stats import holm

    keys = [(i, j) for i, c in enumerate(cells) for j, h in enumerate(c["hypotheses"]) if _tested(h)]
    raw = [cells[i]["hypotheses"][j].get("p_value", math.nan) for i, j in keys]
    return dict(zip(keys, holm(raw)))


def across_cells(cells: list[dict[str, Any]], hypothesis: int) -> list[str]:
    """Each cell's verdict on ``hypothesis`` after one Holm correction over the whole map (:func:`map_family`).

    Where no outcome of the runs could have passed that correction (:func:`across_cells_limit`), a
    tested cell says ``cannot decide`` rather than ``inconclusive``: the data did not fail to show an
    effect, the design could not have shown one. A hypothesis the cell did not test keeps its word.
    """
    from labbench.ablation.stats import decide

    adjusted = map_family(cells)
    possible = across_cells_limit(cells, hypothesis) is None
    out = []
    for i, c in enumerate(cells):
        h = c["hypotheses"][hypothesis]
        if not _tested(h):
            out.append(h["verdict"])  # undertrained, out of regime, or a sanity check judged alone in its cell
        elif not possible:
            out.append(CANNOT_DECIDE)
        else:
            out.append(decide(adjusted[(i, hypothesis)], h["mean_diff"], h.get("margin", 0.0)))
    return out


def across_cells_limit(cells: list[dict[str, Any]], hypothesis: int) -> str | None:
    """Why no cell's across-cells verdict on ``hypothesis`` could be anything but inconclusive (None: one could).

    The column is one Holm family of N tested confirmatory (cell, hypothesis) pairs: the first step asks
    the smallest p to stay within alpha / N. The smallest p the sign-flip test can give is 2 / 2^n for n
    seeds; with 8 seeds (0.0078) four hypotheses on two cells (N = 8) already give 0.0625 > alpha. A
    reader should know the column was mute by design.
    """
    from labbench.ablation.stats import ALPHA, seeds_needed, smallest_p

    tested = [c["hypotheses"][hypothesis] for c in cells if _tested(c["hypotheses"][hypothesis])]
    family = sum(_tested(h) for c in cells for h in c["hypotheses"])
    if not tested or family < 2:
        return None  # nothing to correct: the column equals the cell's verdict
    n = max(h["n"] for h in tested)  # the cell closest to passing: the most seeds, the smallest floor
    if smallest_p(n) * family <= ALPHA:
        return None
    return (f"no cell could pass it with {n} seeds: one Holm correction over the map's {family} tested hypothesis-cell "
            f"pairs asks the smallest p, {smallest_p(n):.2g} with {n} paired seeds, to stay within {ALPHA} after "
            f"multiplying by {family} ({smallest_p(n) * family:.2g}); {seeds_needed(family)} seeds would allow it")


def map_seed_warnings(n_seeds: int, n_hypotheses: int, n_cells: int) -> list[str]:
    """Before a map runs: whether its across-cells column can decide anything if every arm passes its gates."""
    from labbench.ablation.stats import can_decide, seeds_needed

    family = n_hypotheses * n_cells
    if n_cells < 2 or can_decide(n_seeds, family):
        return []
    return [f"with {n_seeds} seeds the map's 'across cells' column cannot reach a verdict (Holm over {n_hypotheses} "
            f"hypotheses x {n_cells} cells); --seeds {seeds_needed(family)} would allow it. Each cell's own verdicts are unaffected"]


def parse_axes(items: Sequence[str]) -> dict[str, list[str]]:
    """``["model.depth=2,6", "optimizer.lr=1e-3,3e-3"]`` -> ordered axes (at most two)."""
    axes: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise SpecError(f"bad axis {item!r}: write KEY=v1,v2,... (e.g. model.depth=2,6,12)")
        axes[key] = [v.strip() for v in values.split(",") if v.strip()]
    if not 1 <= len(axes) <= 2:
        raise SpecError(f"a map has one or two axes, got {len(axes)}: {', '.join(axes) or 'none'}")
    return axes


def suggested_axes(spec: Spec) -> dict[str, list[str]]:
    axes = (spec.raw.get("map") or {}).get("axes") or {}
    if not axes:
        raise SpecError(f"{spec.name} declares no suggested map axes: pass --axis KEY=v1,v2,...")
    return {k: [str(v) for v in vs] for k, vs in axes.items()}


def cells(axes: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def cell_overrides(cell: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in cell.items()]


def slug(axes: dict[str, list[str]]) -> str:
    text = "__".join(f"{k}={'-'.join(vs)}" for k, vs in axes.items())
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)[:150]


def validate_axes(spec: Spec, profile: str, axes: dict[str, list[str]], extra: Sequence[str] = ()) -> None:
    """Fail before anything runs: unknown axis keys, and cells whose overrides do not compose."""
    first = compose(planning.arm_overrides(spec, spec.arms[0].name, profile, extra))
    for key in axes:
        if OmegaConf.select(first, key, default=None) is None and key not in first:
            raise SpecError(
                f"{spec.name}: map axis {key!r} is not a key of the composed config "
                f"(top-level keys: {', '.join(str(k) for k in first.keys())}); use a dotted key such as model.depth"
            )
    for cell in cells(axes):
        validate(spec, profile, [*extra, *cell_overrides(cell)])


def estimated_minutes(spec: Spec, profile: str, n_cells: int) -> float | None:
    per_cell = ((spec.raw.get("map") or {}).get("minutes_per_cell") or {}).get(profile)
    if per_cell is None:
        per_cell = spec.profile(profile).estimated_minutes
    return None if per_cell is None else float(per_cell) * n_cells


def run_map(
    spec: Spec,
    profile: str,
    axes: dict[str, list[str]],
    seeds: int | None = None,
    extra: Sequence[str] = (),
    root: str | Path | None = None,
    jobs: int = 1,
    wandb: bool = True,
    out_dir: str | Path | None = None,
    on_cell: Callable[[dict[str, str]], None] | None = None,
    on_done: Callable | None = None,
    on_more: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Reproduce the ablation at every cell; write ``map.json``, ``map.md`` and heat maps (``on_more``: as
    :func:`engine.reproduce`'s, the runs ``tuning.extend`` adds in a cell)."""
    extra = list(extra)
    validate_axes(spec, profile, axes, extra)
    store = Store(root or default_root(), spec.store_name, profile)
    out = Path(out_dir) if out_dir else store.dir / "maps" / slug(axes)
    results = []
    counts: dict[str, int] = {}
    for cell in cells(axes):
        if on_cell:
            on_cell(cell)
        outcome = engine.reproduce(
            spec, profile, seeds, [*extra, *cell_overrides(cell)], root or default_root(), jobs, wandb,
            report_dir=out / "cells" / slug({k: [v] for k, v in cell.items()}), on_done=on_done, on_more=on_more,
        )
        for k, v in outcome.counts.items():
            counts[k] = counts.get(k, 0) + v
        results.append({"cell": cell, "hypotheses": outcome.verdict["hypotheses"],
                        "status_counts": {a: d["status_counts"] for a, d in outcome.verdict["arms"].items()}})
    result = {
        "name": spec.name,
        **({"setting": spec.setting} if spec.setting else {}),  # the one setting mapped, named as a pilot names it
        "profile": profile,
        "spec_hash": fingerprint(spec, profile, map_axes=True),  # a changed spec makes this map stale
        "axes": axes,
        "extra_overrides": extra,
        "seeds": seeds if seeds is not None else spec.profile(profile).seeds,
        "correction": CORRECTION.format(k=len(results)),
        "cells": results,
        "counts": counts,
    }
    write_map(result, out)
    if wandb:
        log_to_wandb(result, spec)
    result["dir"] = str(out)
    return result


def matrix(result: dict[str, Any], hypothesis: int) -> tuple[list[str], list[str], list[list[dict]]]:
    """Rows x columns of one hypothesis's cell results: columns = first axis, rows = second."""
    keys = list(result["axes"])
    cols = result["axes"][keys[0]]
    rows = result["axes"][keys[1]] if len(keys) > 1 else [""]
    by_cell = {tuple(c["cell"][k] for k in keys): c["hypotheses"][hypothesis] for c in result["cells"]}
    grid = [[by_cell[(col,) if len(keys) == 1 else (col, row)] for col in cols] for row in rows]
    return rows, cols, grid


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3g}"


def render_markdown(result: dict[str, Any]) -> str:
    keys = list(result["axes"])
    lines = [f"# {result['name']}: verdict map (`{result['profile']}` profile)", "",
             "Axes: " + "; ".join(f"`{k}` = {', '.join(v)}" for k, v in result["axes"].items()) + ".",
             f"Seeds per arm and cell: {result['seeds']}." + (f" Overrides: {' '.join(result['extra_overrides'])}." if result["extra_overrides"] else ""),
             # the rule that computes the column below, stated by the code that computes it (a map.json written under the
             # earlier rule keeps its own sentence in "correction"; its cells' verdicts are unchanged)
             "", f"Multiple comparisons: {CORRECTION.format(k=len(result['cells']))}.", ""]
    n_hyp = len(result["cells"][0]["hypotheses"]) if result["cells"] else 0
    for h in range(n_hyp):
        first = result["cells"][0]["hypotheses"][h]
        word = "lower" if first["direction"] == "lower" else "higher"
        lines += [f"## {first['name']}", "",
                  f"`{first['better']}` {word} than `{first['worse']}` on `{first['metric']}`; effect = paired difference, "
                  "positive = as predicted, with its 95% interval.", "",
                  f"![heat map of the effect of {first['name']!s} across {' x '.join(keys)}](heatmap_{h}.png)", "",
                  "| " + " | ".join(f"`{k}`" for k in keys) + " | effect [95% CI] | P(improvement) | verdict | across cells (Holm) |",
                  "|" + "---|" * (len(keys) + 4)]
        for c, whole in zip(result["cells"], across_cells(result["cells"], h)):
            hyp = c["hypotheses"][h]
            lines.append("| " + " | ".join(c["cell"][k] for k in keys)
                         + f" | {_fmt(hyp['mean_diff'])} [{_fmt(hyp['ci_low'])}, {_fmt(hyp['ci_high'])}] | {_fmt(hyp['prob_improvement'])} | **{hyp['verdict']}** | {whole} |")
        limit = across_cells_limit(result["cells"], h)
        lines += ["", f"Across cells: {limit}. Read each cell's verdict, with its own correction."] if limit else []
        lines.append("")
    # the folder each cell's report was written to (run_map: cells/<slug of the cell>/)
    links = []
    for c in result["cells"]:
        label = " ".join(f"{k}={c['cell'][k]}" for k in keys)
        links.append(f"[{label}](cells/{slug({k: [v] for k, v in c['cell'].items()})}/report.md)")
    lines += ["Each cell's own report (runs, curves, provenance): " + ", ".join(links) + ".", ""]
    if result.get("spec_hash"):
        lines += [f"Spec hash `{result['spec_hash']}`. Reproduce: `{reproduce_command(result)}`.", ""]
    return "\n".join(lines)


def reproduce_command(result: dict[str, Any]) -> str:
    """The command that runs this very map: its setting, axes (which may not be the spec's suggested ones) and
    overrides. A map of a spec with settings maps one of them, and the command refuses to run without it."""
    axes = " ".join(f"--axis {k}={','.join(str(x) for x in v)}" for k, v in result["axes"].items())
    extra = "".join(f" {o}" for o in result.get("extra_overrides") or [])
    setting = f" --setting {result['setting']}" if result.get("setting") else ""
    return f"labbench map {result['name']}{setting} --profile {result['profile']} {axes}{extra}"


def heatmap_legend(grid: list[list[dict[str, Any]]]) -> str:
    """The letters a heat map draws, in words: always S, C and -, and any other verdict a cell has (U undertrained ...)."""
    drawn = {c["verdict"] for row in grid for c in row} | {"supported", "contradicted", "inconclusive"}
    return ", ".join(f"{SYMBOL[v]} {v}" for v in SYMBOL if v in drawn)


def plot_heatmap(result: dict[str, Any], hypothesis: int, path: Path) -> None:
    """Colour = effect (blue = as predicted, red = the other way); letter = verdict (``SYMBOL``; the title's legend
    names every letter the map draws)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    rows, cols, grid = matrix(result, hypothesis)
    values = [[c["mean_diff"] if c["mean_diff"] is not None else math.nan for c in row] for row in grid]
    finite = [abs(v) for row in values for v in row if not math.isnan(v)]
    span = max(finite) if finite and max(finite) > 0 else 1.0
    fig, ax = plt.subplots(figsize=(3.2 + 1.3 * len(cols), 1.6 + 0.9 * len(rows)))
    image = ax.imshow(values, cmap="RdBu", norm=TwoSlopeNorm(0.0, -span, span), aspect="auto")
    for i, row in enumerate(grid):
        for j, c in enumerate(row):
            dark = not math.isnan(values[i][j]) and abs(values[i][j]) > 0.6 * span
            ax.text(j, i, f"{SYMBOL.get(c['verdict'], '?')}\n{_fmt(c['mean_diff'])}", ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    keys = list(result["axes"])
    ax.set_xticks(range(len(cols)), cols)
    ax.set_xlabel(keys[0])
    ax.set_yticks(range(len(rows)), rows)
    if len(keys) > 1:
        ax.set_ylabel(keys[1])
    h = grid[0][0]
    ax.set_title(f"{h['name']}\n{heatmap_legend(grid)}", fontsize=9)
    fig.colorbar(image, ax=ax, label="effect (positive = as predicted)")
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)


def write_map(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    n_hyp = len(result["cells"][0]["hypotheses"]) if result["cells"] else 0
    for h in range(n_hyp):
        plot_heatmap(result, h, out / f"heatmap_{h}.png")
    write_json_atomic(out / "map.json", {k: v for k, v in result.items() if k != "counts"})  # results, not bookkeeping
    (out / "map.md").write_text(render_markdown(result))


def rewrite_map(out: str | Path) -> dict[str, Any]:
    """Render ``map.md`` and the heat maps again from a stored ``map.json`` (the numbers are not touched).

    For a map written before the renderer learned something new; the map's results stay as produced.
    """
    out = Path(out)
    result = from_json_safe(json.loads((out / "map.json").read_text()))  # NaN is stored as "nan" (strict JSON)
    write_map(result, out)
    return result


def log_to_wandb(result: dict[str, Any], spec: Spec) -> None:
    """One W&B run (job type ``map``) in the ablation's group holding the map as a table."""
    import wandb

    from labbench.loggers import resolve_wandb_mode

    keys = list(result["axes"])
    table = wandb.Table(columns=[*keys, "hypothesis", "effect", "ci_low", "ci_high", "verdict"])
    for c in result["cells"]:
        for h in c["hypotheses"]:
            table.add_data(*[c["cell"][k] for k in keys], h["name"], h["mean_diff"], h["ci_low"], h["ci_high"], h["verdict"])
    run = wandb.init(project="labbench", group=spec.name, job_type="map", mode=resolve_wandb_mode("auto"),
                     tags=[t for t in (spec.claim_id, result["profile"], "map") if t], dir=str(default_root()),
                     config={"axes": result["axes"], "profile": result["profile"]}, settings=wandb.Settings(x_disable_stats=True, silent=True))
    run.log({"verdict_map": table})
    run.finish()

