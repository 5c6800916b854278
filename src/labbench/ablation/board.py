"""What labbench found: one row per hypothesis of every committed report, for the README.

Read from the committed ``docs/results/NAME/PROFILE/verdict.json`` files (never typed by
hand), so the README's table and the reports cannot disagree; ``scripts/readme_results.py``
writes it between two markers and a test fails when the README's copy is out of date.
Where the answer is not what the claim predicts, one plain sentence says how.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from labbench.ablation import spec as specs
from labbench.ablation.pilot import pilot_files, pilot_label
from labbench.ablation.report import _f, difference_text, predicted_text
from labbench.record import from_json_safe

START, END = "<!-- results:start -->", "<!-- results:end -->"


def load_reports(results_dir: Path, profile: str = "quick") -> list[dict[str, Any]]:
    """Every committed report of ``profile``, in claim-id order (controls last)."""
    reports = [from_json_safe(json.loads(p.read_text())) | {"_path": p} for p in sorted(results_dir.glob(f"*/{profile}/verdict.json"))]
    return sorted(reports, key=lambda v: claim_order(v.get("claim_id"), v["name"]))


def claim_order(claim_id: str | None, name: str) -> tuple:
    """Registry order (A1, A2, ..., B1, ..., D4), then anything else (controls such as A/A) by name."""
    match = re.fullmatch(r"([A-Z])(\d+)", claim_id or "")
    return (0, match[1], int(match[2]), name) if match else (1, "", 0, name)


def plain_sentence(h: dict[str, Any]) -> str:
    """How the answer differs from the prediction, in one sentence ('' when it is as predicted)."""
    verdict = h["verdict"]
    if h.get("gates_waived"):  # a value at initialization (or a rate) whose arms later missed a gate: say what it covers
        arms = sorted({m["arm"] for m in h["gates_waived"]})
        said = ("Measured at initialization, before any update" if h.get("gate_free") == "init" else "Takes no competence gate")
        return (f"{said}: {', '.join(f'`{a}`' for a in arms)} then missed the competence gate, "
                "so this says nothing about the trained models." + (" " + _verdict_sentence(h) if verdict != "supported" else ""))
    return _verdict_sentence(h)


def _verdict_sentence(h: dict[str, Any]) -> str:
    if h.get("constant") is not None and h["verdict"] != "undertrained":
        return (f"Uninformative: every seed of every arm gave {_f(h['constant'])} (a ceiling or floor), so the metric "
                "cannot tell the arms apart here.")
    verdict = h["verdict"]
    if verdict == "supported":
        return ""
    if verdict == "out of regime":
        return (f"Out of regime: the check(s) {', '.join(h.get('out_of_regime') or [])} failed, so this setting could not show the "
                "mechanism: nothing for or against the claim.")
    if verdict == "exploratory":
        return (f"Exploratory: the primary hypothesis was not decided, so this one gets no verdict (raw p {_f(h.get('p_value'))}).")
    if verdict == "smaller than claimed":
        return (f"In the predicted direction, but the interval ([{_f(h.get('ci_low'))}, {_f(h.get('ci_high'))}]) does not clear the "
                f"size the claim names ({_f(h.get('min_effect'))}).")
    if verdict == "undertrained":
        arms = sorted({m["arm"] for m in h["undertrained"]})
        gate = h["undertrained"][0]
        return (f"Not tested: {', '.join(f'`{a}`' for a in arms)} did not pass the competence gate "
                f"(`{gate['metric']}` {_f(gate['mean'])} against a bar of {_f(gate['bar'])}).")
    if verdict == "contradicted":
        return f"The runs go against the claim: the predicted-better side is worse by {_f(-h['mean_diff'])} (95% CI [{_f(-h['ci_high'])}, {_f(-h['ci_low'])}])."
    if not h.get("decidable", True):
        return f"Too few seeds ({h['n']}) for the method to decide."
    if h.get("margin") and h["margin"] < 0 and not _interval_clears(h):
        return "Non-inferiority not shown: the interval reaches below the margin."
    if _interval_clears(h):
        return _held_back(h)
    return "No difference the runs can tell from noise at this scale."


def _interval_clears(h: dict[str, Any]) -> bool:
    """Whether the reported t-interval lies wholly on one side of the margin."""
    low, high, margin = h.get("ci_low"), h.get("ci_high"), h.get("margin") or 0.0
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return False
    return low > margin or high < margin


def _held_back(h: dict[str, Any]) -> str:
    """An inconclusive verdict beside an interval that excludes the margin: which part of the rule held it back."""
    bound = _f(h.get("margin") or 0.0)
    flip, raw, holm = h.get("p_sign_flip"), h.get("p_value"), h.get("p_holm")
    alpha = 0.05
    if flip is not None and math.isfinite(flip) and flip > alpha:
        return (f"Not decided: the t-interval excludes {bound}, but the exact sign-flip test does not reject (p {_f(flip)}): "
                "the verdict needs both tests, and the seeds' signs are not consistent enough.")
    if raw is not None and holm is not None and math.isfinite(raw) and raw <= alpha < holm:
        return (f"Not decided: alone this hypothesis would pass (p {_f(raw)}), but not after Holm's correction across the "
                f"ablation's hypotheses (p {_f(holm)}).")
    return f"Not decided: the t-interval excludes {bound}, but p {_f(raw)} is above {alpha} (the larger of the t and sign-flip p)."


# every verdict word a hypothesis can get, in the order a tally and the site list them
VERDICTS = ("supported", "smaller than claimed", "contradicted", "inconclusive", "undertrained", "out of regime", "exploratory")
NO_ANSWER = "no claim-level answer yet"  # an old-method report: hypothesis verdicts, no primary, so no answer for the claim
SHARES = {  # metrics that are shares (0-1): an effect on them reads best in points; anything else keeps the metric's own units
    "acc": "{split} accuracy",
    "weight_sparsity": "all weights near zero",  # probes/final.py: the share of weight-matrix entries with |w| < tol
}


def finite(x: Any) -> bool:
    """A real number (not None, NaN or infinite): a value a sentence can state."""
    return isinstance(x, (int, float)) and math.isfinite(x)


def effect_words(h: dict[str, Any]) -> str:
    """The primary's effect as a reader says it: the prediction, then the difference with its units, e.g.
    "`small` higher than `large-tuned`: +1.6 points of test accuracy [+1.2, +2.0], 11 seeds". A metric that is a share
    (``SHARES``) is given in points (0.01 = 1 point); any other keeps its own units, named by the metric."""
    if not h.get("n") or not finite(h.get("mean_diff")):
        return "not measured"
    share = _share(h)
    if share:
        margin = h.get("margin") or 0.0  # the prediction's margin in the same points as the effect, not in the metric's fraction
        predicted = predicted_text({**h, "margin": 0.0}) + (f" by > {100 * margin:+.3g} points" if margin else "")
    else:
        predicted = predicted_text(h)
    return f"{predicted}: {effect_amount(h)}, {h['n']} seeds"


def _share(h: dict[str, Any]) -> str | None:
    """The words for a share metric's points ("test accuracy"), None for a metric in its own units or a rate."""
    split, _, leaf = str(h.get("metric", "")).rpartition("/")
    share = SHARES.get(leaf) if h.get("kind") != "rate" else None
    return share.format(split=split).strip() if share else None


def effect_amount(h: dict[str, Any]) -> str:
    """A hypothesis's difference with its units and interval: "+1.6 points of test accuracy [+1.2, +2.0]" for a
    share, else the difference in the metric's own units, named ("0.0169 [0.0071, 0.0268] in `train/loss[-5:]`")."""
    if not h.get("n") or not finite(h.get("mean_diff")):
        return "not measured"
    share = _share(h)
    if share:
        interval = (f" [{100 * h['ci_low']:+.1f}, {100 * h['ci_high']:+.1f}]" if finite(h.get("ci_low")) and finite(h.get("ci_high"))
                    else " (every seed the same: no interval)")
        return f"{100 * h['mean_diff']:+.1f} points of {share}{interval}"
    return f"{difference_text(h)} in `{h.get('metric', '')}`"


def claim_rows(reports: list[dict[str, Any]], root: Path) -> list[str]:
    """One README row per claim, its claim-level answer first (issue 29: the results lead with the answers): the answer
    across settings, each setting's answer and its primary's effect in words; an old-method report says it has no
    answer and tallies its hypotheses' verdicts instead (never an answer word it does not have)."""
    out = []
    for v in reports:
        link = Path(v["_path"]).parent.relative_to(root).as_posix() + "/report.md"
        label = f"{v['claim_id']} " if v.get("claim_id") else ""
        answer = (v.get("answer") or {}).get("answer")
        if answer is None:
            words = [h["verdict"] for h in v["hypotheses"]]
            order = [*VERDICTS, *sorted(set(words) - set(VERDICTS))]
            said = NO_ANSWER
            where = "hypotheses: " + ", ".join(f"{words.count(w)} {w}" for w in order if w in words)
        else:
            dependent = tuned_value_dependent(v)  # the settings marked with the double dagger (one setting: its answer)
            said = (f"**{answer}**" + (f" {TUNED_ONCE_MARK}" if marked_tuned_once(v) else "")
                    + (f" {TUNED_VALUE_MARK}" if dependent and not v.get("settings") else ""))
            primaries = [h for h in v["hypotheses"] if h.get("role") == "primary"]
            answers = {s["name"]: s.get("answer", "") for s in v.get("settings") or []}
            against = parts_against(v)
            where = "<br>".join((f"{h['setting']}: {answers.get(h['setting'], '')}"
                                 f"{f' {TUNED_VALUE_MARK}' if h['setting'] in dependent else ''}; " if h.get("setting") else "") + effect_words(h)
                                + "".join(f"; {m}" for m in regime_misses(v, h))
                                + against_words(against.get(h.get("setting") or "", []))
                                for h in primaries) or "-"
        out.append(f"| {label}[`{v['name']}`]({link}) | {said} | {where} |")
    return out


FAVOURED = ("holds here", "smaller than claimed")


def parts_against(v: dict[str, Any]) -> dict[str, list[str]]:
    """Per setting (``""`` for a report without settings), the claim's secondary hypotheses that came out
    *contradicted* where the setting's answer favours the claim (``holds here``, ``smaller than claimed``).

    The answer is the primary's (docs/design.md: secondaries qualify it), so a claim of two parts can "hold" on its
    headline while its other part runs the other way (B3: the deeper plain net degrades, yet with residual links the
    deeper net is *not* the better one). A reader of the answer alone would take the whole claim as holding; the row
    names the part that did not, next to the answer. Sanity checks are not parts of the claim, exploratory ones are
    not decided, and inconclusive ones are no evidence against it: only ``contradicted`` counts."""
    if v.get("control") or not (v.get("answer") or {}).get("answer"):
        return {}
    answers = {s["name"]: s.get("answer", "") for s in v.get("settings") or []}
    out: dict[str, list[str]] = {}
    for h in v.get("hypotheses") or []:
        if (h.get("role") or "secondary") != "secondary" or h.get("verdict") != "contradicted":
            continue
        where = h.get("setting") or ""
        answer = answers.get(where, "") if answers else (v.get("answer") or {}).get("answer", "")
        if answer in FAVOURED:
            out.setdefault(where, []).append(h["name"])
    return out


def against_words(names: list[str]) -> str:
    """The README's words for :func:`parts_against` in one setting ('' when none)."""
    if not names:
        return ""
    return (f"; part of the claim contradicted here: {names[0]}" if len(names) == 1
            else f"; parts of the claim contradicted here ({len(names)}): " + "; ".join(names))


def regime_misses(v: dict[str, Any], primary: dict[str, Any]) -> list[str]:
    """Each failed regime check that puts a setting's primary hypothesis out of regime, with what was measured against
    what it needed (issue 28: such an answer says the measured value): the checks are in the setting's own verdict, one
    folder down from the claim's (or in the report itself when it has no settings)."""
    setting = primary.get("setting")
    where = {s["name"]: s for s in v.get("settings") or []}
    if setting in where:
        if where[setting].get("answer") != "out of regime" or not where[setting].get("report"):
            return []
        path = Path(v["_path"]).parent / Path(where[setting]["report"]).with_name("verdict.json")
        checks = json.loads(path.read_text()).get("regime") or [] if path.is_file() else []
    else:
        if (v.get("answer") or {}).get("answer") != "out of regime":
            return []
        checks = v.get("regime") or []
    out = []
    for c in checks:
        if primary["name"] not in (c.get("hypotheses") or [primary["name"]]):
            continue  # a check guarding other hypotheses only
        for arm, a in c["arms"].items():
            if not a["met"]:
                side = "above" if c["direction"] == "higher" else "below"
                out.append(f"regime check missed: `{c['metric']}` of `{arm}` {_f(a['mean'])} (n {a['n']}), needed {side} {_f(c['bar'])}")
    return out


def rows(reports: list[dict[str, Any]], root: Path) -> list[tuple[tuple, str]]:
    """(order, row) per hypothesis of every report."""
    out = []
    for v in reports:
        link = Path(v["_path"]).parent.relative_to(root).as_posix() + "/report.md"
        label = f"{v['claim_id']} " if v.get("claim_id") else ""
        answer = (v.get("answer") or {}).get("answer")
        for i, h in enumerate(v["hypotheses"]):
            first = (f"{label}[`{v['name']}`]({link})" + (f"<br>answer: **{answer}**" if answer else "")
                     + (f"<br>revised: {v['revised']}" if v.get("revised") else "")) if i == 0 else ""
            effect = "-" if h["n"] == 0 or not math.isfinite(h["mean_diff"]) else difference_text(h)
            sentence = plain_sentence(h)
            where = f"[{h['setting']}] " if h.get("setting") else ""  # a claim answered in several settings
            out.append((claim_order(v.get("claim_id"), v["name"]) + (i,),
                        f"| {first} | {where}{h['name']} | {predicted_text(h)} | {effect} | {h['n']} | **{h['verdict']}** | {sentence} |"))
    return out


def unsized(results_dir: Path, root: Path, profile: str = "quick") -> list[tuple[tuple, str]]:
    """Rows for claims whose committed pilot found no budget at which the standard arm learned (no report)."""
    out = []
    for path in pilot_files(results_dir):
        pilot = json.loads(path.read_text())
        if path.parent.name != "pilot" or pilot.get("chosen") is not None or pilot.get("profile") != profile or (path.parents[1] / profile / "verdict.json").exists():
            continue
        last = pilot["candidates"][-1]
        failed = [g for g in last["gates"] if not g["passed"]]
        why = (f"`{failed[0]['metric']}` {_f(failed[0]['mean'])} against a bar of {_f(failed[0]['bar'])}" if failed
               else f"{_f(last['late_share_mean'])} of its progress still in the last half")
        link = path.parent.relative_to(root).as_posix() + "/pilot.md"
        claim_id = specs.load(pilot["name"]).claim_id if pilot["name"] in specs.available() else ""
        out.append((claim_order(claim_id, pilot["name"]) + (0,),
                    f"| {claim_id} [`{pilot['name']}`]({link}) | - | - | - | - | **no budget yet** | The standard arm `{pilot['arm']}` "
                    f"did not learn at any candidate budget up to {' '.join(f'`{o}`' for o in last['overrides'])} ({why}); "
                    "no comparison was run. |"))
    return out


def answer_counts(reports: list[dict[str, Any]]) -> str:
    """Claims counted by their claim-level answer (issue 26), and how many have none yet (no primary declared)."""
    from labbench.ablation.results import ANSWERS

    answered: dict[str, list[str]] = {}
    controls: list[str] = []
    without = 0
    for v in reports:
        answer = (v.get("answer") or {}).get("answer")
        if v.get("control") and answer is not None:  # an A/A control's answer is the method's error, not a claim's
            controls.append(f"{v.get('claim_id') or v['name']} {answer}")
            continue
        if answer is None:
            without += 1
            continue
        answered.setdefault(answer, []).append(v.get("claim_id") or v["name"])
    order = [*ANSWERS, *sorted(set(answered) - set(ANSWERS))]  # then the answers across settings ("holds in 2 of 2 settings")
    parts = [f"{a}: {len(answered[a])} ({', '.join(sorted(answered[a]))})" for a in order if a in answered]
    head = "Claims by answer: " + ("; ".join(parts) if parts else "none answered yet")
    tail = (f"; {without} report(s) without a primary hypothesis, so without a claim-level answer (their hypotheses' verdicts below)"
            if without else "")
    checked = (f" Controls, not counted with the claims (identical arms: a decided primary is a false positive): "
               f"{'; '.join(sorted(controls))}." if controls else "")
    return head + tail + "." + checked


TUNED_AA = Path("docs") / "bench" / "tuned-aa.json"  # the tuned A/A control's measurement (scripts/tuned_aa.py)
TUNED_ONCE_MARK = "†"


def chose_once(verdict: dict[str, Any]) -> bool:
    """Whether a setting's report chose some arm's tuned value once on shared tuning seeds (not nested) where the
    choice could differ between arms: as ``validation.chooses_once`` for the spec, read from what ran (each arm's
    ``tuned``: a follower says ``followed``; nested tuning has a block per final seed)."""
    arms = verdict.get("arms") or {}
    choosers = [a for a, x in arms.items() if x.get("tuned") and not x["tuned"].get("followed")]
    if not choosers:
        return False
    if len(choosers) == 1 and all(a in choosers or (x.get("tuned") or {}).get("followed") for a, x in arms.items()):
        return False
    return any(len(arms[a]["tuned"].get("per_block") or [None]) < len(arms[a].get("seeds") or ()) for a in choosers)


def setting_verdicts(v: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-setting verdicts behind a report (itself where it answers in one setting)."""
    folder = Path(v["_path"]).parent
    paths = [folder / Path(s["report"]).with_name("verdict.json") for s in v.get("settings") or [] if s.get("report")]
    return [json.loads(p.read_text()) for p in paths if p.is_file()] or [v]


def marked_tuned_once(v: dict[str, Any]) -> bool:
    """Whether a report's answer carries the tuned-once mark: a claim's answer (controls apart) whose arms chose their
    tuned values once in any setting (the README's dagger, the site's chip)."""
    return bool((v.get("answer") or {}).get("answer")) and not v.get("control") and any(chose_once(s) for s in setting_verdicts(v))


def tuned_once_claims(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reports whose answers carry the tuned-once mark."""
    return [v for v in reports if marked_tuned_once(v)]


TUNED_VALUE_MARK = "‡"


def tuned_value_dependent(v: dict[str, Any]) -> list[str]:
    """The settings of a claim whose primary's effect changes side with the value an arm's nested tuning chose per
    seed (``results.tuned_value_split``; computed from the verdict file where it predates the field). Controls apart."""
    from labbench.ablation.results import tuned_value_split

    if not (v.get("answer") or {}).get("answer") or v.get("control"):
        return []
    out = []
    for s in setting_verdicts(v):
        for h in s.get("hypotheses") or []:
            if h.get("role") != "primary":
                continue
            split = h["tuned_split"] if "tuned_split" in h else tuned_value_split(h, s.get("arms") or {})
            if split and split["depends"]:
                where = s.get("setting")
                out.append(where.get("name", "") if isinstance(where, dict) else h.get("setting") or "")
    return out


def marked_claims(reports: list[dict[str, Any]], settings_of) -> tuple[int, str]:
    """How many reports ``settings_of`` marks (it gives the settings it marks, ``""`` for a report without settings),
    and their names for a sentence: ``B3 (mlp-mnist1d); D4 (mlp-digits)``."""
    marked = [(v, list(where)) for v in reports if (where := settings_of(v))]
    names = "; ".join(f"{v.get('claim_id') or v['name']}" + (f" ({', '.join(w for w in where if w)})" if any(where) else "")
                      for v, where in marked)
    return len(marked), names


def tuned_value_sentence(reports: list[dict[str, Any]]) -> str:
    """Which answers rest on a mixture of tuned values whose effects lie on opposite sides (the README's double dagger)."""
    count, names = marked_claims(reports, tuned_value_dependent)
    if not count:
        return ""
    return (f"{TUNED_VALUE_MARK} Depends on the tuned value: in {count} answered claim(s) the primary's effect lies on "
            "opposite sides of its margin in the seeds whose arm was tuned to one value and in those tuned to another (an "
            "exact permutation test of the two groups at alpha; `results.tuned_value_split`): the verdict is the mixture "
            f"nested tuning drew when the values tied on the tuning metric, not an effect at either value: {names}.")


def against_sentence(reports: list[dict[str, Any]]) -> str:
    """Which answers that favour the claim carry a part of it contradicted (:func:`parts_against`), in one sentence."""
    count, names = marked_claims(reports, parts_against)
    if not count:
        return ""
    return (f"Part of the claim contradicted: in {count} claim(s) a setting's answer favours the claim (its primary "
            "hypothesis, the headline) while a secondary hypothesis, another part of the claim, came out contradicted "
            f"there; the row names it, and the answer should be read as covering the headline only: {names}.")


def tuning_sentence(reports: list[dict[str, Any]], root: Path) -> str:
    """Which answers rest on arms tuned once, and what the tuned A/A control measured for that procedure (from
    ``docs/bench/tuned-aa.json``): the README marks them, since the method now refuses the procedure for a new spec."""
    marked = tuned_once_claims(reports)
    if not marked:
        return ""
    path = root / TUNED_AA
    rates = ""
    if path.is_file():
        aa = json.loads(path.read_text())
        def share(proc: str) -> str:
            return " and ".join(f"{100 * max(h['false_positive'] for h in info['procedures'][proc]['hypotheses'].values()):.1f}% ({name})"
                                for name, info in aa["settings"].items())
        rates = (f": in the tuned A/A control (two identical arms, each tuned so) that procedure decided a hypothesis (the worse of its two) in "
                 f"{share('best of 3')} of repetitions, against a bar of {100 * aa['bar']:.0f}%; nested tuning, {share('nested')}")
    names = ", ".join(v.get("claim_id") or v["name"] for v in marked)
    waiting = [v.get("claim_id") or v["name"] for v in marked if (root / "docs" / "preregistered" / f"{v['name']}.yaml").is_file()]
    successors = (f" Nested successors are pre-registered for {', '.join(waiting)} "
                  "([docs/preregistered](docs/preregistered/README.md)), to be run." if waiting else "")
    return (f"{TUNED_ONCE_MARK} Tuned once: {len(marked)} answered claim(s) chose each arm's tuned value once, on tuning seeds "
            f"shared by every final seed{rates} ([docs/method.md](docs/method.md), \"Tuning\"). Their answers stand on their "
            f"runs, but where an arm's choice was a near-tie on the tuning metric the difference may be the choice's, not "
            f"the arms': each is to be re-run with `tuning.nested`, which `labbench validate` now requires of a new spec: {names}."
            f"{successors}")


def budget_sentence(results_dir: Path, root: Path) -> str:
    """How each quick budget was reached, from the committed pilots (``pilot.json``, one per claim or per setting):
    how many met the rule and which were capped at their largest candidate (the standard arm still improving there)."""
    pilots = []
    for path in pilot_files(results_dir):
        pilot = json.loads(path.read_text())
        chosen = pilot.get("chosen")
        candidate = pilot["candidates"][chosen] if chosen is not None and chosen < len(pilot["candidates"]) else None
        budget = ", ".join(_count(o.split("=", 1)[1]) + " " + o.split("=", 1)[0].rsplit(".", 1)[-1].removeprefix("max_")
                           for o in (candidate or {}).get("overrides", []) if o.split("=", 1)[0] in ("trainer.max_steps", "trainer.max_epochs"))
        label = pilot_label(pilot)
        pilots.append((label, bool(pilot.get("capped")), chosen is None, budget, path.with_suffix(".md").relative_to(root).as_posix()))
    met = [p for p in pilots if not p[1] and not p[2]]
    capped = [p for p in pilots if p[1]]
    unsized_ = [p for p in pilots if p[2]]
    out = (f"Budgets: {len(met)} of {len(pilots)} committed pilots met the rule (the standard arm passed its gate with at most "
           "10% of its progress in the last half of the budget)")
    if capped:
        out += ("; capped at their largest candidate, the standard arm still improving there, so their verdicts are read at "
                "that budget: " + ", ".join(f"[`{label}`]({path}) ({budget})" for label, _, _, budget, path in capped))
    if unsized_:
        out += "; no budget found: " + ", ".join(f"[`{label}`]({path})" for label, _, _, _, path in unsized_)
    return out + "."


SETTING_CAP_MINUTES = 20  # issue 28, item 6: a setting's quick profile on the 2-core CPU


def time_sentence(reports: list[dict[str, Any]], results_dir: Path) -> str:
    """What the catalog costs, measured: the training wall time of every run behind the committed quick reports (each
    run's own time from its record, summed, tuning included; ``verdict.json``'s ``wall_time_s``) and of the pilots
    (each candidate's), and the settings whose runs alone exceed the cap even at two parallel jobs (more than 2 x 20
    minutes summed)."""
    runs = sum(v.get("wall_time_s") or 0.0 for v in reports)
    pilots = sum(c.get("wall_time_s") or 0.0  # per candidate tried (its tuning runs included)
                 for p in pilot_files(results_dir)
                 for c in json.loads(p.read_text())["candidates"])
    per_setting = []
    for v in reports:
        parts = [(f"{v['name']}/{s['name']}", s.get("wall_time_s")) for s in v.get("settings") or []] or [(v["name"], v.get("wall_time_s"))]
        per_setting += [(label, t) for label, t in parts if t]
    over = [(label, t) for label, t in per_setting if t > 2 * 60 * SETTING_CAP_MINUTES]
    out = (f"Time, measured: the runs behind these {len(reports)} reports trained for {runs / 3600:.1f} hours in all, the pilots "
           f"for {pilots / 3600:.1f} more (each run's own wall time on the 2-core CPU, summed: one run at a time; `--jobs 2` "
           "about halves the elapsed time)")
    if over:
        out += (f"; over the {SETTING_CAP_MINUTES}-minute cap for a setting's quick profile even at two jobs (more than "
                f"{2 * SETTING_CAP_MINUTES} minutes of runs): " + ", ".join(f"`{label}` ({t / 60:.0f} min)" for label, t in sorted(over)))
    return out + "."


def _count(value: str) -> str:
    """``6000`` -> ``6,000``; an interpolation (a budget in samples) stays as written."""
    return f"{int(value):,}" if value.isdigit() else value


def markdown(results_dir: Path, root: Path, profile: str = "quick") -> str:
    """The README block: claims counted by answer, one row per claim with its answer, then one row per hypothesis,
    linked to its report (and one per claim still without a budget)."""
    reports = load_reports(results_dir, profile)
    lines = [START, "", answer_counts(reports), "",
             "| claim | answer | each setting: its answer; the primary hypothesis's effect |", "|---|---|---|",
             *claim_rows(reports, root), "",
             "Every hypothesis of every report (a claim answered in several settings names the setting):", "",
             "| claim | hypothesis | predicted | effect [95% CI] | seeds | verdict | where it differs from the claim |",
             "|---|---|---|---|---|---|---|", *(row for _, row in sorted(rows(reports, root) + unsized(results_dir, root, profile))), "",
             "Effect: the paired difference, positive = as predicted (docs/method.md). Generated from the committed "
             "`verdict.json` files by `python scripts/readme_results.py`; a test fails when this table is out of date.", "",
             *([tuning, ""] if (tuning := tuning_sentence(reports, root)) else []),
             *([split, ""] if (split := tuned_value_sentence(reports)) else []),
             *([against, ""] if (against := against_sentence(reports)) else []),
             budget_sentence(results_dir, root), "", time_sentence(reports, results_dir), "", END]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block`` (which carries the markers)."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"the README has no {START} ... {END} block to fill")
    return pattern.sub(lambda _: block, text)
