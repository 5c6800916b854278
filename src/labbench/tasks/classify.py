"""Classification: loss, accuracy and learning rate logged as ``{split}/{metric}``."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task


class ClassificationTask(Task):
    """Trains ``model`` with ``loss``; logs ``train/loss``, ``train/acc``, ``train/lr``,
    ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        loss: nn.Module,
        num_classes: int,
        schedule: ScheduleFactory | None = None,
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        self.acc = nn.ModuleDict(
            {f"{split}_acc": MulticlassAccuracy(num_classes, average="micro") for split in ("train", "val", "test")}
        )

    def shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits, y)
        if split == "train" and not self.logs_this_step():
            return loss
        accuracy = self.acc[f"{split}_acc"]
        accuracy(logits.detach(), y)
        on_step = split == "train"
        # sync_dist: under DDP each rank holds part of the batch (training) or of the split
        # (evaluation); the logged loss is the mean over all of it, as in one process.
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log(f"{split}/acc", accuracy, on_step=on_step, on_epoch=not on_step, prog_bar=split != "train", batch_size=len(y))
        return loss
