"""Classification: loss, accuracy and learning rate logged as ``{split}/{metric}``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
ScheduleFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class ClassificationTask(L.LightningModule):
    """Trains ``model`` with ``loss``; logs ``train/loss``, ``train/acc``, ``train/lr``,
    ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``.

    ``optimizer`` and ``schedule`` are factories (Hydra partials): the optimizer takes
    the parameters, the schedule takes the optimizer and ``total_steps``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        loss: nn.Module,
        num_classes: int,
        schedule: ScheduleFactory | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.schedule_factory = schedule
        self.acc = nn.ModuleDict(
            {f"{split}_acc": MulticlassAccuracy(num_classes, average="micro") for split in ("train", "val", "test")}
        )
        self.last_val_step: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits, y)
        accuracy = self.acc[f"{split}_acc"]
        accuracy(logits.detach(), y)
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=len(y))
        self.log(f"{split}/acc", accuracy, on_step=on_step, on_epoch=not on_step, prog_bar=split != "train", batch_size=len(y))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.last_val_step = self.global_step

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.schedule_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.schedule_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
