"""A claim answered in several settings: one answer across them, and the report that says so.

A verdict in one setting is a fact about that setting. A spec's ``settings`` name the data sets or
architectures where the claim's mechanism is expected (each with its reason, written before it
runs); ``labbench reproduce`` answers every one (``Spec.in_setting``: each an ordinary reproduction
with its own budget, store folder and report) and this module joins them:

- each setting keeps its own report and claim-level answer (``holds here``, ``not shown``, ...);
- across settings, the primary hypotheses form one family: Holm's correction across the settings
  where the primary was tested keeps the chance that *any* setting says "holds" (or "does not
  hold") by accident at alpha. A setting whose answer needed its own alpha and not the corrected
  one counts as ``not shown`` in the tally, and says so;
- the claim's answer: ``holds in k of n settings``, ``setting-dependent`` (holds in one, does not
  hold in another), ``does not hold in k of n settings``, ``smaller than claimed in k of n
  settings``, or, where no setting decided, ``not shown`` / ``out of regime`` / ``setup failed``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from labbench.ablation.results import CONTROL_READING
from labbench.ablation.spec import Spec, fingerprint
from labbench.record import write_json_atomic

DECIDED = ("holds here", "does not hold here", "smaller than claimed")


def corrected_answers(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each setting's answer after Holm's correction of the primaries across the settings.

    ``verdicts``: each setting's ``verdict.json`` (with ``answer`` and the primary among its
    hypotheses). Returns per setting ``{answer, answer_alone, p, p_across}``: ``answer_alone`` is the
    setting's own answer (primary at alpha), ``answer`` the one the tally counts.
    """
    from labbench.ablation.results import CONTROL_ANSWERS, control_answer, size_verdict
    from labbench.ablation.stats import ALPHA, decide, holm

    primaries = []
    for v in verdicts:
        answer = v.get("answer") or {}
        primary = next((h for h in v.get("hypotheses", []) if h.get("role") == "primary"), None)
        tested = primary is not None and answer.get("answer") not in ("setup failed", "out of regime") \
            and primary["verdict"] not in ("undertrained", "out of regime")
        primaries.append(primary if tested else None)
    ps = [p["p_value"] if p is not None else math.nan for p in primaries]
    adjusted = holm([p for p in ps if math.isfinite(p)])
    it = iter(adjusted)
    across = [next(it) if math.isfinite(p) else math.nan for p in ps]
    out = []
    for v, primary, p, q in zip(verdicts, primaries, ps, across):
        alone = (v.get("answer") or {}).get("answer", "not shown")
        answer = alone
        if primary is not None and alone in (*DECIDED, "not shown", *CONTROL_ANSWERS.values()):
            verdict = size_verdict(primary, decide(q, primary["mean_diff"], primary.get("margin", 0.0), ALPHA))
            answer = {"supported": "holds here", "smaller than claimed": "smaller than claimed",
                      "contradicted": "does not hold here"}.get(verdict, "not shown")
            answer = control_answer(answer) if v.get("control") else answer
        out.append({"answer": answer, "answer_alone": alone, "p": p, "p_across": q})
    return out


def across_settings(names: list[str], answers: list[dict[str, Any]], control: bool = False) -> dict[str, Any]:
    """The claim's one answer from its settings' corrected answers (:func:`corrected_answers`); a control's
    (``control``: identical arms) counts its false positives instead."""
    n = len(answers)
    words = [a["answer"] for a in answers]
    count = {w: words.count(w) for w in set(words)}
    holds, fails, smaller = count.get("holds here", 0), count.get("does not hold here", 0), count.get("smaller than claimed", 0)
    if control:
        false, clean = count.get("false positive", 0), count.get("no false positive", 0)
        answer = (f"false positive in {false} of {n} settings" if false else
                  f"no false positive in {clean} of {n} settings" if clean else
                  "out of regime" if count.get("out of regime", 0) == n else "setup failed" if count.get("setup failed", 0) == n else "not shown")
    elif holds and fails:
        answer = "setting-dependent"
    elif holds:
        answer = f"holds in {holds} of {n} settings"
    elif fails:
        answer = f"does not hold in {fails} of {n} settings"
    elif smaller:
        answer = f"smaller than claimed in {smaller} of {n} settings"
    elif count.get("out of regime", 0) == n:
        answer = "out of regime"
    elif count.get("setup failed", 0) == n:
        answer = "setup failed"
    else:
        answer = "not shown"
    parts = []
    for name, a in zip(names, answers):
        held_back = (f" (alone: {a['answer_alone']}; not after Holm across the {n} settings, p {a['p_across']:.3g})"
                     if a["answer"] != a["answer_alone"] else "")
        parts.append(f"{name}: {a['answer']}{held_back}")
    return {"answer": answer, "because": "; ".join(parts)}


def combined_verdict(spec: Spec, profile: str, verdicts: list[dict[str, Any]], report_dirs: list[Path], out_dir: Path) -> dict[str, Any]:
    """The claim's ``verdict.json`` across its settings: each setting's answer, the answer across them, and every
    hypothesis of every setting (marked with its setting) for the scoreboard."""
    answers = corrected_answers(verdicts)
    names = [v["setting"]["name"] for v in verdicts]
    across = across_settings(names, answers, control=spec.control)
    primary = next((h["name"] for v in verdicts for h in v.get("hypotheses", []) if h.get("role") == "primary"), None)
    settings = []
    from labbench.ablation.report import difference_text, predicted_text

    for v, a, d in zip(verdicts, answers, report_dirs):
        first = next((h for h in v.get("hypotheses", []) if h.get("role") == "primary"), None)
        settings.append({
            "primary_effect": (f"{predicted_text(first).replace('`', '')}: {difference_text(first)}, n {first['n']}"
                               if first is not None and first.get("n") else "-"),
            **v["setting"], "answer": a["answer"], "answer_alone": a["answer_alone"], "p_primary": a["p"], "p_across": a["p_across"],
            "line": (v.get("answer") or {}).get("setting", ""), "because": (v.get("answer") or {}).get("because", ""),
            "report": Path(os.path.relpath(d, out_dir)).as_posix() + "/report.md", "spec_hash": v["spec_hash"], "wall_time_s": v.get("wall_time_s"),
        })
    first = verdicts[0]
    return {
        "name": spec.name, "claim_id": spec.claim_id, "claim": spec.claim, **({"control": True} if spec.control else {}),
        "profile": profile, "spec_ref": spec.ref,
        "spec_hash": fingerprint(spec, profile), "method": first.get("method"), "alpha": first.get("alpha"),
        **({"revised": spec.revised} if spec.revised else {}),
        "answer": {**across, "primary": primary, "setting": f"{len(settings)} settings: " + "; ".join(s["name"] for s in settings)},
        "settings": settings,
        "hypotheses": [{**h, "setting": v["setting"]["name"]} for v in verdicts for h in v.get("hypotheses", [])],
        "gates_declared": any(a.get("gates") for v in verdicts for a in v.get("arms", {}).values()),
        "wall_time_s": round(sum(v.get("wall_time_s") or 0.0 for v in verdicts), 1),
    }


def render(verdict: dict[str, Any]) -> str:
    """``report.md`` of the claim across its settings: the answer, then one section per setting linking its report."""
    answer = verdict["answer"]
    lines = [f"# {verdict['name']}: the claim across its settings (`{verdict['profile']}` profile)", "",
             f"**Claim{' ' + verdict['claim_id'] if verdict.get('claim_id') else ''}.** {verdict['claim']}", "",
             f"**Answer: {answer['answer']}.** {answer['because']}.", "",
             *([CONTROL_READING, ""] if verdict.get("control") else []),
             *([f"**Revised.** {verdict['revised']}", ""] if verdict.get("revised") else []),
             f"Primary hypothesis: {answer.get('primary') or '-'}. Each setting's primary is tested at alpha = "
             f"{verdict.get('alpha')} in its own report; the tally corrects the primaries across the settings (Holm), so the "
             "chance that any setting answers by accident stays at alpha.", "",
             "| setting | why it is where the mechanism is expected | run in | primary: predicted, difference [95% CI] | answer | primary p (alone / across) |",
             "|---|---|---|---|---|---|"]
    for s in verdict["settings"]:
        lines.append(f"| [{s['name']}]({s['report']}) | {s['why']} | {s['line']} | {s.get('primary_effect', '-')} | **{s['answer']}** | "
                     f"{_p(s['p_primary'])} / {_p(s['p_across'])} |")
    lines += ["", "Every hypothesis, its runs and curves are in each setting's report (linked above).", "",
              f"Spec hash `{verdict['spec_hash']}`. Reproduce: `labbench reproduce {verdict.get('spec_ref', verdict['name'])} --profile {verdict['profile']}` "
              "(every setting; `--setting NAME` for one).", ""]
    return "\n".join(lines)


def _p(p: float | None) -> str:
    return "-" if p is None or not math.isfinite(p) else f"{p:.3g}"


def write(verdict: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "verdict.json", verdict)
    tmp = out_dir / "report.md.tmp"
    tmp.write_text(render(verdict))
    tmp.replace(out_dir / "report.md")
    return out_dir / "report.md"


def reproduce_all(spec: Spec, profile: str = "quick", settings: list[str] | None = None, report_dir: str | Path | None = None,
                  root: str | Path | None = None, on_setting=None, **kwargs: Any) -> tuple[list, dict[str, Any] | None, Path | None]:
    """Reproduce the claim in each of ``settings`` (default: all), then write the answer across them.

    Returns the settings' outcomes, the combined verdict and its report (None when only some settings were asked for:
    a claim's answer needs every setting). ``kwargs`` go to :func:`labbench.ablation.engine.reproduce`.
    """
    from labbench.ablation import engine

    return _each(spec, profile, settings, report_dir, root, on_setting,
                 lambda sub, out: engine.reproduce(sub, profile, root=root, report_dir=out, **kwargs))


def rebuild_all(spec: Spec, profile: str = "quick", settings: list[str] | None = None, report_dir: str | Path | None = None,
                root: str | Path | None = None, extra: list[str] | tuple[str, ...] = ()) -> tuple[list, dict[str, Any] | None, Path | None]:
    """Rebuild every setting's report, and the answer across them, from stored runs only."""
    from labbench.ablation import engine

    return _each(spec, profile, settings, report_dir, root, None,
                 lambda sub, out: engine.rebuild_report(sub, profile, root, out, extra))


def _each(spec, profile, settings, report_dir, root, on_setting, one):
    from labbench.ablation.store import Store, default_root

    names = settings or spec.setting_names()
    base = Path(report_dir) if report_dir else Store(root or default_root(), spec.name, profile).dir
    outcomes = []
    for name in names:
        sub = spec.in_setting(name)
        if on_setting:
            on_setting(sub)
        outcomes.append(one(sub, base / name if report_dir else None))
    if list(names) != spec.setting_names():
        return outcomes, None, None
    return (outcomes, *answer_across(spec, profile, outcomes, report_dir, root))


def answer_across(spec: Spec, profile: str, outcomes: list, report_dir: str | Path | None = None,
                  root: str | Path | None = None) -> tuple[dict[str, Any], Path]:
    """The claim's ``verdict.json`` and ``report.md`` from every setting's outcome, in ``report_dir`` (default: the
    claim's own store folder, ``<root>/<name>/<profile>``)."""
    from labbench.ablation.store import Store, default_root

    base = Path(report_dir) if report_dir else Store(root or default_root(), spec.name, profile).dir
    verdict = combined_verdict(spec, profile, [o.verdict for o in outcomes], [o.report.parent for o in outcomes], base)
    return verdict, write(verdict, base)
