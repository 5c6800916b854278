"""The ablation spec (``experiments/<name>.yaml``): load it and validate it with clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from labbench.ablation.metrics import parse_metric
from labbench.ablation.stats import RECOMMENDED_SEEDS, seeds_for_power

SPEC_KEYS = {
    "name": "the ablation's name (the file name without .yaml)",
    "claim_id": "the claim's id in claims.md (e.g. A2)",
    "claim": "the claim, in our own words",
    "sources": "where the claim is made: seed file and question",
    "reference": "the published result it should echo",
    "factors": "config keys (groups or dotted keys) the arms vary; nothing else may differ",
    "base": "overrides applied to every arm",
    "arms": "arm name -> overrides (or {overrides: [...], seed_offset: N})",
    "metrics": "metric expressions reported for every arm",
    "hypotheses": "the predictions the verdicts answer",
    "tuning": "optional per-arm nuisance tuning on the validation split",
    "profiles": "smoke / quick / full: seeds (default: the method's recommended 8), overrides, estimated minutes",
    "notes": "optional remarks shown in the report",
    "revised": "optional: one or two sentences on what changed since the spec's last reported version, and why (shown in the report and the README row; prose, not hashed)",
    "curves": "optional curve keys plotted per arm in curves.png (default: train/loss, val/loss, val/acc)",
    "map": "optional suggested map axes {axes: {key: [values]}, minutes_per_cell: {profile: minutes}}",
    "gates": "what 'learned' means: [{metric, threshold (a number or a baseline: chance, unigram, bigram, modes, hq_share, confidence), fraction, arms}]",
    "failure": "optional {metric key: value} a diverged run counts as, where the task declares none (or to replace it)",
    "batchnorm_eval": "required where an arm has BatchNorm: {statistics: running | precise, why: ...}: the population statistics its evaluations read, and what that choice measures (a profile may set its own)",
    "predicted_to_fail": "arms the claim predicts to fail: not gated (their failure is a finding); a fails_to_learn or diverged hypothesis states it",
    "regime": "measured preconditions for the claim's mechanism: [{name, metric, arms, threshold, direction, hypotheses}]; where one fails, the hypotheses that depend on it are out of regime",
    "pilot": "how a profile's budget was sized before any comparison: {arm, candidates, seeds, metric, late_progress, profile, fallback (none | largest)}",
    "control": "optional, true for an A/A control: every arm runs the same config (seeds apart), so the claim-level answer reads as the method's error: 'false positive' where the primary is decided, 'no false positive' where it is not",
    "settings": "optional: the settings the claim is answered in, name -> {why, overrides, profiles: {profile: {overrides, seeds, estimated_minutes, description}}, pilot, batchnorm_eval}; every profile runs each (labbench reproduce answers them all)",
}
SETTING_KEYS = {
    "why": "why this setting is where the claim's mechanism is expected (the literature), written before it runs",
    "description": "the setting in a few words (data, model)",
    "overrides": "overrides added to base for every arm and profile of this setting",
    "arms": "arm -> overrides added to that arm in this setting: an arm's meaning said in this setting's model (one unit wide: model.width=1 for an MLP, model.channels=[1,1] for a CNN)",
    "gates": "this setting's own competence gates, replacing the spec's (a metric its task logs: a language model's loss where the spec's gate reads an accuracy)",
    "regime": "this setting's own regime checks, replacing the spec's (a precondition said in this setting's units or metrics)",
    "only_arms": "the arms this setting runs (default: every arm), where the others mean nothing in its model (a bidirectional language model); hypotheses, gates, regime checks and tuning entries on the others are left out of it, the primary never",
    "profiles": "profile -> {overrides, seeds, estimated_minutes, description, arm_overrides, tuning_grid}: this setting's own budget (overrides applied after the profile's; a tuning_grid replaces the profile's, for a setting whose rates live elsewhere)",
    "pilot": "keys of the spec's pilot this setting replaces (usually candidates), or a whole pilot section",
    "batchnorm_eval": "the BatchNorm evaluation decision for this setting, where it differs from the spec's",
}
SETTING_PROFILE_KEYS = {"overrides", "seeds", "estimated_minutes", "description", "arm_overrides", "tuning_grid"}
HYPOTHESIS_KEYS = {"name", "metric", "better", "worse", "direction", "margin", "note", "role", "min_effect", "min_effect_source"}
ROLES = ("primary", "secondary", "sanity")  # the claim's headline / what qualifies it / a check of the setup (never support)
TUNING_KEYS = {"param", "grid", "metric", "direction", "seeds", "repeats", "extend", "rule", "follow", "nested"}
GATE_KEYS = {"metric", "threshold", "fraction", "arms"}
REGIME_KEYS = {"name", "metric", "arms", "threshold", "fraction", "direction", "hypotheses", "note"}
RATE_METRICS = ("diverged", "fails_to_learn")  # per-seed 0 / 1 outcomes, decided by the exact sign-flip (McNemar) test
BASELINES = ("chance", "unigram", "bigram", "modes", "hq_share", "confidence", "failure")  # what the data modules and tasks record
# (baselines()); failure: the metric's failure value (the task's, or the spec's `failure`), what a model that learned nothing scores
PILOT_KEYS = {"arm", "arms", "candidates", "seeds", "metric", "late_progress", "profile", "fallback", "progress_from"}
PILOT_FALLBACKS = ("none", "largest")
PROFILE_KEYS = {"seeds", "overrides", "estimated_minutes", "description", "tuning_grid", "batchnorm_eval", "arm_overrides"}
BATCHNORM_STATISTICS = ("running", "precise")
DIRECTIONS = ("lower", "higher")
PROFILES = ("smoke", "quick", "full")


class SpecError(ValueError):
    """A spec is malformed; the message names the file, the key and what is valid."""


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...]
    seed_offset: int = 0  # A/A controls draw an arm's seeds from another range


@dataclass(frozen=True)
class BatchNormEval:
    """Which population statistics the BatchNorm arms' evaluations read, decided before any run.

    ``running``: the moving average kept in training (what a deployed network uses; it lags weights
    that move fast). ``precise``: re-estimated from training batches with the weights being evaluated
    (``norm.precise_batches`` > 0 in those arms, :mod:`labbench.probes.precise_bn`). ``why``: what the
    choice measures for this claim; the report prints it.
    """

    statistics: str
    why: str


@dataclass(frozen=True)
class Hypothesis:
    """``better`` beats ``worse`` on ``metric`` by more than ``margin`` (in metric units).

    ``direction`` says which values are better (``lower`` for a loss). A negative margin
    states non-inferiority ("matches or beats"). One side may be a number instead of an
    arm: the arm's runs are then compared with that fixed value ("covers fewer than 8 modes").
    """

    name: str
    metric: str
    better: str | float | tuple[str, str]  # an arm, a number (a fixed reference), or a pair (a, b): per seed a - b
    worse: str | float | tuple[str, str]
    direction: str
    margin: float = 0.0
    note: str = ""
    # primary: the claim's headline, tested alone at alpha; secondary: qualifies it (under Holm once the primary
    # is decided, exploratory otherwise); sanity: checks the setup or is true by construction, outside the family
    role: str = "secondary"
    min_effect: float | None = None  # the size the claim names (metric units, in the predicted direction)
    min_effect_source: str = ""  # where that number comes from


@dataclass(frozen=True)
class Gate:
    """An arm has learned when its mean ``metric`` over completed seeds beats ``fraction`` x ``threshold``.

    ``threshold``: a number, or the name of a baseline the runs record for the metric's
    split (``chance`` accuracy, the corpus's ``unigram`` / ``bigram`` cross-entropy).
    "Beats" follows the metric's declared direction. ``arms``: those it applies to (all).
    """

    metric: str
    threshold: str | float
    fraction: float = 1.0
    arms: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegimeCheck:
    """A measured precondition for the claim's mechanism: the mean of ``metric`` over the seeds of each of
    ``arms`` is beyond ``fraction`` x ``threshold`` on the ``direction`` side (``higher``: above). Where it
    is not, the ``hypotheses`` it guards (every one when empty) are ``out of regime``: the setting could not
    show the mechanism, which says nothing for or against the claim. ``threshold`` is a number, a baseline,
    or another arm's mean on the same metric (``{arm: NAME}`` in the spec, ``arm:NAME`` here): "the uncorrected
    first step is at least 3 times the corrected one" is ``threshold: {arm: corrected}, fraction: 3``."""

    name: str
    metric: str
    arms: tuple[str, ...]
    threshold: float | str
    direction: str
    fraction: float = 1.0
    hypotheses: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Tuning:
    """Per-arm grid search of one nuisance parameter on the validation split."""

    param: str | tuple[str, ...]  # one key, or several tuned jointly (a grid of value tuples: Loshchilov & Hutter's lr x wd)
    grid: dict[str, tuple[Any, ...]]  # arm -> values (equal length: equal budget)
    metric: str
    direction: str
    seeds: int = 1
    repeats: int = 1  # disjoint blocks of tuning seeds: does the choice survive other seeds?
    extend: int = 0  # a best value on the grid's edge: try up to this many more values beyond it, one grid step each
    rule: str = "best"  # best: the best mean; one_se: the smallest value within one standard error of it (labbench.tuning)
    follow: dict[str, str] = field(default_factory=dict)  # arm -> the tuned arm whose chosen value it takes (no tuning of its own)
    # nested: final seed i runs at the value chosen on block i of the tuning seeds (one block per final seed), so the
    # tuning's own noise lies inside every paired difference: the method study's tuned A/A stays at alpha only this way
    nested: bool = False

    @property
    def params(self) -> tuple[str, ...]:
        return (self.param,) if isinstance(self.param, str) else tuple(self.param)

    @property
    def ref(self) -> str:
        """How a command names this spec: its name where lookup by name finds this very file, else the path it was
        loaded from (a user's spec outside the searched folders), so every hint printed can be pasted as it is."""
        try:
            if find(self.name).resolve() == self.path.resolve():
                return self.name
        except SpecError:
            pass
        return str(self.path)

    @property
    def label(self) -> str:
        """The tuned key(s) as a reader sees them: ``optimizer.lr`` or ``optimizer.lr x optimizer.weight_decay``."""
        return " x ".join(self.params)

    def assignments(self, value: Any) -> list[str]:
        """The overrides that set ``value`` (one per key; a joint value is a tuple in the keys' order)."""
        values = (value,) if len(self.params) == 1 else tuple(value)
        return [f"{k}={format_value(v)}" for k, v in zip(self.params, values)]

    def show(self, value: Any) -> str:
        return ", ".join(self.assignments(value))


@dataclass(frozen=True)
class Pilot:
    """How ``profile``'s budget is sized from the standard-practice ``arm`` alone, before any comparison.

    ``candidates`` are override lists, cheapest first; the first one at which the arm (tuned
    as the spec tunes it) passes every gate that applies to it and makes at most
    ``late_progress`` of its progress on ``metric`` in the last half of the budget is the
    budget (labbench.ablation.pilot). The profile then carries that candidate's overrides.
    ``fallback``: what happens when no candidate meets the rule. ``none``: no budget, so no
    report of that profile may stand. ``largest``: the candidates are every budget that fits
    the profile's time cap, and the largest is the budget, marked ``capped`` in the pilot:
    the arms that miss a gate there make their hypotheses ``undertrained``, and an arm that
    passes its gates but still improves is answered at the cap, which the pilot says.

    ``arms`` (instead of one ``arm``): per-family budgets, for a claim that compares model families with
    recipes of their own (a VAE, a GAN and a DDPM), where one family's budget would leave another
    undertrained. Each listed arm is piloted alone by the same rule, from its own curve (no comparison
    steers any budget), and its chosen candidate goes into the profile's ``arm_overrides``; ``arm`` is
    then the arm being piloted (the first listed until ``for_arm`` picks another).
    """

    arm: str
    candidates: tuple[tuple[str, ...], ...]
    metric: str
    seeds: int = 3
    late_progress: float = 0.1
    profile: str = "quick"
    fallback: str = "none"
    progress_from: str = "failure"  # or a baseline the runs record (bigram): where the progress the rule counts starts
    arms: tuple[str, ...] = ()  # per-family budgets: every arm listed is piloted alone; empty: the one ``arm`` sizes the profile

    @property
    def per_arm(self) -> bool:
        return bool(self.arms)

    def for_arm(self, arm: str) -> Pilot:
        """This pilot sizing ``arm`` (one of ``arms``)."""
        if arm not in self.arms:
            raise SpecError(f"pilot of arm {arm!r}: the pilot sizes {', '.join(self.arms) or self.arm} (pilot.arms)")
        return dataclasses.replace(self, arm=arm)


@dataclass(frozen=True)
class Setting:
    """One setting the claim is answered in: a data set or architecture where its mechanism is expected,
    with ``why`` (the literature's reason), written before it runs. ``Spec.in_setting`` gives the spec it runs as."""

    name: str
    why: str
    description: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int
    overrides: tuple[str, ...]
    estimated_minutes: float | None = None
    description: str = ""
    tuning_grid: dict[str, tuple[Any, ...]] | None = None  # replaces tuning.grid in this profile
    batchnorm_eval: BatchNormEval | None = None  # replaces the spec's in this profile
    # per-family budgets (pilot.arms): each arm's own overrides in this profile, after the profile's and the arm's
    arm_overrides: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    claim_id: str
    claim: str
    sources: tuple[str, ...]
    reference: str
    factors: tuple[str, ...]
    base: tuple[str, ...]
    arms: tuple[Arm, ...]
    metrics: tuple[str, ...]
    hypotheses: tuple[Hypothesis, ...]
    profiles: dict[str, Profile]
    tuning: Tuning | None = None
    notes: str = ""
    revised: str = ""  # what changed since the last reported version, and why (prose: not in the fingerprint)
    curves: tuple[str, ...] = ()
    gates: tuple[Gate, ...] = ()
    failure: dict[str, float] = field(default_factory=dict)
    pilot: Pilot | None = None
    batchnorm_eval: BatchNormEval | None = None
    predicted_to_fail: tuple[str, ...] = ()
    regime: tuple[RegimeCheck, ...] = ()
    settings: tuple[Setting, ...] = ()  # the settings the claim is answered in (empty: the spec itself is the one setting)
    control: bool = False  # an A/A control: identical arms, its answer is the method's false positive or not (results.claim_answer)
    setting: str = ""  # set on the spec derived for one setting (Spec.in_setting)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def store_name(self) -> str:
        """The store folder's name: the ablation's, and the setting's below it (``causal-mask/char-lm``)."""
        return f"{self.name}/{self.setting}" if self.setting else self.name

    @property
    def ref(self) -> str:
        """How a command names this spec: its name where lookup by name finds this very file, else the path it was
        loaded from (a user's spec outside the searched folders), so every hint printed can be pasted as it is."""
        try:
            if find(self.name).resolve() == self.path.resolve():
                return self.name
        except SpecError:
            pass
        return str(self.path)

    @property
    def label(self) -> str:
        """How commands and reports name it: ``causal-mask``, or ``causal-mask/char-lm`` in a setting (as its store folder)."""
        return self.store_name

    def setting_names(self) -> list[str]:
        return [s.name for s in self.settings]

    def in_setting(self, name: str) -> Spec:
        """The spec as it runs in setting ``name``: base plus the setting's overrides, each profile with the setting's
        own budget, the setting's pilot and BatchNorm decision. An ordinary spec to the planner, the engine, the pilot
        and the report; its ``raw`` (hashed into reports) holds the setting's name and contents."""
        if name not in self.setting_names():
            valid = ", ".join(self.setting_names()) or "none (the spec declares no settings)"
            raise SpecError(f"{self.name}: no setting {name!r}; settings: {valid}")
        body = self.raw["settings"][name] or {}
        raw = {k: v for k, v in self.raw.items() if k != "settings"}
        raw["base"] = [*(self.raw.get("base") or []), *(body.get("overrides") or [])]
        arms = {}
        for arm, arm_body in self.raw["arms"].items():
            own = (body.get("arms") or {}).get(arm) or []
            if isinstance(arm_body, dict):
                arms[arm] = {**arm_body, "overrides": [*(arm_body.get("overrides") or []), *own]}
            else:
                arms[arm] = [*(arm_body or []), *own]
        raw["arms"] = arms
        profiles = {}
        for pname, pbody in (self.raw["profiles"] or {}).items():
            merged = dict(pbody or {})
            own = (body.get("profiles") or {}).get(pname) or {}
            for key, value in own.items():
                merged[key] = [*(merged.get("overrides") or []), *value] if key == "overrides" else value
            profiles[pname] = merged
        raw["profiles"] = profiles
        if body.get("pilot") is not None:
            inherited = {k: v for k, v in (self.raw.get("pilot") or {}).items()  # a setting's arm or arms replaces the other
                         if not (k in ("arm", "arms") and ({"arm", "arms"} & set(body["pilot"])))}
            raw["pilot"] = {**inherited, **body["pilot"]}
        if body.get("batchnorm_eval") is not None:
            raw["batchnorm_eval"] = body["batchnorm_eval"]
        if body.get("gates") is not None:
            raw["gates"] = body["gates"]
        if body.get("regime") is not None:
            raw["regime"] = body["regime"]
        if body.get("only_arms"):
            raw = only_arms(raw, list(body["only_arms"]), f"{self.name}: setting {name!r}")
        derived = parse(raw, self.path)
        setting = next(s for s in self.settings if s.name == name)
        return dataclasses.replace(derived, setting=name, settings=(setting,),
                                   raw={**raw, "setting": name})

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def tuning_grid(self, profile: str) -> dict[str, tuple[Any, ...]]:
        """The per-arm tuning grid in ``profile`` (a profile may use a smaller one)."""
        if self.tuning is None:
            return {}
        return self.profile(profile).tuning_grid or self.tuning.grid

    def batchnorm_decision(self, profile: str) -> BatchNormEval | None:
        """The BatchNorm evaluation statistics declared for ``profile`` (its own, else the spec's)."""
        return self.profile(profile).batchnorm_eval or self.batchnorm_eval

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise SpecError(f"{self.name}: no profile {name!r}; valid: {', '.join(self.profiles)}")
        return self.profiles[name]


def _names_arms(side: Any) -> list[str]:
    """The arm names a hypothesis side uses (none for a fixed number)."""
    if is_reference(side):
        return []
    return [str(a) for a in side] if isinstance(side, (list, tuple)) else [str(side)]


def only_arms(raw: dict[str, Any], keep: list[str], where: str) -> dict[str, Any]:
    """``raw`` cut down to the arms ``keep`` (a setting's ``only_arms``): the hypotheses, gates, regime checks,
    tuning grids and follows, failure predictions and pilot that name another arm are left out; the
    primary and the pilot arm must stay (a setting that cannot test the headline does not answer the claim)."""
    kept = set(keep)
    out = dict(raw)
    out["arms"] = {a: b for a, b in raw["arms"].items() if a in kept}
    hypotheses, dropped = [], []
    for h in raw.get("hypotheses") or []:
        uses = _names_arms(h.get("better")) + _names_arms(h.get("worse"))
        (hypotheses if set(uses) <= kept else dropped).append(h)
    lost = [h["name"] for h in dropped if h.get("role") == "primary"]
    if lost:
        raise SpecError(f"{where}: only_arms {keep} leaves out an arm of the primary hypothesis {lost[0]!r}; every setting "
                        "tests the primary (keep its arms, or answer this question in another spec)")
    out["hypotheses"] = hypotheses
    names = {h["name"] for h in hypotheses}
    gates = []
    for g in raw.get("gates") or []:
        arms = [a for a in g.get("arms") or [] if a in kept]
        if g.get("arms") and not arms:
            continue
        gates.append({**g, **({"arms": arms} if g.get("arms") else {})})
    out["gates"] = gates
    regime = []
    for c in raw.get("regime") or []:
        arms = [a for a in c.get("arms") or [] if a in kept]
        guarded = [h for h in c.get("hypotheses") or [] if h in names]
        if arms and (guarded or not c.get("hypotheses")):
            regime.append({**c, "arms": arms, **({"hypotheses": guarded} if c.get("hypotheses") else {})})
    if raw.get("regime") is not None:
        out["regime"] = regime
    if raw.get("predicted_to_fail") is not None:
        out["predicted_to_fail"] = [a for a in raw["predicted_to_fail"] if a in kept]
    tuning = raw.get("tuning")
    if isinstance(tuning, dict):
        tuning = dict(tuning)
        if isinstance(tuning.get("grid"), dict):
            tuning["grid"] = {a: g for a, g in tuning["grid"].items() if a in kept}
        if tuning.get("follow"):
            tuning["follow"] = {a: b for a, b in tuning["follow"].items() if a in kept and b in kept}
        out["tuning"] = tuning
    profiles = {}
    for pname, pbody in (raw.get("profiles") or {}).items():
        pbody = dict(pbody or {})
        if isinstance(pbody.get("tuning_grid"), dict):
            pbody["tuning_grid"] = {a: g for a, g in pbody["tuning_grid"].items() if a in kept}
        if isinstance(pbody.get("arm_overrides"), dict):
            pbody["arm_overrides"] = {a: o for a, o in pbody["arm_overrides"].items() if a in kept}
        profiles[pname] = pbody
    out["profiles"] = profiles
    pilot = raw.get("pilot")
    if pilot and pilot.get("arms"):
        pilot = out["pilot"] = {**pilot, "arms": [a for a in pilot["arms"] if a in kept]}
        if not pilot["arms"]:
            raise SpecError(f"{where}: only_arms {keep} leaves out every arm of pilot.arms; keep one")
    elif pilot and pilot.get("arm") not in kept:
        raise SpecError(f"{where}: only_arms {keep} leaves out the pilot's arm {pilot.get('arm')!r}; keep it, or give the "
                        "setting its own pilot arm (settings.NAME.pilot.arm)")
    out.pop("map", None)  # a map's cells are the whole spec's; map a setting with all its arms
    return out


def fingerprint(spec: Spec, profile: str, map_axes: bool = False) -> str:
    """A hash of everything in the spec that a ``profile`` report (or map) depends on.

    The parsed spec (comments do not count) with only this profile's settings (its time
    estimate and description left out), without the pilot (how the budget was found, not
    what ran), and without the map unless ``map_axes``. Committed reports carry it; a test
    fails when it no longer matches the spec, so a changed spec forces a re-run. ``batchnorm_eval`` is left
    out too: what it decides is in the arms' overrides (``norm.precise_batches``, hashed with them, and
    ``validate`` refuses a declaration they contradict); the rest is its reason, prose like a comment.
    """
    raw = {k: v for k, v in spec.raw.items() if k not in ("pilot", "map", "profiles", "batchnorm_eval", "settings", "revised")}
    body = dict(spec.raw["profiles"].get(profile) or {})
    raw["profiles"] = {profile: {k: v for k, v in body.items() if k not in ("estimated_minutes", "description", "batchnorm_eval")}}
    if spec.raw.get("settings") and not spec.setting:  # the whole claim: every setting's overrides and this profile's budget
        raw["settings"] = {
            name: {"overrides": (b or {}).get("overrides"), "arms": (b or {}).get("arms"),
                   **({"only_arms": b["only_arms"]} if (b or {}).get("only_arms") else {}),
                   **({"gates": b["gates"]} if (b or {}).get("gates") is not None else {}),
                   "profile": {k: v for k, v in (((b or {}).get("profiles") or {}).get(profile) or {}).items()
                               if k not in ("estimated_minutes", "description")}}
            for name, b in spec.raw["settings"].items()}
    if map_axes:
        raw["map"] = (spec.raw.get("map") or {}).get("axes")
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:12]


def is_reference(side: Any) -> bool:
    """Whether a hypothesis side is a fixed number rather than an arm name."""
    return isinstance(side, (int, float)) and not isinstance(side, bool)


def is_pair(side: Any) -> bool:
    """Whether a hypothesis side is a pair of arms (a, b): per seed, a's value minus b's."""
    return isinstance(side, (tuple, list)) and len(side) == 2


def arms_of(h: Hypothesis) -> list[str]:
    """The arms a hypothesis reads (numbers left out, pairs opened)."""
    out: list[str] = []
    for side in (h.better, h.worse):
        if is_pair(side):
            out += list(side)
        elif not is_reference(side):
            out.append(side)
    return list(dict.fromkeys(out))


SPECS_ENV = "LABBENCH_SPECS"  # more folders of specs, searched by name after the shipped ones (os.pathsep between folders)


def experiments_dir() -> Path:
    """The shipped specs (the repo's ``experiments/``, packaged as ``labbench.experiments``)."""
    return Path(str(resources.files("labbench.experiments")))


def spec_dirs() -> list[Path]:
    """Where a spec is looked up by name: the shipped ``experiments/``, the working directory's ``experiments/``, then
    the folders in ``$LABBENCH_SPECS`` (each once)."""
    extra = [Path(p).expanduser() for p in os.environ.get(SPECS_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for folder in [experiments_dir(), Path.cwd() / "experiments", *extra]:
        if not any(folder.resolve() == seen.resolve() for seen in out):
            out.append(folder)
    return out


def available() -> list[str]:
    """Every spec name lookup finds (the shipped ones and those in ``$LABBENCH_SPECS``)."""
    return sorted({p.stem for d in spec_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find(name_or_path: str) -> Path:
    """A spec by name (``xavier-vs-kaiming``, shipped or in a ``$LABBENCH_SPECS`` folder) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if path.is_file():
            return path
        raise SpecError(f"no spec file {name_or_path}: the path does not exist (from {Path.cwd()}); give a path to a spec "
                        f".yaml, or a name: {', '.join(available())}")
    for folder in spec_dirs():
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    folders = ", ".join(str(d) for d in spec_dirs()[1:])
    raise SpecError(f"no ablation named {name_or_path!r}; available: {', '.join(available())} (or give a path to a spec .yaml; "
                    f"names are looked up in the shipped experiments/, then in {folders} and the folders of ${SPECS_ENV}"
                    + ("" if os.environ.get(SPECS_ENV) else ", none set") + ")")


def load(name_or_path: str) -> Spec:
    path = find(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from err
    return parse(raw, path)


def _control(path: Path, raw: dict[str, Any], arms: list[Arm]) -> bool:
    """``control: true`` (an A/A control), checked: an answer read as the method's error needs arms that are the same
    config, so no factors and the same overrides in every arm (its seeds apart), in every setting too."""
    value = raw.get("control", False)
    if not isinstance(value, bool):
        raise _fail(path, f"control must be true or false (true: an A/A control whose arms are identical), got {value!r}")
    if not value:
        return False
    if raw.get("factors"):
        raise _fail(path, f"control: true declares identical arms, but factors names {raw['factors']}: an A/A control varies nothing")
    differ = sorted({a.name for a in arms if sorted(a.overrides) != sorted(arms[0].overrides)})
    if differ:
        raise _fail(path, f"control: true declares identical arms, but arm(s) {differ} have overrides other than "
                          f"{arms[0].name!r}'s {list(arms[0].overrides)}: an A/A control's arms differ only in their seeds (seed_offset)")
    if len({a.seed_offset for a in arms}) < len(arms):
        raise _fail(path, "control: true needs each arm on its own seeds (a different seed_offset per arm): identical arms on "
                          "the same seeds are the same runs, and their difference is zero by construction")
    for name, body in (raw.get("settings") or {}).items():
        per_arm = (body or {}).get("arms") or {} if isinstance(body, dict) else {}
        if len({tuple(sorted(per_arm.get(a.name) or ())) for a in arms}) > 1:
            raise _fail(path, f"settings.{name}.arms gives the arms different overrides, but control: true declares identical arms")
    return True


def _fail(path: Path, msg: str) -> SpecError:
    return SpecError(f"{path.name}: {msg}")


def _unknown(path: Path, where: str, got: set, valid: set | dict) -> None:
    extra = sorted(set(got) - set(valid))
    if extra:
        raise _fail(path, f"unknown key(s) {', '.join(extra)} in {where}; valid: {', '.join(sorted(valid))}")


def _strings(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, f"{where} must be a list of override strings like 'optimizer=sgd', got {value!r}")
    return tuple(value)


def _curves(path: Path, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, f"curves must be a list of logged metric keys like 'val/loss', got {value!r}")
    return tuple(value)


def format_value(value: Any) -> str:
    """A value as a Hydra override writes it (quoted where it holds spaces, commas or brackets)."""
    return repr(value) if isinstance(value, str) and any(c in value for c in " ,[]") else str(value)


def as_setting(value: Any) -> Any:
    """A tuned value as the code compares it: a joint value (a list after YAML or JSON) becomes a tuple."""
    return tuple(value) if isinstance(value, list) else value


def _direction(path: Path, where: str, value: Any) -> str:
    if value not in DIRECTIONS:
        raise _fail(path, f"{where}.direction must be one of {', '.join(DIRECTIONS)}, got {value!r}")
    return value


def _grid(path: Path, where: str, grid: Any, arm_names: list[str], tuned: list[str] | None = None) -> dict[str, tuple[Any, ...]]:
    """One list for every tuned arm, or arm -> list; every tuned arm gets the same number of values.

    An arm -> list mapping may leave arms out: those are not tuned and keep the base value
    (a protocol with fixed hyper-parameters beside a tuned one, as Keskar et al. vs Shallue
    et al. compare batch sizes). ``tuned``: the arms a profile's grid must cover (the spec's).
    """
    tuned = tuned or arm_names
    if isinstance(grid, list):
        grid = {a: grid for a in tuned}
    if not isinstance(grid, dict) or not grid or not set(grid) <= set(arm_names):
        raise _fail(path, f"{where} must be a list, or map arms ({', '.join(arm_names)}) to lists; arms left out are not tuned")
    if set(grid) != set(tuned):
        raise _fail(path, f"{where} must give values for the arms tuning.grid tunes ({', '.join(tuned)}), got {', '.join(grid)}")
    grid = {a: tuple(v) for a, v in grid.items()}
    if len({len(v) for v in grid.values()}) != 1 or not next(iter(grid.values())):
        raise _fail(path, f"{where} must give every arm the same number of values (an equal tuning budget)")
    return grid


def _joint(path: Path, where: str, grid: dict[str, tuple[Any, ...]], param: str | tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """With several tuned keys, every grid value is a list of one value per key (kept as a tuple)."""
    if isinstance(param, str):
        return grid
    for arm, values in grid.items():
        for v in values:
            if not isinstance(v, (list, tuple)) or len(v) != len(param):
                raise _fail(path, f"{where}: with tuning.param {list(param)} every value is a list of {len(param)} "
                                  f"(one per key), got {v!r} for arm {arm!r}")
    return {arm: tuple(tuple(v) for v in values) for arm, values in grid.items()}


def parse(raw: dict[str, Any], path: Path) -> Spec:
    """Check the structure of a spec (not yet whether its overrides compose: see validate)."""
    if not isinstance(raw, dict):
        raise _fail(path, "a spec is a mapping of keys; see experiments/README.md")
    _unknown(path, "the spec", set(raw), SPEC_KEYS)
    for key in ("name", "claim", "arms", "hypotheses", "profiles"):
        if key not in raw:
            raise _fail(path, f"missing required key {key!r} ({SPEC_KEYS[key]})")
    if raw["name"] != path.stem:
        raise _fail(path, f"name {raw['name']!r} must match the file name {path.stem!r}: the name is how `labbench list`, "
                          "a search by name and the run store find a spec, so a spec given by path follows the same rule; "
                          f"rename the file to {raw['name']}.yaml or set name: {path.stem}")

    arms = []
    if not isinstance(raw["arms"], dict) or len(raw["arms"]) < 2:
        raise _fail(path, "arms must map at least two arm names to their overrides")
    for name, body in raw["arms"].items():
        if isinstance(body, dict):
            _unknown(path, f"arm {name!r}", set(body), {"overrides", "seed_offset"})
            arms.append(Arm(name, _strings(path, f"arms.{name}.overrides", body.get("overrides")), int(body.get("seed_offset", 0))))
        else:
            arms.append(Arm(name, _strings(path, f"arms.{name}", body)))
    arm_names = [a.name for a in arms]

    hypotheses = []
    for i, h in enumerate(raw["hypotheses"] or []):
        where = f"hypotheses[{i}]"
        if not isinstance(h, dict):
            raise _fail(path, f"{where} must be a mapping with keys {', '.join(sorted(HYPOTHESIS_KEYS))}")
        _unknown(path, where, set(h), HYPOTHESIS_KEYS)
        for key in ("metric", "better", "worse", "direction"):
            if key not in h:
                raise _fail(path, f"{where} is missing {key!r}")
        for key in ("better", "worse"):
            if is_reference(h[key]):
                continue
            if isinstance(h[key], list):
                if len(h[key]) != 2 or not all(a in arm_names for a in h[key]):
                    raise _fail(path, f"{where}.{key} {h[key]!r}: a pair is two arms [a, b] (per seed a minus b); arms are: {', '.join(arm_names)}")
                h = {**h, key: tuple(h[key])}
            elif h[key] not in arm_names:
                raise _fail(path, f"{where}.{key} names arm {h[key]!r}; arms are: {', '.join(arm_names)} (or a number: a fixed reference value, or a pair [a, b])")
        if is_reference(h["better"]) and is_reference(h["worse"]):
            raise _fail(path, f"{where}: better and worse are both numbers; at least one must name an arm")
        if is_pair(h["better"]) != is_pair(h["worse"]) and not (is_reference(h["better"]) or is_reference(h["worse"])):
            raise _fail(path, f"{where}: an interaction compares two pairs ([a, b] and [c, d]) or a pair with a number, not a pair with one arm")
        if h["metric"] in RATE_METRICS and (is_pair(h["better"]) or is_pair(h["worse"])):
            raise _fail(path, f"{where}: a rate hypothesis ({h['metric']}) compares two arms, not pairs")
        parse_metric(h["metric"])
        hypotheses.append(
            Hypothesis(
                name=str(h.get("name", f"{h['better']} vs {h['worse']}")),
                metric=h["metric"],
                better=h["better"],
                worse=h["worse"],
                direction=_direction(path, where, h["direction"]),
                margin=float(h.get("margin", 0.0)),
                note=str(h.get("note", "")),
                role=_role(path, where, h.get("role", "secondary")),
                min_effect=_min_effect(path, where, h),
                min_effect_source=" ".join(str(h.get("min_effect_source", "")).split()),
            )
        )
    if not hypotheses:
        raise _fail(path, "at least one hypothesis is needed (what does the claim predict?)")
    primaries = [h.name for h in hypotheses if h.role == "primary"]
    if len(primaries) > 1:
        raise _fail(path, f"one hypothesis is the claim's primary (its headline); {len(primaries)} say role: primary: {primaries}")

    tuning = None
    if raw.get("tuning"):
        t = raw["tuning"]
        _unknown(path, "tuning", set(t), TUNING_KEYS)
        for key in ("param", "grid", "metric", "direction"):
            if key not in t:
                raise _fail(path, f"tuning is missing {key!r}")
        param = t["param"]
        if isinstance(param, list):
            if len(param) < 2 or not all(isinstance(k, str) and k for k in param):
                raise _fail(path, f"tuning.param must be a key or a list of two or more keys, got {param!r}")
            param = tuple(param)
            if int(t.get("extend", 0)):
                raise _fail(path, "tuning.extend walks past the edge of one parameter's grid; with several keys (tuning.param) "
                                  "it must be 0: widen the joint grid instead")
        elif not isinstance(param, str) or not param:
            raise _fail(path, f"tuning.param must be a key (e.g. optimizer.lr) or a list of keys, got {param!r}")
        grid = _grid(path, "tuning.grid", t["grid"], arm_names, list(t["grid"]) if isinstance(t["grid"], dict) else None)
        grid = _joint(path, "tuning.grid", grid, param)
        if not t["metric"].startswith("val/"):
            raise _fail(path, f"tuning.metric must be a validation metric (val/...), got {t['metric']!r}: the test split is for final runs only")
        parse_metric(t["metric"])
        if int(t.get("seeds", 1)) < 1 or int(t.get("repeats", 1)) < 1 or int(t.get("extend", 0)) < 0:
            raise _fail(path, f"tuning.seeds and tuning.repeats must be at least 1 and tuning.extend at least 0, "
                              f"got {t.get('seeds', 1)}, {t.get('repeats', 1)} and {t.get('extend', 0)}")
        # a spec with a primary hypothesis tunes on 3 seeds by default (the method study's tuned A/A: the best of 3 seeds
        # halves the false positives one seed adds at a steep valley; the one-standard-error rule does not help there)
        primary = any(h.role == "primary" for h in hypotheses)
        rule = t.get("rule", "best")
        if rule not in ("best", "one_se"):
            raise _fail(path, f"tuning.rule must be best or one_se (the smallest value within one standard error of the best), got {rule!r}")
        follow = t.get("follow") or {}
        if not isinstance(follow, dict) or any(a not in arm_names or a in grid for a in follow) \
                or any(leader not in grid for leader in follow.values()):
            raise _fail(path, f"tuning.follow maps arms the grid leaves out to tuned arms whose chosen value they take "
                              f"(tuned: {', '.join(grid)}; others: {', '.join(a for a in arm_names if a not in grid) or 'none'}), "
                              f"got {follow!r}")
        nested = t.get("nested", False)
        if not isinstance(nested, bool):
            raise _fail(path, f"tuning.nested must be true or false (true: each final seed runs at the value chosen on its own "
                              f"block of tuning seeds), got {nested!r}")
        # nested tuning re-chooses once per final seed, so one tuning seed per block is its default (docs/method.md)
        tuning = Tuning(param, grid, t["metric"], _direction(path, "tuning", t["direction"]),
                        int(t.get("seeds", 1 if nested else 3 if primary else 1)),
                        int(t.get("repeats", 1)), int(t.get("extend", 0)), rule, {str(k): str(v) for k, v in follow.items()}, nested)

    profiles = {}
    if not isinstance(raw["profiles"], dict):
        raise _fail(path, f"profiles must map profile names ({', '.join(PROFILES)}) to settings")
    for name, body in raw["profiles"].items():
        body = body or {}
        _unknown(path, f"profile {name!r}", set(body), PROFILE_KEYS)
        # the method's recommendation (docs/method.md) unless the profile says; with a primary hypothesis, the fewest seeds
        # that give it 80% power at a 1-SD effect (stats.seeds_for_power: 11)
        default_seeds = seeds_for_power(0.8) if any(h.role == "primary" for h in hypotheses) else RECOMMENDED_SEEDS
        seeds = int(body.get("seeds", default_seeds))
        if seeds < 1:
            raise _fail(path, f"profile {name!r} needs seeds >= 1")
        est = body.get("estimated_minutes")
        if body.get("tuning_grid") is not None and not raw.get("tuning"):
            raise _fail(path, f"profile {name!r} sets tuning_grid but the spec has no tuning section")
        profile_grid = (_joint(path, f"profiles.{name}.tuning_grid",
                               _grid(path, f"profiles.{name}.tuning_grid", body["tuning_grid"], arm_names, list(tuning.grid)), tuning.param)
                        if body.get("tuning_grid") is not None else None)
        per_arm = body.get("arm_overrides") or {}
        if not isinstance(per_arm, dict) or not set(per_arm) <= set(arm_names):
            raise _fail(path, f"profiles.{name}.arm_overrides must map arms ({', '.join(arm_names)}) to override lists "
                              f"(each arm's own budget, written by a per-arm pilot), got {per_arm!r}")
        profiles[name] = Profile(name, seeds, _strings(path, f"profiles.{name}.overrides", body.get("overrides")),
                                 float(est) if est is not None else None, str(body.get("description", "")), profile_grid,
                                 _batchnorm_eval(path, f"profiles.{name}.batchnorm_eval", body.get("batchnorm_eval")),
                                 {a: _strings(path, f"profiles.{name}.arm_overrides.{a}", o) for a, o in per_arm.items()})
    if "smoke" not in profiles:
        raise _fail(path, "a 'smoke' profile is required (the test suite runs it)")
    if tuning is not None and tuning.nested:
        most = max(p.seeds for p in profiles.values())
        if "repeats" not in raw["tuning"]:
            tuning = dataclasses.replace(tuning, repeats=most)  # one block of tuning seeds per final seed of the largest profile
        elif tuning.repeats < most:
            raise _fail(path, f"tuning.nested gives each final seed its own block of tuning seeds, but tuning.repeats is "
                              f"{tuning.repeats} and a profile runs {most} seeds: set repeats to at least {most} (or leave it out)")

    gates = []
    for i, g in enumerate(raw.get("gates") or []):
        where = f"gates[{i}]"
        if not isinstance(g, dict) or "metric" not in g or "threshold" not in g:
            raise _fail(path, f"{where} must be a mapping with metric and threshold (and optionally fraction, arms)")
        _unknown(path, where, set(g), GATE_KEYS)
        parse_metric(g["metric"])
        if not is_reference(g["threshold"]) and g["threshold"] not in BASELINES:
            raise _fail(path, f"{where}.threshold must be a number or a baseline ({', '.join(BASELINES)}), got {g['threshold']!r}")
        bad = [a for a in g.get("arms") or [] if a not in arm_names]
        if bad:
            raise _fail(path, f"{where}.arms names {bad}; arms are: {', '.join(arm_names)}")
        if is_reference(g["threshold"]) and any(h.role == "primary" for h in hypotheses):
            raise _fail(path, f"{where}.threshold {g['threshold']} is a fixed quality bar: a gate asks whether an arm learned at all, "
                              "and a quality bar decides the claim's question instead (a 89.5% arm against a 90% bar is not 'untrained'). "
                              f"Derive it from a failure baseline: threshold one of {', '.join(BASELINES)} with a fraction (e.g. "
                              "threshold: chance, fraction: 1.5; threshold: failure, fraction: 0.9 for a loss)")
        gates.append(Gate(g["metric"], g["threshold"], float(g.get("fraction", 1.0)), tuple(g.get("arms") or ())))
    predicted = _strings(path, "predicted_to_fail", raw.get("predicted_to_fail"))
    bad = [a for a in predicted if a not in arm_names]
    if bad:
        raise _fail(path, f"predicted_to_fail names {bad}; arms are: {', '.join(arm_names)}")
    for i, g in enumerate(gates):
        gated = [a for a in g.arms if a in predicted]
        if gated:
            raise _fail(path, f"gates[{i}].arms includes {gated}, which the spec predicts to fail: an arm predicted to fail is not "
                              "gated (its failure is what a fails_to_learn or diverged hypothesis tests)")
    if any(h.metric == "fails_to_learn" for h in hypotheses) and not gates:
        raise _fail(path, "a fails_to_learn hypothesis counts the seeds that miss the competence gate: declare gates")
    regime = _regime(path, raw.get("regime"), arm_names, [h.name for h in hypotheses])
    control = _control(path, raw, arms)
    failure = raw.get("failure") or {}
    if not isinstance(failure, dict) or not all(is_reference(v) for v in failure.values()):
        raise _fail(path, f"failure must map metric keys to numbers (what a diverged run counts as), got {failure!r}")

    metrics = tuple(raw.get("metrics") or ())
    for m in metrics:
        parse_metric(m)
    pilot = _pilot(path, raw.get("pilot"), arm_names, profiles, tuple(gates), tuning)
    settings = _settings(path, raw.get("settings"), profiles, arm_names)
    sources = raw.get("sources") or ()
    return Spec(
        name=raw["name"],
        path=path,
        claim_id=str(raw.get("claim_id", "")),
        claim=" ".join(str(raw["claim"]).split()),
        sources=tuple(str(s) for s in (sources if isinstance(sources, list) else [sources])),
        reference=" ".join(str(raw.get("reference", "")).split()),
        factors=tuple(raw.get("factors") or ()),
        base=_strings(path, "base", raw.get("base")),
        arms=tuple(arms),
        metrics=metrics,
        hypotheses=tuple(hypotheses),
        profiles=profiles,
        tuning=tuning,
        notes=" ".join(str(raw.get("notes", "")).split()),
        revised=" ".join(str(raw.get("revised", "")).split()),
        curves=_curves(path, raw.get("curves")),
        gates=tuple(gates),
        failure={str(k): float(v) for k, v in failure.items()},
        pilot=pilot,
        batchnorm_eval=_batchnorm_eval(path, "batchnorm_eval", raw.get("batchnorm_eval")),
        predicted_to_fail=predicted,
        regime=regime,
        settings=settings,
        control=control,
        raw=raw,
    )


def _regime(path: Path, body: Any, arm_names: list[str], hypothesis_names: list[str]) -> tuple[RegimeCheck, ...]:
    if body is None:
        return ()
    if not isinstance(body, list):
        raise _fail(path, "regime must be a list of checks {name, metric, arms, threshold, direction, hypotheses}")
    out = []
    for i, c in enumerate(body):
        where = f"regime[{i}]"
        if not isinstance(c, dict):
            raise _fail(path, f"{where} must be a mapping with keys {', '.join(sorted(REGIME_KEYS))}")
        _unknown(path, where, set(c), REGIME_KEYS)
        for key in ("name", "metric", "arms", "threshold", "direction"):
            if key not in c:
                raise _fail(path, f"{where} is missing {key!r}")
        parse_metric(c["metric"])
        arms = _strings(path, f"{where}.arms", c["arms"])
        bad = [a for a in arms if a not in arm_names]
        if bad or not arms:
            raise _fail(path, f"{where}.arms names {bad or 'no arm'}; arms are: {', '.join(arm_names)}")
        threshold = c["threshold"]
        if isinstance(threshold, dict):  # another arm's mean: {arm: NAME}
            if set(threshold) != {"arm"} or threshold["arm"] not in arm_names or threshold["arm"] in c["arms"]:
                raise _fail(path, f"{where}.threshold {{arm: NAME}} names one arm of the spec outside the check's own arms "
                                  f"({', '.join(arm_names)}), got {threshold!r}")
            threshold = f"arm:{threshold['arm']}"
        elif not is_reference(threshold) and threshold not in BASELINES:
            raise _fail(path, f"{where}.threshold must be a number, a baseline ({', '.join(BASELINES)}) or another arm's mean "
                              f"({{arm: NAME}}), got {threshold!r}")
        guarded = _strings(path, f"{where}.hypotheses", c.get("hypotheses"))
        unknown = [h for h in guarded if h not in hypothesis_names]
        if unknown:
            raise _fail(path, f"{where}.hypotheses names {unknown}; hypotheses are: {hypothesis_names}")
        out.append(RegimeCheck(str(c["name"]), c["metric"], arms, threshold if not is_reference(threshold) else float(threshold),
                               _direction(path, where, c["direction"]), float(c.get("fraction", 1.0)), guarded, str(c.get("note", ""))))
    return tuple(out)


SETTING_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def _settings(path: Path, body: Any, profiles: dict[str, Profile], arm_names: list[str]) -> tuple[Setting, ...]:
    """The ``settings`` section's structure; each setting's overrides are checked when it is derived and validated."""
    if body is None:
        return ()
    if not isinstance(body, dict) or not body:
        raise _fail(path, "settings must map setting names to {why, overrides, profiles, pilot}; leave it out for one setting")
    out = []
    for name, s in body.items():
        where = f"settings.{name}"
        if not isinstance(name, str) or not SETTING_NAME.fullmatch(name):
            raise _fail(path, f"setting name {name!r} must be lower-case letters, digits and '-' (it names a folder)")
        if not isinstance(s, dict):
            raise _fail(path, f"{where} must be a mapping with keys {', '.join(sorted(SETTING_KEYS))}")
        _unknown(path, where, set(s), SETTING_KEYS)
        why = " ".join(str(s.get("why") or "").split())
        if not why:
            raise _fail(path, f"{where}.why is required: why the claim's mechanism is expected in this setting (the literature), "
                              "written before it runs")
        _strings(path, f"{where}.overrides", s.get("overrides"))
        arms = s.get("arms") or {}
        if not isinstance(arms, dict) or not set(arms) <= set(arm_names):
            raise _fail(path, f"{where}.arms must map arms of the spec ({', '.join(arm_names)}) to overrides, got {arms!r}")
        for arm, overrides in arms.items():
            _strings(path, f"{where}.arms.{arm}", overrides)
        if s.get("gates") is not None and not isinstance(s["gates"], list):
            raise _fail(path, f"{where}.gates must be a list of gates {{metric, threshold, fraction, arms}} (it replaces the spec's)")
        if s.get("regime") is not None and not isinstance(s["regime"], list):
            raise _fail(path, f"{where}.regime must be a list of regime checks {{name, metric, arms, threshold, direction, "
                              "hypotheses}} (it replaces the spec's)")
        only = _strings(path, f"{where}.only_arms", s.get("only_arms"))
        if s.get("only_arms") is not None and (not only or not set(only) <= set(arm_names)):
            raise _fail(path, f"{where}.only_arms must list arms of the spec ({', '.join(arm_names)}), got {s.get('only_arms')!r}")
        own = s.get("profiles") or {}
        if not isinstance(own, dict):
            raise _fail(path, f"{where}.profiles must map profile names to {{overrides, seeds, estimated_minutes, description}}")
        for pname, pbody in own.items():
            if pname not in profiles:
                raise _fail(path, f"{where}.profiles names profile {pname!r}; the spec's profiles: {', '.join(profiles)}")
            if not isinstance(pbody, dict):
                raise _fail(path, f"{where}.profiles.{pname} must be a mapping with keys {', '.join(sorted(SETTING_PROFILE_KEYS))}")
            _unknown(path, f"{where}.profiles.{pname}", set(pbody), SETTING_PROFILE_KEYS)
            _strings(path, f"{where}.profiles.{pname}.overrides", pbody.get("overrides"))
        if s.get("pilot") is not None and not isinstance(s["pilot"], dict):
            raise _fail(path, f"{where}.pilot must be a mapping of pilot keys ({', '.join(sorted(PILOT_KEYS))}) it replaces")
        _unknown(path, f"{where}.pilot", set(s.get("pilot") or {}), PILOT_KEYS)
        out.append(Setting(name, why, " ".join(str(s.get("description") or "").split())))
    return tuple(out)


def _role(path: Path, where: str, role: Any) -> str:
    if role not in ROLES:
        raise _fail(path, f"{where}.role must be one of {', '.join(ROLES)} (primary: the claim's headline; sanity: a check of "
                          f"the setup, never counted as support), got {role!r}")
    return role


def _min_effect(path: Path, where: str, h: dict[str, Any]) -> float | None:
    if h.get("min_effect") is None:
        if h.get("min_effect_source"):
            raise _fail(path, f"{where}.min_effect_source explains a min_effect, and there is none")
        return None
    value = h["min_effect"]
    if not is_reference(value) or float(value) <= 0:
        raise _fail(path, f"{where}.min_effect is the size the claim names, a number > 0 in the metric's units (in the "
                          f"predicted direction), got {value!r}")
    if float(h.get("margin", 0.0)):
        raise _fail(path, f"{where}: min_effect (a size the difference must clear) and margin (a threshold the null sits at) "
                          "do not go together; a claimed size is min_effect with margin 0")
    if h.get("metric") in RATE_METRICS:
        raise _fail(path, f"{where}: a rate ({h['metric']}) takes no min_effect")
    if not str(h.get("min_effect_source", "")).strip():
        raise _fail(path, f"{where}.min_effect_source is required: one sentence on where {value} comes from (the claim's "
                          "words, a paper's table)")
    return float(value)


def _batchnorm_eval(path: Path, where: str, body: Any) -> BatchNormEval | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise _fail(path, f"{where} must be a mapping {{statistics: running | precise, why: ...}}, got {body!r}")
    _unknown(path, where, set(body), {"statistics", "why"})
    if body.get("statistics") not in BATCHNORM_STATISTICS:
        raise _fail(path, f"{where}.statistics must be one of {', '.join(BATCHNORM_STATISTICS)}, got {body.get('statistics')!r}")
    why = " ".join(str(body.get("why") or "").split())
    if not why:
        raise _fail(path, f"{where}.why is required: say what the choice measures for this claim (e.g. the deployed network, or the final weights)")
    return BatchNormEval(body["statistics"], why)


def _pilot(path: Path, body: Any, arm_names: list[str], profiles: dict[str, Profile], gates: tuple[Gate, ...], tuning: Tuning | None) -> Pilot | None:
    if body is None:
        return None
    if not isinstance(body, dict) or ("arm" in body) == ("arms" in body) or "candidates" not in body:
        raise _fail(path, "pilot must be a mapping with arm (the standard-practice arm) or arms (per-family budgets: each "
                          "arm piloted alone), not both, and candidates (override lists, cheapest first)")
    _unknown(path, "pilot", set(body), PILOT_KEYS)
    per_arm = tuple(_strings(path, "pilot.arms", body["arms"])) if "arms" in body else ()
    if "arms" in body and (not per_arm or len(set(per_arm)) != len(per_arm)):
        raise _fail(path, f"pilot.arms must list distinct arms of the spec ({', '.join(arm_names)}), got {body['arms']!r}")
    for arm in per_arm or (body["arm"],):
        if arm not in arm_names:
            raise _fail(path, f"pilot.arm{'s' if per_arm else ''} names {arm!r}; arms are: {', '.join(arm_names)}")
    candidates = body["candidates"]
    if not isinstance(candidates, list) or not candidates:
        raise _fail(path, "pilot.candidates must be a non-empty list of override lists, cheapest first")
    parsed = tuple(_strings(path, f"pilot.candidates[{i}]", c) for i, c in enumerate(candidates))
    profile = str(body.get("profile", "quick"))
    if profile not in profiles:
        raise _fail(path, f"pilot.profile {profile!r} is not a profile of the spec; valid: {', '.join(profiles)}")
    metric = body.get("metric") or (tuning.metric if tuning is not None else (gates[0].metric if gates else None))
    if metric is None:
        raise _fail(path, "pilot.metric is needed (the metric whose progress decides the budget) when the spec has no tuning or gate")
    parse_metric(metric)
    late = float(body.get("late_progress", 0.1))
    seeds = int(body.get("seeds", 3))
    if not 0 < late < 1 or seeds < 1:
        raise _fail(path, f"pilot.late_progress must lie in (0, 1) and pilot.seeds be at least 1, got {late} and {seeds}")
    fallback = str(body.get("fallback", "none"))
    if fallback not in PILOT_FALLBACKS:
        raise _fail(path, f"pilot.fallback {fallback!r} is not one of {', '.join(PILOT_FALLBACKS)} (none: no budget when no "
                          "candidate meets the rule; largest: the largest candidate, the most the profile's time cap affords)")
    progress_from = str(body.get("progress_from", "failure"))
    if progress_from not in BASELINES:
        raise _fail(path, f"pilot.progress_from {progress_from!r} is not one of {', '.join(BASELINES)} (failure: the metric's "
                          "failure value; bigram: a language model's count baseline, what a model that learned letter pairs scores)")
    return Pilot(per_arm[0] if per_arm else body["arm"], parsed, metric, seeds, late, profile, fallback, progress_from, per_arm)
