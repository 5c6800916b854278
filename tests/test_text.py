"""Tiny Shakespeare and user text files: contiguous splits, windows, BPE tokens, and a real LM run."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import fast_overrides
from labbench.config import compose, run_id
from labbench.data.base import DatasetNotFoundError
from labbench.data.text import CharText, train_bpe
from labbench.train import run


def test_shipped_corpus_and_contiguous_split():
    data = CharText(context_length=32)
    data.setup()
    sizes = data.split_sizes()
    assert sum(sizes.values()) == 940230 and data.vocab_size == 76  # the corpus its provenance note describes
    assert sizes["val"] == sizes["test"] == int(940230 * 0.05)
    assert data.decode(data.splits["train"][:6]) == "HAMLET"
    joined = torch.cat([data.splits["train"], data.splits["val"], data.splits["test"]])
    assert data.decode(joined[-20:]) == data.path.read_text()[-20:]  # contiguous, in order


def test_training_windows_are_shifted_by_one_and_seeded(tmp_path):
    text = tmp_path / "abc.txt"
    text.write_text("abcdefghij" * 100)
    a, b = CharText(path=str(text), context_length=8, batch_size=4, order_seed=1), CharText(path=str(text), context_length=8, batch_size=4, order_seed=1)
    for d in (a, b):
        d.setup()
    x, y = next(iter(a.train_dataloader()))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x, next(iter(b.train_dataloader()))[0])
    other = CharText(path=str(text), context_length=8, batch_size=4, order_seed=2)
    other.setup()
    assert not torch.equal(x, next(iter(other.train_dataloader()))[0])


def test_evaluation_windows_do_not_overlap_and_are_fixed(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("".join(chr(97 + i % 26) for i in range(2000)))
    d = CharText(path=str(text), context_length=10, eval_windows=5, eval_batch_size=2, val_fraction=0.1, test_fraction=0.1)
    d.setup()
    batches = list(d.val_dataloader())
    xs = torch.cat([x for x, _ in batches])
    assert len(xs) == 5 and len(batches) == 3
    assert torch.equal(xs.reshape(-1), d.splits["val"][:50])


def test_missing_text_file_names_the_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere.txt"):
        CharText(path=str(tmp_path / "nowhere.txt")).setup()


def test_char_lm_run_end_to_end(tmp_path):
    """preset=char_lm trains, reports bits per character and stores a generated sample."""
    cfg = compose(["preset=char_lm", "model.n_layers=2", "model.d_model=32", "data.context_length=32",
                   "data.eval_windows=16", "task.sample_length=40", *fast_overrides(30)])
    record = run(cfg, tmp_path)
    assert record["status"] == "completed"
    final = record["metrics"]["final"]
    assert final["val/bpc"] == pytest.approx(final["val/loss"] / 0.6931471805599453, rel=1e-5)
    assert final["val/loss"] < 4.33  # below the uniform guess over 76 characters, ln 76
    first, last = record["curves"]["train/loss"][0][1], record["curves"]["train/loss"][-1][1]
    assert last < first
    assert isinstance(record["sample"], str) and len(record["sample"]) == 41
    assert "test/bpc" in final


@pytest.fixture(scope="module")
def bpe500():
    data = CharText(tokenizer="bpe", vocab_size=500)
    data.setup()
    return data


def split_text(data: CharText, split: str) -> str:
    """The characters of ``split``, cut as the module cuts them (contiguously, on characters)."""
    text = data.path.read_text(encoding="utf-8")
    n_val, n_test = int(len(text) * data.val_fraction), int(len(text) * data.test_fraction)
    n_train = len(text) - n_val - n_test
    return {"train": text[:n_train], "val": text[n_train : n_train + n_val], "test": text[n_train + n_val :]}[split]


def test_bpe_round_trips_the_validation_text_exactly(bpe500):
    val = split_text(bpe500, "val")
    ids = bpe500.splits["val"]
    assert bpe500.vocab_size == len(bpe500.vocab) == 500  # the size asked for
    assert len(ids) < len(val) / 1.5  # pieces longer than characters
    assert bpe500.decode(ids) == val
    assert "".join(bpe500.vocab[i] for i in ids.tolist()) == val  # how the LM task writes its sample
    assert bpe500.encode(val) == ids.tolist()
    assert all(isinstance(v, str) for v in bpe500.vocab) and "\n" in bpe500.vocab  # the task's sample prompt is one token


def test_bpe_is_deterministic(bpe500):
    train = split_text(bpe500, "train")
    first, second = train_bpe(train, 500), train_bpe(train, 500)  # trained afresh, no cache
    assert first.to_str() == second.to_str()
    sample = split_text(bpe500, "test")[:5000]
    assert first.encode(sample).ids == second.encode(sample).ids
    again = CharText(tokenizer="bpe", vocab_size=500)
    again.setup()
    assert again.vocab == bpe500.vocab and all(torch.equal(again.splits[k], bpe500.splits[k]) for k in bpe500.splits)


def test_bpe_vocabulary_is_learnt_from_the_training_split_only(tmp_path):
    """A word that fills the test split would be one token if the test text were seen; it is not."""
    train = "the cat sat on the mat and the dog sat on the log\n" * 160  # 8,000 characters
    text = train + "the cat and the dog\n" * 50 + " quixotic" * 111 + " " # 8,000 + 1,000 + 1,000 characters
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    data = CharText(path=str(path), tokenizer="bpe", vocab_size=400, val_fraction=0.1, test_fraction=0.1)
    data.setup()
    assert split_text(data, "train") == train
    assert data._bpe.to_str() == train_bpe(train, 400).to_str()
    assert " cat" in data.vocab and " quixotic" not in data.vocab and len(data.encode(" quixotic")) > 2
    assert data.vocab_size < 400  # a small text runs out of pairs to merge: at most vocab_size tokens
    assert data.decode(data.splits["test"]) == split_text(data, "test")  # unseen words still round-trip (bytes)


def test_bpe_baselines_are_finite_and_bigram_beats_unigram(bpe500):
    baselines = bpe500.baselines()
    assert all(math.isfinite(v) for v in baselines.values())
    assert baselines["val/bigram"] < baselines["val/unigram"] < math.log(500)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tokenizer": "wordpiece"}, "unknown tokenizer 'wordpiece'; choose one of: char, bpe"),
        ({"tokenizer": "bpe"}, "tokenizer=bpe needs an integer vocab_size"),
        ({"tokenizer": "bpe", "vocab_size": 100}, "too small for byte-level BPE.*256 byte values"),
        ({"tokenizer": "char", "vocab_size": 500}, "applies to tokenizer=bpe only"),
    ],
)
def test_bad_tokenizer_settings_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CharText(**kwargs)


def test_the_tokenizer_is_part_of_a_run_id():
    char = run_id(compose(["preset=char_lm"]))
    assert run_id(compose(["preset=char_lm", "data.tokenizer=char", "data.vocab_size=null"])) == char
    bpe = run_id(compose(["preset=char_lm", "data.tokenizer=bpe", "data.vocab_size=500"]))
    assert bpe != char and bpe != run_id(compose(["preset=char_lm", "data.tokenizer=bpe", "data.vocab_size=2000"]))


def test_bpe_lm_run_end_to_end(tmp_path, one_thread):
    """preset=char_lm on BPE tokens trains ten steps, below the uniform guess, and writes a sample."""
    cfg = compose(["preset=char_lm", "data.tokenizer=bpe", "data.vocab_size=500", "model.n_layers=1", "model.d_model=32",
                   "data.context_length=32", "data.eval_windows=8", "schedule.warmup_steps=2", "optimizer.lr=0.01",
                   "task.sample_length=20", *fast_overrides(10)])
    record = run(cfg, tmp_path)
    assert record["status"] == "completed"
    final = record["metrics"]["final"]
    assert final["val/loss"] < math.log(500)  # nats per token, below the uniform guess over 500 tokens
    assert record["model"]["parameters"] < 2 * 500 * 32  # tied (the default): the 500 x 32 matrix counted once, the rest ~14k
    assert math.isfinite(record["baselines"]["val/bigram"])
    assert isinstance(record["sample"], str) and record["sample"].startswith("\n") and len(record["sample"]) > 20


# ---- variable-length (padded) training windows ----------------------------------------------


@pytest.mark.unit
def test_padded_windows_keep_a_seeded_length_and_pad_on_the_right(tmp_path):
    from labbench.data.text import IGNORE, PAD_ID, token_mask

    text = tmp_path / "abc.txt"
    text.write_text("abcdefghij" * 100)
    whole = CharText(path=str(text), context_length=8, batch_size=64, order_seed=3)
    padded = CharText(path=str(text), context_length=8, batch_size=64, order_seed=3, min_length=3)
    x0, y0 = next(iter(whole.setup() or whole.train_dataloader()))
    x, y = next(iter(padded.setup() or padded.train_dataloader()))
    mask = token_mask(y)
    lengths = mask.sum(1)
    assert int(lengths.min()) == 3 and int(lengths.max()) == 8  # 64 draws from 3..8 reach both ends
    assert torch.equal(mask, torch.arange(8)[None, :] < lengths[:, None])  # real tokens first, then padding
    assert torch.equal(x[mask], x0[mask]) and torch.equal(y[mask], y0[mask])  # the same windows as unpadded, cut short
    assert (x[~mask] == PAD_ID).all() and (y[~mask] == IGNORE).all()
    assert token_mask(y0) is None  # whole windows take the plain path
    again = CharText(path=str(text), context_length=8, batch_size=64, order_seed=3, min_length=3)
    again.setup()
    assert torch.equal(y, next(iter(again.train_dataloader()))[1])  # seeded
    for split in (padded.val_dataloader(), padded.test_dataloader()):
        assert token_mask(next(iter(split))[1]) is None  # evaluation windows stay whole


@pytest.mark.unit
@pytest.mark.parametrize("bad", [0, 9, 2.5, True])
def test_a_min_length_outside_one_to_the_context_fails_clearly(bad):
    with pytest.raises(ValueError, match="data.min_length is the shortest training window, a whole number from 1 to data.context_length=8"):
        CharText(context_length=8, min_length=bad)


@pytest.mark.unit
@pytest.mark.parametrize("loss", ["ce", "label_smoothing"])
def test_padding_is_left_out_of_the_loss(loss):
    """The language model's loss, as the config builds it, on a padded batch is the mean over the real tokens alone."""
    from hydra.utils import instantiate

    from labbench.data.text import IGNORE

    logits = torch.randn(2, 4, 5)
    y = torch.tensor([[1, 2, 3, 4], [0, 1, IGNORE, IGNORE]])
    criterion = instantiate(compose(["preset=char_lm", f"loss={loss}", "loss.label_smoothing=0.0"]).loss)
    loss = criterion(logits.reshape(-1, 5), y.reshape(-1))
    keep = y.reshape(-1) != IGNORE
    by_hand = -logits.reshape(-1, 5)[keep].log_softmax(-1).gather(1, y.reshape(-1)[keep, None]).mean()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)


def test_a_padded_batch_norm_lm_run_end_to_end(tmp_path, one_thread):
    """data.min_length trains on padded windows; BatchNorm's running statistics come from real tokens."""
    cfg = compose(["preset=char_lm", "norm=batch", "model.n_layers=1", "model.d_model=32", "data.context_length=16",
                   "data.min_length=4", "data.eval_windows=8", "task.sample_length=0", "probes.batch_stats=true",
                   "probes.interval=10", *fast_overrides(20)])
    record = run(cfg, tmp_path)
    assert record["status"] == "completed"
    assert math.isfinite(record["metrics"]["final"]["val/loss"]) and record["metrics"]["final"]["val/loss"] < math.log(76)

@pytest.mark.unit
def test_padding_is_part_of_a_run_id_and_whole_windows_keep_theirs():
    from labbench.config import identity_config

    assert "min_length" not in identity_config(compose(["preset=char_lm"]))["data"]  # run ids from before padding stand
    assert run_id(compose(["preset=char_lm", "data.min_length=4"])) != run_id(compose(["preset=char_lm"]))
