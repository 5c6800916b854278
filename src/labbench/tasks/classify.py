"""Classification: loss, accuracy and learning rate logged as ``{split}/{metric}``."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task


class ClassificationTask(Task):
    """Trains ``model`` with ``loss``; logs ``train/loss``, ``train/acc``, ``train/lr``,
    ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``."""

    metric_directions = {"acc": "higher"}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        loss: nn.Module,
        num_classes: int,
        schedule: ScheduleFactory | None = None,
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        self.num_classes = num_classes
        self.acc = nn.ModuleDict({f"{split}_acc": MulticlassAccuracy(num_classes, average="micro") for split in ("val", "test")})

    def failure_values(self) -> dict[str, float]:
        """A uniform prediction: cross-entropy ln K, accuracy 1/K."""
        return {"loss": math.log(self.num_classes), "acc": 1.0 / self.num_classes}

    def shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits, y)
        if split == "train":
            if self.logs_this_step():
                self.log_train({"train/loss": loss, "train/acc": (logits.detach().argmax(-1) == y).float().mean()})
            return loss
        accuracy = self.acc[f"{split}_acc"]
        accuracy(logits.detach(), y)
        # sync_dist: under DDP each rank holds part of the split; the logged loss is the
        # mean over all of it, as in one process (the accuracy metric syncs its counts).
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log(f"{split}/acc", accuracy, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss
