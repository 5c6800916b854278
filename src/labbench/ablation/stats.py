"""Statistics across seeds: per-arm intervals, paired differences, tests, verdicts.

The method (``docs/method.md`` has the simulation study behind each choice):

- per arm: mean, sample std and a Student-t interval of the mean over seeds;
- per hypothesis: the paired differences ``d_i`` over shared seeds, oriented so that a
  positive value means "as predicted", tested against the margin ``m`` twice:
  a **paired t-test** (its interval is the one reported) and an **exact sign-flip
  (randomization) test**: under the null "the two arms are exchangeable", each ``d_i - m``
  is as likely positive as negative, so the observed mean is compared with the means of
  all ``2^n`` sign patterns (enumerated up to ``EXACT_UP_TO`` seeds, sampled beyond).
  The sign-flip test is exact for any distribution, ties and discrete metrics included;
  the t-test gives an interval and keeps the rule from calling a verdict on a lucky
  pattern of signs with a huge spread. A hypothesis's p-value is the larger of the two
  (an intersection-union test: it rejects only where both do, so its error rate is at most
  either test's). When every seed gave the same difference there is no spread to build an
  interval from: the interval is undefined (never zero-width) and the sign-flip test alone
  decides (four equal differences: p = 2/16 = 0.125, inconclusive);
- verdict: supported if p <= alpha and the mean difference is above the margin,
  contradicted if p <= alpha and below it, inconclusive otherwise; Holm's step-down
  correction across an ablation's hypotheses gives the adjusted verdicts;
- the sign-flip test cannot reach p <= alpha with fewer than ``MIN_SEEDS`` seeds
  (its smallest p is 2 / 2^n); the simulation gives ``RECOMMENDED_SEEDS`` for power;
- effect size: mean / sd of the differences (Cohen's d_z); probability of improvement:
  P(a run of the predicted-better arm beats a run of the other), over all pairs of runs,
  ties counted as half (Agarwal et al. 2021);
- margin and fixed-reference hypotheses ("within 1 point", "fewer than 8 modes"), where a seed
  falls on the unpredicted side of the margin: the t part is Hall's (1992) skew-corrected t, which
  shrinks t when the differences lean toward the unpredicted side (a long tail of bad seeds): the
  plain t-test and the sign-flip test assume symmetry about the margin, and with left-skewed
  differences they call a false "supported" 15% of the time against 2.5% nominal (docs/method.md,
  "Margins"); the correction about halves that, at some cost in power;
- rates (divergence): per seed 0 or 1, so the sign-flip test on the paired outcomes is
  the exact McNemar test on the discordant seeds; its interval is the t-interval of the
  paired differences of rates, reported for size only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
LEVEL = 1 - ALPHA
EXACT_UP_TO = 16  # seeds up to which all 2^n sign patterns are enumerated (65,536 at 16)
RANDOM_FLIPS = 100_000  # sign patterns drawn beyond that (p = (1 + hits) / (1 + draws): still valid)
FLIP_SEED = 0  # reports are reproducible bit for bit
MIN_SEEDS = 6  # 2 / 2^6 = 0.031: the fewest seeds at which the sign-flip test can reach p <= 0.05
RECOMMENDED_SEEDS = 8  # docs/method.md: power for a 1-SD effect is 64-79% at 8 seeds, 32-62% at 6, 54-73% at 7
TOLERANCE = 1e-12  # relative: sign patterns whose mean equals the observed one (ties) count as extreme
# Metrics reach the statistics as float32 numbers (Lightning logs tensors; run.json keeps them): two
# accuracies that are equal fractions of a test set can differ by float32 rounding, so ties are judged
# at that precision (see :func:`resolution`), never at float64's
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7: the spacing of float32 numbers at 1
METHOD = (
    f"paired differences over shared seeds; a hypothesis is decided by the larger p of a paired t-test and an exact "
    f"sign-flip (randomization) test (all 2^n patterns up to n = {EXACT_UP_TO}, {RANDOM_FLIPS:,} drawn beyond), "
    f"alpha = {ALPHA}, Holm's correction across the ablation's hypotheses; for a margin or fixed-reference hypothesis with a seed "
    f"across the margin from the mean the t-test is Hall's skew-corrected t; the interval is the paired t-interval "
    f"({int(LEVEL * 100)}%), undefined when every seed gave the same difference; per-arm means with Student-t intervals; "
    f"effect size = mean / sd of the differences; probability of improvement over all run pairs (ties 1/2); "
    f"a verdict needs at least {MIN_SEEDS} paired seeds, {RECOMMENDED_SEEDS}+ recommended (docs/method.md)"
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


def resolution(*values) -> float:
    """How far apart two paired differences may be and still be the same number: the float32 rounding
    of the values they come from (twice half a float32 spacing at the largest magnitude among them).

    A test accuracy of 973/1000 is stored as the nearest float32, 0.97299999; the same difference
    of two accuracies then comes out a few 1e-8 apart from seed to seed, and a sign-flip test that
    compared sums at float64 precision would count no ties (stored p-values too small: issue 26).
    """
    finite = [abs(float(v)) for group in values for v in np.ravel(group) if math.isfinite(float(v))]
    return 2.0 * FLOAT32_EPS * max(finite, default=0.0)


def paired_t(diffs, margin: float = 0.0, level: float = LEVEL, resolution: float = 0.0) -> tuple[float, float, float]:
    """The paired t-interval of the mean difference and the two-sided p of "mean = margin".

    NaN interval and p when there is no spread (fewer than 2 values, or all equal: within
    ``resolution``, the precision the values were stored at).
    """
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return math.nan, math.nan, math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd <= max(TOLERANCE * max(1.0, abs(mean)), resolution):
        return math.nan, math.nan, math.nan
    se = sd / math.sqrt(n)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * sps.t.sf(abs(mean - margin) / se, n - 1))
    return mean - half, mean + half, p


def skew_corrected_t(diffs, margin: float = 0.0, resolution: float = 0.0) -> float:
    """Two-sided p of "mean = margin" by Hall's (1992) skew-corrected t, for margin and reference hypotheses.

    With x = d - margin, mean m, sd s, the skewness g = mu3 / s^3 (mu3 = n / ((n-1)(n-2)) sum (x - m)^3, unbiased)
    and u = m / s: T = sqrt(n) (u + g u^2 / 3 + g^2 u^3 / 27 + g / (6 n)), referred to Student's t with n - 1
    degrees of freedom. It is Johnson's (1978) correction of t for skewness made monotone in u by the cubic term
    (Johnson's own statistic falls again for large effects: at 3 SD and 8 seeds it misses 18% of true effects; this
    misses 3%). A tail of seeds on the unpredicted side (g of the other sign than m) pulls T toward zero, where
    the plain t would call the mean clear of the margin. When T lies on the other side of zero than m, p is 1.
    NaN without spread (as :func:`paired_t`); fewer than 3 values have no third moment: the plain t's p.
    """
    x = np.asarray(diffs, dtype=float) - margin
    n = len(x)
    if n < 2:
        return math.nan
    m, sd = float(x.mean()), float(x.std(ddof=1))
    if sd <= max(TOLERANCE * max(1.0, abs(m + margin)), resolution):
        return math.nan
    if n < 3:
        return float(2 * sps.t.sf(abs(m) / (sd / math.sqrt(n)), n - 1))
    g = float(((x - m) ** 3).sum()) * n / ((n - 1) * (n - 2)) / sd**3
    u = m / sd
    t = math.sqrt(n) * (u + g * u**2 / 3 + g**2 * u**3 / 27 + g / (6 * n))
    if m != 0 and t * m <= 0:
        return 1.0
    return float(2 * sps.t.sf(abs(t), n - 1))


@lru_cache(maxsize=32)
def _sign_patterns(n: int) -> np.ndarray:
    """Every +-1 pattern of length n (2^n x n) up to EXACT_UP_TO; a seeded sample beyond."""
    if n <= EXACT_UP_TO:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    rng = np.random.default_rng(FLIP_SEED)
    return rng.choice((1.0, -1.0), size=(RANDOM_FLIPS, n))


def sign_flip_p(diffs, margin: float = 0.0, resolution: float = 0.0) -> float:
    """Two-sided p of the sign-flip test of "the differences are symmetric about margin".

    Exact (enumerated) up to EXACT_UP_TO values: the share of sign patterns whose |sum|
    reaches the observed |sum|. Beyond, (1 + hits) / (1 + draws) over drawn patterns.
    Sums within ``n x resolution`` of the observed one are ties (each difference may be off by
    ``resolution``, the precision its values were stored at) and count as extreme.
    """
    x = np.asarray(diffs, dtype=float) - margin
    n = len(x)
    if n == 0:
        return math.nan
    observed = abs(float(x.sum()))
    tol = max(TOLERANCE * max(1.0, float(np.abs(x).sum())), n * resolution)
    signs = _sign_patterns(n)
    extreme = int(np.count_nonzero(np.abs(signs @ x) >= observed - tol))
    if n <= EXACT_UP_TO:
        return extreme / len(signs)
    return (1 + extreme) / (1 + len(signs))


def smallest_p(n: int) -> float:
    """The smallest p the sign-flip test can give with n seeds (all differences one sign)."""
    return 2.0 / 2.0**n if n <= EXACT_UP_TO else 1.0 / (1 + RANDOM_FLIPS)


def can_decide(n: int, hypotheses: int = 1, alpha: float = ALPHA) -> bool:
    """Whether any of ``hypotheses`` could reach a verdict with n seeds after Holm's correction.

    Holm compares the smallest p with alpha / K: with fewer seeds than that allows, no
    outcome of the runs, however clear, can give a verdict.
    """
    return n >= 2 and smallest_p(n) <= alpha / max(1, hypotheses)


def seeds_needed(hypotheses: int = 1, alpha: float = ALPHA) -> int:
    """The fewest seeds with which a verdict is possible at all (see :func:`can_decide`)."""
    n = 2
    while not can_decide(n, hypotheses, alpha):
        n += 1
    return n


POWER_DRAWS = 2000  # Monte-Carlo draws behind power(): standard error <= 1.1 points
POWER_SEED = 20261205


@lru_cache(maxsize=512)
def power(n: int, family: int = 1, effect_sd: float = 1.0, alpha: float = ALPHA, draws: int = POWER_DRAWS) -> float:
    """P(supported) for a hypothesis whose paired differences are normal with a true effect of ``effect_sd``
    standard deviations, with ``n`` seeds, judged by this module's rule (the larger p of the t and sign-flip
    tests) in a family of ``family`` hypotheses under Holm's correction.

    The family enters as the first Holm step (p <= alpha / family): exact when the other hypotheses are null,
    a floor otherwise. A primary tested alone has ``family=1``; gatekept secondaries, the number of them.
    Seeded Monte Carlo (``POWER_DRAWS`` draws), so the same question always gets the same figure; the
    simulation study (docs/method.md) gives the same numbers within its error.
    """
    if n < 2:
        return 0.0
    if smallest_p(n) > alpha / max(1, family):
        return 0.0
    rng = np.random.default_rng([POWER_SEED, n, family, int(round(effect_sd * 1000))])
    d = effect_sd + rng.normal(size=(draws, n))
    mean, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    p_t = 2 * sps.t.sf(np.abs(mean) / (sd / math.sqrt(n)), n - 1)
    signs = _sign_patterns(n)
    observed = np.abs(d.sum(axis=1))
    extreme = np.empty(draws)
    step = max(1, 4_000_000 // len(signs))
    for lo in range(0, draws, step):
        sums = np.abs(d[lo:lo + step] @ signs.T)
        extreme[lo:lo + step] = np.count_nonzero(sums >= (observed[lo:lo + step, None] - 1e-12 * np.abs(d[lo:lo + step]).sum(axis=1)[:, None]), axis=1)
    p_flip = extreme / len(signs) if n <= EXACT_UP_TO else (1 + extreme) / (1 + len(signs))
    p = np.maximum(p_t, p_flip)
    return float(np.mean((p <= alpha / max(1, family)) & (mean > 0)))


def seeds_for_power(target: float = 0.8, family: int = 1, effect_sd: float = 1.0, most: int = 30) -> int:
    """The fewest seeds at which :func:`power` reaches ``target`` (``most`` if none up to it does)."""
    for n in range(2, most + 1):
        if power(n, family, effect_sd) >= target:
            return n
    return most


def holm(pvalues, alpha: float = ALPHA) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate <= alpha); NaN stays NaN."""
    p = [(v, i) for i, v in enumerate(pvalues) if math.isfinite(v)]
    p.sort()
    k = len(p)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (v, i) in enumerate(p):
        running = max(running, min(1.0, (k - rank) * v))
        adjusted[i] = running
    return adjusted


def probability_of_improvement(better, worse, direction: str) -> float:
    """P(X beats Y) for X from ``better``, Y from ``worse``, over all pairs; ties count 1/2."""
    x = np.asarray(better, dtype=float)[:, None]
    y = np.asarray(worse, dtype=float)[None, :]
    if x.size == 0 or y.size == 0:
        return math.nan
    wins = (x < y) if direction == "lower" else (x > y)
    return float(wins.mean() + 0.5 * (x == y).mean())


def decide(p: float, mean_diff: float, margin: float = 0.0, alpha: float = ALPHA) -> str:
    """supported / contradicted / inconclusive from a p-value and the side of the margin."""
    if not math.isfinite(p) or not math.isfinite(mean_diff) or p > alpha or mean_diff == margin:
        return "inconclusive"
    return "supported" if mean_diff > margin else "contradicted"


@dataclass(frozen=True)
class Comparison:
    n: int
    mean_diff: float
    sd_diff: float
    effect_size: float  # mean / sd of the differences (Cohen's d_z); NaN without spread
    ci_low: float
    ci_high: float
    p_t: float
    p_sign_flip: float
    p_value: float  # the larger of the two: what the verdict and Holm use
    prob_improvement: float
    verdict: str  # before any correction across hypotheses

    def as_dict(self) -> dict:
        return asdict(self)


def _against_the_mean(diffs: np.ndarray, mean: float, margin: float) -> np.ndarray:
    """Which differences lie at or across the margin, on the side away from the mean (all of them at a mean on it)."""
    return (diffs - margin) * (1.0 if mean > margin else -1.0 if mean < margin else 0.0) <= 0


def compare(better, worse, direction: str, margin: float = 0.0, exact_only: bool = False, skew_robust: bool = False) -> Comparison:
    """Paired comparison of two arms' per-seed values (same seed order in both lists).

    The difference is oriented so that positive means the predicted-better arm did better.
    Non-finite pairs are left out. ``exact_only``: decide by the sign-flip test alone
    (outcomes that are 0 or 1 per seed, such as divergence). ``skew_robust`` (margin and fixed-reference
    hypotheses): where a seed's difference lies on the other side of the margin than the mean (for a mean on the
    predicted side, a seed that falls short), the t part of the rule is :func:`skew_corrected_t` (``p_t`` holds its
    p; the interval stays the paired t-interval); where none does, there is no tail to guard against and the plain
    rule decides (power at large effects is kept). The rule is the same on both sides: a "contradicted" is guarded
    by a tail on the predicted side as a "supported" is by one on the unpredicted side.
    """
    b, w = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    if b.shape != w.shape:
        raise ValueError(f"paired comparison needs equal seed counts, got {len(b)} and {len(w)}")
    diffs = (w - b) if direction == "lower" else (b - w)
    ok = np.isfinite(diffs)
    diffs = diffs[ok]
    n = int(len(diffs))
    mean = float(diffs.mean()) if n else math.nan
    sd = float(diffs.std(ddof=1)) if n > 1 else math.nan
    tie = resolution(b[ok], w[ok])
    low, high, p_t = paired_t(diffs, margin, resolution=tie)
    if skew_robust and not math.isnan(p_t) and np.any(_against_the_mean(diffs, mean, margin)):  # a tail to guard against
        p_t = skew_corrected_t(diffs, margin, resolution=tie)
    p_flip = sign_flip_p(diffs, margin, resolution=tie)
    p = p_flip if (exact_only or math.isnan(p_t)) else max(p_t, p_flip)
    if n < 2:
        p = math.nan
    return Comparison(
        n=n,
        mean_diff=mean,
        sd_diff=sd,
        effect_size=mean / sd if n > 1 and sd > 0 else math.nan,
        ci_low=low,
        ci_high=high,
        p_t=p_t,
        p_sign_flip=p_flip,
        p_value=p,
        prob_improvement=probability_of_improvement(b[ok], w[ok], direction),
        verdict=decide(p, mean, margin),
    )
