"""Classification: loss, accuracy and learning rate logged as ``{split}/{metric}``."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task


class ClassificationTask(Task):
    """Trains ``model`` with ``loss``; logs ``train/loss``, ``train/acc``, ``train/lr``,
    ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``.

    ``l1`` adds ``l1 * sum |w|`` over the weight matrices and kernels (not biases or norm
    gains) to the training loss; ``train/loss`` stays the data loss and ``train/penalty``
    is logged beside it. ``train_pass``: after the test, the trained model (eval mode) is
    run over the whole training split, without augmentation: ``test/train_loss``,
    ``test/train_acc`` and ``test/gap`` = train accuracy minus test accuracy (the per-batch
    ``train/acc`` of the last steps is not the training split's accuracy: dropout is on and a
    batch is a sample of the split).
    """

    metric_directions = {"acc": "higher", "penalty": "neither", "train_acc": "higher", "train_loss": "lower", "gap": "lower"}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        loss: nn.Module,
        num_classes: int,
        schedule: ScheduleFactory | None = None,
        l1: float = 0.0,
        train_pass: bool = False,
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        if l1 < 0:
            raise ValueError(f"l1 is a penalty weight and must be >= 0, got {l1}")
        self.num_classes, self.l1, self.train_pass = num_classes, l1, train_pass
        self.acc = nn.ModuleDict({f"{split}_acc": MulticlassAccuracy(num_classes, average="micro") for split in ("val", "test")})

    def failure_values(self) -> dict[str, float]:
        """A uniform prediction: cross-entropy ln K, accuracy 1/K."""
        return {"loss": math.log(self.num_classes), "acc": 1.0 / self.num_classes}

    def shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits, y)
        if split == "train":
            penalty = self.l1 * l1_norm(self.model) if self.l1 else None
            if self.logs_this_step():
                values = {"train/loss": loss, "train/acc": (logits.detach().argmax(-1) == y).float().mean()}
                self.log_train(values if penalty is None else {**values, "train/penalty": penalty})
            return loss if penalty is None else loss + penalty
        accuracy = self.acc[f"{split}_acc"]
        accuracy(logits.detach(), y)
        # sync_dist: under DDP each rank holds part of the split; the logged loss is the
        # mean over all of it, as in one process (the accuracy metric syncs its counts).
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log(f"{split}/acc", accuracy, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def on_test_epoch_end(self) -> None:
        if not self.train_pass:
            return
        x_all, y_all = self.trainer.datamodule.placed("train")
        batch = self.trainer.datamodule.eval_batch_size
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(y_all), batch):
                x, y = x_all[i : i + batch].to(self.device), y_all[i : i + batch].to(self.device)
                logits = self.model(x)
                loss_sum += float(self.loss(logits, y)) * len(y)
                correct += int((logits.argmax(-1) == y).sum())
        self.model.train(was_training)
        train_acc = correct / len(y_all)
        test_acc = float(self.acc["test_acc"].compute())
        for name, value in {"train_loss": loss_sum / len(y_all), "train_acc": train_acc, "gap": train_acc - test_acc}.items():
            self.log(f"test/{name}", value)


def l1_norm(model: nn.Module) -> torch.Tensor:
    """sum |w| over the weight matrices and kernels (parameters of 2 or more dimensions)."""
    return sum(p.abs().sum() for p in model.parameters() if p.dim() >= 2 and p.requires_grad)
