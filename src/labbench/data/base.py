"""In-memory data modules: deterministic splits, normalization, batching by index.

Small data sets fit in memory as tensors, so a batch is one fancy-index of a tensor:
no per-sample Python, no worker processes (the airbench approach). On a GPU the splits
are moved to it once (``on_device``) and batches, including their augmentation
(:mod:`labbench.data.augment`), are cut there: nothing crosses the bus per step.
Three seeds keep the concerns apart:

- ``split_seed`` fixes which samples are train / val / test (the same for every run);
- ``order_seed`` (the run's seed by default) fixes the order of training batches;
- the model's init comes from the global RNG, seeded by the training entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import lightning as L
import torch

from labbench.data.augment import CropFlip, take, to_device

IGNORE = -100  # the target of a position with no loss: torch.nn.CrossEntropyLoss's default ignore_index


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing; the message names the path and how to get them."""


def rank_and_world(datamodule: L.LightningDataModule) -> tuple[int, int]:
    """This process's rank and the number of processes of the run (0, 1 without a trainer)."""
    trainer = getattr(datamodule, "trainer", None)
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


def training_device(datamodule: L.LightningDataModule) -> torch.device:
    """The device this process trains on (the CPU without a trainer)."""
    trainer = getattr(datamodule, "trainer", None)
    return trainer.strategy.root_device if trainer is not None else torch.device("cpu")


def first_batches(make_pass: Callable[[int], Iterable], n: int) -> list:
    """``n`` batches from passes ``make_pass(0)``, ``make_pass(1)``, ... (as many as it takes)."""
    out: list = []
    pass_index = 0
    while len(out) < n:
        before = len(out)
        for batch in make_pass(pass_index):
            out.append(batch)
            if len(out) == n:
                break
        if len(out) == before:
            raise ValueError("the training split gave no batch to estimate statistics from")
        pass_index += 1
    return out


def check_global_batch(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ValueError(
            f"data.batch_size={batch_size} is the global batch of all {world_size} processes and must be "
            f"divisible by it (each takes {batch_size} / {world_size} samples of every batch)"
        )


def eval_block(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """This rank's contiguous share of ``n`` evaluation samples: every sample once, no padding."""
    return n * rank // world_size, n * (rank + 1) // world_size


class IndexBatches:
    """Iterable over ``(x, y)`` batches sliced from in-memory tensors.

    With ``shuffle`` each pass draws a fresh permutation from ``seed`` and the pass
    number, so the data order of a run depends on its seed alone; with ``augment`` the
    same generator then draws the augmentation of every sample of the pass. Batches are
    cut on the device the tensors live on; the permutation and the augmentation
    parameters move there once per pass.

    Under data parallelism (``world_size`` > 1) a training batch (``drop_last``) is the
    global batch: every rank draws the same permutation and takes every
    ``world_size``-th sample of each batch, so N processes see exactly the samples one
    process would. Evaluation (no ``drop_last``) gives each rank a contiguous block of
    the data, so every sample is seen exactly once: no padding, no drop.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        augment: CropFlip | None = None,
        fill: torch.Tensor | None = None,
    ) -> None:
        if augment is not None and not shuffle:
            raise ValueError("augmentation is for training batches (shuffle=True); evaluation data stays as it is")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if drop_last and batch_size > len(x):
            raise ValueError(
                f"batch_size={batch_size} is larger than the {len(x)} training samples; "
                "choose a smaller data.batch_size"
            )
        if drop_last:
            check_global_batch(batch_size, world_size)
        else:
            lo, hi = eval_block(len(x), rank, world_size)
            x, y = x[lo:hi], y[lo:hi]
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.augment, self.fill = augment, None if fill is None else fill.to(x.device)  # moved once, not per batch
        self.passes = 0

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, device = len(self.x), self.x.device
        order = params = None
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.passes)
            order = torch.randperm(n, generator=generator).to(device)
            if self.augment is not None:  # drawn for every global batch of the pass, on the CPU
                params = to_device(self.augment.sample(len(self) * self.batch_size, generator), device)
            self.passes += 1
        share = slice(self.rank, None, self.world_size) if self.drop_last else slice(None)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            if order is None:
                yield self.x[lo:hi][share], self.y[lo:hi][share]
                continue
            idx = order[lo:hi][share]
            x = self.x[idx]
            if params is not None:
                x = self.augment.apply(x, take(take(params, slice(lo, hi)), share), self.fill)
            yield x, self.y[idx]


class TensorDataModule(L.LightningDataModule):
    """Base for data sets held as tensors. Subclasses implement :meth:`load`.

    ``load`` returns ``(x_train, y_train, x_test, y_test)``; the validation split is
    carved from the training part with ``split_seed``. Inputs are standardized per
    channel with statistics of the training split only. ``augment`` (image data only)
    transforms training batches; ``on_device`` keeps the splits on the training device
    when it is not the CPU (moved once; ``false`` moves each batch instead).

    ``train_size`` keeps that many samples of the training split (a random subset fixed by
    ``split_seed``, the same for every run seed; validation and test stay whole): the small
    training sets of the overfitting claims. ``label_noise`` replaces exactly that share of
    the training labels (after the subset) by a different class drawn uniformly from the
    other K - 1 (symmetric noise, fixed by ``split_seed``); validation and test labels stay
    clean, so they measure what the model learned about the true labels.
    """

    num_classes: int

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        order_seed: int = 0,
        normalize: bool = True,
        augment: CropFlip | None = None,
        on_device: bool = True,
        train_size: int | None = None,
        label_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if train_size is not None and train_size < 1:
            raise ValueError(f"train_size must be a positive number of samples (or null: the whole split), got {train_size}")
        if not 0.0 <= label_noise < 1.0:
            raise ValueError(f"label_noise must be a share of the training labels in [0, 1), got {label_noise}")
        self.train_size, self.label_noise = train_size, label_noise
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.order_seed = order_seed
        self.normalize = normalize
        self.augment, self.on_device = augment, on_device
        self.fill: torch.Tensor | None = None  # black, per channel, in the data's (standardized) scale
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._placed: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # -- to implement ---------------------------------------------------------------
    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x_train, y_train, x_test, y_test = self.load()
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(x_train), generator=generator)
        n_val = int(round(self.val_fraction * len(x_train)))
        val_idx, train_idx = order[:n_val], order[n_val:]
        if self.train_size is not None:
            if self.train_size > len(train_idx):
                raise ValueError(f"train_size={self.train_size} is more than the {len(train_idx)} samples of the training split")
            train_idx = train_idx[: self.train_size]  # already in random order: a random subset
        y_kept = y_train[train_idx]
        if self.label_noise:
            y_kept = flip_labels(y_kept, self.label_noise, self.num_classes, generator)
        splits = {
            "train": (x_train[train_idx], y_kept),
            "val": (x_train[val_idx], y_train[val_idx]),
            "test": (x_test, y_test),
        }
        x = splits["train"][0]
        if self.augment is not None and x.dim() != 4:
            raise ValueError(
                f"augment={type(self.augment).__name__} transforms images (C, H, W), but this data set's inputs have shape "
                f"{tuple(x.shape[1:])}: use it with data=digits, mnist5k, mnist or cifar10, or drop it (~augment)"
            )
        self.fill = torch.zeros(x.shape[1]) if x.dim() == 4 else None
        if self.normalize:
            dims = [0] + list(range(2, x.dim()))  # all but the channel axis
            mean = x.mean(dim=dims, keepdim=True)[0:1]
            std = x.std(dim=dims, keepdim=True)[0:1].clamp_min(1e-6)
            splits = {k: ((v[0] - mean) / std, v[1]) for k, v in splits.items()}
            if self.fill is not None:
                self.fill = ((self.fill - mean.flatten()) / std.flatten()).contiguous()
        self.splits = {k: (v[0].contiguous(), v[1].contiguous()) for k, v in splits.items()}

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, channels first: ``(C,)``, ``(C, L)`` or ``(C, H, W)``."""
        self.setup()
        return tuple(self.splits["train"][0].shape[1:])

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {k: len(v[1]) for k, v in self.splits.items()}

    def baselines(self) -> dict[str, float]:
        """What a model that learned nothing scores on each split, for competence gates.

        ``{split}/chance``: the accuracy of always answering the split's most frequent label
        (the chance level a classifier must beat; 1/K on balanced data).
        """
        self.setup()
        out = {}
        for split, (_, y) in self.splits.items():
            if y.dtype.is_floating_point or y.numel() == 0:
                continue
            out[f"{split}/chance"] = float(torch.bincount(y.flatten()).max()) / y.numel()
        return out

    def model_kwargs(self) -> dict:
        """What a model needs to know about the data: input shape and class count."""
        return {"in_shape": self.input_shape, "num_classes": self.num_classes}

    def task_kwargs(self) -> dict:
        return {"num_classes": self.num_classes}

    def probe_batch(self, n: int) -> torch.Tensor:
        """A fixed input batch (the first ``n`` training samples) for measurements at init."""
        self.setup()
        return self.splits["train"][0][:n]

    def train_dataloader(self) -> IndexBatches:
        return IndexBatches(
            *self.placed("train"), self.batch_size, shuffle=True, seed=self.order_seed, drop_last=True,
            augment=self.augment, fill=self.fill, **self._shard(),
        )

    def val_dataloader(self) -> IndexBatches:
        return IndexBatches(*self.placed("val"), self.eval_batch_size, **self._shard())

    def estimation_batches(self, batch_size: int, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` training batches of ``batch_size`` for precise BatchNorm statistics: shuffled by ``seed``
        alone, without augmentation (the inputs evaluation sees), the whole batch on every process."""
        loader = IndexBatches(*self.placed("train"), batch_size, shuffle=True, seed=seed, drop_last=True)
        return first_batches(lambda _pass: loader, n)  # the loader draws a new permutation each pass

    def test_dataloader(self) -> IndexBatches:
        return IndexBatches(*self.placed("test"), self.eval_batch_size, **self._shard())

    def placed(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``split`` on the training device (copied there once) with ``on_device``, else where it is."""
        self.setup()
        device = training_device(self)
        if not self.on_device or device.type == "cpu":
            return self.splits[split]
        key = (split, str(device))
        if key not in self._placed:
            self._placed[key] = tuple(t.to(device) for t in self.splits[split])
        return self._placed[key]

    def _shard(self) -> dict[str, int]:
        rank, world = rank_and_world(self)
        return {"rank": rank, "world_size": world}


def flip_labels(y: torch.Tensor, rate: float, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Symmetric label noise: exactly ``round(rate * len(y))`` labels, chosen at random, each
    replaced by one of the other ``num_classes - 1`` classes, uniformly."""
    if y.dtype.is_floating_point or num_classes < 2:
        raise ValueError("label_noise needs integer class labels and at least 2 classes")
    y = y.clone()
    n = int(round(rate * len(y)))
    chosen = torch.randperm(len(y), generator=generator)[:n]
    shift = torch.randint(1, num_classes, (n,), generator=generator)  # 1..K-1: never the true class
    y[chosen] = (y[chosen] + shift) % num_classes
    return y


def holdout(
    x: torch.Tensor, y: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a data set that ships without a test split into a fixed train / test pair."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
