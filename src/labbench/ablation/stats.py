"""Statistics across seeds: per-arm intervals, paired bootstrap differences, verdicts.

Method (stated in every report):
- per arm: mean, sample std, and a Student-t confidence interval of the mean over seeds;
- per hypothesis: the paired difference (arms share seeds) oriented so that positive
  means "as predicted"; its confidence interval is the studentized bootstrap
  (bootstrap-t; Efron & Tibshirani 1993, ch. 12). The plain percentile bootstrap cannot
  be wider than the range of the data: with 3 seeds an A/A control would come out
  "significant" 25% of the time, with 5 seeds about 8%. The bootstrap-t keeps the A/A
  false-positive rate at or below the nominal 5% from 4 seeds on (tests/test_stats.py);
- probability of improvement: P(a run of the predicted-better arm beats a run of the
  other), over all pairs of runs, ties counted as half (Agarwal et al. 2021);
- verdict: supported if the interval lies above the margin, contradicted if below it,
  inconclusive if it contains it (claims.md; the margin is 0 unless the spec says).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

LEVEL = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # reports are reproducible bit for bit
MIN_SEEDS = 3
METHOD = (
    f"paired differences over shared seeds; {int(LEVEL * 100)}% studentized bootstrap (bootstrap-t) interval "
    f"({RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}); per-arm means with Student-t "
    f"{int(LEVEL * 100)}% intervals; probability of improvement over all run pairs (ties 1/2); "
    f"a verdict needs at least {MIN_SEEDS} seeds"
)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(values, level: float = LEVEL) -> Summary:
    """Mean, sample std and the Student-t interval of the mean (NaN where undefined)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def bootstrap_t_ci(diffs, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Studentized (bootstrap-t) interval of the mean of ``diffs`` (NaN below 2 values).

    Each resample gives t* = (mean* - mean) / se*; the interval is
    [mean - t*_hi se, mean - t*_lo se]. A resample whose values are all equal has no
    spread: its t* is unbounded (sign of mean* - mean), which keeps tiny samples honest
    instead of letting them look certain.
    """
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2 or not np.all(np.isfinite(d)):
        return math.nan, math.nan
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return mean, mean  # every seed gave the same difference
    rng = np.random.default_rng(seed)
    sample = d[rng.integers(0, n, size=(resamples, n))]
    shift = sample.mean(axis=1) - mean
    se_star = sample.std(axis=1, ddof=1) / math.sqrt(n)
    t_star = np.full(resamples, 0.0)
    spread = se_star > 0
    t_star[spread] = shift[spread] / se_star[spread]
    t_star[~spread & (shift > 0)] = np.inf
    t_star[~spread & (shift < 0)] = -np.inf
    tail = (1 - level) / 2
    t_lo = np.quantile(t_star, tail, method="lower")
    t_hi = np.quantile(t_star, 1 - tail, method="higher")
    return float(mean - t_hi * se), float(mean - t_lo * se)


def probability_of_improvement(better, worse, direction: str) -> float:
    """P(X beats Y) for X from ``better``, Y from ``worse``, over all pairs; ties count 1/2."""
    x = np.asarray(better, dtype=float)[:, None]
    y = np.asarray(worse, dtype=float)[None, :]
    if x.size == 0 or y.size == 0:
        return math.nan
    wins = (x < y) if direction == "lower" else (x > y)
    return float(wins.mean() + 0.5 * (x == y).mean())


def verdict(low: float, high: float, margin: float = 0.0, n: int = MIN_SEEDS) -> str:
    """supported / contradicted / inconclusive for an interval of "predicted minus other".

    An infinite bound is a real (conservative) bound from the bootstrap-t; NaN means no interval.
    """
    if n < MIN_SEEDS or math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if low > margin:
        return "supported"
    if high < margin:
        return "contradicted"
    return "inconclusive"


@dataclass(frozen=True)
class Comparison:
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    prob_improvement: float
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def compare(better, worse, direction: str, margin: float = 0.0) -> Comparison:
    """Paired comparison of two arms' per-seed values (same seed order in both lists).

    The difference is oriented so that positive means the predicted-better arm did better.
    """
    b, w = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    if b.shape != w.shape:
        raise ValueError(f"paired comparison needs equal seed counts, got {len(b)} and {len(w)}")
    diffs = (w - b) if direction == "lower" else (b - w)
    ok = np.isfinite(diffs)
    diffs = diffs[ok]
    low, high = bootstrap_t_ci(diffs)
    n = int(len(diffs))
    return Comparison(
        n=n,
        mean_diff=float(diffs.mean()) if n else math.nan,
        ci_low=low,
        ci_high=high,
        prob_improvement=probability_of_improvement(b[ok], w[ok], direction),
        verdict=verdict(low, high, margin, n),
    )
