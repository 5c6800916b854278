"""Next-character prediction: loss and bits per character, and a text sample at the end."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import nn

from labbench.data.text import token_mask
from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task


class LanguageModelTask(Task):
    """Trains a model mapping ids ``(N, T)`` to logits ``(N, T, V)`` with next-token loss.

    Logs ``{train,val,test}/loss`` (nats per character), ``{val,test}/bpc`` (bits per
    character) and ``train/lr``. At the end of training it samples ``sample_length``
    characters from ``sample_prompt`` (seeded: the same run gives the same text) and keeps
    them in ``self.sample`` for the run record, and logs ``test/sample_bigram_nll``: the
    sample's cross-entropy (nats per token) under the corpus's bigram counts, a fixed judge of
    whether generated text has the corpus's letter pairs (a model that learned to copy its
    input rather than to predict writes poor text).

    ``causal_eval`` (C2): validation and test also log ``{split}/causal_loss``, the loss with
    the causal mask forced on, and the sample is generated under it: what a model trained
    without the mask (which can read the very token it must predict) learned to predict.
    """

    metric_directions = {"bpc": "lower", "causal_loss": "lower", "sample_bigram_nll": "lower"}

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
        causal_eval: bool = False,
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        if causal_eval and not hasattr(model, "attention_mask"):
            raise ValueError(
                f"task.causal_eval needs a model whose causal mask can be switched (model=transformer); got {type(model).__name__}"
            )
        self.causal_eval = causal_eval
        self.vocab = list(vocab)
        self.sample_length, self.sample_prompt = sample_length, sample_prompt
        self.sample_temperature, self.sample_seed = sample_temperature, sample_seed
        self.sample: str | None = None

    def failure_values(self) -> dict[str, float]:
        """A uniform prediction over the vocabulary: ln V nats, log2 V bits per character."""
        return {"loss": math.log(len(self.vocab)), "bpc": math.log2(len(self.vocab))}

    @staticmethod
    def forward_batch(model: nn.Module, batch) -> torch.Tensor:
        """Logits for a batch; a padded batch (variable-length windows) also hands the model its
        real tokens' mask, so that BatchNorm's statistics skip the padding."""
        x, y = batch
        mask = token_mask(y)
        return model(x) if mask is None else model(x, token_mask=mask)

    statistics_forward = forward_batch  # precise BatchNorm statistics see batches as training does

    def shared_step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.forward_batch(self.model, batch)
        loss = self.loss(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if split == "train":
            if self.logs_this_step():
                self.log_train({"train/loss": loss})
            return loss
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=y.numel(), sync_dist=True)
        self.log(f"{split}/bpc", loss / math.log(2), on_epoch=True, prog_bar=True, batch_size=y.numel(), sync_dist=True)
        if self.causal_eval:
            causal_loss = loss
            if not self.model.causal:
                with self.model.attention_mask(True):
                    logits = self.forward_batch(self.model, batch)
                causal_loss = self.loss(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.log(f"{split}/causal_loss", causal_loss, on_epoch=True, batch_size=y.numel(), sync_dist=True)
        return loss

    def on_test_epoch_end(self) -> None:
        judge = getattr(self.trainer.datamodule, "bigram_nll", None) if self.trainer is not None else None
        if self.sample is None or judge is None:
            return
        ids = self.trainer.datamodule.encode(self.sample)
        if len(ids) > 1:
            self.log("test/sample_bigram_nll", judge(ids), sync_dist=False)


    def on_fit_end(self) -> None:
        if not self.sample_length or not hasattr(self.model, "generate"):
            return
        lookup = {ch: i for i, ch in enumerate(self.vocab)}
        prompt = torch.tensor([lookup[c] for c in self.sample_prompt if c in lookup] or [0], device=self.device)
        was_training = self.model.training
        self.model.eval()
        with torch.random.fork_rng(devices=[]), self._generation_mask():  # sampling leaves the run's RNG state alone
            generator = torch.Generator().manual_seed(self.sample_seed)
            ids = self.model.generate(prompt, self.sample_length, self.sample_temperature, generator)
        self.model.train(was_training)
        self.sample = self.sample_prompt + "".join(self.vocab[int(i)] for i in ids)

    def _generation_mask(self):
        """Under ``causal_eval`` the sample is generated with the causal mask on (as deployed)."""
        return self.model.attention_mask(True) if self.causal_eval else contextlib.nullcontext()
