"""Before anything runs: whether a spec can run as written, and what in it deserves a warning.

Composition of every arm in every profile, every ``_target_`` importable and bound to its
arguments, a declared direction for every metric read, arms that differ only on the declared
factors, BatchNorm arms evaluated as the spec declares; and warnings: hypotheses that repeat
one another. The planner (:mod:`labbench.ablation.plan`) turns a valid spec into runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from labbench.ablation.plan import arm_differences, arm_overrides, merge_overrides
from labbench.ablation.spec import Spec, SpecError, experiments_dir
from labbench.config import compose, identity_config


def _check_directions(spec: Spec, arm: str, task: str) -> None:
    """Every metric the spec reads has a direction its task declares (nothing is guessed from names)."""
    from labbench.ablation.metrics import parse_metric
    from labbench.directions import UnknownMetric, direction

    exprs = [h.metric for h in spec.hypotheses] + list(spec.metrics) + [g.metric for g in spec.gates]
    exprs += [spec.tuning.metric] if spec.tuning is not None else []
    for expr in dict.fromkeys(exprs):
        try:
            direction(parse_metric(expr).key, task)
        except UnknownMetric as err:
            raise SpecError(f"{spec.label}: arm {arm!r} reads {expr!r}: {err}") from err
    for expr in [g.metric for g in spec.gates] + ([spec.tuning.metric] if spec.tuning is not None else []):
        if direction(parse_metric(expr).key, task) == "neither":
            raise SpecError(f"{spec.label}: {expr!r} has no better side (its task declares 'neither'), so it cannot be a gate "
                            "or a tuning metric; use a loss, an accuracy or another metric with a direction")


def _derived_from_factor(raw_flat: dict[str, Any], key: str, factors: Sequence[str]) -> bool:
    """Whether ``key`` (or a node above it) is written as an interpolation of a declared factor.

    ``model.norm: ${norm}`` follows the ``norm`` factor; ``optimizer.lr: ${labbench.mul:0.003125,${data.batch_size}}``
    follows ``data.batch_size``: both are covered by the factor, not a second difference.
    """
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        value = raw_flat.get(".".join(parts[:i]))
        if isinstance(value, str) and any(re.search(r"\$\{" + re.escape(f) + r"[}.,]", value) for f in factors):
            return True
    return False


def _raw_values(cfg) -> dict[str, Any]:
    """Every node of the unresolved config by dotted key, interpolations as written (parents too)."""
    from omegaconf import OmegaConf

    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{prefix}{i}.")
        out[prefix.rstrip(".")] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return out


def check_targets(cfg, where: str) -> None:
    """Every ``_target_`` imports and takes the arguments its node gives (a typo fails before any model is built).

    Arguments the builder adds at run time (the data's shapes, the model, the optimizer) are
    not in the node; ``bind_partial`` checks only what is there.
    """
    import inspect

    from hydra.utils import get_object

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "_target_" in node:
                target = node["_target_"]
                try:
                    obj = get_object(target)
                except Exception as err:
                    raise SpecError(f"{where}: {path or 'config'}._target_ {target!r} cannot be imported ({err})") from err
                kwargs = {k: v for k, v in node.items() if not (k.startswith("_") and k.endswith("_"))}
                try:
                    sig = inspect.signature(obj)
                except (TypeError, ValueError):
                    sig = None
                if sig is not None:
                    try:
                        sig.bind_partial(**kwargs)
                    except TypeError as err:
                        valid = [n for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
                        raise SpecError(f"{where}: {path or 'config'} ({target}): {err}; it takes: {', '.join(valid)}") from err
            for k, v in node.items():
                if k != "_target_":
                    walk(v, f"{path}.{k}" if path else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(identity_config(cfg, resolve=True), "")  # paths (resolved by Hydra at run time) left out


def _check_batchnorm_eval(spec: Spec, arm: str, profile: str, cfg) -> None:
    """An arm with BatchNorm is evaluated with the statistics the spec declared for the profile, and a
    spec with such arms declares them (issue 25: the running statistics lag weights that move fast,
    which biases an eval-mode metric by an amount that depends on the learning rate)."""
    norm = cfg.get("norm")
    if norm is None or norm.get("kind") != "batch":
        return
    decision = spec.batchnorm_decision(profile)
    if decision is None:
        raise SpecError(
            f"{spec.label}: arm {arm!r} has BatchNorm in profile {profile!r} but the spec does not say which statistics its "
            "evaluations read: add batchnorm_eval: {statistics: running | precise, why: ...} (running: the moving average a "
            "deployed network uses; precise: re-estimated with the evaluated weights, norm.precise_batches=N on those arms)"
        )
    precise = int(norm.get("precise_batches", 0) or 0) > 0
    if precise != (decision.statistics == "precise"):
        fix = "set norm.precise_batches=N (e.g. 20) on it" if decision.statistics == "precise" else "drop norm.precise_batches from it"
        raise SpecError(
            f"{spec.label}: batchnorm_eval says {decision.statistics} statistics in profile {profile!r}, but arm {arm!r} has "
            f"norm.precise_batches={norm.get('precise_batches', 0)}: {fix}"
        )


def validate(spec: Spec, profile: str | None = None, extra: Sequence[str] = ()) -> None:
    """Before anything runs: every arm composes in every profile, every ``_target_`` imports and
    binds its arguments, every metric the spec reads has a declared direction, and the arms'
    resolved configs differ only on the declared factors (or on values interpolated from them).
    A spec answered in several settings is validated in each of them."""
    if spec.settings and not spec.setting:
        for setting in spec.setting_names():
            validate(spec.in_setting(setting), profile, extra)
        return
    for name in [profile] if profile else list(spec.profiles):
        spec.profile(name)
        for arm in spec.arms:
            try:
                cfg = compose(arm_overrides(spec, arm.name, name, extra))
            except Exception as err:
                raise SpecError(f"{spec.label}: arm {arm.name!r} does not compose in profile {name!r}: {err}") from err
            check_targets(cfg, f"{spec.label}: arm {arm.name!r} in profile {name!r}")
            _check_directions(spec, arm.name, cfg.task._target_)
            _check_batchnorm_eval(spec, arm.name, name, cfg)
        raw = {arm.name: _raw_values(compose(merge_overrides(arm_overrides(spec, arm.name, name, extra), ["seed=0"]))) for arm in spec.arms}
        diffs = arm_differences(spec, name, extra, resolve=True)
        stray = [
            k for k in diffs
            if not any(k == f or k.startswith(f + ".") for f in spec.factors)
            and not all(_derived_from_factor(raw[a], k, spec.factors) for a in raw)
        ]
        if stray:
            details = "; ".join(f"{k}: {diffs[k]}" for k in stray[:5])
            raise SpecError(
                f"{spec.label}: in profile {name!r} the arms' resolved configs differ on keys outside the declared factors "
                f"{list(spec.factors)}: {details}. Declare them in `factors` or make the arms identical there."
            )


def duplicate_hypotheses(spec: Spec) -> list[str]:
    """Warnings for hypotheses that compare the same sides on the same metric.

    They read the same per-seed differences: with different margins they ask different
    questions of them, but a family that counts both counts one comparison twice (Holm pays
    for it, and two verdicts look like two findings).
    """
    groups: dict[tuple, list[int]] = {}
    for i, h in enumerate(spec.hypotheses):
        groups.setdefault((h.metric, frozenset((repr(h.better), repr(h.worse)))), []).append(i)
    out = []
    for (metric, _), members in groups.items():
        if len(members) < 2:
            continue
        h = spec.hypotheses[members[0]]
        names = ", ".join(f"{i + 1} (\"{spec.hypotheses[i].name}\")" for i in members)
        margins = sorted({spec.hypotheses[i].margin for i in members})
        out.append(
            f"hypotheses {names} compare {h.better} and {h.worse} on {metric}: the same per-seed differences"
            + (f" (margins {', '.join(f'{m:g}' for m in margins)})" if len(margins) > 1 else "")
            + ", so the family counts one comparison more than once; keep one, or state the other as a margin of it"
        )
    return out


def power_lines(spec: Spec, seeds: int) -> tuple[list[str], list[str]]:
    """What the spec's seeds buy: each confirmatory hypothesis's power at a 1-SD effect in its family
    (``stats.power``), and warnings where it is below 50%. Returns (lines, warnings)."""
    from labbench.ablation.stats import power

    confirmatory = [h for h in spec.hypotheses if h.role != "sanity"]
    primary = next((h for h in confirmatory if h.role == "primary"), None)
    secondaries = [h for h in confirmatory if h.role == "secondary"]
    lines, warnings = [], []
    if primary is not None:
        p = power(seeds, 1)
        lines.append(f"power at a 1-SD effect with {seeds} paired seeds: the primary {100 * p:.0f}% (tested alone)")
        if p < 0.5:
            warnings.append(f"the primary hypothesis has {100 * p:.0f}% power at a 1-SD effect with {seeds} seeds (below 50%): add seeds")
        groups = [(secondaries, "secondary, under Holm once the primary is decided")] if secondaries else []
    else:
        groups = [(confirmatory, "no primary declared: Holm over all")]
    for members, how in groups:
        p = power(seeds, len(members))
        lines.append(f"power at a 1-SD effect with {seeds} paired seeds: each of {len(members)} hypothesis(es) {100 * p:.0f}% ({how})")
        if p < 0.5:
            warnings.append(f"{len(members)} hypothesis(es) in one Holm family have {100 * p:.0f}% power each at a 1-SD effect with "
                            f"{seeds} seeds (below 50%): add seeds, or name a primary and keep the family small")
    return lines, warnings


def data_warnings(spec: Spec, profile: str, extra: Sequence[str] = ()) -> list[str]:
    """Data read from disk (MNIST, CIFAR-10) that is not there: the profile composes, but its first run would stop.
    A warning, not an error: a full profile is validated on machines that will never run it."""
    from labbench.data.torchvision_sets import missing_files

    out: list[str] = []
    for arm in spec.arms:
        cfg = compose(arm_overrides(spec, arm.name, profile, extra))
        hint = missing_files(str(cfg.data.get("_target_", "")), str(cfg.data.get("root", ""))) if "root" in cfg.data else None
        if hint and hint not in out:
            out.append(hint)
    return [f"its runs need data files absent here: {h}" for h in out]


# The catalog's first versions without a primary hypothesis, kept in experiments/ (with their committed reports) only
# until the issue-28 version of each, waiting in docs/preregistered/, has run and replaced it. `labbench validate`
# refuses every other spec without a primary; a test keeps this list to exactly the specs it excuses, so it shrinks as
# the catalog is re-run and the allowance ends with it.
FIRST_VERSIONS = frozenset({
    "attention-scaling", "multi-head", "positional-encoding",
})


def primary_refusal(spec: Spec) -> str | None:
    """Why ``labbench validate`` refuses the spec (issue 26: a spec without a primary gives no claim-level answer), or
    None: it names a primary, or it is a shipped first version whose pre-registered successor has yet to run."""
    if any(h.role == "primary" for h in spec.hypotheses):
        return None
    if spec.name in FIRST_VERSIONS and spec.path.parent.resolve() == experiments_dir().resolve():
        return None
    names = ", ".join(f"{h.name!r}" for h in spec.hypotheses)
    return (f"{spec.label} names no primary hypothesis: mark the claim's headline with `role: primary` (one of {names}); "
            "the others are secondary (decided under Holm once the primary is) or `role: sanity` (checks of the setup). "
            "Without one the report gives verdicts per hypothesis but no claim-level answer (docs/method.md; "
            "`labbench new` writes a commented example)")


# The catalog's specs answered with their arms' values chosen once on shared tuning seeds (the best of 3), before the
# tuned A/A control measured what that procedure adds: 6.3% false positives on the digits MLP, 54.5% on the MNIST MLP
# where two rates tie on the validation loss and differ in accuracy (docs/method.md, "Tuning"; docs/bench/tuned-aa.json).
# `labbench validate` refuses every other spec with a primary that chooses once; these keep their committed answers,
# which the README marks, until each is re-run with `tuning.nested`. A test keeps this list to exactly the specs it
# excuses, so it shrinks as they are re-run.
TUNED_ONCE = frozenset({
    "layernorm-vs-batchnorm-sequences", "tuned-aa-control",
})


def chooses_once(spec: Spec) -> bool:
    """Whether some arm's tuned value is chosen once, on tuning seeds apart from every final seed (``tuning.nested``
    off), where the choice can differ between arms: two or more arms choose, or one chooses against an arm that does
    not take its value. One arm choosing for all (``tuning.follow``) puts every arm at the same value: no choice's noise
    lies between them."""
    t = spec.tuning
    if t is None or t.nested:
        return False
    choosers = set().union(*(spec.tuning_grid(p) for p in spec.profiles)) if spec.profiles else set(t.grid)
    if not choosers:
        return False
    return not (len(choosers) == 1 and all(a.name in choosers or a.name in t.follow for a in spec.arms))


def tuning_refusal(spec: Spec) -> str | None:
    """Why ``labbench validate`` refuses the spec's tuning (issue 26, item 6), or None: a spec with a primary whose arms
    choose their values once fails the tuned A/A control's bar, so it must tune nested (each final seed at the value
    chosen on its own tuning seeds), unless it is one of the catalog's answers made before the control measured it."""
    if not chooses_once(spec) or not any(h.role == "primary" for h in spec.hypotheses):
        return None
    if spec.name in TUNED_ONCE and spec.path.parent.resolve() == experiments_dir().resolve():
        return None
    return (f"{spec.label} chooses each tuned arm's {spec.tuning.label} once, on tuning seeds shared by every final seed: "
            "in the tuned A/A control (two identical arms, each tuned so) that procedure decided the primary in up to 54.5% "
            "of repetitions where the bar is 6% (two rates tied on the validation loss and differed in accuracy; "
            "docs/method.md, \"Tuning\"). Set `tuning.nested: true` (final seed i runs at the value chosen on its own "
            "block of tuning seeds, one seed per block by default: 3.6-3.9% in the same control), or let one arm choose "
            "for all with `tuning.follow`")


def method_warnings(spec: Spec) -> list[str]:
    """What keeps a spec from a claim-level answer a reviewer signs: no primary (refused once the catalog has them),
    quality-bar gates, one setting only."""
    from labbench.ablation.spec import is_reference

    out = []
    if not any(h.role == "primary" for h in spec.hypotheses):
        out.append("no primary hypothesis (role: primary): the report gives verdicts per hypothesis but no claim-level answer")
        for i, g in enumerate(spec.gates):
            if is_reference(g.threshold):
                out.append(f"gates[{i}] ({g.metric} beyond {g.threshold:g}) is a fixed quality bar, refused once the spec names a primary: "
                           "derive it from a failure baseline (chance, unigram, bigram, failure, ... with a fraction)")
    refusal = tuning_refusal(spec)
    if refusal:  # `validate` refuses it; `reproduce` runs it, saying so
        out.append(refusal)
    elif chooses_once(spec) and spec.name in TUNED_ONCE:
        out.append(f"its arms' {spec.tuning.label} is chosen once on shared tuning seeds, a procedure the tuned A/A control "
                   "found above its bar (docs/method.md, \"Tuning\"): its answer stands until it is re-run with `tuning.nested: true`")
    if not spec.settings:
        out.append("answered in one setting: a verdict there is a fact about that setting; declare `settings` (two or more, each "
                   "with why the mechanism is expected there) for an answer across them (experiments/README.md)")
    return out


def loss_warnings(spec: Spec, profile: str) -> list[str]:
    """A hypothesis, gate, tuning metric or curve that reads ``*/loss`` across arms whose ``loss`` differs compares two
    criteria, not two models (a label-smoothed cross-entropy cannot fall below about 0.5 nats): read ``*/nll`` instead."""
    from labbench.ablation.metrics import parse_metric

    differ = [k for k in arm_differences(spec, profile, resolve=True) if k == "loss" or k.startswith("loss.")]
    if not differ:
        return []
    reads = {f"hypothesis \"{h.name}\"": h.metric for h in spec.hypotheses}
    reads.update({f"gates[{i}]": g.metric for i, g in enumerate(spec.gates)})
    if spec.tuning is not None:
        reads["tuning.metric"] = spec.tuning.metric
    # curves: the validation one (train/loss is each arm's own training trace, plotted as such)
    reads.update({f"curve {c}": c for c in (spec.curves or ("val/loss",)) if not c.startswith("train/")})
    out = []
    for where, expr in reads.items():
        key = parse_metric(expr).key if "/" in expr else expr
        if key.endswith("/loss"):
            out.append(f"{where} reads {key}, but the arms' losses differ ({', '.join(differ)}): each arm's {key} is its own "
                       f"training criterion; compare {key.rsplit('/', 1)[0]}/nll (the plain likelihood) instead")
    return out
