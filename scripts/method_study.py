"""Simulation study of the verdict rule in ``labbench.ablation.stats`` against the alternatives.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/method_study.py            # full: 2,000 draws per cell
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/method_study.py --quick    # smoke: 300 draws, no JSON
    .venv/bin/python scripts/method_study.py --draws 10000 --out /tmp/study.json

What it measures, for paired seeds (both arms run with the same seeds, the difference per
seed is "predicted-better minus other", positive = as predicted):

- A/A false-positive rate: both arms exchangeable (same distribution); the share of draws
  in which a rule gives any verdict other than "inconclusive";
- power: the predicted-better arm is shifted by 0.5, 1 and 2 SD of the per-seed
  differences; the share of draws with the verdict "supported".

Rules, all at alpha = 0.05, two-sided, margin 0:

- ``t``: the paired t-test alone;
- ``sign_flip``: the exact sign-flip (randomization) test alone;
- ``default``: labbench's rule, p = max(p_t, p_sign_flip), the sign-flip test alone when
  every seed gave the same difference (computed here by vectorized copies of
  ``stats.paired_t`` / ``stats.sign_flip_p``, checked against ``stats.compare`` draw by
  draw at start-up);
- ``bootstrap_t``: the previous rule, the 95% studentized bootstrap (bootstrap-t) interval
  of the mean difference excludes 0, n >= 3 (the code of the previous ``stats.py``, with
  2,000 resamples instead of 10,000 to save time; like the old code, one fixed resampling
  seed, so every data set of the same size gets the same resample indices);
- ``wilcoxon``: scipy's Wilcoxon signed-rank test (method "auto": exact without ties or
  zero differences; with them, scipy's exact sign-flip distribution of the rank statistic
  up to 13 seeds (re-implemented here vectorized, checked against scipy at start-up) and
  the normal approximation beyond); the sign of the mean difference gives the direction.

Every cell (scenario x seeds x shift) draws from its own numpy Generator seeded with
``[seed, scenario, n, shift index]``, so a cell's numbers do not depend on which other
cells run; all rules see the same draws. Monte-Carlo standard error of a rate r estimated
from D draws: sqrt(r (1 - r) / D), about 0.5 points at r = 5 % and D = 2,000.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: the study is meant to run on one core

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy import stats as sps  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
try:
    from labbench.ablation import stats as lbs
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(REPO / "src"))
    from labbench.ablation import stats as lbs

SEED = 20240917  # numpy seed of the study
DRAWS = 2000
QUICK_DRAWS = 300
NS = (4, 5, 6, 7, 8, 10, 20)  # 6 = MIN_SEEDS and 7: the seeds between the requested grid points
SHIFTS = (0.5, 1.0, 2.0)  # in SD of the per-seed differences
BOOT_RESAMPLES = 2000  # the old code used 10,000
BOOT_SEED = 0  # the old code's BOOTSTRAP_SEED
OLD_MIN_SEEDS = 3
ALPHA = lbs.ALPHA
LEVEL = 1 - ALPHA
TARGET = ALPHA + 0.01  # the requirement: A/A false-positive rate <= 6 % from REQUIRED_FROM seeds on
REQUIRED_FROM = 8
OUT = REPO / "docs" / "bench" / "method-study.json"
CHUNK = 4_000_000  # elements per intermediate array (32 MB of float64)

RULES = {
    "t": "paired t-test alone",
    "sign_flip": "exact sign-flip test alone",
    "default": "labbench default: max(p_t, p_sign_flip); sign-flip alone when all differences are equal",
    "bootstrap_t": f"previous rule: 95% bootstrap-t interval excludes 0 ({BOOT_RESAMPLES:,} resamples here, 10,000 in the old code)",
    "wilcoxon": "Wilcoxon signed-rank (scipy, method auto), for reference",
}

P_ACC, N_IMAGES = 0.9, 300  # discrete: accuracy on 300 test images
SD_LOGNORMAL = math.sqrt(math.e**2 - math.e)  # sd of lognormal(0, 1)
SD_DISCRETE_ARM = math.sqrt(P_ACC * (1 - P_ACC) / N_IMAGES)


def _normal(rng, size, shift):
    return rng.normal(size=size) + shift, rng.normal(size=size)


def _lognormal(rng, size, shift):
    return rng.lognormal(0.0, 1.0, size=size) + shift, rng.lognormal(0.0, 1.0, size=size)


def _t3(rng, size, shift):
    return rng.standard_t(3, size=size) + shift, rng.standard_t(3, size=size)


def _discrete(rng, size, shift):
    # the shift moves the better arm's true accuracy; outcomes stay multiples of 1/300
    better = rng.binomial(N_IMAGES, P_ACC + shift, size=size) / N_IMAGES
    return better, rng.binomial(N_IMAGES, P_ACC, size=size) / N_IMAGES


def _shared(rng, size, shift):
    seed_effect = rng.normal(0.0, 3.0, size=size)
    return seed_effect + rng.normal(size=size) + shift, seed_effect + rng.normal(size=size)


# name -> (description, sampler(rng, (draws, n), shift) -> (better, worse), sd of the per-seed differences)
SCENARIOS = {
    "normal": ("N(0, 1) per arm", _normal, math.sqrt(2.0)),
    "lognormal": ("skewed: lognormal(0, sigma = 1) per arm", _lognormal, math.sqrt(2.0) * SD_LOGNORMAL),
    "t3": ("heavy tails: Student t, 3 df, per arm", _t3, math.sqrt(6.0)),
    "discrete": ("accuracy on 300 images: Binomial(300, 0.9) / 300 per arm (ties)", _discrete,
                 math.sqrt(2.0) * SD_DISCRETE_ARM),
    "shared": ("shared per-seed effect N(0, 3^2) in both arms + N(0, 1) per arm", _shared, math.sqrt(2.0)),
}


# ----------------------------------------------------------------------------- the rules, vectorized over draws
def resolution(better: np.ndarray, worse: np.ndarray) -> np.ndarray:
    """Row-wise ``stats.resolution(better_row, worse_row)``: the float32 precision ties are judged at."""
    return 2.0 * lbs.FLOAT32_EPS * np.maximum(np.abs(better).max(axis=1), np.abs(worse).max(axis=1))


def paired_t_p(d: np.ndarray, res: np.ndarray | float = 0.0) -> np.ndarray:
    """Row-wise ``stats.paired_t(row, resolution=res)[2]``: NaN where the row has no spread."""
    n = d.shape[1]
    mean, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    flat = sd <= np.maximum(lbs.TOLERANCE * np.maximum(1.0, np.abs(mean)), res)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * sps.t.sf(np.abs(mean) / (sd / math.sqrt(n)), n - 1)
    p[flat] = np.nan
    return p


def sign_flip_p(d: np.ndarray, res: np.ndarray | float = 0.0) -> np.ndarray:
    """Row-wise ``stats.sign_flip_p(row, resolution=res)`` with the same sign patterns (margin 0)."""
    n = d.shape[1]
    signs = lbs._sign_patterns(n)
    observed = np.abs(d.sum(axis=1))
    threshold = observed - np.maximum(lbs.TOLERANCE * np.maximum(1.0, np.abs(d).sum(axis=1)), n * res)
    extreme = np.empty(len(d))
    step = max(1, CHUNK // len(signs))
    for s in range(0, len(d), step):
        sums = np.abs(d[s:s + step] @ signs.T)
        extreme[s:s + step] = np.count_nonzero(sums >= threshold[s:s + step, None], axis=1)
    if n <= lbs.EXACT_UP_TO:
        return extreme / len(signs)
    return (1 + extreme) / (1 + len(signs))


def skew_corrected_p(d: np.ndarray) -> np.ndarray:
    """Row-wise ``stats.skew_corrected_t(row)`` (margin 0): Hall's skew-corrected t; NaN without spread."""
    n = d.shape[1]
    mean, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    flat = sd <= lbs.TOLERANCE * np.maximum(1.0, np.abs(mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        g = ((d - mean[:, None]) ** 3).sum(axis=1) * n / ((n - 1) * (n - 2)) / sd**3
        u = mean / sd
        t = math.sqrt(n) * (u + g * u**2 / 3 + g**2 * u**3 / 27 + g / (6 * n))
        p = 2 * sps.t.sf(np.abs(t), n - 1)
    p = np.where((mean != 0) & (t * mean <= 0), 1.0, p)
    p[flat] = np.nan
    return p


def margin_rule_p(d: np.ndarray) -> np.ndarray:
    """``stats.compare(..., skew_robust=True)``'s p (margin 0): Hall's t in place of the plain one where a row has a
    value at or across 0 on the side away from its mean (for a positive mean, a seed that falls short), the plain
    rule elsewhere."""
    p_t = paired_t_p(d)
    against = (d * np.sign(d.mean(axis=1, keepdims=True)) <= 0).any(axis=1)
    corrected = np.where(np.isnan(p_t) | ~against, p_t, skew_corrected_p(d))
    return default_p(corrected, sign_flip_p(d))


def default_p(p_t: np.ndarray, p_flip: np.ndarray) -> np.ndarray:
    """``stats.compare``'s p: the larger of the two, the sign-flip p alone where the t-test has none."""
    return np.where(np.isnan(p_t), p_flip, np.fmax(p_t, p_flip))


def decide(p: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """+1 supported, -1 contradicted, 0 inconclusive (``stats.decide`` with margin 0)."""
    ok = np.isfinite(p) & (p <= ALPHA) & (mean != 0)
    return np.where(ok, np.sign(mean), 0).astype(int)


def bootstrap_t_interval(d: np.ndarray, resamples: int = BOOT_RESAMPLES, seed: int = BOOT_SEED):
    """Row-wise copy of the previous ``stats.bootstrap_t_ci`` (see :func:`old_bootstrap_t_ci`)."""
    n = d.shape[1]
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))  # the same for every row, as in the old code
    tail = (1 - LEVEL) / 2
    low, high = np.empty(len(d)), np.empty(len(d))
    step = max(1, CHUNK // (resamples * n))
    for s in range(0, len(d), step):
        x = d[s:s + step]
        mean = x.mean(axis=1)
        se = x.std(axis=1, ddof=1) / math.sqrt(n)
        sample = x[:, idx]
        shift = sample.mean(axis=2) - mean[:, None]
        se_star = sample.std(axis=2, ddof=1) / math.sqrt(n)
        spread = se_star > 0
        t_star = np.zeros_like(shift)
        t_star[spread] = shift[spread] / se_star[spread]
        t_star[~spread & (shift > 0)] = np.inf
        t_star[~spread & (shift < 0)] = -np.inf
        t_lo = np.quantile(t_star, tail, axis=1, method="lower")
        t_hi = np.quantile(t_star, 1 - tail, axis=1, method="higher")
        with np.errstate(invalid="ignore"):
            lo, hi = mean - t_hi * se, mean - t_lo * se
        flat = se == 0.0  # every seed gave the same difference: a point interval, as in the old code
        lo[flat], hi[flat] = mean[flat], mean[flat]
        low[s:s + step], high[s:s + step] = lo, hi
    return low, high


def bootstrap_t_verdict(low: np.ndarray, high: np.ndarray, n: int) -> np.ndarray:
    """The old ``stats.verdict`` with margin 0."""
    if n < OLD_MIN_SEEDS:
        return np.zeros(len(low), dtype=int)
    return np.where(low > 0, 1, np.where(high < 0, -1, 0)).astype(int)


def _wilcoxon_permutation_p(d: np.ndarray) -> np.ndarray:
    """scipy's ``wilcoxon(method="auto")`` p for rows with ties or zeros and n <= 13.

    scipy runs ``permutation_test`` over all 2^n sign patterns of the rank-sum statistic
    (zeros dropped, average ranks for ties), p = min(2 min(#null <= obs, #null >= obs) / 2^n, 1);
    rank sums are multiples of 1/2, so no tolerance is involved.
    """
    n = d.shape[1]
    magnitude = np.where(d == 0, np.nan, np.abs(d))
    ranks = np.nan_to_num(sps.rankdata(magnitude, axis=1, nan_policy="omit"), nan=0.0)
    pos, neg = ranks * (d > 0), ranks * (d < 0)
    plus = (lbs._sign_patterns(n) > 0).astype(float)  # 1 where the pattern keeps the sign
    null = pos @ plus.T + neg @ (1.0 - plus).T  # r_plus of every sign pattern
    observed = pos.sum(axis=1)[:, None]
    less = np.count_nonzero(null <= observed, axis=1)
    greater = np.count_nonzero(null >= observed, axis=1)
    return np.clip(2 * np.minimum(less, greater) / 2.0**n, 0.0, 1.0)


def wilcoxon_p(d: np.ndarray) -> np.ndarray:
    """Row-wise ``scipy.stats.wilcoxon(row).pvalue`` (method "auto"), batched by scipy's own branch."""
    n = d.shape[1]
    p = np.full(len(d), np.nan)
    ordered = np.sort(np.abs(d), axis=1)
    clean = np.all(d != 0, axis=1) & np.all(np.diff(ordered, axis=1) != 0, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if clean.any():  # no ties, no zeros: scipy's exact null distribution
            p[clean] = sps.wilcoxon(d[clean], axis=1).pvalue
        if (~clean).any():
            if n <= 13:
                p[~clean] = _wilcoxon_permutation_p(d[~clean])
            else:  # scipy falls back to the normal approximation
                p[~clean] = sps.wilcoxon(d[~clean], axis=1).pvalue
    return p


def verdicts(better: np.ndarray, worse: np.ndarray, resamples: int = BOOT_RESAMPLES) -> dict[str, np.ndarray]:
    """Every rule's verdict (+1 / 0 / -1) on every draw (rows: draws, columns: seeds)."""
    d = better - worse  # stats.compare with direction "higher"
    n = d.shape[1]
    mean = d.mean(axis=1)
    res = resolution(better, worse)
    p_t, p_flip = paired_t_p(d, res), sign_flip_p(d, res)
    low, high = bootstrap_t_interval(d, resamples)
    return {
        "t": decide(p_t, mean),
        "sign_flip": decide(p_flip, mean),
        "default": decide(default_p(p_t, p_flip), mean),
        "bootstrap_t": bootstrap_t_verdict(low, high, n),
        "wilcoxon": decide(wilcoxon_p(d), mean),
    }


# ----------------------------------------------------------------------------- checks against the real code
def old_bootstrap_t_ci(diffs, level=LEVEL, resamples=BOOT_RESAMPLES, seed=BOOT_SEED):
    """Verbatim the previous ``stats.bootstrap_t_ci`` (git history), resamples as a parameter."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2 or not np.all(np.isfinite(d)):
        return math.nan, math.nan
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return mean, mean
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


def self_check(seed: int = SEED, per_cell: int = 4, ns=(4, 8, 10, 20)) -> dict:
    """Draw by draw, the vectorized rules agree with ``stats.compare``, the old bootstrap-t and scipy.

    Raises AssertionError on the first disagreement; returns how many draws were compared.
    """
    code = {"supported": 1, "contradicted": -1, "inconclusive": 0}
    rng = np.random.default_rng([seed, 99])
    cases = []
    for _, sampler, sd in SCENARIOS.values():
        for n in ns:
            for k in (0.0, 1.0):
                cases.append(sampler(rng, (per_cell, n), k * sd))
    # edge cases: every seed the same difference (4 and 8 seeds), a tie-heavy discrete set
    cases.append((np.full((1, 4), 0.5), np.zeros((1, 4))))
    cases.append((np.full((1, 8), 0.5), np.zeros((1, 8))))
    cases.append((np.array([[0.9, 0.9, 0.91, 0.9, 0.9, 0.89, 0.9, 0.9]]), np.full((1, 8), 0.9)))
    compared = 0
    for better, worse in cases:
        d = better - worse
        n = d.shape[1]
        res = resolution(better, worse)
        p_t, p_flip = paired_t_p(d, res), sign_flip_p(d, res)
        p_def = default_p(p_t, p_flip)
        mine = verdicts(better, worse)
        low, high = bootstrap_t_interval(d)
        wil = wilcoxon_p(d)
        for i in range(len(d)):
            ref = lbs.compare(better[i], worse[i], "higher")
            assert np.allclose([p_t[i], p_flip[i], p_def[i]], [ref.p_t, ref.p_sign_flip, ref.p_value],
                               rtol=1e-9, atol=0, equal_nan=True), (d[i], ref)
            assert mine["default"][i] == code[ref.verdict], (d[i], ref)
            old_low, old_high = old_bootstrap_t_ci(d[i])
            assert np.allclose([low[i], high[i]], [old_low, old_high], rtol=1e-9, atol=0, equal_nan=True), d[i]
            old = 0 if n < OLD_MIN_SEEDS else (1 if old_low > 0 else (-1 if old_high < 0 else 0))
            assert mine["bootstrap_t"][i] == old, d[i]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref_w = sps.wilcoxon(d[i]).pvalue
            assert np.allclose(wil[i], ref_w, rtol=1e-9, atol=0, equal_nan=True), (d[i], wil[i], ref_w)
            compared += 1
    return {"draws_compared": compared, "passed": True}


# ----------------------------------------------------------------------------- the study
def _rate(count: int, draws: int) -> dict:
    r = count / draws
    return {"rate": r, "mc_se": math.sqrt(r * (1 - r) / draws)}


def run_cell(scenario: str, n: int, shift_index: int, draws: int, seed: int, resamples: int) -> dict:
    """One cell: draws from its own Generator, every rule's counts of supported / contradicted."""
    names = list(SCENARIOS)
    _, sampler, sd = SCENARIOS[scenario]
    shift = 0.0 if shift_index == 0 else SHIFTS[shift_index - 1] * sd
    rng = np.random.default_rng([seed, names.index(scenario), n, shift_index])
    better, worse = sampler(rng, (draws, n), shift)
    out = {}
    for rule, v in verdicts(better, worse, resamples).items():
        supported, contradicted = int(np.count_nonzero(v == 1)), int(np.count_nonzero(v == -1))
        if shift_index == 0:
            out[rule] = {**_rate(supported + contradicted, draws), "supported": supported, "contradicted": contradicted}
        else:
            out[rule] = {**_rate(supported, draws), "supported": supported, "contradicted": contradicted}
    return out


def effective_shift(scenario: str, k: float) -> float:
    """The shift in SD of the differences under the shifted distribution (differs from k for discrete only)."""
    _, _, sd = SCENARIOS[scenario]
    if scenario != "discrete":
        return k
    p = P_ACC + k * sd
    return k * sd / math.sqrt((p * (1 - p) + P_ACC * (1 - P_ACC)) / N_IMAGES)


def run_study(draws: int = DRAWS, seed: int = SEED, ns=NS, scenarios=None, shifts_index=(1, 2, 3),
              resamples: int = BOOT_RESAMPLES, progress=None, check: bool = True) -> dict:
    """The whole study as a JSON-ready dict (A/A rates, power, per-rule summary).

    ``check``: first run :func:`self_check` (a few seconds; the study refuses to run on a mismatch).
    """
    scenarios = list(scenarios or SCENARIOS)
    start = time.perf_counter()
    checked = self_check(seed) if check else {"draws_compared": 0, "passed": None}
    aa, power = {}, {}
    for name in scenarios:
        aa[name] = {}
        for n in ns:
            aa[name][str(n)] = run_cell(name, n, 0, draws, seed, resamples)
        power[name] = {}
        for j in shifts_index:
            power[name][str(SHIFTS[j - 1])] = {str(n): run_cell(name, n, j, draws, seed, resamples) for n in ns}
        if progress:
            progress(f"{name}: done at {time.perf_counter() - start:.0f} s")
    empirical = {}
    rng = np.random.default_rng([seed, 7])
    for name in scenarios:
        b, w = SCENARIOS[name][1](rng, 1_000_000, 0.0)
        empirical[name] = float(np.std(b - w, ddof=1))
    summary = {}
    for rule in RULES:
        worst = max(((aa[s][str(n)][rule]["rate"], s, n) for s in scenarios for n in ns if n >= REQUIRED_FROM),
                    default=(math.nan, None, None))
        summary[rule] = {
            f"max_aa_rate_from_n{REQUIRED_FROM}": worst[0],
            "worst_cell": {"scenario": worst[1], "n": worst[2]},
            f"meets_{int(round(TARGET * 100))}pct_from_n{REQUIRED_FROM}": bool(worst[0] <= TARGET) if worst[1] else None,
            "max_aa_rate_all_n": max(aa[s][str(n)][rule]["rate"] for s in scenarios for n in ns),
        }
    return {
        "numpy_seed": seed,
        "draws": draws,
        "alpha": ALPHA,
        "ns": list(ns),
        "shifts_sd": [SHIFTS[j - 1] for j in shifts_index],
        "bootstrap_resamples": resamples,
        "sign_flip": {"exact_up_to": lbs.EXACT_UP_TO, "random_flips": lbs.RANDOM_FLIPS, "flip_seed": lbs.FLIP_SEED},
        "rules": RULES,
        "scenarios": {
            name: {
                "description": SCENARIOS[name][0],
                "sd_diff": SCENARIOS[name][2],
                "sd_diff_empirical_1e6": empirical[name],
                "effective_shift_sd": {str(SHIFTS[j - 1]): effective_shift(name, SHIFTS[j - 1]) for j in shifts_index},
            }
            for name in scenarios
        },
        "aa_false_positive": aa,
        "power_supported": power,
        "summary": summary,
        "self_check": checked,
        "runtime_s": round(time.perf_counter() - start, 1),
    }


# ----------------------------------------------------------------------------- roles: a primary and its secondaries
FAMILY_SIZES = (2, 4)  # secondary hypotheses beside the primary
FAMILY_NS = (8, 10)
FAMILY_CASES = {  # name -> (shift of the primary, shift of every secondary), in SD of the differences
    "all null": (0.0, 0.0),
    "primary true, secondaries null": (1.0, 0.0),
    "primary null, secondaries true": (0.0, 1.0),
    "all true": (1.0, 1.0),
}


def family_cell(case: str, k: int, n: int, draws: int, seed: int, rho: float) -> dict:
    """One cell of the family study: ``labbench.ablation.results.apply_family`` itself on every draw.

    Per draw, 1 + k hypotheses, each a set of n paired normal differences (SD 1) shifted as the case says,
    correlated ``rho`` across hypotheses (they share arms and seeds in a real ablation). Rates: family-wise
    error of the confirmatory verdicts (any verdict on a true null among the primary and the judged
    secondaries), P(primary supported), mean P(secondary supported); and the same under the procedure
    before roles (Holm over all 1 + k).
    """
    from labbench.ablation.results import apply_family

    primary_shift, secondary_shift = FAMILY_CASES[case]
    rng = np.random.default_rng([seed, 11, list(FAMILY_CASES).index(case), k, n, int(rho * 100)])
    m = 1 + k
    cov = np.full((m, m), rho) + (1 - rho) * np.eye(m)
    d = rng.multivariate_normal(np.zeros(m), cov, size=(draws, n)).transpose(0, 2, 1)  # draws x m x n
    d[:, 0] += primary_shift
    d[:, 1:] += secondary_shift
    flat = d.reshape(draws * m, n)
    p = default_p(paired_t_p(flat), sign_flip_p(flat)).reshape(draws, m)
    mean = d.mean(axis=2)
    null = np.array([primary_shift == 0.0] + [secondary_shift == 0.0] * k)
    counts = {"gatekeeping": {"fwer": 0, "primary": 0, "secondary": 0}, "holm_all": {"fwer": 0, "primary": 0, "secondary": 0}}
    for i in range(draws):
        for rule in counts:
            hyps = [{"name": str(j), "p_value": float(p[i, j]), "mean_diff": float(mean[i, j]), "margin": 0.0, "undertrained": [],
                     "n": n, "ci_low": math.nan, "role": ("primary" if j == 0 and rule == "gatekeeping" else "secondary")}
                    for j in range(m)]
            apply_family(hyps)
            verdicts = [h["verdict"] for h in hyps]
            decided = [v in ("supported", "contradicted") for v in verdicts]
            counts[rule]["fwer"] += any(dec and nul for dec, nul in zip(decided, null))
            counts[rule]["primary"] += verdicts[0] == "supported"
            counts[rule]["secondary"] += sum(v == "supported" for v in verdicts[1:]) / k
    return {rule: {"fwer": c["fwer"] / draws, "primary_supported": c["primary"] / draws, "secondary_supported": c["secondary"] / draws}
            for rule, c in counts.items()}


def run_families(draws: int = DRAWS, seed: int = SEED, rhos=(0.0, 0.5)) -> dict:
    out = {}
    for rho in rhos:
        for case in FAMILY_CASES:
            for k in FAMILY_SIZES:
                for n in FAMILY_NS:
                    out[f"rho={rho} | {case} | k={k} | n={n}"] = family_cell(case, k, n, draws, seed, rho)
    return out


DRIFT_SHIFTS = (0.0, 0.5, 1.0, 2.0)  # a constant effect, in SD of the per-seed differences
DRIFT_RHOS = (0.0, 0.5)  # correlation of a seed's noise between evaluations


def drift_cell(shift: float, rho: float, n: int, draws: int, seed: int) -> dict:
    """The ``unsettled`` flag under a constant effect (no drift: every flag is a false alarm).

    Per draw and seed, the difference at the evaluations at 1/2, 3/4 and the end of the budget is
    ``shift`` plus noise (SD 1, correlated ``rho`` between evaluations). ``old``: the rule before
    issue 26, any change of the raw verdict among the three; ``drift``: ``results.drift`` itself,
    the change from 1/2 to the end decided by the method's test.
    """
    from labbench.ablation.results import drift

    rng = np.random.default_rng([seed, 13, int(shift * 10), int(rho * 100), n])
    common = rng.normal(size=(draws, 1, n))
    d = shift + math.sqrt(rho) * common + math.sqrt(1 - rho) * rng.normal(size=(draws, 3, n))  # draws x evaluations x seeds
    verdict = np.stack([decide(default_p(paired_t_p(d[:, j]), sign_flip_p(d[:, j])), d[:, j].mean(axis=1)) for j in range(3)], axis=1)
    old = (verdict != verdict[:, :1]).any(axis=1)
    new = 0
    for i in range(draws):
        points = [{"fraction": 0.5, "step": 50, "diffs": list(d[i, 0])}, {"fraction": 1.0, "step": 100, "diffs": list(d[i, 2])}]
        new += drift(points)["decided"]
    return {"old": float(old.mean()), "drift": new / draws}


def run_drift(draws: int = DRAWS, seed: int = SEED, n: int = 8) -> dict:
    return {f"shift={k} | rho={rho}": drift_cell(k, rho, n, draws, seed) for k in DRIFT_SHIFTS for rho in DRIFT_RHOS}


TUNED_AA_CURVATURES = (0.0, 0.1, 0.3, 1.0)  # loss rise per grid step squared, in SD of a run's noise
TUNED_AA_PROCEDURES = {"best, 1 tuning seed": ("best", 1), "best, 3 tuning seeds": ("best", 3), "one_se, 3 tuning seeds": ("one_se", 3),
                       "best, 5 tuning seeds": ("best", 5), "best, 1 tuning seed per final seed (nested)": ("best", 1)}
TUNED_AA_SHARING = (0.0, 0.5)  # correlation of the two arms' tuning noise: 0 = their own tuning seeds (the A/A control), 0.5 = shared ones


def tuned_aa_cell(curvature: float, procedure: str, n: int, draws: int, seed: int, shared_tuning: float = 0.0) -> dict:
    """A tuned A/A control, simulated: two identical arms, each tuned on its own tuning seeds over 5 grid values
    (``labbench.tuning.choose`` itself), then 8 paired final seeds at the chosen values, compared by the method.

    The landscape is a valley, loss = curvature x (grid index - 2.3)^2, plus a shared per-seed effect (SD 1) and
    each run's own noise (SD 1). Where the arms choose different values their final means truly differ, so a
    verdict there is a false positive that tuning added. Rate: any verdict other than inconclusive.
    """
    from labbench.tuning import choose

    rule, k = TUNED_AA_PROCEDURES[procedure]
    rng = np.random.default_rng([seed, 17, int(curvature * 100), list(TUNED_AA_PROCEDURES).index(procedure), n, int(shared_tuning * 100)])
    grid = np.arange(5)
    landscape = curvature * (grid - 2.3) ** 2
    nested = "nested" in procedure  # every final seed tuned on its own: the tuning's noise is part of each paired difference
    per_seed = n if nested else 1
    chosen = np.empty((draws, per_seed, 2), dtype=int)
    for i in range(draws):
        for j in range(per_seed):
            common = rng.normal(size=(len(grid), k))  # what shared tuning seeds share (init, data order)
            for arm in range(2):
                noise = math.sqrt(shared_tuning) * common + math.sqrt(1 - shared_tuning) * rng.normal(size=(len(grid), k))
                scores = {int(g): list(landscape[g] + noise[g]) for g in grid}
                chosen[i, j, arm] = choose(scores, "lower", rule, [int(g) for g in grid])[0]
    chosen = np.broadcast_to(chosen, (draws, n, 2)) if not nested else chosen
    shared = rng.normal(size=(draws, n))
    a = landscape[chosen[:, :, 0]] + shared + rng.normal(size=(draws, n))
    b = landscape[chosen[:, :, 1]] + shared + rng.normal(size=(draws, n))
    d = b - a  # "a has the lower loss", oriented
    verdict = decide(default_p(paired_t_p(d), sign_flip_p(d)), d.mean(axis=1))
    return {"false_positive": float(np.mean(verdict != 0)), "arms_chose_differently": float(np.mean(chosen[:, :, 0] != chosen[:, :, 1])),
            "mean_chosen_index": float(chosen.mean())}


def run_tuned_aa(draws: int = DRAWS, seed: int = SEED, n: int = 8) -> dict:
    return {f"curvature={c} | tuning noise shared={r} | {p}": tuned_aa_cell(c, p, n, draws, seed, r)
            for r in TUNED_AA_SHARING for c in TUNED_AA_CURVATURES for p in TUNED_AA_PROCEDURES}


MARGIN_SCENARIOS = {  # per-seed differences minus the margin, with mean 0 (the null of a margin hypothesis holds exactly)
    "normal": lambda rng, size: rng.normal(size=size),
    "right-skewed (lognormal, sigma 1)": lambda rng, size: rng.lognormal(0.0, 1.0, size) - math.exp(0.5),
    "left-skewed (lognormal, sigma 1)": lambda rng, size: math.exp(0.5) - rng.lognormal(0.0, 1.0, size),
    "a tenth of the seeds fail (-9 with p 0.1, else +1)": lambda rng, size: np.where(rng.random(size) < 0.1, -9.0, 1.0) + 0.0,
}


MARGIN_SHIFTS = {  # true effects beyond the margin, in SD of the differences: how often each rule says "supported"
    "normal, +0.5 SD": lambda rng, size: rng.normal(size=size) + 0.5,
    "normal, +1 SD": lambda rng, size: rng.normal(size=size) + 1.0,
    "normal, +2 SD": lambda rng, size: rng.normal(size=size) + 2.0,
    "normal, +3 SD": lambda rng, size: rng.normal(size=size) + 3.0,
    "left-skewed, +1 SD": lambda rng, size: math.exp(0.5) - rng.lognormal(0.0, 1.0, size) + math.sqrt((math.e - 1) * math.e),
}


def margin_cell(scenario: str, n: int, draws: int, seed: int) -> dict:
    """P("supported") (one-sided: the predicted side wins) of a margin or fixed-reference hypothesis: at its null
    (``MARGIN_SCENARIOS``: the mean of the per-seed differences equals the margin, every "supported" false) or with a
    true effect (``MARGIN_SHIFTS``: power). ``plain``: the rule of a zero-margin hypothesis (before issue 26's
    correction); ``+sign``: plain, and the exact sign test (binomial) on the signs must reject too; ``skew-corrected``:
    labbench's rule for margins (``stats.compare(..., skew_robust=True)``: Hall's t where a seed falls short)."""
    scenarios = {**MARGIN_SCENARIOS, **MARGIN_SHIFTS}
    rng = np.random.default_rng([seed, 19, list(scenarios).index(scenario), n])
    d = scenarios[scenario](rng, (draws, n))
    mean = d.mean(axis=1)
    p = default_p(paired_t_p(d), sign_flip_p(d))
    positive = (d > 0).sum(axis=1)
    p_sign = np.minimum(1.0, 2 * np.minimum(sps.binom.sf(positive - 1, n, 0.5), sps.binom.cdf(positive, n, 0.5)))
    supported = (p <= ALPHA) & (mean > 0)
    corrected = (margin_rule_p(d) <= ALPHA) & (mean > 0)
    return {"plain": float(supported.mean()), "+sign": float((supported & (p_sign <= ALPHA)).mean()),
            "skew-corrected": float(corrected.mean())}


def run_margins(draws: int = DRAWS, seed: int = SEED, ns=(8, 10)) -> dict:
    return {f"{s} | n={n}": margin_cell(s, n, draws, seed) for s in [*MARGIN_SCENARIOS, *MARGIN_SHIFTS] for n in ns}


MAP_SHAPE = (4, 4)  # hypotheses x cells
MAP_NS = (10, 20)  # 8 seeds cannot pass a 16-pair correction at all (the column says "cannot decide")
MAP_CASES = {  # name -> which (hypothesis, cell) pairs are null; the others are shifted by MAP_SHIFT
    "each hypothesis null in one cell": lambda j, c: j == c,
    "all null": lambda j, c: True,
    "one hypothesis null in every cell": lambda j, c: j == 0,
}
MAP_SHIFT = 2.0  # SD of the differences: the true pairs are clearly true, so the nulls carry the error


def map_cell(case: str, n: int, draws: int, seed: int, rho: float) -> dict:
    """The map's 'across cells' column, simulated: ``labbench.ablation.maps.across_cells`` itself on every draw, and the
    rule before issue 26's fix (Holm within each cell, then Holm again across the cells of each hypothesis, on the
    cell's adjusted p) beside it.

    Per draw, 4 hypotheses x 4 cells, each pair n paired normal differences (SD 1), correlated ``rho`` between the
    hypotheses of a cell (they share arms and seeds), null or shifted by ``MAP_SHIFT`` as the case says. Rates: the
    map's family-wise error (any null pair given a verdict) and the mean share of true pairs supported.
    """
    from labbench.ablation.maps import across_cells
    from labbench.ablation.stats import decide as decide_one, holm

    hyps, cells = MAP_SHAPE
    rng = np.random.default_rng([seed, 23, list(MAP_CASES).index(case), n, int(rho * 100)])
    null = np.array([[MAP_CASES[case](j, c) for j in range(hyps)] for c in range(cells)])  # cells x hyps
    cov = np.full((hyps, hyps), rho) + (1 - rho) * np.eye(hyps)
    d = rng.multivariate_normal(np.zeros(hyps), cov, size=(draws, cells, n)).transpose(0, 1, 3, 2)  # draws x cells x hyps x n
    d += np.where(null, 0.0, MAP_SHIFT)[None, :, :, None]
    flat = d.reshape(-1, n)
    p = default_p(paired_t_p(flat), sign_flip_p(flat)).reshape(draws, cells, hyps)
    mean = d.mean(axis=3)
    true_pairs = max(1, int((~null).sum()))
    counts = {"map family": [0, 0.0], "within, then across": [0, 0.0]}
    for i in range(draws):
        within = [holm(list(p[i, c])) for c in range(cells)]
        table = [{"cell": {}, "hypotheses": [{"n": n, "p_value": float(p[i, c, j]), "p_holm": within[c][j], "mean_diff": float(mean[i, c, j]),
                                              "margin": 0.0, "verdict": "tested"} for j in range(hyps)]} for c in range(cells)]
        new = np.array([across_cells(table, j) for j in range(hyps)]).T  # cells x hyps
        old = np.array([[decide_one(a, float(mean[i, c, j])) for c, a in enumerate(holm([within[c][j] for c in range(cells)]))]
                        for j in range(hyps)]).T
        for rule, verdicts in (("map family", new), ("within, then across", old)):
            decided = np.isin(verdicts, ("supported", "contradicted"))
            counts[rule][0] += bool((decided & null).any())
            counts[rule][1] += float(((verdicts == "supported") & ~null).sum()) / true_pairs
    return {rule: {"fwer": c[0] / draws, "true_supported": c[1] / draws if (~null).any() else math.nan} for rule, c in counts.items()}


def run_maps(draws: int = DRAWS, seed: int = SEED, rhos=(0.0, 0.5)) -> dict:
    return {f"{case} | n={n} | rho={rho}": map_cell(case, n, draws, seed, rho) for case in MAP_CASES for n in MAP_NS for rho in rhos}


def family_tables(result: dict) -> str:
    lines = ["Roles: one primary and k secondaries; `gatekeeping` = the primary alone at alpha, then Holm over the secondaries "
             "once it is decided (labbench's rule); `holm_all` = Holm over all 1 + k (the rule before roles). Rates in %; "
             f"{result['draws']:,} draws per cell", "",
             "| correlation | case | k | n | FWER gatekeeping | FWER holm_all | P(primary supported) gatekeeping / holm_all "
             "| P(secondary supported) gatekeeping / holm_all |", "|---|---|---:|---:|---:|---:|---|---|"]
    for key, cell in result["families"].items():
        rho, case, k, n = key.split(" | ")
        g, h = cell["gatekeeping"], cell["holm_all"]
        lines.append(f"| {rho.split('=')[1]} | {case} | {k.split('=')[1]} | {n.split('=')[1]} | {_pct(g['fwer'])} | {_pct(h['fwer'])} | "
                     f"{_pct(g['primary_supported'])} / {_pct(h['primary_supported'])} | "
                     f"{_pct(g['secondary_supported'])} / {_pct(h['secondary_supported'])} |")
    if result.get("drift"):
        lines += ["", f"`unsettled` under a constant effect (every flag a false alarm), 8 seeds, {result['draws']:,} draws: the rule "
                      "before issue 26 (`old`: the raw verdict changed among the evaluations at 1/2, 3/4 and the end) and "
                      "`results.drift` (the change from 1/2 to the end decided). Rates in %", "",
                  "| effect (SD) | noise correlation between evaluations | old | drift |", "|---:|---:|---:|---:|"]
        for key, cell in result["drift"].items():
            shift, rho = (part.split("=")[1] for part in key.split(" | "))
            lines.append(f"| {shift} | {rho} | {_pct(cell['old'])} | {_pct(cell['drift'])} |")
    if result.get("margins"):
        lines += ["", f"Margin and fixed-reference hypotheses: P(\"supported\") (one-sided), at their null (mean difference = the "
                      f"margin: every one false, against alpha/2 = 2.5%) and with a true effect (power), {result['draws']:,} draws. "
                      "Rates in %", "",
                  "| differences | n | plain rule | + exact sign test | skew-corrected (labbench's rule) |", "|---|---:|---:|---:|---:|"]
        for key, cell in result["margins"].items():
            scenario, n = key.split(" | ")
            lines.append(f"| {scenario} | {n.split('=')[1]} | {_pct(cell['plain'])} | {_pct(cell['+sign'])} | {_pct(cell['skew-corrected'])} |")
    if result.get("tuned_aa"):
        lines += ["", f"Tuned A/A, simulated (two identical arms, each tuned on its own seeds over 5 grid values of a valley of the given "
                      f"curvature, then 8 paired final seeds); {result['draws']:,} draws. Rates in %", "",
                  "| tuning noise shared | curvature | procedure | false positive | arms chose differently | mean chosen grid index |",
                  "|---:|---:|---|---:|---:|---:|"]
        for key, cell in result["tuned_aa"].items():
            curvature, shared, procedure = key.split(" | ")
            lines.append(f"| {shared.split('=')[1]} | {curvature.split('=')[1]} | {procedure} | {_pct(cell['false_positive'])} | "
                         f"{_pct(cell['arms_chose_differently'])} | {cell['mean_chosen_index']:.2f} |")
    if result.get("maps"):
        lines += ["", f"A map's 'across cells' column, {MAP_SHAPE[0]} hypotheses x {MAP_SHAPE[1]} cells, true pairs shifted by "
                      f"{MAP_SHIFT} SD; `map family` = one Holm over all pairs (labbench's rule, maps.across_cells), `within, then "
                      f"across` = Holm in each cell, then again across a hypothesis's cells (the rule before); {result['draws']:,} draws. "
                      "Rates in %", "",
                  "| case | n | correlation | FWER map family | FWER within, then across | true pairs supported: map family / within, then across |",
                  "|---|---:|---:|---:|---:|---|"]
        for key, cell in result["maps"].items():
            case, n, rho = key.split(" | ")
            f, w = cell["map family"], cell["within, then across"]
            power = "-" if math.isnan(f["true_supported"]) else f"{_pct(f['true_supported'])} / {_pct(w['true_supported'])}"
            lines.append(f"| {case} | {n.split('=')[1]} | {rho.split('=')[1]} | {_pct(f['fwer'])} | {_pct(w['fwer'])} | {power} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tables
def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def tables(result: dict) -> str:
    """Markdown tables of the result (what docs/method.md quotes)."""
    ns = result["ns"]
    lines = [f"A/A false-positive rate (%), any verdict other than inconclusive; {result['draws']:,} draws per cell, "
             f"Monte-Carlo SE ~{_pct(math.sqrt(0.05 * 0.95 / result['draws']))} points at 5 %", "",
             "| scenario | rule | " + " | ".join(f"n={n}" for n in ns) + " |",
             "|---|---|" + "---:|" * len(ns)]
    for s, cells in result["aa_false_positive"].items():
        for rule in RULES:
            lines.append(f"| {s} | {rule} | " + " | ".join(_pct(cells[str(n)][rule]["rate"]) for n in ns) + " |")
    lines += ["", f"Worst A/A rate from n = {REQUIRED_FROM} (requirement: <= {_pct(TARGET)} %)", "",
              "| rule | worst rate (%) | where | meets |", "|---|---:|---|---|"]
    for rule, s in result["summary"].items():
        rate = s[f"max_aa_rate_from_n{REQUIRED_FROM}"]
        where = f"{s['worst_cell']['scenario']}, n={s['worst_cell']['n']}"
        lines.append(f"| {rule} | {_pct(rate)} | {where} | {s[f'meets_{int(round(TARGET * 100))}pct_from_n{REQUIRED_FROM}']} |")
    for rule in RULES:
        lines += ["", f"Power (%) of rule `{rule}`: P(supported), shift in SD of the differences "
                      f"(Monte-Carlo SE <= {_pct(math.sqrt(0.25 / result['draws']))} points)", "",
                  "| scenario | shift | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|---|" + "---:|" * len(ns)]
        for s, by_shift in result["power_supported"].items():
            for k, cells in by_shift.items():
                lines.append(f"| {s} | {k} | " + " | ".join(_pct(cells[str(n)][rule]["rate"]) for n in ns) + " |")
    for n in ns:
        lines += ["", f"Power (%) at n = {n}, every rule", "",
                  "| scenario | shift | " + " | ".join(RULES) + " |", "|---|---|" + "---:|" * len(RULES)]
        for s, by_shift in result["power_supported"].items():
            for k, cells in by_shift.items():
                lines.append(f"| {s} | {k} | " + " | ".join(_pct(cells[str(n)][r]["rate"]) for r in RULES) + " |")
    return "\n".join(lines)


def _command(argv: list[str]) -> str:
    def rel(p: str) -> str:  # the path as typed from the repository root (no symlink resolution: .venv/bin/python)
        path = Path(p).absolute()
        return os.path.relpath(path, REPO) if path.is_relative_to(REPO) else p
    env = " ".join(f"{v}={os.environ[v]}" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if v in os.environ)
    return " ".join([env, rel(sys.executable), rel(argv[0]), *argv[1:]]).strip()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=DRAWS, help=f"draws per cell (default {DRAWS})")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_DRAWS} draws, no JSON unless --out")
    parser.add_argument("--seed", type=int, default=SEED, help=f"numpy seed (default {SEED})")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON path (default {OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    draws = QUICK_DRAWS if args.quick else args.draws
    out = args.out if args.out is not None else (None if args.quick else OUT)
    result = {"command": _command([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}
    result.update(run_study(draws=draws, seed=args.seed, progress=lambda m: print(m, file=sys.stderr, flush=True)))
    result["families"] = run_families(draws=draws, seed=args.seed)
    result["drift"] = run_drift(draws=draws, seed=args.seed)
    result["tuned_aa"] = run_tuned_aa(draws=draws, seed=args.seed)
    result["margins"] = run_margins(draws=draws, seed=args.seed)
    result["maps"] = run_maps(draws=draws, seed=args.seed)
    result["versions"] = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
    result["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                         "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    print(tables(result))
    print()
    print(family_tables(result))
    print(f"\nruntime {result['runtime_s']} s; self-check: {result['self_check']['draws_compared']} draws agree with "
          f"stats.compare, the old bootstrap-t and scipy's wilcoxon")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
