"""Choosing a nuisance setting per arm: one rule for ``labbench reproduce`` and for command-line sweeps.

Per setting, the mean of its runs' values (:func:`labbench.ablation.results.tuning_value`:
a diverged run counts at its metric's failure value, or as the worst possible value where
none is declared; a failed run not at all); the best finite mean in the metric's direction
wins; a setting with no value, or one that diverged without a failure value, never wins. A winner at the
smallest or largest of two or more numeric values tried is "on the edge": the optimum may
lie outside what was tried.
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
