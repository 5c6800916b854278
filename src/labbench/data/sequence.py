"""Order-dependent sequence tasks on random token strings (copy, reverse, sort), generated locally.

Each example is ``[s_1 .. s_L, SEP, Q .. Q]``: ``L`` random symbols, a separator, and ``L``
identical query tokens whose positions must be filled with the answer (the source copied,
reversed or sorted). Targets are ``-100`` (ignored by cross-entropy) everywhere but the query
positions. The format is the same for a causal and a bidirectional model, so a claim can
switch the mask or the positional encoding and nothing else.

Why it is order-dependent by construction: the query tokens are all alike, so a model that
sees no position (no positional encoding and no causal mask: attention is then permutation
equivariant) computes the same output at every query position and cannot give an answer
that differs from one position to the next; and copy and reverse change when the source is
permuted. A causal model without positional encoding can still count how many tokens precede
it (Haviv et al. 2022), which is why the bidirectional control is needed.

Training examples are drawn fresh every batch from ``order_seed`` and the pass number (an
endless supply: the claim is about what a model can represent, not about overfitting);
validation and test are fixed sets drawn from ``data_seed``, the same for every run.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch

from labbench.data.base import IGNORE, IndexBatches, check_global_batch, rank_and_world, training_device

KINDS = ("copy", "reverse", "sort")


def make_examples(kind: str, n: int, length: int, symbols: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples ``(x, y)`` of shape ``(n, 2 * length + 1)``; see the module docstring."""
    if kind not in KINDS:
        raise ValueError(f"unknown sequence task {kind!r}; valid: {', '.join(KINDS)}")
    source = torch.randint(0, symbols, (n, length), generator=generator)
    if kind == "copy":
        answer = source
    elif kind == "reverse":
        answer = source.flip(1)
    else:
        answer = source.sort(dim=1).values
    sep, query = symbols, symbols + 1
    x = torch.cat([source, torch.full((n, 1), sep), torch.full((n, length), query)], dim=1)
    y = torch.cat([torch.full((n, length + 1), IGNORE), answer], dim=1)
    return x, y


class FreshExamples:
    """``batches_per_pass`` batches of new examples per pass, seeded by ``seed`` and the pass number.

    With ``world_size`` processes every rank draws the same global batch and keeps every
    ``world_size``-th example.
    """

    def __init__(self, kind, length, symbols, batch_size, batches_per_pass, seed, device, rank=0, world_size=1) -> None:
        check_global_batch(batch_size, world_size)
        self.kind, self.length, self.symbols = kind, length, symbols
        self.batch_size, self.batches_per_pass, self.seed = batch_size, batches_per_pass, seed
        self.device, self.share, self.passes = device, slice(rank, None, world_size), 0

    def __len__(self) -> int:
        return self.batches_per_pass

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.passes)
        self.passes += 1
        x, y = make_examples(self.kind, self.batches_per_pass * self.batch_size, self.length, self.symbols, generator)
        x, y = x.to(self.device), y.to(self.device)
        for lo in range(0, len(x), self.batch_size):
            yield x[lo : lo + self.batch_size][self.share], y[lo : lo + self.batch_size][self.share]


class SequenceTasks(L.LightningDataModule):
    """Copy / reverse / sort of ``length`` random symbols out of ``symbols``, as a token-level task."""

    def __init__(
        self,
        kind: str = "reverse",
        length: int = 12,
        symbols: int = 10,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        batches_per_pass: int = 100,
        eval_examples: int = 1024,
        order_seed: int = 0,
        data_seed: int = 0,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown sequence task {kind!r}; valid: {', '.join(KINDS)}")
        if length < 2 or symbols < 2:
            raise ValueError(f"a sequence task needs length >= 2 and symbols >= 2; got length={length}, symbols={symbols}")
        if eval_examples < 1:
            raise ValueError(f"data.eval_examples must be >= 1; got {eval_examples}")
        self.kind, self.length, self.symbols = kind, length, symbols
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.batches_per_pass, self.eval_examples = batches_per_pass, eval_examples
        self.order_seed, self.data_seed = order_seed, data_seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for offset, split in enumerate(("val", "test"), start=1):  # the same fixed sets for every run
            generator = torch.Generator().manual_seed(self.data_seed * 1_000_003 + 7919 * offset)
            self.splits[split] = make_examples(self.kind, self.eval_examples, self.length, self.symbols, generator)

    @property
    def vocab_size(self) -> int:
        return self.symbols + 2  # the symbols, the separator, the query token

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2 * self.length + 1,)

    def baselines(self) -> dict[str, float]:
        """``{split}/chance``: the token accuracy of guessing a symbol (1 / symbols)."""
        return {f"{split}/chance": 1.0 / self.symbols for split in ("train", "val", "test")}

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {"train": self.batches_per_pass * self.batch_size, **{k: len(v[0]) for k, v in self.splits.items()}}

    def model_kwargs(self) -> dict:
        return {"vocab_size": self.vocab_size, "context_length": 2 * self.length + 1}

    def task_kwargs(self) -> dict:
        return {"symbols": self.symbols}

    def probe_batch(self, n: int) -> torch.Tensor:
        self.setup()
        return make_examples(self.kind, n, self.length, self.symbols, torch.Generator().manual_seed(self.data_seed))[0]

    def train_dataloader(self) -> FreshExamples:
        return FreshExamples(
            self.kind, self.length, self.symbols, self.batch_size, self.batches_per_pass, self.order_seed, training_device(self), *rank_and_world(self)
        )

    def estimation_batches(self, batch_size: int, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` batches of fresh training examples for precise BatchNorm statistics, drawn by ``seed`` alone."""
        return list(FreshExamples(self.kind, self.length, self.symbols, batch_size, n, seed, training_device(self)))

    def _eval(self, split: str) -> IndexBatches:
        """The fixed examples in order; under data parallelism each rank takes a contiguous block."""
        self.setup()
        x, y = self.splits[split]
        device, (rank, world_size) = training_device(self), rank_and_world(self)
        return IndexBatches(x.to(device), y.to(device), self.eval_batch_size, rank=rank, world_size=world_size)

    def val_dataloader(self):
        return self._eval("val")

    def test_dataloader(self):
        return self._eval("test")
