"""Precise BatchNorm population statistics for evaluation (Wu & Johnson 2021, "Rethinking
'Batch' in BatchNorm", section 3: "precise BN").

In eval mode a BatchNorm layer normalizes with its running statistics: an exponential
moving average (momentum 0.1) of the batch statistics seen during training. The average
mixes batches computed by earlier weights; where the weights move fast (a high or constant
learning rate) it describes a network that no longer exists, and eval accuracy swings from
one evaluation to the next by tens of points (issue 25: a BatchNorm CNN at SGD lr 0.1 read
0.32-0.92 on MNIST between evaluations 50 steps apart, 0.93-0.97 with precise statistics).

Precise statistics are re-estimated with the final weights just before an evaluation: a copy
of the model, in eval mode except for its BatchNorm layers, runs ``batches`` training batches
without gradients; each BatchNorm layer keeps the plain average of the batch means and of the
(unbiased) batch variances (``momentum=None``: PyTorch's cumulative average). The evaluation
then reads them; afterwards the model's own running statistics are put back, so training, its
random streams and every later step are exactly those of a run without precise statistics.

Choices, and why:
- Dropout and every other layer stay in eval mode during the estimate: the statistics describe
  the network that is evaluated (dropout off), not the training-time one.
- The batches come from the training split without augmentation (the inputs evaluation sees),
  drawn by a generator of their own, seeded from the run's seed: the same batches at every
  evaluation of a run, and nothing drawn from the training loader or the global RNG.
- Their size is the per-process training batch by default: BatchNorm learned its affine
  parameters under batch statistics of that size (the population statistics of a batch-2 net
  are averages of batch-2 statistics, as its running ones are).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import nn

SPLITS = ("val", "test")
WHERE = {"val": ("val",), "test": ("test",), "both": ("val", "test")}  # norm.precise_splits -> the evaluations it covers
SEED_OFFSET = 7_654_321  # the estimation batches' seed is the run's seed plus this: apart from the training order's stream


def batchnorm_layers(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that keep running statistics (the ones eval mode reads), by name."""
    return {
        name: m for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    }


def default_forward(model: nn.Module, batch: Any) -> None:
    """Run the model on a batch's inputs (its first element)."""
    model(batch[0])


@torch.no_grad()
def precise_statistics(
    model: nn.Module, batches: Iterable[Any], forward: Callable[[nn.Module, Any], Any] = default_forward
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{layer: (mean, var)}``: the plain average over ``batches`` of each BatchNorm layer's batch
    mean and unbiased batch variance, computed on a copy of ``model`` (which is left untouched).

    Every other layer of the copy is in eval mode (dropout off). The global RNG state is restored
    afterwards, so a forward pass that draws noise (a VAE's reparameterization) costs the run
    nothing.
    """
    estimator = copy.deepcopy(model)
    estimator.eval()
    layers = batchnorm_layers(estimator)
    if not layers:
        raise ValueError("precise BatchNorm statistics need a model with BatchNorm layers (that track running statistics); this one has none")
    for bn in layers.values():
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after k batches, the mean of the k batch statistics
        bn.train()
    device = next((p.device for p in estimator.parameters()), torch.device("cpu"))
    seen = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for batch in batches:
            forward(estimator, batch)
            seen += 1
    if not seen:
        raise ValueError("precise BatchNorm statistics got no batches to estimate from")
    return {name: (bn.running_mean.clone(), bn.running_var.clone()) for name, bn in layers.items()}


class PreciseBatchNorm(L.Callback):
    """Evaluate with precise population statistics (see the module's docstring).

    Before each validation (``splits`` holds ``val``) and test (``test``) the statistics are
    estimated from ``batches`` training batches of ``batch_size`` (None: the per-process training
    batch) and written into the model's BatchNorm layers; after it the running statistics the
    training keeps are restored, bit for bit. The data module supplies the batches
    (``estimation_batches(batch_size, n, seed)``); the task says how the model runs on one
    (``statistics_forward``: a GAN's generator runs on noise).
    """

    def __init__(self, batches: int, batch_size: int | None = None, splits: str = "both", seed: int = 0) -> None:
        if batches < 1:
            raise ValueError(f"precise BatchNorm statistics need at least 1 batch, got {batches}")
        if splits not in WHERE:
            raise ValueError(f"norm.precise_splits must be one of {', '.join(WHERE)}, got {splits!r}")
        self.batches, self.batch_size, self.splits, self.seed = batches, batch_size, WHERE[splits], seed
        self._saved: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self.used: dict[str, int] = {}  # what the record reports: the estimation batch size actually used

    def estimation_batch_size(self, trainer: L.Trainer) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        return max(1, int(trainer.datamodule.batch_size) // max(1, trainer.world_size))

    def swap_in(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "estimation_batches"):
            raise ValueError(f"norm.precise_batches: {type(datamodule).__name__} cannot supply training batches for precise statistics")
        model = pl_module.model
        size = self.estimation_batch_size(trainer)
        batches = datamodule.estimation_batches(size, self.batches, self.seed + SEED_OFFSET)
        forward = getattr(pl_module, "statistics_forward", default_forward)
        precision = getattr(trainer.strategy, "precision_plugin", None)
        with precision.forward_context() if precision is not None else contextlib.nullcontext():  # as evaluation runs (AMP)
            stats = precise_statistics(model, batches, forward)
        layers = batchnorm_layers(model)
        self._saved = {name: (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for name, bn in layers.items()}
        for name, bn in layers.items():
            mean, var = stats[name]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        self.used = {"batch_size": size, "batches": self.batches}

    def restore(self, pl_module: L.LightningModule) -> None:
        if self._saved is None:
            return
        for name, bn in batchnorm_layers(pl_module.model).items():
            mean, var, tracked = self._saved[name]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.num_batches_tracked.copy_(tracked)
        self._saved = None

    # validation and test: estimated at the start, restored at the very end (after every epoch-end
    # hook that still evaluates, such as a pass over the training split or sample measures)
    def on_validation_start(self, trainer, pl_module) -> None:
        if "val" in self.splits:
            self.swap_in(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        self.restore(pl_module)

    def on_test_start(self, trainer, pl_module) -> None:
        if "test" in self.splits:
            self.swap_in(trainer, pl_module)

    def on_test_end(self, trainer, pl_module) -> None:
        self.restore(pl_module)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.restore(pl_module)


def evaluation_record(model: nn.Module, norm: Any) -> dict[str, Any] | None:
    """What the run record says about the statistics its evaluations read (None: no BatchNorm).

    ``{"val": "precise" | "running", "test": ..., "batches": N, "batch_size": B | None}``.
    """
    if not batchnorm_layers(model):
        return None
    n = int(getattr(norm, "precise_batches", 0) or 0)
    where = WHERE.get(getattr(norm, "precise_splits", "both"), ()) if n else ()
    out: dict[str, Any] = {split: ("precise" if split in where else "running") for split in SPLITS}
    if n:
        out.update(batches=n, batch_size=getattr(norm, "precise_batch_size", None))
    return out
