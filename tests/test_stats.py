"""The statistics behind every verdict, on numbers with known answers (hand computations, scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from labbench.ablation.stats import (
    ALPHA, MIN_SEEDS, can_decide, compare, decide, holm, paired_t, probability_of_improvement, seeds_needed,
    sign_flip_p, skew_corrected_t, smallest_p, summarize,
)


def test_summary_matches_hand_computed_t_interval():
    s = summarize([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * std / sqrt(n)
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert s.ci_low == pytest.approx(2.0 - half) and s.ci_high == pytest.approx(2.0 + half)


def test_summary_ignores_nothing_silently():
    s = summarize([1.0, float("nan")])
    assert s.n == 1 and math.isnan(s.ci_low)


def test_paired_t_matches_scipy():
    d = [1.0, 1.5, 3.0, 3.1]
    low, high, p = paired_t(d)
    ref = sps.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(0.95)
    assert p == pytest.approx(ref.pvalue) and (low, high) == pytest.approx((ci.low, ci.high))
    assert low > 0  # all-positive differences: the old bootstrap-t gave [-16.4, 6.5] here


def test_sign_flip_p_by_hand():
    # Four equal positive differences: only the all-plus and all-minus patterns reach |sum| = 4.
    assert sign_flip_p([8.0, 8.0, 8.0, 8.0]) == 2 / 16
    # [1, 2, 3]: sums of the 8 patterns are +-6, +-4, +-2, +-0 -> |sum| >= 6 in 2 of 8.
    assert sign_flip_p([1.0, 2.0, 3.0]) == 2 / 8
    # [3, -1, 1, 1]: |sum| = 4; patterns reaching |sum| >= 4: (+3, +-1, +-1, +-1) with sum >= 4 ...
    x = np.array([3.0, -1.0, 1.0, 1.0])
    import itertools
    hand = sum(abs(np.dot(s, x)) >= 4 for s in itertools.product((1, -1), repeat=4)) / 16
    assert sign_flip_p(x) == hand == 8 / 16
    # The margin shifts the null: differences all 0.5 above a margin of 0.5 are all ties at zero.
    assert sign_flip_p([1.0, 1.0, 1.0], margin=0.5) == 2 / 8
    assert sign_flip_p([0.0, 0.0, 0.0, 0.0]) == 1.0


# residual-degradation's committed quick report (test/acc of resnet-32 and resnet-8, 8 seeds, 359 test digits):
# float32 numbers of the form k / 359, as Lightning logged them
RESNET_32 = [0.9832869172096252, 0.9888579249382019, 0.9860724210739136, 0.9832869172096252, 0.9832869172096252,
             0.9777158498764038, 0.9721448421478271, 0.9916434288024902]
RESNET_8 = [0.9832869172096252, 0.9916434288024902, 0.9860724210739136, 0.9860724210739136, 0.9944289922714233,
            0.9860724210739136, 0.9860724210739136, 0.9805014133453369]


@pytest.mark.unit
def test_ties_are_judged_at_the_float32_precision_the_metrics_are_stored_in():
    """Issue 26: at float64 precision these differences of equal fractions are not equal, no tie was
    counted and the stored p was 0.1875; the exact p over the fractions themselves is 0.28125."""
    import itertools
    from fractions import Fraction

    exact = [Fraction(round(b * 359), 359) - Fraction(round(w * 359), 359) for b, w in zip(RESNET_32, RESNET_8)]
    observed = abs(sum(exact))
    hand = sum(abs(sum(s * d for s, d in zip(signs, exact))) >= observed for signs in itertools.product((1, -1), repeat=8)) / 256
    assert hand == 0.28125
    result = compare(RESNET_32, RESNET_8, "higher")
    assert result.p_sign_flip == hand
    assert sign_flip_p(np.subtract(RESNET_32, RESNET_8)) == 0.1875  # without the stored precision: ties missed
    # differences equal up to float32 rounding have no spread: no t-interval, the sign-flip test decides alone
    better = [float(np.float32(v)) for v in (0.7, 0.7, 0.7, 0.5, 0.5, 0.5)]
    worse = [float(np.float32(v)) for v in (0.6, 0.6, 0.6, 0.4, 0.4, 0.4)]
    d = np.subtract(better, worse)
    assert d.std(ddof=1) > 1e-9 and not math.isnan(paired_t(d)[2])  # at float64 precision: a spread, a t-test
    flat = compare(better, worse, "higher")
    assert math.isnan(flat.ci_low) and math.isnan(flat.p_t) and flat.p_value == flat.p_sign_flip == 2 / 64


def test_sign_flip_beyond_enumeration_is_sampled_and_reproducible():
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, size=20)
    p = sign_flip_p(d)
    assert p == sign_flip_p(d) and 0 < p < 1
    assert sign_flip_p(np.ones(20)) == pytest.approx(1 / 100_001)
    # close to the t-test's p at this n for normal data
    assert abs(p - sps.ttest_1samp(d, 0.0).pvalue) < 0.05


def test_constant_differences_give_no_zero_width_interval_and_no_verdict_at_four_seeds():
    c = compare([0.0] * 4, [8.0] * 4, "lower")  # gan-mode-collapse: 8 modes vs 0, every seed
    assert c.mean_diff == 8.0 and math.isnan(c.ci_low) and math.isnan(c.ci_high)
    assert c.p_value == 0.125 and c.verdict == "inconclusive"
    c8 = compare([0.0] * 8, [8.0] * 8, "lower")
    assert c8.p_value == 2 / 256 and c8.verdict == "supported"


def test_ties_give_finite_bounds():
    c = compare([1.0, 1.0, 2.0, 3.0, 2.5, 1.2], [1.0, 1.5, 2.2, 3.4, 2.9, 1.3], "lower")  # one tie
    assert math.isfinite(c.ci_low) and math.isfinite(c.ci_high)


def test_near_ties_get_the_t_interval():
    """gan-discriminator-strength h2: differences near 37 with one far value: a t-interval, not [19, 1444]."""
    d = np.array([35.0, 37.0, 39.5, 36.5])
    c = compare(d, np.zeros(4), "higher")
    assert c.ci_high - c.ci_low < 10 and c.ci_low > 30
    assert c.p_sign_flip == 0.125 and c.verdict == "inconclusive"  # 4 seeds: the sign-flip test cannot decide


def test_clear_effects_get_verdicts_in_the_right_direction():
    rng = np.random.default_rng(0)
    good = rng.normal(0.0, 0.05, size=10)
    bad = good + 1.0 + rng.normal(0.0, 0.05, size=10)  # a clearly higher loss
    assert compare(good, bad, "lower").verdict == "supported"
    assert compare(bad, good, "lower").verdict == "contradicted"
    assert compare(bad, good, "higher").verdict == "supported"
    c = compare(good, bad, "lower")
    assert c.effect_size > 5 and c.p_value == max(c.p_t, c.p_sign_flip) == c.p_sign_flip == 2 / 1024


def test_margin_turns_the_question_into_non_inferiority():
    rng = np.random.default_rng(1)
    a = 0.95 + rng.normal(0, 0.001, size=8)
    b = a + 0.002 + rng.normal(0, 0.0005, size=8)  # a is 0.2 points worse than b
    assert compare(a, b, "higher").verdict == "contradicted"  # a beats b? no
    assert compare(a, b, "higher", margin=-0.005).verdict == "supported"  # a within 0.5 points of b? yes


def test_the_skew_corrected_t_matches_a_hand_computation_and_leans_against_a_tail():
    """Hall's (1992) monotone form of Johnson's skew-corrected t (issue 26, item 8: margins)."""
    # d = 1, 2, 3, 10: m = 4, s^2 = 50/3, mu3 = 4/(3*2) * (-27 - 8 - 1 + 216) = 120, g = mu3/s^3 = 1.76363, u = m/s = 0.97980
    # T = 2 * (u + g u^2/3 + g^2 u^3/27 + g/24) = 3.45199
    assert skew_corrected_t([1, 2, 3, 10]) == pytest.approx(2 * sps.t.sf(3.45199, 3), rel=1e-4)
    plain = paired_t([1, 2, 3, 10])[2]
    assert skew_corrected_t([1, 2, 3, 10]) < plain  # a tail on the predicted side: more confident
    left = [7, 6, 5, -2]  # the same shape mirrored about the mean: the tail on the unpredicted side
    assert skew_corrected_t(left) > paired_t(left)[2]
    assert skew_corrected_t([0.5] * 7 + [-3.0]) == 1.0  # the tail outweighs the mean: not on the mean's side
    assert math.isnan(skew_corrected_t([1.0, 1.0, 1.0]))  # no spread, as the plain t
    assert skew_corrected_t([1.0, 3.0], margin=0.5) == pytest.approx(paired_t([1.0, 3.0], margin=0.5)[2])  # no third moment


def test_a_margin_hypothesis_with_a_tail_of_bad_seeds_is_not_called_supported_by_the_plain_rule_alone():
    """Left-skewed differences (two seeds short of the margin, the rest above): the plain rule says supported (both its
    tests assume symmetry about the margin); the skew-corrected one does not. Where no seed is short, it changes nothing."""
    d = [0.88, 0.79, 0.54, 1.36, -0.2, -0.44, 1.33, 1.13]
    plain, robust = compare(d, [0.0] * 8, "higher"), compare(d, [0.0] * 8, "higher", skew_robust=True)
    assert plain.verdict == "supported" and robust.verdict == "inconclusive"
    assert robust.p_t == pytest.approx(skew_corrected_t(d)) and (robust.ci_low, robust.ci_high) == (plain.ci_low, plain.ci_high)
    clean = [1.0, 1.2, 0.9, 1.1, 1.3, 0.8, 1.0, 1.05]
    assert compare(clean, [0.0] * 8, "higher", skew_robust=True) == compare(clean, [0.0] * 8, "higher")


def test_the_skew_guard_is_the_same_rule_on_the_contradicted_side():
    """gan-discriminator-strength's "the saturating gradient falls tenfold" (reference 1.0) on the ring: all 8 seeds
    below the reference, one near it (skewed toward the margin). No seed lies across the margin from the mean, so
    there is no tail to guard against and the plain rule decides, as it does for the mirrored "supported" case;
    the guard used to fire on any seed short of the margin, so every mean on the unpredicted side was read by Hall's
    t (p 0.103 here, inconclusive) while its mirror image was supported at p 0.0078."""
    d = [-2.573, -1.816, -1.402, -2.274, -2.250, -2.058, -0.161, -1.512]
    down = compare(d, [0.0] * 8, "higher", skew_robust=True)
    up = compare([-x for x in d], [0.0] * 8, "higher", skew_robust=True)
    assert down.p_value == pytest.approx(up.p_value) == pytest.approx(2 / 256)
    assert (down.verdict, up.verdict) == ("contradicted", "supported")
    assert skew_corrected_t(d) > 0.05  # what the old trigger used: Hall's t reads the near seed as a tail
    # a seed across the margin from a contradicted mean is a tail: the guard reads it on this side too
    tail = d[:-1] + [1.5]
    assert compare(tail, [0.0] * 8, "higher", skew_robust=True).p_t == pytest.approx(skew_corrected_t(tail))


def test_exact_only_decides_rates_by_the_sign_flip_test():
    """Divergence per seed (1 = diverged): 7 of 8 seeds diverge in one arm, none in the other."""
    post, pre = [1, 1, 1, 1, 1, 1, 1, 0], [0] * 8
    c = compare(pre, post, "lower", exact_only=True)
    assert c.p_value == c.p_sign_flip == pytest.approx(2 / 128)  # exact McNemar: 7 discordant seeds, all one way
    assert c.verdict == "supported"


def test_probability_of_improvement():
    assert probability_of_improvement([1, 2], [3, 4], "lower") == 1.0
    assert probability_of_improvement([1, 2], [3, 4], "higher") == 0.0
    assert probability_of_improvement([1, 1], [1, 1], "lower") == 0.5
    assert probability_of_improvement([1, 3], [2, 2], "lower") == 0.5


def test_decide():
    assert decide(0.01, 0.3) == "supported"
    assert decide(0.01, -0.3) == "contradicted"
    assert decide(0.2, 0.3) == "inconclusive"
    assert decide(math.nan, 0.3) == "inconclusive"
    assert decide(0.01, 0.3, margin=0.5) == "contradicted"


def test_holm_by_hand():
    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    adjusted = holm([math.nan, 0.01])
    assert math.isnan(adjusted[0]) and adjusted[1] == 0.01


def test_seeds_a_verdict_needs():
    assert smallest_p(5) == 2 / 32 > ALPHA and smallest_p(6) == 2 / 64 < ALPHA
    assert MIN_SEEDS == seeds_needed(1) == 6
    assert not can_decide(5) and can_decide(6)
    assert seeds_needed(3) == 7  # Holm over 3 hypotheses: the smallest p must reach 0.05 / 3


@pytest.mark.parametrize("seeds", [8, 10])
def test_aa_false_positive_rate_is_at_most_nominal(seeds):
    """Two arms drawn from one distribution: a verdict other than inconclusive is a false positive."""
    rng = np.random.default_rng(seeds)
    reps = 800
    false_positives = sum(
        compare(rng.normal(size=seeds), rng.normal(size=seeds), "lower").verdict != "inconclusive" for _ in range(reps)
    )
    assert false_positives / reps <= 0.05 + 0.02, false_positives / reps  # 800 draws: +-0.015 of sampling noise


def test_power_for_a_two_sd_effect_at_eight_seeds():
    rng = np.random.default_rng(11)
    reps = 300
    hits = sum(compare(rng.normal(size=8), rng.normal(size=8) + 2 * math.sqrt(2), "lower").verdict == "supported"
               for _ in range(reps))
    assert hits / reps > 0.9  # a 2-SD (of the differences) effect is found almost always at n = 8


def test_interval_covers_a_known_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_diff, n, reps = 0.3, 8, 600
    covered = 0
    for _ in range(reps):
        low, high, _ = paired_t(true_diff + rng.normal(scale=0.5, size=n))
        covered += low <= true_diff <= high
    assert 0.92 <= covered / reps <= 0.98
