"""Results on disk -> plain dicts: every claim of the catalog with whatever its folders hold.

A source is either the committed results (``docs/results/NAME/PROFILE/``, maps in
``NAME/PROFILE-map-AXIS/``, pilots in ``NAME/pilot/``) or a store (``outputs/ablations/NAME/PROFILE/``,
maps in ``PROFILE/maps/SLUG/``, pilots in ``PROFILE/pilot/``); both layouts are globbed, so a
folder that lands while someone works is simply picked up. Nothing here renders: the
templates get numbers and words, and the same dicts feed the forest plot.
"""

from __future__ import annotations

from collections.abc import Iterable

import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labbench.ablation import spec as specs
from labbench.ablation.board import (NO_ANSWER, VERDICTS, claim_order, effect_amount, effect_words, finite, load_reports,
                                     marked_tuned_once, parts_against, plain_sentence, regime_misses, tuned_value_dependent)
from labbench.ablation.maps import reproduce_command as map_command
from labbench.ablation.pilot import pilot_files
from labbench.ablation.report import predicted_text
from labbench.ablation.results import GATE_FREE_SHORT
from labbench.record import from_json_safe
from labbench.site import seeds

SECTIONS = {  # claims.md's sections; anything without a registry id (the A/A control) goes under "other"
    "A": "A. The four ablations of the design card",
    "B": "B. Optimisation, initialisation, regularisation",
    "C": "C. Transformer and architecture mechanics",
    "D": "D. Generative models",
    "other": "Controls",
    "user": "Your claims (specs outside the catalog)",
}
WANDB_PROJECT = "labbench"  # loggers.py / plan.logging_overrides: project labbench, group = ablation name


def section_of(claim_id: str | None) -> str:
    """``B12`` -> ``B``; an id outside the registry's letter+number scheme -> ``other``."""
    match = re.fullmatch(r"([A-Z])\d+", claim_id or "")
    return match[1] if match else "other"


def standardized(h: dict[str, Any]) -> tuple[float, float, float] | None:
    """The effect in units of the seed-to-seed spread of the paired differences (Cohen's d_z):
    ``mean_diff / sd_diff`` and the 95% interval scaled the same way. None where the
    differences have no spread (every seed the same) or there is no interval: nothing to scale by."""
    sd = h.get("sd_diff")
    if not finite(sd) or sd <= 0 or not all(finite(h.get(k)) for k in ("mean_diff", "ci_low", "ci_high")):
        return None
    return h["mean_diff"] / sd, h["ci_low"] / sd, h["ci_high"] / sd


def bar_in_sd(h: dict[str, Any]) -> float | None:
    """What the interval must clear besides zero, in the same units as ``standardized``: a margin ("within 2
    points": -0.02) or a size the claim names (``min_effect``), over the paired differences' sd. None without one."""
    sd = h.get("sd_diff")
    bar = h.get("min_effect") if finite(h.get("min_effect")) and h.get("min_effect") else h.get("margin")
    if not finite(sd) or sd <= 0 or not finite(bar) or not bar:
        return None
    return bar / sd


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

    def commit(self, path: Path) -> str | None:
        """The commit (10 hex digits, a fixed length so a rebuild stays byte-identical as the history grows) that
        last changed ``path``: checked out, it has the spec, the code and the results as they were committed.
        None for a file not committed as it is (a store, results not yet committed)."""
        path = path.resolve()
        if self.top is None or path in self.dirty:
            return None
        try:
            full = self._git(path.parent, "log", "-1", "--format=%H", "--", path.name).strip()
        except (OSError, subprocess.CalledProcessError):
            return None
        return full[:10] or None


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
    measured = h["n"] > 0 and finite(h["mean_diff"])
    return {
        "index": index, "name": (f"[{h['setting']}] " if h.get("setting") else "") + h["name"], "metric": h["metric"], "predicted": predicted_text(h),
        "effect": effect_amount(h) if measured else "-",  # with its units: points of a share, else the metric named
        "d": None if d is None else d[0], "d_low": None if d is None else d[1], "d_high": None if d is None else d[2],
        "d_bar": bar_in_sd(h),
        "n": h["n"], "verdict": h["verdict"], "verdict_raw": h.get("verdict_raw", h["verdict"]),
        "gate": gate_status(h, verdict), "stability": stability(h), "sentence": plain_sentence(h),
    }


def _spec_or_none(name: str) -> specs.Spec | None:
    return specs.load(name) if name in specs.available() else None


def _stale(spec: specs.Spec | None, result: dict[str, Any], is_map: bool = False) -> bool | None:
    """Made from another version of the spec (tests/test_committed_results.py fails on it too); None when the
    spec is not at hand (a user's claim built without ``--specs``): its freshness is unknown, not stale."""
    if spec is None:
        return None
    if result["profile"] not in spec.profiles:
        return True
    return result.get("spec_hash") != specs.fingerprint(spec, result["profile"], map_axes=is_map)


def _reports(source: Path, dates: Dates, spec_of) -> dict[str, list[dict[str, Any]]]:
    profiles = sorted({p.parent.name for p in source.glob("*/*/verdict.json")})
    out: dict[str, list[dict[str, Any]]] = {}
    for profile in profiles:
        for v in load_reports(source, profile):
            path = Path(v["_path"])
            folder = path.parent
            report_md = folder / "report.md"
            out.setdefault(v["name"], []).append({
                "profile": v["profile"], "date": dates.of(path), "commit": dates.commit(path), "folder": folder,
                "report_md": report_md if report_md.is_file() else None,
                "spec_hash": v.get("spec_hash", "-"), "stale": _stale(spec_of(v["name"], v.get("spec_ref")), v),
                "command": reproduce_command(report_md, v["name"], v["profile"]),
                "claim_id": v.get("claim_id") or "", "claim": v.get("claim", ""),
                "runs": v.get("runs", {}), "wall_time_s": v.get("wall_time_s"),
                "answer": v.get("answer"),  # the claim-level answer (None: the spec names no primary)
                # its arms chose their tuned values once on shared seeds (docs/method.md, "Tuning"): the answer is marked
                "tuned_once": marked_tuned_once(v),
                # the settings whose primary's effect changes side with the value nested tuning chose per seed
                "tuned_value": tuned_value_dependent(v),
                "settings": v.get("settings") or [],  # a claim answered in several settings: each one's answer and setting line
                "raw_hypotheses": v["hypotheses"],  # the primary's own numbers, for the index's effect in words
                # per setting ("" without settings): the failed checks that put its primary out of regime, as measured
                "regime_misses": {h.get("setting") or "": regime_misses(v, h) for h in v["hypotheses"] if h.get("role") == "primary"},
                "parts_against": parts_against(v),
                "hypotheses": [hypothesis_row(h, v, i) for i, h in enumerate(v["hypotheses"])],
                # a claim answered in several settings: each setting's own report, shown on the claim's page
                "setting_reports": [{"name": st["name"], "folder": (folder / st["report"]).parent.resolve(),
                                     "report_md": (folder / st["report"]).resolve() if (folder / st["report"]).is_file() else None}
                                    for st in v.get("settings") or []],
            })
    return out


def _maps(source: Path, dates: Dates, spec_of) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted([*source.glob("*/*/map.json"), *source.glob("*/*/maps/*/map.json")]):
        m = from_json_safe(json.loads(path.read_text()))
        out.setdefault(m["name"], []).append({
            "profile": m["profile"], "axes": m["axes"], "date": dates.of(path), "commit": dates.commit(path), "folder": path.parent,
            "map_md": path.parent / "map.md" if (path.parent / "map.md").is_file() else None,
            "spec_hash": m.get("spec_hash", "-"), "stale": _stale(spec_of(m["name"], m.get("spec_ref")), m, is_map=True),
            "command": map_command(m),
            "cells": len(m.get("cells", [])),
        })
    return out


def _pilots(source: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    # a spec's pilot, a profile's (a store's NAME/PROFILE/pilot/), each setting's and each arm's of per-arm budgets
    for path in sorted({*pilot_files(source), *source.glob("*/*/pilot/**/pilot.json")}):
        p = json.loads(path.read_text())
        setting = (f" --setting {p['setting']}" if p.get("setting") else "") + (f" --arm {p['arm']}" if p.get("per_arm") else "")
        out.setdefault(p["name"], []).append({
            "profile": p["profile"], "arm": p["arm"], "chosen": p.get("chosen"), "folder": path.parent,
            "pilot_md": path.parent / "pilot.md" if (path.parent / "pilot.md").is_file() else None,
            "command": f"labbench pilot {p['name']}{setting}", "setting": p.get("setting"), "per_arm": bool(p.get("per_arm")),
            "capped": bool(p.get("capped")),  # no candidate met the rule: the largest was taken, the standard arm still improving
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


# --- one row per claim: the index's top table ------------------------------------------------------

ANSWER_ORDER = ("holds in", "holds here", "setting-dependent", "smaller than claimed", "does not hold", "not shown",
                "out of regime", "setup failed", "no false positive", "false positive")  # the last two: A/A controls
NOT_RUN = "not run yet"  # in the catalog, no report (the pilot may have run)


def answer_rank(answer: str) -> tuple[int, str]:
    """The order of the counts: held first, then mixed, smaller, not holding, undecided, and claims with no answer last."""
    rank = next((i for i, prefix in enumerate(ANSWER_ORDER) if answer.startswith(prefix)), len(ANSWER_ORDER))
    return (rank + (1 if answer == NOT_RUN else 0), answer)


def answer_kind(answer: str) -> str:
    """A CSS class for an answer word: ``holds``, ``mixed``, ``fails``, ``open`` or ``none``; the word itself is always shown."""
    if answer.startswith("holds") or answer.startswith("no false positive"):  # a control without a false positive passed
        return "holds"
    if answer.startswith("false positive"):
        return "fails"
    if answer == "setting-dependent" or answer.startswith("smaller"):
        return "mixed"
    if answer.startswith("does not hold"):
        return "fails"
    if answer in (NO_ANSWER, NOT_RUN):
        return "none"
    return "open"  # not shown, out of regime, setup failed: the runs did not decide


_LINE = re.compile(r"^(?P<data>.+?) data, (?P<model>.+?) model, (?P<budget>.+), (?P<seeds>\d+) seeds \((?P<profile>[\w-]+) profile\)$")


def line_chips(line: str) -> dict[str, str] | None:
    """A claim-level answer's setting line ("MNIST5k data, MLP model, 600 steps, 10 seeds (quick profile)",
    ``results.setting_line``) as chips; None for a line in another shape."""
    match = _LINE.match(line.strip())
    if not match:
        return None
    return {"data": match["data"], "model": match["model"], "budget": match["budget"], "seeds": f"{match['seeds']} seeds",
            "profile": match["profile"]}


def _arm_overrides(text: str) -> list[str]:
    """Every override an arm of the report's "Arms" table sets (the keys on which the arms differ)."""
    match = re.search(r"^## Arms\s*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    rows = re.findall(r"^\|\s*`[^`]+`\s*\|([^|]*)\|", match[1], re.M) if match else []
    return [o for row in rows for o in re.findall(r"`([^`]+)`", row)]


def setup_chips(report_md: Path | None, profile: str) -> dict[str, str] | None:
    """The chips of a report without a setting line (the old method), read from its own "Setup" table: the data set and
    its training split, the model and its first two parameters, the budget, the number of paired seeds.

    The Setup table describes the base configuration; where the arms override part of it (``model=cnn``, a preset,
    ``model.depth=...``, ``data.train_size=...``), the chip says the arms differ rather than show the base's value as if
    every arm had it. None when the report has no such table."""
    if report_md is None or not report_md.is_file():
        return None
    text = report_md.read_text()
    match = re.search(r"^## Setup\s*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not match:
        return None
    cells = {m[1].strip(): m[2].strip() for m in re.finditer(r"^\|\s*([a-z ]+?)\s*\|\s*(.+?)\s*\|\s*$", match[1], re.M)}
    if not {"data", "model", "budget", "seeds"} <= set(cells):
        return None
    overrides = _arm_overrides(text)
    keys = {o.split("=", 1)[0] for o in overrides}

    def per_arm(*names: str) -> str:
        """The values the arms give a group that replaces a whole node (``model=``, ``preset=``), or ''."""
        values = list(dict.fromkeys(o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] in names))
        return "per arm: " + " / ".join(values) if values else ""

    data = re.match(r"`([^`]+)`", cells["data"])
    train = re.search(r"'train': (\d+)", cells["data"])
    data_text = per_arm("data") or ((data[1] if data else cells["data"])
                                    + (f" ({int(train[1]):,} train)" if train and "data.train_size" not in keys else ""))
    differ = sorted(k.split(".", 1)[1] for k in keys if k.startswith("data."))
    if differ and not data_text.startswith("per arm"):
        data_text += f"; arms differ in {', '.join(differ)}"
    model = re.match(r"`([^`]+)`\s*(.*)", cells["model"])
    model_text = per_arm("model", "preset")
    if not model_text:
        params = [q.strip() for q in re.split(r",\s*(?![^\[]*\])", model[2]) if "=" in q] if model else []
        shared = [q for q in params if f"model.{q.split('=', 1)[0]}" not in keys][:2]
        model_text = (model[1] + (" " + ", ".join(shared) if shared else "")) if model else cells["model"]
        differ = sorted(k.split(".", 1)[1] for k in keys if k.startswith("model."))
        if differ:
            model_text += f"; arms differ in {', '.join(differ)}"
    budget = cells["budget"].split(",")[0].strip()
    if keys & {"trainer.max_steps", "trainer.max_epochs"}:
        budget += "; arms differ"
    seeds = re.findall(r"\d+", cells["seeds"].split("(")[0])
    return {"data": data_text, "model": model_text, "budget": budget, "seeds": f"{len(seeds)} seeds", "profile": profile}


def _verdict_order(verdict: str) -> tuple[int, str]:
    """Verdict words in ``VERDICTS`` order; a word from a newer method than this module knows goes last, not an error."""
    return (VERDICTS.index(verdict) if verdict in VERDICTS else len(VERDICTS), verdict)


def _capped(pilots: list[dict[str, Any]], profile: str, setting: str | None) -> bool:
    return any(p["capped"] and p["profile"] == profile and p.get("setting") == setting for p in pilots)


def headline(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The report a claim's row leads with: the largest profile run (full, then quick, then smoke)."""
    rank = {"full": 0, "quick": 1, "smoke": 2}
    return min(reports, key=lambda r: (rank.get(r["profile"], 3), r["profile"])) if reports else None


def claim_row(claim: dict[str, Any]) -> dict[str, Any]:
    """What the index's top table shows for one claim: its answer across settings, each setting's chips and the
    primary's effect in words; for a report of the old method (no primary), no answer and the tally of its
    hypotheses' verdicts instead, so nothing is shown as an answer the report does not have."""
    r = headline(claim["reports"])
    if r is None:
        return {"answer": NOT_RUN, "kind": answer_kind(NOT_RUN), "because": claim["status_text"], "profile": None,
                "settings": [], "tally": [], "status": claim["status"], "others": []}
    others = [o["profile"] for o in claim["reports"] if o is not r]
    if not r.get("answer"):
        chips = setup_chips(r["report_md"], r["profile"])
        if chips is not None:
            chips["capped"] = _capped(claim["pilots"], r["profile"], None)
        verdicts = [h["verdict"] for h in r["hypotheses"]]
        return {"answer": NO_ANSWER, "kind": answer_kind(NO_ANSWER), "profile": r["profile"], "others": others,
                "because": "reported before the claim-level method: no primary hypothesis, so no answer for the claim",
                "settings": [{"name": "", "answer": "", "chips": chips, "effect": "", "description": "", "alone": ""}],
                "tally": [(v, verdicts.count(v)) for v in dict.fromkeys(sorted(verdicts, key=_verdict_order))]}
    answer = r["answer"]
    primaries = [h for h in r["raw_hypotheses"] if h.get("role") == "primary"]
    if r["settings"]:
        settings = []
        for st in r["settings"]:
            h = next((p for p in primaries if p.get("setting") == st["name"]), None)
            chips = line_chips(st.get("line", ""))
            if chips is not None:
                chips["capped"] = _capped(claim["pilots"], r["profile"], st["name"])
            alone = st.get("answer_alone", st["answer"])
            settings.append({"name": st["name"], "answer": st["answer"], "chips": chips, "description": st.get("description", ""),
                             # a setting whose primary passed alone but not after Holm across the settings says so
                             "alone": (f"alone: {alone}; not after Holm's correction across the {len(r['settings'])} settings"
                                       if alone != st["answer"] else ""),
                             "effect": effect_words(h) if h else st.get("primary_effect", "-"),
                             "regime": r.get("regime_misses", {}).get(st["name"], []),
                             "against": r.get("parts_against", {}).get(st["name"], [])})
    else:
        chips = line_chips(answer.get("setting", ""))
        if chips is not None:
            chips["capped"] = _capped(claim["pilots"], r["profile"], None)
        settings = [{"name": "", "answer": "", "chips": chips, "description": "", "alone": "",
                     "effect": effect_words(primaries[0]) if primaries else "-", "regime": r.get("regime_misses", {}).get("", []),
                     "against": r.get("parts_against", {}).get("", [])}]
    # across settings, "because" repeats each setting's answer, which the settings list shows: the primary is said instead
    because = f"primary hypothesis: {answer['primary']}" if r["settings"] and answer.get("primary") else answer.get("because", "")
    return {"answer": answer["answer"], "kind": answer_kind(answer["answer"]), "because": because, "tuned_once": r.get("tuned_once", False), "tuned_value": r.get("tuned_value", []),
            "primary": answer.get("primary", ""), "profile": r["profile"], "others": others, "settings": settings, "tally": []}


def claim_counts(claims: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Claims (not hypotheses) by the answer their row shows, in ``answer_rank`` order."""
    words = [c["row"]["answer"] for c in claims]
    return [(w, words.count(w)) for w in sorted(set(words), key=answer_rank)]


def is_catalog_results(source: Path) -> bool:
    """Whether ``source`` is the committed results folder (``docs/results``): the site then shows the whole catalog,
    claims not run yet included; any other folder is a user's store, shown as the claims it holds results for."""
    return Path(source).resolve().parts[-2:] == ("docs", "results")


def user_specs(paths: Iterable[Path | str]) -> dict[str, specs.Spec]:
    """The specs given with ``labbench site --specs``: files, or folders searched for ``*.yaml``, by spec name."""
    out: dict[str, specs.Spec] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FileNotFoundError(f"--specs {path}: no such file or folder (give spec files or folders of them)")
        for file in sorted(path.rglob("*.yaml")) if path.is_dir() else [path]:
            spec = specs.load(file)
            out[spec.name] = spec
    return out


def spec_at(ref: str, name: str) -> specs.Spec | None:
    """A user's spec where its result says it was loaded from (``spec_ref``: the path given to ``reproduce``, relative
    to where it ran), when that file still holds the spec of that name; else None (its freshness stays unknown)."""
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return None
    try:
        spec = specs.load(str(path))
    except (specs.SpecError, OSError):  # a file that no longer parses is no spec to check against: "freshness unknown"
        return None
    return spec if spec.name == name else None


def gather(source: Path, spec_paths: Iterable[Path | str] = ()) -> dict[str, Any]:
    """Every claim of the catalog (and any result whose spec is gone) with its reports, maps and
    pilots, in registry order; and the hypothesis count the index must show.

    From the committed results (``docs/results``) every catalog claim has a row, run or not. From a user's
    store only the claims it holds results for do; ``spec_paths`` (``--specs``) gives the specs of the user's own
    claims (outside ``experiments/``), and a result whose spec file is still where it ran from (its ``spec_ref``)
    finds it there: they get a section of their own, and their results are checked against them like the
    catalog's; a result whose spec is at hand nowhere says its freshness is unknown."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no results folder (docs/results, or a store such as outputs/ablations)")
    dates = Dates(source)
    seed_data = seeds.load()
    mine = user_specs(spec_paths)
    catalog_mode = is_catalog_results(source) and not mine

    found: dict[str, specs.Spec] = {}  # user specs found where their results say they were loaded from

    def spec_of(name: str, ref: str | None = None) -> specs.Spec | None:
        if name in mine or name in found:
            return mine.get(name) or found[name]
        spec = _spec_or_none(name)
        if spec is None and ref:
            spec = spec_at(ref, name)
            if spec is not None:
                found[name] = spec
        return spec

    reports, maps, pilots = _reports(source, dates, spec_of), _maps(source, dates, spec_of), _pilots(source)
    names = sorted((set(specs.available()) if catalog_mode else set()) | set(reports) | set(maps) | set(pilots))
    claims = []
    for name in names:
        spec = spec_of(name)
        in_catalog = name in specs.available() and name not in mine
        first = (reports.get(name) or [{}])[0]
        claim_id = spec.claim_id if spec else first.get("claim_id", "")
        status, status_text = _status(reports.get(name, []), pilots.get(name, []))
        claims.append({
            # a user's claim: given with --specs, or, in a store, a result whose spec the catalog does not have
            "name": name, "claim_id": claim_id, "section": "user" if name in mine or not (in_catalog or catalog_mode) else section_of(claim_id),
            "spec_path": "" if spec is None or in_catalog else spec.path.as_posix(),
            "claim": spec.claim if spec else first.get("claim", ""),
            "sources": list(spec.sources) if spec else [], "reference": spec.reference if spec else "",
            # each source in pieces, its cited questions linked to their rows on sources.html
            "citations": [seeds.links(s, seed_data["questions"]) for s in (spec.sources if spec else ())],
            "notes": spec.notes if spec else "", "in_catalog": in_catalog, "spec_known": spec is not None,
            "arms": [a.name for a in spec.arms] if spec else [],
            "status": status, "status_text": status_text,
            "reports": reports.get(name, []), "maps": maps.get(name, []), "pilots": pilots.get(name, []),
            "page": f"claims/{name}.html", "wandb": {"project": WANDB_PROJECT, "group": name},
            "order": claim_order(claim_id, name),
        })
    claims.sort(key=lambda c: c["order"])
    for c in claims:
        c["row"] = claim_row(c)
    return {
        "source": source, "catalog_mode": catalog_mode, "claims": claims, "sections": SECTIONS, "verdicts": VERDICTS,
        "claim_counts": claim_counts(claims),
        # the claims table: grouped by answer in the order of the counts (answered claims first), registry order within
        "by_answer": sorted(claims, key=lambda c: (answer_rank(c["row"]["answer"])[0], c["order"])),
        "hypotheses": sum(len(r["hypotheses"]) for c in claims for r in c["reports"]),
        # sources.html: the seed files and, for each question a claim cites, its original, its English and the claims citing it
        "seed_note": seed_data["note"], "seed_files": seeds.page_data(claims, seed_data),
    }
