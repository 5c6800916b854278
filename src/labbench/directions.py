"""Which values of a logged metric are better: declared once, by whoever logs the metric.

A task declares the metrics it logs in its ``metric_directions`` (names without the
``train/``, ``val/``, ``test/`` prefix); the probes declare theirs here. Everything that
needs a direction (``metrics.best`` in run.json, the value a diverged run counts as, the
arms table, per-arm tuning, spec validation) asks :func:`direction`; run.json carries the
answer for every curve it holds. ``neither`` marks a measurement with no better side (a
gradient norm, a ratio whose ideal is 1): it has no "best" and no failure value, and a
hypothesis on it states its own predicted direction.
"""

from __future__ import annotations

from typing import Any

LOWER, HIGHER, NEITHER = "lower", "higher", "neither"
DIRECTIONS = (LOWER, HIGHER, NEITHER)
SPLITS = ("train", "val", "test")

PROBE_DIRECTIONS = {  # prefixes of keys the probes (labbench.probes) log
    "init/act_std_log_ratio": LOWER,  # |ln(last / first)|: 0 means the spread was kept
    "init/": NEITHER,  # activation std at init: the ideal ratio is 1, not an extreme
    "probe/loss_spikes": LOWER,
    "probe/loss_spike_events": LOWER,
    "probe/grad_norm/": NEITHER,
    "probe/update_ratio/": NEITHER,
    "probe/act_mean/": NEITHER,
    "probe/act_std/": NEITHER,
    "probe/dead_fraction/": LOWER,
    "probe/attn_entropy/": NEITHER,
    "probe/bn_mean_dev/": NEITHER,  # batch statistics' distance from the running ones (Shen et al. 2020)
    "probe/bn_var_dev/": NEITHER,
    "probe/grad_norm_log_ratio": NEITHER,  # log10(first layer's / last layer's gradient per weight): 0, no layer starves
    "test/never_active": LOWER,  # units that never fire on the training split (labbench.probes.final)
    "test/never_active/": LOWER,
    "test/hidden_rank": HIGHER,  # rank 1: every hidden unit a copy of the others
    "test/hidden_rank_share": HIGHER,
    "test/rank/": NEITHER,
    "test/weight_sparsity": NEITHER,  # a property, not a score: a hypothesis says which side it predicts
    "test/weight_zeros": NEITHER,
}
OUTCOME_DIRECTIONS = {"diverged": LOWER, "fails_to_learn": LOWER}  # per-run outcomes the ablation reads (status, gates)


class UnknownMetric(ValueError):
    """A metric whose direction nobody declared; the message lists the known ones."""


def task_directions(task: Any) -> dict[str, str]:
    """The task class's (or ``_target_`` string's) declared directions, base classes included."""
    if isinstance(task, str):
        from hydra.utils import get_object

        task = get_object(task)
    merged: dict[str, str] = {}
    for cls in reversed(getattr(task, "__mro__", [type(task)])):
        merged.update(getattr(cls, "__dict__", {}).get("metric_directions", {}))
    return merged


def direction(key: str, task: Any) -> str:
    """``lower`` / ``higher`` / ``neither`` for a logged key such as ``val/acc`` or ``probe/loss_spikes``.

    Raises :class:`UnknownMetric` naming what ``task`` logs when nobody declared ``key``.
    """
    if key in OUTCOME_DIRECTIONS:
        return OUTCOME_DIRECTIONS[key]
    for prefix, word in PROBE_DIRECTIONS.items():
        if key == prefix or (prefix.endswith("/") and key.startswith(prefix)):
            return word
    declared = task_directions(task)
    split, _, name = key.partition("/")
    if split in SPLITS and name in declared:
        return declared[name]
    known = ", ".join(f"{s}/{n}" for n in sorted(declared) for s in ("val",)) or "none"
    task_name = task if isinstance(task, str) else getattr(task, "__name__", type(task).__name__)
    raise UnknownMetric(
        f"no direction is declared for metric {key!r} of {task_name}: it logs (under train/, val/, test/) "
        f"{known.replace('val/', '')}; probes log {', '.join(PROBE_DIRECTIONS)}; outcomes: {', '.join(OUTCOME_DIRECTIONS)}"
    )


def directions_of(keys, task: Any) -> dict[str, str]:
    """Direction of every key that has one declared (others are left out, never guessed)."""
    out = {}
    for key in keys:
        try:
            out[key] = direction(key, task)
        except UnknownMetric:
            continue
    return out
