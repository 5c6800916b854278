"""Choosing a nuisance setting per arm: one rule for ``labbench reproduce`` and for command-line sweeps.

Per setting, the mean of its runs' values (:func:`labbench.ablation.results.tuning_value`:
a diverged run counts at its metric's failure value, or as the worst possible value where
none is declared; a failed run not at all); the best finite mean in the metric's direction
wins; a setting with no value, or one that diverged without a failure value, never wins. A winner at the
smallest or largest of two or more numeric values tried is "on the edge": the optimum may
lie outside what was tried.

Rule ``one_se`` (:func:`one_se_setting`): with several tuning seeds the best mean is itself noisy,
so the smallest numeric setting whose mean is within one standard error (of the best setting's
mean) of the best is chosen: a larger rate wins only when it is better by more than the tuning
noise. Picking the best of noisy means picks noise (issue 26: one tuning seed chose a LayerNorm
rate at which 5 of 8 final seeds stalled); the one-standard-error rule is the usual remedy
(Hastie, Tibshirani & Friedman, The Elements of Statistical Learning, 7.10).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any


def mean_scores(scores: dict[Hashable, list[float]]) -> dict[Hashable, float]:
    """Per setting, the mean of its values, NaN left out (NaN when it has none; +-inf stays in)."""
    out = {}
    for key, values in scores.items():
        present = [v for v in values if not math.isnan(v)]
        out[key] = sum(present) / len(present) if present else math.nan
    return out


def best_setting(scores: dict[Hashable, list[float]], better: str) -> tuple[Hashable | None, dict[Hashable, float]]:
    """The setting with the best mean (``better``: lower / higher), and every setting's mean.

    None when no setting has a value. Ties go to the first setting listed.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be lower or higher, got {better!r}")
    means = mean_scores(scores)
    finite = [(m, i, k) for i, (k, m) in enumerate(means.items()) if math.isfinite(m)]
    if not finite:
        return None, means
    sign = 1 if better == "lower" else -1
    return min(finite, key=lambda t: (sign * t[0], t[1]))[2], means


RULES = ("best", "one_se")


def standard_error(values: Sequence[float]) -> float:
    """The standard error of the mean of the finite values (NaN with fewer than two)."""
    present = [v for v in values if math.isfinite(v)]
    if len(present) < 2:
        return math.nan
    mean = sum(present) / len(present)
    return math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1) / len(present))


def one_se_setting(scores: dict[Hashable, list[float]], better: str, order: Sequence[Hashable]) -> tuple[Hashable | None, dict[Hashable, float]]:
    """The first setting in ``order`` (smallest rate first) whose mean is within one standard error of the best
    mean; the best setting itself where its scores give no standard error (one seed)."""
    best, means = best_setting(scores, better)
    if best is None:
        return None, means
    se = standard_error(scores[best])
    if not math.isfinite(se):
        return best, means
    for key in order:
        m = means.get(key, math.nan)
        if math.isfinite(m) and (m <= means[best] + se if better == "lower" else m >= means[best] - se):
            return key, means
    return best, means


def choose(scores: dict[Hashable, list[float]], better: str, rule: str = "best", order: Sequence[Hashable] = ()) -> tuple[Hashable | None, dict[Hashable, float]]:
    """The setting ``rule`` chooses (``best``: :func:`best_setting`; ``one_se``: :func:`one_se_setting`)."""
    if rule not in RULES:
        raise ValueError(f"tuning rule must be one of {', '.join(RULES)}, got {rule!r}")
    return one_se_setting(scores, better, order or list(scores)) if rule == "one_se" else best_setting(scores, better)


def clears_edge(scores: dict[Hashable, list[float]], better: str, edge: Hashable, inner: Hashable) -> bool:
    """Whether the ``edge`` setting beats its neighbour ``inner`` by more than one standard error of the edge's
    mean: only then does the optimum plausibly lie beyond the edge (``one_se``'s condition for walking past it)."""
    means = mean_scores({k: scores[k] for k in (edge, inner)})
    se = standard_error(scores[edge])
    if not (math.isfinite(means[edge]) and math.isfinite(means[inner])):
        return math.isfinite(means[edge])
    if not math.isfinite(se):
        return True  # one seed: no noise estimate, the rule before one_se (the edge is walked)
    return means[edge] < means[inner] - se if better == "lower" else means[edge] > means[inner] + se


def on_edge(best: Any, tried: Sequence[Any]) -> bool:
    """Whether a numeric ``best`` is the smallest or largest of two or more numeric values tried.

    A joint value (a tuple, one value per tuned key) is on the edge when any of its
    coordinates is on the edge of that coordinate's values."""
    if isinstance(best, tuple):
        joint = [v for v in tried if isinstance(v, tuple) and len(v) == len(best)]
        return any(on_edge(b, [v[i] for v in joint]) for i, b in enumerate(best))
    if isinstance(best, list):
        return False
    numbers = sorted({v for v in tried if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return isinstance(best, (int, float)) and len(numbers) >= 2 and best in (numbers[0], numbers[-1])


def next_value(best: Any, tried: Sequence[Any]) -> float | None:
    """One grid step beyond the edge ``best`` sits on (None if it is on no edge of a numeric grid).

    The step repeats the grid's own spacing at that end: the ratio of the two outermost
    values for a positive grid (half-decades stay half-decades), their difference otherwise.
    Rounded to 3 significant digits, as a person would write the value.
    """
    if not isinstance(best, (int, float)) or not on_edge(best, tried):  # a joint value is not walked (tuning.extend: 0)
        return None
    numbers = sorted({float(v) for v in tried if isinstance(v, (int, float)) and not isinstance(v, bool)})
    edge, inner = (numbers[0], numbers[1]) if best == numbers[0] else (numbers[-1], numbers[-2])
    value = edge * (edge / inner) if edge > 0 and inner > 0 else edge + (edge - inner)
    return float(f"{value:.3g}")
