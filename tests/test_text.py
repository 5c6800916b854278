"""Tiny Shakespeare and user text files: contiguous splits, windows, and a real LM run."""

from __future__ import annotations

import pytest
import torch

from conftest import fast_overrides
from labbench.config import compose
from labbench.data.base import DatasetNotFoundError
from labbench.data.text import CharText
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
