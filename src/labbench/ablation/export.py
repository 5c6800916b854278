"""Results out of labbench: every run of an ablation as a table, and two reports side by side.

``verdict.json`` holds each arm's values as lists in seed order; which seed a value belongs to, and
the tuning runs behind a choice, are implied. ``runs_table`` makes them explicit, one row per run
(final and tuning), from the stored records; ``compare`` reads two ``verdict.json`` files (smoke
against quick, two versions of a spec, two people's results) and lines up their hypotheses.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from labbench.ablation.plan import Plan
from labbench.ablation.results import run_value
from labbench.ablation.spec import Spec
from labbench.ablation.store import Store
from labbench.record import from_json_safe

FIXED = ("stage", "arm", "seed", "tuned", "status", "run_id", "steps", "wall_time_s")


def runs_table(spec: Spec, plan: Plan, store: Store) -> list[dict[str, Any]]:
    """One row per planned run (tuning first, then final): its arm, seed, tuned value, outcome, and the value of every
    metric the spec reads, as the statistics read it (a diverged run at its failure value, where one is declared)."""
    metrics = list(dict.fromkeys([*(h.metric for h in spec.hypotheses if h.metric not in ("diverged", "fails_to_learn")),
                                  *spec.metrics, *(g.metric for g in spec.gates)]))
    if spec.tuning is not None:
        metrics = list(dict.fromkeys([*metrics, spec.tuning.metric]))
    rows = []
    for run in [*plan.tuning_runs, *plan.final_runs]:
        record = store.record(run.run_id)
        row: dict[str, Any] = {
            "stage": run.stage, "arm": run.arm, "seed": run.seed,
            "tuned": "" if run.tuned_value is None or spec.tuning is None else spec.tuning.show(run.tuned_value),
            "status": (record or {}).get("status", "missing"), "run_id": run.run_id,
            "steps": (record or {}).get("steps"), "wall_time_s": (record or {}).get("wall_time_s"),
        }
        for m in metrics:
            row[m] = run_value(record, m, spec.failure) if record else math.nan
        rows.append(row)
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return out.getvalue()


def load_verdict(path: str | Path) -> dict[str, Any]:
    """A ``verdict.json``, given as the file or the report folder that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / "verdict.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no verdict.json there (give a report folder, e.g. docs/results/NAME/quick, or the file)")
    return from_json_safe(json.loads(path.read_text()))


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two reports' hypotheses side by side (matched by setting and name), with what differs between the reports."""
    def key(h: dict[str, Any]) -> tuple[str, str]:
        return (h.get("setting") or "", h["name"])

    left, right = {key(h): h for h in a["hypotheses"]}, {key(h): h for h in b["hypotheses"]}
    rows = []
    for k in list(dict.fromkeys([*left, *right])):
        ha, hb = left.get(k), right.get(k)
        rows.append({
            "setting": k[0], "hypothesis": k[1],
            "a": _side(ha), "b": _side(hb),
            "verdict_changed": bool(ha and hb and ha["verdict"] != hb["verdict"]),
        })
    notes = []
    if a.get("spec_hash") != b.get("spec_hash"):
        notes.append(f"different spec versions (hash {a.get('spec_hash')} vs {b.get('spec_hash')}): settings, gates or hypotheses differ")
    if a.get("profile") != b.get("profile"):
        notes.append(f"different profiles ({a.get('profile')} vs {b.get('profile')})")
    answers = [(x.get("answer") or {}).get("answer") for x in (a, b)]
    return {"names": [a.get("name"), b.get("name")], "answers": answers, "notes": notes, "rows": rows}


def _side(h: dict[str, Any] | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"verdict": h["verdict"], "mean_diff": h.get("mean_diff"), "ci_low": h.get("ci_low"), "ci_high": h.get("ci_high"),
            "n": h.get("n"), "p": h.get("p_holm", h.get("p_value"))}
