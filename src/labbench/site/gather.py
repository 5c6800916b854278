"""Results on disk -> plain dicts: every claim of the catalog with whatever its folders hold.

A source is either the committed results (``docs/results/NAME/PROFILE/``, maps in
``NAME/PROFILE-map-AXIS/``, pilots in ``NAME/pilot/``) or a store (``outputs/ablations/NAME/PROFILE/``,
maps in ``PROFILE/maps/SLUG/``, pilots in ``PROFILE/pilot/``); both layouts are globbed, so a
folder that lands while someone works is simply picked up. Nothing here renders: the
templates get numbers and words, and the same dicts feed the forest plot.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labbench.ablation import spec as specs
from labbench.ablation.board import claim_order, load_reports, plain_sentence
from labbench.ablation.maps import reproduce_command as map_command
from labbench.ablation.report import difference_text, predicted_text
from labbench.ablation.results import GATE_FREE_SHORT
from labbench.record import from_json_safe

SECTIONS = {  # claims.md's sections; anything without a registry id (the A/A control) goes under "other"
    "A": "A. The four ablations of the design card",
    "B": "B. Optimisation, initialisation, regularisation",
    "C": "C. Transformer and architecture mechanics",
    "D": "D. Generative models",
    "other": "Controls",
}
VERDICTS = ("supported", "smaller than claimed", "contradicted", "inconclusive", "undertrained", "out of regime", "exploratory")
WANDB_PROJECT = "labbench"  # loggers.py / plan.logging_overrides: project labbench, group = ablation name


def section_of(claim_id: str | None) -> str:
    """``B12`` -> ``B``; an id outside the registry's letter+number scheme -> ``other``."""
    match = re.fullmatch(r"([A-Z])\d+", claim_id or "")
    return match[1] if match else "other"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def standardized(h: dict[str, Any]) -> tuple[float, float, float] | None:
    """The effect in units of the seed-to-seed spread of the paired differences (Cohen's d_z):
    ``mean_diff / sd_diff`` and the 95% interval scaled the same way. None where the
    differences have no spread (every seed the same) or there is no interval: nothing to scale by."""
    sd = h.get("sd_diff")
    if not _finite(sd) or sd <= 0 or not all(_finite(h.get(k)) for k in ("mean_diff", "ci_low", "ci_high")):
        return None
    return h["mean_diff"] / sd, h["ci_low"] / sd, h["ci_high"] / sd


def gate_status(h: dict[str, Any], verdict: dict[str, Any]) -> str:
    """``passed``, ``missed: ARM, ...`` (the hypothesis is undertrained), ``none declared``, or ``not gated
    (WHY)`` for a hypothesis that takes no gate (a rate, steps to a threshold, a value at initialization)."""
    if h.get("gate_free"):
        waived = sorted({m["arm"] for m in h.get("gates_waived") or []})
        return f"not gated ({GATE_FREE_SHORT[h['gate_free']]})" + (f"; missed by {', '.join(waived)}" if waived else "")
    if h.get("undertrained"):
        return "missed: " + ", ".join(sorted({m["arm"] for m in h["undertrained"]}))
    if verdict.get("gates_declared") or any(a.get("gates") for a in verdict.get("arms", {}).values()):
        return "passed"
    return "none declared"


def stability(h: dict[str, Any]) -> str:
    """The report's "Stability over the budget": *unsettled* when the effect still moved over the last
    half of the budget (reports made before issue 26: when the verdict changed there), ``settled``
    when it was judged and did not, ``-`` when it was not judged."""
    if h.get("unsettled"):
        return "unsettled"
    return "settled" if h.get("trajectory") else "-"


class Dates:
    """The day a result was made, stable while its file is unchanged (no build timestamps, so a
    rebuild of the same results is byte-identical): the date of the git commit that last changed
    the file; for a file git does not have as committed (a store, results not yet committed),
    the file's modification day (UTC)."""

    def __init__(self, source: Path) -> None:
        self.top: Path | None = None
        self.dirty: set[Path] = set()
        try:
            top = self._git(source, "rev-parse", "--show-toplevel").strip()
            status = self._git(source, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
        except (OSError, subprocess.CalledProcessError):
            return
        self.top = Path(top)
        entries = status.split("\0")
        for entry in entries:
            if len(entry) > 3:
                self.dirty.add((self.top / entry[3:]).resolve())

    @staticmethod
    def _git(cwd: Path, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60).stdout

    def of(self, path: Path) -> str:
        path = path.resolve()
        if self.top is not None and path not in self.dirty:
            try:
                day = self._git(path.parent, "log", "-1", "--format=%cs", "--", path.name).strip()
            except (OSError, subprocess.CalledProcessError):
                day = ""
            if day:
                return day
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")


def reproduce_command(report_md: Path | None, name: str, profile: str) -> str:
    """The command in the report's own "Reproduce" section (it carries --seeds and overrides when
    the run had them); ``labbench reproduce NAME --profile P`` when there is no report to read."""
    if report_md is not None and report_md.is_file():
        match = re.search(r"^## Reproduce\s*```\w*\n(.+?)\n```", report_md.read_text(), re.M | re.S)
        if match:
            return match[1].strip()
    return f"labbench reproduce {name} --profile {profile}"


def hypothesis_row(h: dict[str, Any], verdict: dict[str, Any], index: int) -> dict[str, Any]:
    """One hypothesis as the index and the claim pages show it."""
    d = standardized(h)
    measured = h["n"] > 0 and _finite(h["mean_diff"])
    return {
        "index": index, "name": (f"[{h['setting']}] " if h.get("setting") else "") + h["name"], "metric": h["metric"], "predicted": predicted_text(h),
        "effect": difference_text(h) if measured else "-",
        "d": None if d is None else d[0], "d_low": None if d is None else d[1], "d_high": None if d is None else d[2],
        "n": h["n"], "verdict": h["verdict"], "verdict_raw": h.get("verdict_raw", h["verdict"]),
        "gate": gate_status(h, verdict), "stability": stability(h), "sentence": plain_sentence(h),
    }


def _spec_or_none(name: str) -> specs.Spec | None:
    return specs.load(name) if name in specs.available() else None


def _stale(spec: specs.Spec | None, result: dict[str, Any], is_map: bool = False) -> bool:
    """Made from another version of the spec (tests/test_committed_results.py fails on it too)."""
    if spec is None or result["profile"] not in spec.profiles:
        return True
    return result.get("spec_hash") != specs.fingerprint(spec, result["profile"], map_axes=is_map)


def _reports(source: Path, dates: Dates) -> dict[str, list[dict[str, Any]]]:
    profiles = sorted({p.parent.name for p in source.glob("*/*/verdict.json")})
    out: dict[str, list[dict[str, Any]]] = {}
    for profile in profiles:
        for v in load_reports(source, profile):
            path = Path(v["_path"])
            folder = path.parent
            report_md = folder / "report.md"
            out.setdefault(v["name"], []).append({
                "profile": v["profile"], "date": dates.of(path), "folder": folder,
                "report_md": report_md if report_md.is_file() else None,
                "spec_hash": v.get("spec_hash", "-"), "stale": _stale(_spec_or_none(v["name"]), v),
                "command": reproduce_command(report_md, v["name"], v["profile"]),
                "claim_id": v.get("claim_id") or "", "claim": v.get("claim", ""),
                "runs": v.get("runs", {}), "wall_time_s": v.get("wall_time_s"),
                "answer": v.get("answer"),  # the claim-level answer (None: the spec names no primary)
                "hypotheses": [hypothesis_row(h, v, i) for i, h in enumerate(v["hypotheses"])],
                # a claim answered in several settings: each setting's own report, shown on the claim's page
                "setting_reports": [{"name": st["name"], "folder": (folder / st["report"]).parent.resolve(),
                                     "report_md": (folder / st["report"]).resolve() if (folder / st["report"]).is_file() else None}
                                    for st in v.get("settings") or []],
            })
    return out


def _maps(source: Path, dates: Dates) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted([*source.glob("*/*/map.json"), *source.glob("*/*/maps/*/map.json")]):
        m = from_json_safe(json.loads(path.read_text()))
        out.setdefault(m["name"], []).append({
            "profile": m["profile"], "axes": m["axes"], "date": dates.of(path), "folder": path.parent,
            "map_md": path.parent / "map.md" if (path.parent / "map.md").is_file() else None,
            "spec_hash": m.get("spec_hash", "-"), "stale": _stale(_spec_or_none(m["name"]), m, is_map=True),
            "command": map_command(m),
            "cells": len(m.get("cells", [])),
        })
    return out


def _pilots(source: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    # a spec's pilot, a profile's, and each setting's (NAME/pilot/SETTING/pilot.json)
    for path in sorted([*source.glob("*/pilot/pilot.json"), *source.glob("*/*/pilot/pilot.json"), *source.glob("*/pilot/*/pilot.json")]):
        p = json.loads(path.read_text())
        setting = f" --setting {p['setting']}" if p.get("setting") else ""
        out.setdefault(p["name"], []).append({
            "profile": p["profile"], "arm": p["arm"], "chosen": p.get("chosen"), "folder": path.parent,
            "pilot_md": path.parent / "pilot.md" if (path.parent / "pilot.md").is_file() else None,
            "command": f"labbench pilot {p['name']}{setting}", "setting": p.get("setting"),
        })
    return out


def _status(reports: list, pilots: list) -> tuple[str, str]:
    """A claim without a report still says where it stands."""
    if reports:
        return "reported", ""
    if any(p["chosen"] is None for p in pilots):
        p = next(p for p in pilots if p["chosen"] is None)
        return "no budget yet", (f"The pilot found no budget at which the standard arm `{p['arm']}` learned; "
                                 "no comparison was run.")
    if pilots:
        return "not run yet", "The pilot sized the budget; the comparison has not been run yet."
    return "not run yet", "No results yet."


def gather(source: Path) -> dict[str, Any]:
    """Every claim of the catalog (and any result whose spec is gone) with its reports, maps and
    pilots, in registry order; and the hypothesis count the index must show."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no results folder (docs/results, or a store such as outputs/ablations)")
    dates = Dates(source)
    reports, maps, pilots = _reports(source, dates), _maps(source, dates), _pilots(source)
    names = sorted(set(specs.available()) | set(reports) | set(maps) | set(pilots))
    claims = []
    for name in names:
        spec = _spec_or_none(name)
        first = (reports.get(name) or [{}])[0]
        claim_id = spec.claim_id if spec else first.get("claim_id", "")
        status, status_text = _status(reports.get(name, []), pilots.get(name, []))
        claims.append({
            "name": name, "claim_id": claim_id, "section": section_of(claim_id),
            "claim": spec.claim if spec else first.get("claim", ""),
            "sources": list(spec.sources) if spec else [], "reference": spec.reference if spec else "",
            "notes": spec.notes if spec else "", "in_catalog": spec is not None,
            "arms": [a.name for a in spec.arms] if spec else [],
            "status": status, "status_text": status_text,
            "reports": reports.get(name, []), "maps": maps.get(name, []), "pilots": pilots.get(name, []),
            "page": f"claims/{name}.html", "wandb": {"project": WANDB_PROJECT, "group": name},
            "order": claim_order(claim_id, name),
        })
    claims.sort(key=lambda c: c["order"])
    answered = [r["answer"]["answer"] for c in claims for r in c["reports"] if r.get("answer")]
    return {
        "source": source, "claims": claims, "sections": SECTIONS, "verdicts": VERDICTS,
        "answers": {a: answered.count(a) for a in dict.fromkeys(answered)},
        "unanswered": sum(1 for c in claims for r in c["reports"] if not r.get("answer")),
        "hypotheses": sum(len(r["hypotheses"]) for c in claims for r in c["reports"]),
    }
