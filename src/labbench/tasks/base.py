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
    # Which values are better, per metric logged under train/, val/, test/ (labbench.directions);
    # subclasses add theirs. Nothing reads a direction from a metric's name.
    metric_directions = {"loss": "lower", "lr": "neither"}

    def __init__(self, model: nn.Module, optimizer: OptimizerFactory, loss: nn.Module | None, schedule: ScheduleFactory | None = None) -> None:
        super().__init__()
        from labbench.components.gan_losses import GANLoss

        if isinstance(loss, GANLoss) and not self.takes_gan_loss:
            raise ValueError(f"loss={loss.kind} is a GAN objective: use it with task=gan (preset=gan or preset=gan_ring)")
        self.model, self.loss = model, loss
        self.optimizer_factory, self.schedule_factory = optimizer, schedule
        self.last_val_step: int | None = None  # lets the runner skip a redundant final validation
        self.bar_metrics: dict[str, float] = {}  # the latest training values shown on the progress bar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def failure_values(self) -> dict[str, float]:
        """What a run that diverged counts as, per metric name (without the split prefix).

        The value a model that learned nothing reaches (the loss of a uniform prediction,
        chance accuracy), declared by the task, never borrowed from other runs. Metrics
        without one are left out: a diverged run then has no value there and the report
        counts it apart.
        """
        return {}

    def baselines(self, datamodule) -> dict[str, float]:
        """Reference values the task computes from the real data (``{split}/name``), beside the data
        module's own; competence gates name them as thresholds. None by default."""
        return {}

    @staticmethod
    def statistics_forward(model: nn.Module, batch) -> None:
        """Run ``model`` (a copy, for precise BatchNorm statistics) on one training batch as evaluation
        runs it: on the batch's inputs."""
        model(batch[0])

    def shared_step(self, batch, split: str) -> torch.Tensor:
        """Loss of one batch of ``split`` (train / val / test), logging that split's metrics."""
        raise NotImplementedError

    def logs_this_step(self) -> bool:
        """Whether the logger writes this training step's values (every ``trainer.log_every_n_steps``).

        Training-step metrics are computed and written only on these steps: on the others
        they would be dropped anyway. Mirrors Lightning's own rule
        (``_LoggerConnector.should_update_logs``).
        """
        trainer, n = self.trainer, self.trainer.log_every_n_steps
        return (n > 0 and (trainer.fit_loop.epoch_loop._batches_that_stepped + 1) % n == 0) or trainer.should_stop

    def log_train(self, values: dict[str, torch.Tensor | float], bar: tuple[str, ...] = ("train/loss",)) -> None:
        """Write training-step metrics (and ``train/lr``) to the loggers, as Lightning would.

        Call it on :meth:`logs_this_step` steps. Lightning's ``self.log`` walks its whole
        result structure on every call (~0.3 ms a value here, ~3 ms a logging step of a
        classifier, measured: all of labbench's cost over a bare Lightning loop on a tiny
        MLP), so training values go straight to the loggers, at Lightning's step index and
        with its ``epoch`` column: the same curves. Under DDP each value is the mean over
        the processes (one all-reduce), i.e. over the global batch, as in one process.
        """
        values = {**values, "train/lr": self.optimizers_list()[0].param_groups[0]["lr"]}
        stacked = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.device).detach().reshape(()) for v in values.values()])
        numbers = dict(zip(values, self.trainer.strategy.reduce(stacked, reduce_op="mean").tolist()))
        self.bar_metrics = {k: numbers[k] for k in bar if k in numbers}
        if self.trainer.is_global_zero:
            step = self.trainer.fit_loop.epoch_loop._batches_that_stepped
            for logger in self.loggers:
                logger.log_metrics({**numbers, "epoch": self.current_epoch}, step=step)

    def optimizers_list(self) -> list:
        optimizers = self.optimizers()
        return optimizers if isinstance(optimizers, list) else [optimizers]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
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
