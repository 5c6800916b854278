"""What every task shares: the optimizer and schedule factories, lr logging, val bookkeeping."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import nn

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
ScheduleFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class Task(L.LightningModule):
    """Base LightningModule: ``optimizer`` takes the parameters, ``schedule`` the optimizer and
    ``total_steps`` (Hydra partials); the schedule steps every optimizer step."""

    takes_gan_loss = False  # only the GAN task trains on a GANLoss

    def __init__(self, model: nn.Module, optimizer: OptimizerFactory, loss: nn.Module | None, schedule: ScheduleFactory | None = None) -> None:
        super().__init__()
        from labbench.components.gan_losses import GANLoss

        if isinstance(loss, GANLoss) and not self.takes_gan_loss:
            raise ValueError(f"loss={loss.kind} is a GAN objective: use it with task=gan (preset=gan or preset=gan_ring)")
        self.model, self.loss = model, loss
        self.optimizer_factory, self.schedule_factory = optimizer, schedule
        self.last_val_step: int | None = None  # lets the runner skip a redundant final validation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def shared_step(self, batch, split: str) -> torch.Tensor:
        """Loss of one batch of ``split`` (train / val / test), logging that split's metrics."""
        raise NotImplementedError

    def logs_this_step(self) -> bool:
        """Whether the logger writes this training step's values (every ``trainer.log_every_n_steps``).

        Per-step ``self.log`` calls cost ~0.3 ms each in Lightning; on the other steps their
        values would be dropped anyway, so training-step metrics are logged only here.
        Mirrors Lightning's own rule (``_LoggerConnector.should_update_logs``).
        """
        trainer = self.trainer
        return (trainer.fit_loop.epoch_loop._batches_that_stepped + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.logs_this_step():
            self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return self.shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Batches of data held on the training device are already there: skip Lightning's
        generic walk over the batch (~0.1 ms a step), move anything else as Lightning does."""
        if isinstance(batch, (tuple, list)) and all(isinstance(t, torch.Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self.last_val_step = self.global_step

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.schedule_factory is None:
            return optimizer
        scheduler = self.schedule_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
