"""Token-level sequence tasks (labbench.data.sequence): loss and accuracy on the answer positions only."""

from __future__ import annotations

import math

import torch
from torch import nn

from labbench.data.sequence import IGNORE
from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task


class SequenceTask(Task):
    """Trains a model mapping ids ``(N, T)`` to logits ``(N, T, V)`` on targets that are ``-100``
    except where an answer is due.

    Logs ``{split}/loss`` (cross-entropy on answer tokens), ``{split}/acc`` (share of answer
    tokens right) and, on val and test, ``{split}/seq_acc`` (share of examples whose whole
    answer is right). A model that learned nothing guesses a symbol: ``acc`` = 1 / symbols.
    """

    metric_directions = {"acc": "higher", "seq_acc": "higher"}

    def __init__(
        self, model: nn.Module, optimizer: OptimizerFactory, loss: nn.Module, symbols: int, schedule: ScheduleFactory | None = None
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        if getattr(loss, "ignore_index", IGNORE) != IGNORE:
            raise ValueError(f"task=sequence needs a loss that ignores target {IGNORE} (loss=ce); got ignore_index={loss.ignore_index}")
        self.symbols = symbols

    def failure_values(self) -> dict[str, float]:
        return {"loss": math.log(self.symbols), "acc": 1.0 / self.symbols, "seq_acc": 0.0}

    def shared_step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        answer = y != IGNORE
        right = (logits.argmax(-1) == y) & answer
        acc = right.sum() / answer.sum()
        if split == "train":
            if self.logs_this_step():
                self.log_train({"train/loss": loss, "train/acc": acc})
            return loss
        n = int(answer.sum())
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self.log(f"{split}/acc", acc, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        whole = (right.sum(1) == answer.sum(1)).float().mean()
        self.log(f"{split}/seq_acc", whole, on_epoch=True, batch_size=len(x), sync_dist=True)
        return loss
