"""Sample measures against hand-made point sets and images, and a classifier trained on digits."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.functional as TF

from labbench.measures import SampleClassifier, diversity, kernel_distance, laplacian_variance, mode_coverage, save_image_grid, save_scatter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STD = 0.02


def ring(k: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def at_centres(counts: list[int]) -> torch.Tensor:
    centers = ring()
    return torch.cat([centers[i].expand(n, 2) for i, n in enumerate(counts)])


def test_mode_coverage_balanced_samples_cover_every_mode():
    out = mode_coverage(at_centres([100] * 8), ring(), STD)
    assert out["modes"] == 8
    assert out["hq_share"] == 1.0
    assert out["mode_kl"] == pytest.approx(0.0, abs=1e-12)


def test_mode_coverage_collapsed_samples():
    out = mode_coverage(at_centres([300, 300, 300]), ring(), STD)
    assert out["modes"] == 3
    assert out["hq_share"] == 1.0
    # KL(uniform over 3 of 8 || uniform over 8) = sum_3 (1/3) log((1/3) / (1/8)) = log(8/3)
    assert out["mode_kl"] == pytest.approx(math.log(8 / 3), rel=1e-9)


def test_mode_coverage_counts_only_high_quality_samples():
    good = at_centres([100] * 8)
    out = mode_coverage(torch.cat([good, torch.zeros(800, 2, dtype=good.dtype)]), ring(), STD)
    assert out["hq_share"] == 0.5
    # 100 hq samples per mode still reach 0.2 * 1600 / 8 = 40; the far points enter no mode count
    assert out["modes"] == 8
    assert out["mode_kl"] == pytest.approx(0.0, abs=1e-12)
    none = mode_coverage(torch.zeros(10, 2), ring(), STD)
    assert none == {"modes": 0.0, "hq_share": 0.0, "mode_kl": pytest.approx(math.log(8))}


def test_mode_coverage_drops_a_mode_below_min_share():
    # N = 710, K = 8: threshold 0.2 * 710 / 8 = 17.75 samples, so 10 is lost and 18 is not
    assert mode_coverage(at_centres([100] * 7 + [10]), ring(), STD)["modes"] == 7
    assert mode_coverage(at_centres([100] * 7 + [18]), ring(), STD)["modes"] == 8


def test_mode_coverage_quality_threshold_is_in_std_units():
    centers = ring()
    radial = centers / centers.norm(dim=1, keepdim=True)
    inside = centers + 2.9 * STD * radial
    outside = centers - 3.1 * STD * radial
    assert mode_coverage(inside, centers, STD)["hq_share"] == 1.0
    assert mode_coverage(outside, centers, STD)["hq_share"] == 0.0
    assert mode_coverage(outside, centers, STD, threshold=3.2)["hq_share"] == 1.0


@pytest.mark.parametrize(
    "points, centers",
    [
        (torch.zeros(10, 3), ring()),
        (torch.zeros(10), ring()),
        (torch.zeros(10, 2), torch.zeros(8)),
        (torch.zeros(10, 2), torch.zeros(8, 3)),
        (torch.zeros(0, 2), ring()),
        (torch.zeros(10, 2), torch.zeros(0, 2)),
    ],
)
def test_mode_coverage_rejects_bad_shapes(points, centers):
    with pytest.raises(ValueError):
        mode_coverage(points, centers, STD)


@pytest.mark.parametrize("size", [8, 28])
def test_laplacian_variance_drops_with_blur(size):
    g = torch.Generator().manual_seed(0)
    sharp = (torch.rand(4, 1, size, size, generator=g) > 0.5).float()
    blurred = TF.gaussian_blur(sharp, kernel_size=3, sigma=1.0)
    v_sharp, v_blurred = laplacian_variance(sharp), laplacian_variance(blurred)
    assert v_sharp.shape == (4,)
    assert (v_sharp > 2 * v_blurred).all()


def test_laplacian_variance_by_hand():
    assert torch.equal(laplacian_variance(torch.full((3, 3, 8, 8), 0.7)), torch.zeros(3))
    # a 3x3 image has a single valid response (no padding), so variance 0
    dot = torch.zeros(1, 1, 3, 3)
    dot[0, 0, 1, 1] = 1.0
    assert laplacian_variance(dot).item() == 0.0
    # checkerboard: every valid response is +-4, mean 0 over an even count, variance 16
    idx = torch.arange(8)
    board = ((idx[:, None] + idx[None, :]) % 2).float().expand(1, 1, 8, 8)
    assert laplacian_variance(board).item() == pytest.approx(16.0)


def test_diversity():
    assert diversity(torch.ones(5, 1, 4, 4)) == 0.0
    assert diversity(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    # only the first max_samples enter: the far third sample is ignored
    assert diversity(torch.tensor([[0.0, 0.0], [3.0, 4.0], [100.0, 0.0]]), max_samples=2) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        diversity(torch.zeros(1, 3))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    return x[:1400], y[:1400], x[1400:], y[1400:]


@pytest.fixture(scope="module")
def trained(digits):
    x_train, y_train, _, _ = digits
    before = torch.get_rng_state()
    classifier = SampleClassifier(x_train, y_train, 10)
    return classifier, before, torch.get_rng_state()


def test_classifier_accuracy_and_scores(digits, trained):
    _, _, x_test, y_test = digits
    classifier = trained[0]
    assert classifier.accuracy(x_test, y_test) > 0.9
    real = classifier.score(x_test)
    noise = classifier.score(torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert real["confidence"] > noise["confidence"] + 0.1
    assert real["class_entropy"] > 2.1 and real["class_entropy"] <= math.log(10) + 1e-9
    assert real["classifier_score"] > 7 and real["classifier_score"] > noise["classifier_score"] + 2
    single = classifier.score(x_test[:1].expand(100, -1, -1, -1))
    assert single["class_entropy"] < 0.1
    assert single["classifier_score"] == pytest.approx(1.0, abs=1e-6)


def test_classifier_training_is_deterministic_and_leaves_global_rng(digits, trained):
    x_train, y_train, x_test, _ = digits
    _, before, after = trained
    assert torch.equal(before, after)
    torch.manual_seed(1)
    first = SampleClassifier(x_train, y_train, 10, steps=30, seed=7)
    torch.manual_seed(2)  # a different global state must not change the result
    second = SampleClassifier(x_train, y_train, 10, steps=30, seed=7)
    other = SampleClassifier(x_train, y_train, 10, steps=30, seed=8)
    assert torch.equal(first.log_probs(x_test), second.log_probs(x_test))
    assert not torch.equal(first.log_probs(x_test), other.log_probs(x_test))


def test_classifier_cache_returns_one_instance(digits):
    x_train, y_train, _, _ = digits
    first = SampleClassifier.cached("test-digits-tiny", x_train[:100], y_train[:100], 10, steps=5)
    assert SampleClassifier.cached("test-digits-tiny", x_train[:100], y_train[:100], 10, steps=5) is first
    assert SampleClassifier.cached("test-digits-other", x_train[:100], y_train[:100], 10, steps=5) is not first


def test_kernel_distance_by_hand():
    # two 1-D sets: k(a, b) = (a b / 1 + 1)^3
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0], [0.0]])
    k = lambda a, b: (a * b + 1) ** 3  # noqa: E731
    within_x = 2 * k(0, 1) / 2
    within_y = 2 * (k(1, 2) + k(1, 0) + k(2, 0)) / 6
    between = sum(k(a, b) for a in (0, 1) for b in (1, 2, 0)) / 6
    assert kernel_distance(x, y) == pytest.approx(within_x + within_y - 2 * between)
    assert kernel_distance(x, y) == pytest.approx(kernel_distance(y, x))
    with pytest.raises(ValueError, match="at least 2 vectors"):
        kernel_distance(x[:1], y)
    with pytest.raises(ValueError, match="two sets of feature vectors"):
        kernel_distance(x, torch.zeros(3, 2))


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 16, generator=g), torch.randn(500, 16, generator=g)
    same = kernel_distance(a, b)
    assert abs(same) < 0.02
    assert kernel_distance(a + 0.5, b) > 10 * abs(same) and kernel_distance(a + 1.0, b) > kernel_distance(a + 0.5, b)


def test_pixel_noise_does_not_win_the_feature_distance(digits, trained):
    """Sharpness rewards noise; the classifier-feature distance to real digits does not."""
    _, _, x_test, _ = digits
    classifier = trained[0]
    real, other = x_test[:150], x_test[150:300]
    noisy = (other + 0.3 * torch.randn(other.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    blurred = TF.gaussian_blur(other, kernel_size=3, sigma=1.0)
    f = classifier.features
    assert laplacian_variance(noisy).mean() > laplacian_variance(other).mean()  # noise is "sharper" ...
    assert kernel_distance(f(noisy), f(real)) > kernel_distance(f(other), f(real))  # ... but further from real digits
    assert kernel_distance(f(blurred), f(real)) > kernel_distance(f(other), f(real))
    assert f(real).shape == (150, 1024)


def test_figures_write_png_into_new_folder(tmp_path):
    images = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2
    grid = save_image_grid(images, tmp_path / "new" / "grid.png", nrow=5, title="samples")
    rgb = save_image_grid(torch.rand(4, 3, 32, 32), tmp_path / "new" / "rgb.png")
    scatter = save_scatter(
        torch.randn(200, 2), tmp_path / "other" / "deep" / "scatter.png",
        centers=ring(), reference=torch.randn(300, 2), title="ring", limit=3.0,
    )
    auto = save_scatter(torch.randn(50, 2), tmp_path / "other" / "auto.png")
    for path in (grid, rgb, scatter, auto):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 200
