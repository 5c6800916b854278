"""Character-level text: a corpus held as one tensor of character ids, cut into windows.

The shipped corpus is tiny Shakespeare (seven public-domain plays, ~940 kB; provenance in
``corpora/README.md``); any UTF-8 text file can be given by path instead. The split is
contiguous (train, then val, then test), so no window of one split overlaps another.
Training batches are random windows whose start positions come from ``order_seed`` and
the pass number; evaluation uses fixed, non-overlapping windows from the start of each
split. On a GPU the corpus is moved to it once (``on_device``) and windows are cut there.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import lightning as L
import torch

from labbench.data.base import DatasetNotFoundError, check_global_batch, eval_block, rank_and_world, training_device

SHIPPED = "tiny_shakespeare"


def shipped_corpus(name: str = SHIPPED) -> Path:
    return Path(str(resources.files("labbench.data") / "corpora" / f"{name}.txt"))


class RandomWindows:
    """``batches_per_pass`` batches of random ``(x, y)`` windows; y is x shifted by one.

    With ``world_size`` processes each batch is the global batch: every rank draws the
    same windows and keeps every ``world_size``-th one.
    """

    def __init__(
        self, ids: torch.Tensor, context: int, batch_size: int, batches_per_pass: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if len(ids) <= context + 1:
            raise ValueError(f"the training text ({len(ids)} characters) is shorter than one window of {context + 1}")
        check_global_batch(batch_size, world_size)
        self.share = slice(rank, None, world_size)
        self.ids, self.context, self.batch_size = ids, context, batch_size
        self.batches_per_pass, self.seed, self.passes = batches_per_pass, seed, 0
        self.offsets = torch.arange(context + 1, device=ids.device)

    def __len__(self) -> int:
        return self.batches_per_pass

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.passes)
        self.passes += 1
        high = len(self.ids) - self.context - 1
        # the whole pass at once (the same numbers as batch by batch), moved to the data's device once
        starts = torch.randint(0, high + 1, (self.batches_per_pass, self.batch_size), generator=generator).to(self.ids.device)
        for batch_starts in starts:
            window = self.ids[batch_starts[self.share, None] + self.offsets]
            yield window[:, :-1], window[:, 1:]


class FixedWindows:
    """Non-overlapping windows from the start of a split, at most ``max_windows`` of them.

    With ``world_size`` processes each rank takes a contiguous block of the windows:
    every window is evaluated exactly once.
    """

    def __init__(self, ids: torch.Tensor, context: int, batch_size: int, max_windows: int, rank: int = 0, world_size: int = 1) -> None:
        n = min(max_windows, (len(ids) - 1) // context)
        if n < 1:
            raise ValueError(f"a split of {len(ids)} characters holds no window of {context + 1}")
        lo, hi = eval_block(n, rank, world_size)
        starts = torch.arange(lo, hi, device=ids.device) * context
        window = ids[starts[:, None] + torch.arange(context + 1, device=ids.device)]
        self.x, self.y, self.batch_size = window[:, :-1], window[:, 1:], batch_size

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for lo in range(0, len(self.x), self.batch_size):
            yield self.x[lo : lo + self.batch_size], self.y[lo : lo + self.batch_size]


class CharText(L.LightningDataModule):
    """A character corpus for language modelling, split contiguously into train / val / test."""

    def __init__(
        self,
        path: str | None = None,
        context_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        batches_per_pass: int = 200,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        eval_windows: int = 128,
        order_seed: int = 0,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        if val_fraction <= 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
            raise ValueError(f"need 0 < val_fraction, test_fraction and a sum below 1; got {val_fraction}, {test_fraction}")
        self.path = Path(path) if path else shipped_corpus()
        self.context_length = context_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.batches_per_pass = batches_per_pass
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.eval_windows = eval_windows
        self.order_seed = order_seed
        self.on_device = on_device
        self.vocab: list[str] = []
        self.splits: dict[str, torch.Tensor] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if not self.path.is_file():
            raise DatasetNotFoundError(
                f"text file not found: {self.path}. Give the path of a UTF-8 text file with data.path=/your/file.txt, "
                f"or leave data.path empty (null) for the shipped tiny Shakespeare corpus."
            )
        text = self.path.read_text(encoding="utf-8")
        self.vocab = sorted(set(text))
        lookup = {ch: i for i, ch in enumerate(self.vocab)}
        ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.long)
        n_val, n_test = int(len(ids) * self.val_fraction), int(len(ids) * self.test_fraction)
        n_train = len(ids) - n_val - n_test
        self.splits = {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}

    def baselines(self) -> dict[str, float]:
        """Cross-entropies (nats per character) of count models fitted on the training split.

        ``{split}/unigram``: character frequencies alone; ``{split}/bigram``: the previous
        character's conditional frequencies. A language model whose loss is not below the
        bigram's has learned no more than pairs of letters. Counts get add-one smoothing
        (a character pair unseen in training must not give an infinite loss).
        """
        self.setup()
        v = len(self.vocab)
        train = self.splits["train"]
        unigram = torch.bincount(train, minlength=v).double() + 1
        unigram_logp = (unigram / unigram.sum()).log()
        pairs = torch.bincount(train[:-1] * v + train[1:], minlength=v * v).double().reshape(v, v) + 1
        bigram_logp = (pairs / pairs.sum(dim=1, keepdim=True)).log()
        out = {}
        for split, ids in self.splits.items():
            out[f"{split}/unigram"] = float(-unigram_logp[ids].mean())
            out[f"{split}/bigram"] = float(-bigram_logp[ids[:-1], ids[1:]].mean())
        return out

    @property
    def vocab_size(self) -> int:
        self.setup()
        return len(self.vocab)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.context_length,)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def encode(self, text: str) -> list[int]:
        lookup = {ch: i for i, ch in enumerate(self.vocab)}
        return [lookup[ch] for ch in text if ch in lookup]

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {k: len(v) for k, v in self.splits.items()}

    def model_kwargs(self) -> dict:
        return {"vocab_size": self.vocab_size, "context_length": self.context_length}

    def task_kwargs(self) -> dict:
        return {"vocab": list(self.vocab)}

    def probe_batch(self, n: int) -> torch.Tensor:
        """A fixed input batch (the first ``n`` training windows) for measurements at init."""
        return FixedWindows(self.splits["train"], self.context_length, n, n).x

    def train_dataloader(self) -> RandomWindows:
        return RandomWindows(self.placed("train"), self.context_length, self.batch_size, self.batches_per_pass, self.order_seed, *rank_and_world(self))

    def val_dataloader(self) -> FixedWindows:
        return FixedWindows(self.placed("val"), self.context_length, self.eval_batch_size, self.eval_windows, *rank_and_world(self))

    def test_dataloader(self) -> FixedWindows:
        return FixedWindows(self.placed("test"), self.context_length, self.eval_batch_size, self.eval_windows, *rank_and_world(self))

    def placed(self, split: str) -> torch.Tensor:
        """``split`` on the training device with ``on_device`` (a few MB of ids: moved on demand, kept by the loader)."""
        self.setup()
        device = training_device(self)
        return self.splits[split].to(device) if self.on_device else self.splits[split]
