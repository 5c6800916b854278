"""Measurements of samples drawn from generative models (VAE, GAN, diffusion).

A generative model has no test accuracy; claims about one ("a plain GAN drops modes
of an 8-Gaussian ring", "VAE samples are blurrier") need numbers computed from its
samples alone. This module holds those numbers: mode coverage of a 2-D mixture,
sharpness, diversity, and scores from a small classifier trained on the real data,
plus figures of samples to look at. Everything is deterministic on CPU.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
"""The 3x3 Laplacian kernel of the variance-of-the-Laplacian sharpness measure."""


def mode_coverage(
    points: torch.Tensor, centers: torch.Tensor, std: float, threshold: float = 3.0, min_share: float = 0.2
) -> dict[str, float]:
    """Modes of a Gaussian mixture that the samples cover (PacGAN, Lin et al. 2018); points and
    centres in the same space (the 2-D ring, or the ring placed in D dimensions: distances then
    count every coordinate).

    A sample is high quality if it lies within ``threshold * std`` of its nearest centre;
    a mode is covered if it receives at least ``min_share * N / K`` high-quality samples
    (PacGAN: fewer than 20 of the expected 100 means the mode is lost). Returns
    ``modes`` (covered modes), ``hq_share`` (share of high-quality samples) and
    ``mode_kl`` (KL divergence in nats of the high-quality samples' distribution over
    the modes from uniform; ``log K`` when there is no high-quality sample).
    """
    if centers.ndim != 2:
        raise ValueError(f"centers must have shape (K, D), got {tuple(centers.shape)}")
    if points.ndim != 2 or points.shape[1] != centers.shape[1]:
        raise ValueError(f"points must have shape (N, {centers.shape[1]}) like the centres, got {tuple(points.shape)}")
    if len(points) == 0 or len(centers) == 0:
        raise ValueError(f"need at least one point and one centre, got {len(points)} points and {len(centers)} centres")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    n, k = len(points), len(centers)
    distances = torch.cdist(points.detach().double().cpu(), centers.detach().double().cpu())
    nearest_distance, nearest = distances.min(dim=1)
    hq = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[hq], minlength=k).double()
    covered = int((counts >= min_share * n / k).sum())
    total = counts.sum()
    if total == 0:
        mode_kl = math.log(k)
    else:
        share = counts / total
        mode_kl = float(torch.special.xlogy(share, share * k).sum())
    return {"modes": float(covered), "hq_share": float(total / n), "mode_kl": mode_kl}


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Sharpness per image: the variance of its Laplacian (Pech-Pacheco et al. 2000).

    ``images`` (N, C, H, W) in [0, 1]; every channel is convolved with the 3x3 Laplacian
    without padding and the (population) variance is taken over all responses of an
    image. Blur lowers it; a constant image gives 0. Returns shape (N,).
    """
    if images.ndim != 4 or images.shape[-1] < 3 or images.shape[-2] < 3:
        raise ValueError(f"images must have shape (N, C, H, W) with H, W >= 3, got {tuple(images.shape)}")
    x = images.detach().double().cpu()
    channels = x.shape[1]
    kernel = LAPLACIAN.double().expand(channels, 1, 3, 3)
    response = F.conv2d(x, kernel, groups=channels)
    return response.flatten(1).var(dim=1, unbiased=False).float()


def diversity(samples: torch.Tensor, max_samples: int = 1000) -> float:
    """Mean pairwise Euclidean distance between the first ``max_samples`` flattened samples.

    0 when all samples are identical (a collapsed generator); needs at least 2 samples.
    """
    x = samples.detach().double().cpu()[:max_samples].flatten(1)
    if len(x) < 2:
        raise ValueError(f"diversity needs at least 2 samples, got {len(x)}")
    return float(torch.pdist(x).mean())


_CLASSIFIERS: dict[str, SampleClassifier] = {}


class SampleClassifier:
    """A small CNN trained on the real data that scores generated images.

    Classifier-based scores in the spirit of the Inception Score (Salimans et al. 2016),
    but with a classifier trained on the same small data set: values are comparable only
    within one data set. Training is deterministic and leaves the global RNG untouched.
    """

    def __init__(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        num_classes: int,
        steps: int = 500,
        batch_size: int = 128,
        lr: float = 1e-3,
        seed: int = 0,
    ) -> None:
        if x_train.ndim != 4 or len(x_train) != len(y_train) or len(x_train) == 0:
            raise ValueError(f"need x_train (N, C, H, W) and y_train (N,), got {tuple(x_train.shape)} and {tuple(y_train.shape)}")
        self.num_classes = num_classes
        # Lightning evaluates under inference mode; the classifier may be trained from there.
        with torch.inference_mode(False), torch.enable_grad():
            # manual_seed also seeds every GPU: fork (and so restore) their states too.
            with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
                torch.manual_seed(seed)
                self.net = nn.Sequential(
                    nn.Conv2d(x_train.shape[1], 32, 3, padding=1),
                    nn.ReLU(),
                    nn.MaxPool2d(2, ceil_mode=True),
                    nn.Conv2d(32, 64, 3, padding=1),
                    nn.ReLU(),
                    nn.AdaptiveAvgPool2d(4),
                    nn.Flatten(),
                    nn.Linear(64 * 16, num_classes),
                )
            x, y = x_train.detach().float().cpu(), y_train.detach().long().cpu()
            generator = torch.Generator().manual_seed(seed)
            optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
            self.net.train()
            for _ in range(steps):
                idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)
                loss = F.cross_entropy(self.net(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.net.eval()

    @classmethod
    def cached(
        cls, key: str, x_train: torch.Tensor, y_train: torch.Tensor, num_classes: int, **kw: Any
    ) -> SampleClassifier:
        """The classifier trained for ``key`` in this process, training it on first use."""
        if key not in _CLASSIFIERS:
            _CLASSIFIERS[key] = cls(x_train, y_train, num_classes, **kw)
        return _CLASSIFIERS[key]

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """The classifier's penultimate features (N, 1024) of images (N, C, H, W) in [0, 1]:
        what its head separates the classes by, where :func:`kernel_distance` compares sets."""
        x = images.detach().float().cpu()
        body = self.net[:-1]
        return torch.cat([body(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def log_probs(self, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Log class probabilities (N, num_classes) of images (N, C, H, W) in [0, 1]."""
        x = images.detach().float().cpu()
        return torch.cat([F.log_softmax(self.net(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)])

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Share of images whose predicted class is the label."""
        return float((self.log_probs(x).argmax(dim=1) == y.cpu()).double().mean())

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """Scores of a set of samples under this classifier.

        ``confidence``: mean max softmax probability (recognisable samples score high);
        ``class_entropy``: entropy in nats of the mean predicted class distribution (high
        when samples spread over the classes, at most ``ln(num_classes)``);
        ``classifier_score``: ``exp(E_x KL(p(y|x) || p(y)))``, the Inception-Score formula
        (Salimans et al. 2016) with this classifier.
        """
        if len(images) == 0:
            raise ValueError("score needs at least one image")
        log_p = self.log_probs(images).double()
        p = log_p.exp()
        p_y = p.mean(dim=0)
        class_entropy = -torch.special.xlogy(p_y, p_y).sum()
        kl = (p * (log_p - torch.log(p_y))).sum(dim=1).mean()
        return {
            "confidence": float(p.max(dim=1).values.mean()),
            "class_entropy": float(class_entropy),
            "classifier_score": float(kl.exp()),
        }


def kernel_distance(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> float:
    """Squared MMD between two sets of feature vectors, unbiased, with the cubic polynomial kernel
    ``k(a, b) = (a . b / d + coef) ** degree`` (the Kernel Inception Distance, Binkowski et al. 2018).

    0 in expectation when both sets come from one distribution (it can be slightly negative);
    larger when they differ. Unlike a pixel statistic (sharpness), noise added to samples
    moves their features away from the real ones, so it cannot win this measure.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two sets of feature vectors (N, d) and (M, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"the unbiased estimate needs at least 2 vectors per set, got {len(x)} and {len(y)}")
    x, y = x.double(), y.double()
    d = x.shape[1]
    k_xx = (x @ x.T / d + coef) ** degree
    k_yy = (y @ y.T / d + coef) ** degree
    k_xy = (x @ y.T / d + coef) ** degree
    m, n = len(x), len(y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, title: str | None = None) -> Path:
    """Write images (N, C, H, W) in [0, 1] as a PNG grid; creates parent folders."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = images.detach().float().cpu().clamp(0, 1)
    grid = make_grid(x, nrow=nrow, padding=1, pad_value=1.0)
    rows, cols = grid.shape[1:]
    width = 6.0
    fig, ax = plt.subplots(figsize=(width, width * rows / cols + (0.4 if title else 0.0)))
    if x.shape[1] == 1:
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    return _save(fig, ax, path, title)


def save_scatter(
    points: torch.Tensor,
    path: str | Path,
    centers: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    title: str | None = None,
    limit: float | None = None,
) -> Path:
    """Write a 2-D scatter PNG of samples, over real data ``reference`` with mode ``centers``.

    Axis limits are ``+-limit`` when given, else matplotlib's fit to the data with a margin.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = points.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4))
    if reference is not None:
        ref = reference.detach().float().cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, color="0.8", zorder=1)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, color="tab:blue", alpha=0.6, zorder=2)
    if centers is not None:
        c = centers.detach().float().cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=40, color="tab:red", zorder=3)
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    return _save(fig, ax, path, title)


def _save(fig, ax, path: Path, title: str | None) -> Path:
    """Title, tight layout, a PNG without a software stamp (same figure, same bytes), close."""
    import matplotlib.pyplot as plt

    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path
