"""Next-character prediction: loss and bits per character, and a text sample at the end."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task


class LanguageModelTask(Task):
    """Trains a model mapping ids ``(N, T)`` to logits ``(N, T, V)`` with next-token loss.

    Logs ``{train,val,test}/loss`` (nats per character), ``{val,test}/bpc`` (bits per
    character) and ``train/lr``. At the end of training it samples ``sample_length``
    characters from ``sample_prompt`` (seeded: the same run gives the same text) and keeps
    them in ``self.sample`` for the run record.
    """

    metric_directions = {"bpc": "lower"}

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        loss: nn.Module,
        vocab: Sequence[str],
        schedule: ScheduleFactory | None = None,
        sample_length: int = 300,
        sample_prompt: str = "\n",
        sample_temperature: float = 0.8,
        sample_seed: int = 0,
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        self.vocab = list(vocab)
        self.sample_length, self.sample_prompt = sample_length, sample_prompt
        self.sample_temperature, self.sample_seed = sample_temperature, sample_seed
        self.sample: str | None = None

    def failure_values(self) -> dict[str, float]:
        """A uniform prediction over the vocabulary: ln V nats, log2 V bits per character."""
        return {"loss": math.log(len(self.vocab)), "bpc": math.log2(len(self.vocab))}

    def shared_step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if split == "train":
            if self.logs_this_step():
                self.log_train({"train/loss": loss})
            return loss
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=y.numel(), sync_dist=True)
        self.log(f"{split}/bpc", loss / math.log(2), on_epoch=True, prog_bar=True, batch_size=y.numel(), sync_dist=True)
        return loss


    def on_fit_end(self) -> None:
        if not self.sample_length or not hasattr(self.model, "generate"):
            return
        lookup = {ch: i for i, ch in enumerate(self.vocab)}
        prompt = torch.tensor([lookup[c] for c in self.sample_prompt if c in lookup] or [0], device=self.device)
        was_training = self.model.training
        self.model.eval()
        with torch.random.fork_rng(devices=[]):  # sampling leaves the run's RNG state alone
            generator = torch.Generator().manual_seed(self.sample_seed)
            ids = self.model.generate(prompt, self.sample_length, self.sample_temperature, generator)
        self.model.train(was_training)
        self.sample = self.sample_prompt + "".join(self.vocab[int(i)] for i in ids)
