"""Text for language modelling: a corpus held as tensors of token ids, cut into windows.

Tokens are characters (``tokenizer="char"``, the default) or byte-level BPE pieces
(``tokenizer="bpe"``, HuggingFace ``tokenizers``), whose vocabulary is learnt from the
training split alone. The shipped corpus is tiny Shakespeare (seven public-domain plays,
~940 kB; provenance in ``corpora/README.md``); any UTF-8 text file can be given by path
instead. The split is contiguous on characters (train, then val, then test), so no window
of one split overlaps another; each split is then encoded on its own.
Training batches are random windows whose start positions come from ``order_seed`` and
the pass number; evaluation uses fixed, non-overlapping windows from the start of each
split. On a GPU the corpus is moved to it once (``on_device``) and windows are cut there.

With ``min_length`` set, training windows have variable lengths, as sentences in a padded
batch do (Shen et al. 2020's setting for BatchNorm in Transformers): each window keeps a
length drawn uniformly from ``min_length`` to ``context_length`` tokens and is right-padded
to the context, its padding holding token id ``PAD_ID`` as input and ``IGNORE`` as target
(what ``torch.nn.CrossEntropyLoss`` leaves out of the loss). :func:`token_mask` tells a
model which positions are real; evaluation windows stay whole.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import lightning as L
import torch

from labbench.data.base import IGNORE, DatasetNotFoundError, check_global_batch, eval_block, rank_and_world, training_device

SHIPPED = "tiny_shakespeare"
TOKENIZERS = ("char", "bpe")  # the values of ``tokenizer``
BYTE_ALPHABET = 256  # byte-level BPE starts from one symbol per byte value; merges come on top
PAD_ID = 0  # the input id of a padded position; a causal model's real tokens never attend to it (right padding)


def token_mask(targets: torch.Tensor) -> torch.Tensor | None:
    """``(N, T)`` bool, True where a position holds a real token (its target is not ``IGNORE``);
    None when no position is padded, so that unpadded batches take the plain path."""
    mask = targets != IGNORE
    return None if bool(mask.all()) else mask


def shipped_corpus(name: str = SHIPPED) -> Path:
    return Path(str(resources.files("labbench.data") / "corpora" / f"{name}.txt"))


class RandomWindows:
    """``batches_per_pass`` batches of random ``(x, y)`` windows; y is x shifted by one.

    With ``min_length`` each window keeps a length drawn uniformly from ``min_length`` to
    ``context`` (from the same seeded stream, after the pass's start positions, so the starts
    are those of an unpadded run) and is right-padded: ``PAD_ID`` in x, ``IGNORE`` in y.
    With ``world_size`` processes each batch is the global batch: every rank draws the
    same windows and keeps every ``world_size``-th one.
    """

    def __init__(
        self, ids: torch.Tensor, context: int, batch_size: int, batches_per_pass: int, seed: int, rank: int = 0, world_size: int = 1,
        min_length: int | None = None,
    ) -> None:
        if len(ids) <= context + 1:
            raise ValueError(f"the training text ({len(ids)} tokens) is shorter than one window of {context + 1}")
        check_global_batch(batch_size, world_size)
        check_min_length(min_length, context)
        self.min_length = min_length
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
        lengths = None
        if self.min_length is not None:
            shape = (self.batches_per_pass, self.batch_size)
            lengths = torch.randint(self.min_length, self.context + 1, shape, generator=generator).to(self.ids.device)
        for i, batch_starts in enumerate(starts):
            window = self.ids[batch_starts[self.share, None] + self.offsets]
            x, y = window[:, :-1], window[:, 1:]
            if lengths is not None:
                padded = self.offsets[None, :-1] >= lengths[i, self.share, None]
                x, y = x.masked_fill(padded, PAD_ID), y.masked_fill(padded, IGNORE)
            yield x, y


class FixedWindows:
    """Non-overlapping windows from the start of a split, at most ``max_windows`` of them.

    With ``world_size`` processes each rank takes a contiguous block of the windows:
    every window is evaluated exactly once.
    """

    def __init__(self, ids: torch.Tensor, context: int, batch_size: int, max_windows: int, rank: int = 0, world_size: int = 1) -> None:
        n = min(max_windows, (len(ids) - 1) // context)
        if n < 1:
            raise ValueError(f"a split of {len(ids)} tokens holds no window of {context + 1}")
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
    """A text corpus for language modelling, split contiguously into train / val / test.

    ``tokenizer="char"``: one token per character, the vocabulary is the text's sorted set of
    characters. ``tokenizer="bpe"``: byte-level BPE (GPT-2's scheme) with at most
    ``vocab_size`` tokens, trained on the training split only (no val/test text leaks into
    the vocabulary), deterministically; every text round-trips exactly. Either way
    ``vocab[i]`` is the text of token ``i``, and ``"".join(vocab[i] for i in ids)`` is the
    text of ``ids`` (for BPE, exactly so where every token is whole UTF-8, as in an ASCII
    corpus; a token holding part of a multi-byte character shows as U+FFFD there, while
    :meth:`decode` joins bytes and is exact for any text).
    """

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
        tokenizer: str = "char",
        vocab_size: int | None = None,
        min_length: int | None = None,
    ) -> None:
        super().__init__()
        check_min_length(min_length, context_length)
        if val_fraction <= 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
            raise ValueError(f"need 0 < val_fraction, test_fraction and a sum below 1; got {val_fraction}, {test_fraction}")
        check_tokenizer(tokenizer, vocab_size)
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
        self.tokenizer = tokenizer
        self.max_vocab_size = vocab_size  # ``vocab_size`` (the property) is the vocabulary's real size
        self.min_length = min_length  # None: every training window is whole
        self.vocab: list[str] = []
        self.splits: dict[str, torch.Tensor] = {}
        self._bpe = None  # the trained tokenizers.Tokenizer with tokenizer="bpe"

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if not self.path.is_file():
            raise DatasetNotFoundError(
                f"text file not found: {self.path}. Give the path of a UTF-8 text file with data.path=/your/file.txt, "
                f"or leave data.path empty (null) for the shipped tiny Shakespeare corpus."
            )
        text = self.path.read_text(encoding="utf-8")
        n_val, n_test = int(len(text) * self.val_fraction), int(len(text) * self.test_fraction)
        n_train = len(text) - n_val - n_test
        if self.tokenizer == "bpe":
            self._bpe, self.vocab, self.splits = bpe_splits(text, n_train, n_val, self.max_vocab_size)
            return
        self.vocab = sorted(set(text))
        lookup = {ch: i for i, ch in enumerate(self.vocab)}
        ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.long)
        self.splits = {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}

    def baselines(self) -> dict[str, float]:
        """Cross-entropies (nats per token) of count models fitted on the training split.

        ``{split}/unigram``: token frequencies alone; ``{split}/bigram``: the previous
        token's conditional frequencies. A language model whose loss is not below the
        bigram's has learned no more than pairs of tokens (of letters, for characters).
        Counts get add-one smoothing (a pair unseen in training must not give an infinite
        loss). Memory: V x V doubles, 32 MB at V = 2000.
        """
        unigram_logp, bigram_logp = self._count_models()
        out = {}
        for split, ids in self.splits.items():
            out[f"{split}/unigram"] = float(-unigram_logp[ids].mean())
            out[f"{split}/bigram"] = float(-bigram_logp[ids[:-1], ids[1:]].mean())
        return out

    def bigram_nll(self, ids) -> float:
        """Cross-entropy (nats per token) of the pairs in ``ids`` under the training split's bigram
        counts: a fixed judge of generated text (text with the corpus's letter pairs scores about
        ``val/bigram``; a string of one repeated or random symbol scores far above it)."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        _, bigram_logp = self._count_models()
        return float(-bigram_logp[ids[:-1], ids[1:]].mean())

    def _count_models(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Add-one smoothed log-probabilities of the unigram and bigram count models of the training split."""
        self.setup()
        v = len(self.vocab)
        train = self.splits["train"]
        unigram = torch.bincount(train, minlength=v).double() + 1
        unigram_logp = (unigram / unigram.sum()).log()
        pairs = torch.bincount(train[:-1] * v + train[1:], minlength=v * v).double().reshape(v, v) + 1
        bigram_logp = (pairs / pairs.sum(dim=1, keepdim=True)).log()
        return unigram_logp, bigram_logp

    @property
    def vocab_size(self) -> int:
        self.setup()
        return len(self.vocab)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.context_length,)

    def decode(self, ids) -> str:
        if self._bpe is not None:
            return self._bpe.decode([int(i) for i in ids])
        return "".join(self.vocab[int(i)] for i in ids)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; characters outside a character vocabulary are left out
        (byte-level BPE has no such characters)."""
        self.setup()
        if self._bpe is not None:
            return list(self._bpe.encode(text).ids)
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
        return RandomWindows(
            self.placed("train"), self.context_length, self.batch_size, self.batches_per_pass, self.order_seed, *rank_and_world(self),
            min_length=self.min_length,
        )

    def estimation_batches(self, batch_size: int, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` random training windows batches for precise BatchNorm statistics, drawn by ``seed`` alone
        (padded as training's are: the statistics are those of the batches the net was trained on)."""
        return list(RandomWindows(self.placed("train"), self.context_length, batch_size, n, seed, min_length=self.min_length))

    def val_dataloader(self) -> FixedWindows:
        return FixedWindows(self.placed("val"), self.context_length, self.eval_batch_size, self.eval_windows, *rank_and_world(self))

    def test_dataloader(self) -> FixedWindows:
        return FixedWindows(self.placed("test"), self.context_length, self.eval_batch_size, self.eval_windows, *rank_and_world(self))

    def placed(self, split: str) -> torch.Tensor:
        """``split`` on the training device with ``on_device`` (a few MB of ids: moved on demand, kept by the loader)."""
        self.setup()
        device = training_device(self)
        return self.splits[split].to(device) if self.on_device else self.splits[split]


def check_min_length(min_length: int | None, context: int) -> None:
    """A variable window length needs a whole number from 1 to the context."""
    if min_length is None:
        return
    if isinstance(min_length, bool) or not isinstance(min_length, int) or not 1 <= min_length <= context:
        raise ValueError(
            f"data.min_length is the shortest training window, a whole number from 1 to data.context_length={context} "
            f"(null: every window is whole); got {min_length!r}"
        )


def check_tokenizer(tokenizer: str, vocab_size: int | None) -> None:
    """Fail on a setting that cannot work before any text is read."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; choose one of: {', '.join(TOKENIZERS)}")
    if tokenizer == "char":
        if vocab_size is not None:
            raise ValueError(
                f"vocab_size={vocab_size} applies to tokenizer=bpe only (a character vocabulary is the text's own "
                f"characters); set data.tokenizer=bpe or leave data.vocab_size null"
            )
        return
    if vocab_size is None or isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise ValueError(f"tokenizer=bpe needs an integer vocab_size (e.g. data.vocab_size=2000); got {vocab_size!r}")
    if vocab_size < BYTE_ALPHABET:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for byte-level BPE: its base alphabet alone is the "
            f"{BYTE_ALPHABET} byte values (merges come on top); use vocab_size >= {BYTE_ALPHABET}"
        )


def bpe_splits(text: str, n_train: int, n_val: int, vocab_size: int):
    """``(tokenizer, vocab, splits)``: BPE trained on ``text[:n_train]``, then each split encoded.

    The tokenizer and the encoded splits are cached per process: on tiny Shakespeare training
    takes ~0.5 s and encoding the three splits ~0.6 s (V = 2000, a 2-core CPU), a cached setup
    ~10 ms, and the runs an ablation trains one after another in one process reuse them. The cached tensors are
    never modified (loaders index them or copy them to a device); callers get clones anyway.
    """
    tokenizer, vocab, splits = _bpe_splits_cached(text, n_train, n_val, vocab_size)
    return tokenizer, list(vocab), {name: ids.clone() for name, ids in splits.items()}


@functools.lru_cache(maxsize=4)
def _bpe_splits_cached(text: str, n_train: int, n_val: int, vocab_size: int):
    parts = {"train": text[:n_train], "val": text[n_train : n_train + n_val], "test": text[n_train + n_val :]}
    tokenizer = train_bpe(parts["train"], vocab_size)
    vocab = tuple(tokenizer.decode([i]) for i in range(tokenizer.get_vocab_size()))
    splits = {name: torch.tensor(tokenizer.encode(part).ids, dtype=torch.long) for name, part in parts.items()}
    return tokenizer, vocab, splits


def train_bpe(text: str, vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2's scheme: the byte alphabet, pre-split on words,
    spaces kept with the word that follows) with at most ``vocab_size`` tokens learnt from
    ``text``; fewer when the text runs out of pairs to merge.

    Deterministic: the same text gives the same merges and ids, in any process (ties between
    equally frequent pairs are broken by the pair's ids, and the alphabet is sorted). No
    special tokens and no prefix space, so decoding an encoding gives back the text exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    check_tokenizer("bpe", vocab_size)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=0, show_progress=False, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen in training or not
    )
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer
