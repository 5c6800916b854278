"""Stop a run whose training loss is no longer finite: divergence is an outcome, not a crash."""

from __future__ import annotations

import math
from typing import Any

import lightning as L


class DivergenceDetector(L.Callback):
    """Sets ``trainer.should_stop`` at the first non-finite (or above ``max_loss``) training loss.

    The step and the reason stay on the callback for the run record.
    """

    def __init__(self, max_loss: float | None = None) -> None:
        self.max_loss = max_loss
        self.step: int | None = None
        self.reason: str | None = None

    @property
    def diverged(self) -> bool:
        return self.step is not None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach())
        if not math.isfinite(value):
            self.reason = f"non-finite training loss ({value})"
        elif self.max_loss is not None and value > self.max_loss:
            self.reason = f"training loss {value:.4g} above max_loss={self.max_loss}"
        else:
            return
        self.step = trainer.global_step
        trainer.should_stop = True
