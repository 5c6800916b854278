"""Stop a run whose training loss is no longer finite: divergence is an outcome, not a crash."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch


class DivergenceDetector(L.Callback):
    """Sets ``trainer.should_stop`` at the first non-finite (or above ``max_loss``) training loss.

    The step and the reason stay on the callback for the run record. Reading a loss on the
    host waits for the device, so on an accelerator the check runs on the device every step
    (no sync) and the host looks at it every ``check_every`` steps (default: the logging
    interval) and at the end: the recorded step and loss are still those of the first bad
    step; training just stops up to ``check_every - 1`` steps later. On the CPU, where
    looking costs nothing, it looks every step unless ``check_every`` says otherwise.

    Under DDP the judged loss is the mean over the processes (the global batch's, as in
    one process), so every rank takes the same decision at the same step: a rank that
    stopped alone would leave the others waiting in the gradient all-reduce.
    """

    def __init__(self, max_loss: float | None = None, check_every: int | None = None) -> None:
        if check_every is not None and check_every < 1:
            raise ValueError(f"divergence.check_every must be >= 1 step (or null for the default), got {check_every}")
        self.max_loss = max_loss
        self.check_every = check_every
        self.step: int | None = None
        self.reason: str | None = None
        self._seen: torch.Tensor | None = None  # on the device: a bad loss was seen, at which step, which value
        self._bad_step: torch.Tensor | None = None
        self._bad_value: torch.Tensor | None = None

    @property
    def diverged(self) -> bool:
        return self.step is not None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or self.diverged:
            return
        loss = loss.detach().float()
        if getattr(trainer, "world_size", 1) > 1:
            loss = trainer.strategy.reduce(loss, reduce_op="mean")
        interval = trainer.log_every_n_steps if trainer.log_every_n_steps > 0 else 50
        every = self.check_every or (1 if loss.device.type == "cpu" else interval)
        if every == 1:
            self._judge(float(loss), trainer.global_step, trainer)
            return
        self._watch(loss, trainer.global_step)
        if trainer.global_step % every == 0:
            self._look(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._look(trainer)  # the last steps since the previous look

    def _is_bad(self, loss: torch.Tensor) -> torch.Tensor:
        bad = ~torch.isfinite(loss)
        return bad | (loss > self.max_loss) if self.max_loss is not None else bad

    def _watch(self, loss: torch.Tensor, step: int) -> None:
        """Remember the first bad step and its loss, on the loss's device (no host sync)."""
        if self._seen is None:
            self._seen = torch.zeros((), dtype=torch.bool, device=loss.device)
            self._bad_step = torch.zeros((), dtype=torch.long, device=loss.device)
            self._bad_value = torch.zeros((), device=loss.device)
        first = self._is_bad(loss) & ~self._seen
        self._bad_step = torch.where(first, torch.full((), step, device=loss.device), self._bad_step)
        self._bad_value = torch.where(first, loss, self._bad_value)
        self._seen = self._seen | first

    def _look(self, trainer: L.Trainer) -> None:
        if self._seen is not None and not self.diverged and bool(self._seen):
            self._judge(float(self._bad_value), int(self._bad_step), trainer)

    def _judge(self, value: float, step: int, trainer: L.Trainer) -> None:
        if not math.isfinite(value):
            self.reason = f"non-finite training loss ({value})"
        elif self.max_loss is not None and value > self.max_loss:
            self.reason = f"training loss {value:.4g} above max_loss={self.max_loss}"
        else:
            return
        self.step = step
        trainer.should_stop = True
