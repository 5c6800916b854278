"""The statistics behind every verdict, on synthetic numbers with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labbench.ablation.stats import bootstrap_t_ci, compare, probability_of_improvement, summarize, verdict


def test_summary_matches_hand_computed_t_interval():
    s = summarize([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * std / sqrt(n)
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert s.ci_low == pytest.approx(2.0 - half) and s.ci_high == pytest.approx(2.0 + half)


def test_summary_ignores_nothing_silently():
    s = summarize([1.0, float("nan")])
    assert s.n == 1 and math.isnan(s.ci_low)


def test_identical_differences_give_a_point_interval():
    assert bootstrap_t_ci([0.5, 0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_bootstrap_is_reproducible():
    d = np.random.default_rng(3).normal(size=8)
    assert bootstrap_t_ci(d) == bootstrap_t_ci(d)


def test_clear_effects_get_verdicts_in_the_right_direction():
    rng = np.random.default_rng(0)
    good = rng.normal(0.0, 0.05, size=10)
    bad = good + 1.0 + rng.normal(0.0, 0.05, size=10)  # a clearly higher loss
    assert compare(good, bad, "lower").verdict == "supported"
    assert compare(bad, good, "lower").verdict == "contradicted"
    assert compare(bad, good, "higher").verdict == "supported"


def test_margin_turns_the_question_into_non_inferiority():
    rng = np.random.default_rng(1)
    a = 0.95 + rng.normal(0, 0.001, size=8)
    b = a + 0.002 + rng.normal(0, 0.0005, size=8)  # a is 0.2 points worse than b
    assert compare(a, b, "higher").verdict == "contradicted"  # a beats b? no
    assert compare(a, b, "higher", margin=-0.005).verdict == "supported"  # a within 0.5 points of b? yes


def test_probability_of_improvement():
    assert probability_of_improvement([1, 2], [3, 4], "lower") == 1.0
    assert probability_of_improvement([1, 2], [3, 4], "higher") == 0.0
    assert probability_of_improvement([1, 1], [1, 1], "lower") == 0.5
    assert probability_of_improvement([1, 3], [2, 2], "lower") == 0.5


def test_verdict_needs_three_seeds_and_a_finite_interval():
    assert verdict(0.1, 0.2, n=2) == "inconclusive"
    assert verdict(0.1, 0.2, n=3) == "supported"
    assert verdict(-0.2, -0.1, n=3) == "contradicted"
    assert verdict(-0.1, 0.1, n=3) == "inconclusive"
    assert verdict(math.nan, 0.1, n=5) == "inconclusive"
    assert verdict(-math.inf, -0.1, n=5) == "contradicted"  # a one-sided bootstrap-t interval still decides
    assert verdict(-math.inf, math.inf, n=5) == "inconclusive"


@pytest.mark.parametrize("seeds", [4, 5, 10])
def test_aa_false_positive_rate_is_about_nominal(seeds):
    """Two arms drawn from one distribution: a verdict other than inconclusive is a false positive."""
    rng = np.random.default_rng(seeds)
    reps = 800
    false_positives = sum(
        compare(rng.normal(size=seeds), rng.normal(size=seeds), "lower").verdict != "inconclusive" for _ in range(reps)
    )
    rate = false_positives / reps
    assert 0.015 <= rate <= 0.08, rate  # nominal 0.05; 800 draws give +-0.015 of sampling noise


def test_interval_covers_a_known_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_diff, n, reps = 0.3, 8, 600
    covered = 0
    for _ in range(reps):
        base = rng.normal(size=n)
        low, high = bootstrap_t_ci(base + true_diff - base + rng.normal(scale=0.5, size=n))
        covered += low <= true_diff <= high
    assert 0.91 <= covered / reps <= 0.99
