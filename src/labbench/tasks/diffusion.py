"""Diffusion training (DDPM, Ho et al. 2020): predict the noise added at a random step."""

from __future__ import annotations

import torch
from torch import nn

from labbench.tasks.base import OptimizerFactory, ScheduleFactory
from labbench.tasks.generative import GenerativeTask


class DiffusionTask(GenerativeTask):
    """Minimizes the simple DDPM loss ``model.loss(x0)`` (MSE between true and predicted noise).

    Images are mapped to [-1, 1]. Validation and test losses draw their steps and noise
    from a generator seeded by ``sample_seed``, so every evaluation sees the same noise
    and val curves compare across steps and runs. Samples use the model's
    ``sample_steps`` (respaced sampling); logs ``{split}/loss`` and the sample measures
    of :class:`GenerativeTask` (``evaluation``: its settings).
    """

    symmetric_images = True

    def failure_values(self) -> dict[str, float]:
        """Predicting zero noise: the mean squared error of unit Gaussian noise, 1."""
        return {"loss": 1.0}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        schedule: ScheduleFactory | None = None,
        **evaluation,
    ) -> None:
        super().__init__(model, optimizer, schedule, **evaluation)

    eval_noise_on_device = True  # the noise is drawn where the model is

    def shared_step(self, batch, split: str) -> torch.Tensor:
        x0 = self.to_model(batch[0])
        loss = self.model.loss(x0, generator=None if split == "train" else self._eval_generator)
        if split == "train":
            if self.logs_this_step():
                self.log_train({"train/loss": loss})
            return loss
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(x0))
        return loss

    def generate_model_space(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.model.sample(n, generator)
