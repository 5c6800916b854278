"""What the Transformer claims (C1-C7) need: the sequence task, causal evaluation, BatchNorm over
(batch, time) and its statistics probe, the head width, the sample judge. Hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import fast_overrides
from labbench.components.norms import Norm, TokenBatchNorm
from labbench.config import compose
from labbench.data.sequence import IGNORE, SequenceTasks, make_examples
from labbench.models.transformer import Transformer
from labbench.probes.layers import BatchStats
from labbench.tasks.sequence import SequenceTask
from labbench.train import run

# ---- the sequence task -------------------------------------------------------------------------


@pytest.mark.unit
def test_examples_put_the_answer_at_the_query_positions():
    g = torch.Generator().manual_seed(0)
    x, y = make_examples("reverse", 3, 4, 5, g)
    assert x.shape == y.shape == (3, 9)
    source = x[:, :4]
    assert (x[:, 4] == 5).all() and (x[:, 5:] == 6).all()  # separator = symbols, query = symbols + 1
    assert (y[:, :5] == IGNORE).all()
    assert torch.equal(y[:, 5:], source.flip(1))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(make_examples("copy", 3, 4, 5, g)[1][:, 5:], source)  # the same seed, the same sources
    g = torch.Generator().manual_seed(0)
    assert torch.equal(make_examples("sort", 3, 4, 5, g)[1][:, 5:], source.sort(1).values)


@pytest.mark.unit
def test_examples_by_hand():
    x, y = make_examples("reverse", 1, 3, 4, torch.Generator().manual_seed(1))
    s = x[0, :3].tolist()
    assert x[0].tolist() == [*s, 4, 5, 5, 5]
    assert y[0].tolist() == [IGNORE] * 4 + s[::-1]


@pytest.mark.unit
def test_the_answer_depends_on_the_order_of_the_source():
    """Order-dependent by construction: a permuted source asks for another answer."""
    x, y = make_examples("reverse", 64, 6, 10, torch.Generator().manual_seed(2))
    perm = torch.tensor([1, 0, 2, 3, 4, 5])
    swapped = x[:, :6][:, perm]
    differs = swapped[:, 0] != swapped[:, 1]
    assert differs.any()
    assert not torch.equal(swapped.flip(1)[differs], y[differs, 7:])


@pytest.mark.unit
def test_training_data_is_seeded_and_fresh_each_pass():
    data = SequenceTasks(length=4, symbols=5, batch_size=8, batches_per_pass=2, order_seed=3)
    loader = data.train_dataloader()
    first = [b[0].clone() for b in loader]
    second = [b[0].clone() for b in loader]
    again = [b[0] for b in SequenceTasks(length=4, symbols=5, batch_size=8, batches_per_pass=2, order_seed=3).train_dataloader()]
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], second[0])
    assert not torch.equal(first[0], first[1])


@pytest.mark.unit
def test_validation_and_test_sets_are_fixed_and_apart():
    a, b = SequenceTasks(order_seed=0), SequenceTasks(order_seed=9)
    a.setup(), b.setup()
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])  # the run's seed does not move them
    assert not torch.equal(a.splits["val"][0], a.splits["test"][0])
    assert a.baselines()["test/chance"] == pytest.approx(0.1)


@pytest.mark.unit
def test_bad_sequence_settings_fail_clearly():
    with pytest.raises(ValueError, match="copy, reverse, sort"):
        SequenceTasks(kind="shuffle")
    with pytest.raises(ValueError, match="length >= 2"):
        SequenceTasks(length=1)


def _seq_model(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(12, 13, **{"n_layers": 2, "d_model": 16, "n_heads": 2, "tie_weights": False, **kw}).eval()


@pytest.mark.unit
def test_without_positions_or_mask_every_query_position_gives_the_same_answer():
    """Attention with neither positions nor mask is permutation-equivariant: identical query
    tokens get identical outputs, so no answer that varies along the positions is possible."""
    x, _ = make_examples("reverse", 4, 6, 10, torch.Generator().manual_seed(0))
    blind = _seq_model(positional="none", causal=False)(x)[:, 7:]
    assert torch.allclose(blind, blind[:, :1].expand_as(blind), atol=1e-5)
    for kw in ({"positional": "learned", "causal": False}, {"positional": "none", "causal": True}):
        out = _seq_model(**kw)(x)[:, 7:]  # a position signal (a table, or counting under the mask) tells them apart
        assert not torch.allclose(out, out[:, :1].expand_as(out), atol=1e-3)


class _Oracle(nn.Module):
    """Logits that are right on a chosen share of the answer tokens."""

    def __init__(self, y: torch.Tensor, wrong: torch.Tensor, vocab: int) -> None:
        super().__init__()
        self.y, self.wrong, self.vocab = y, wrong, vocab
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        target = self.y.clamp_min(0).clone()
        target[self.wrong] = (target[self.wrong] + 1) % (self.vocab - 2)
        return nn.functional.one_hot(target, self.vocab).float() * 10 + self.p


@pytest.mark.unit
def test_sequence_task_accuracy_by_hand():
    x, y = make_examples("copy", 2, 3, 5, torch.Generator().manual_seed(0))
    wrong = torch.zeros_like(y, dtype=torch.bool)
    wrong[0, 4] = True  # one wrong answer token of six: token accuracy 5/6, one of two answers whole
    task = SequenceTask(_Oracle(y, wrong, 7), optimizer=None, loss=nn.CrossEntropyLoss(), symbols=5)
    logged = {}
    task.log = lambda name, value, **kw: logged.__setitem__(name, float(value.detach()))
    task.shared_step((x, y), "val")
    assert logged["val/acc"] == pytest.approx(5 / 6)
    assert logged["val/seq_acc"] == pytest.approx(0.5)
    assert task.failure_values() == {"loss": pytest.approx(math.log(5)), "acc": 0.2, "seq_acc": 0.0}


def test_sequence_run_end_to_end_learns_reverse(tmp_path, one_thread):
    record = run(compose(["preset=sequence", "init=default", "data.length=6", *fast_overrides(150)]), tmp_path)
    final = record["metrics"]["final"]
    assert record["status"] == "completed" and record["baselines"]["test/chance"] == pytest.approx(0.1)
    assert final["test/acc"] > 0.9 and 0 <= final["test/seq_acc"] <= 1  # reverse of 6 is easy with positions


# ---- causal evaluation (C2) --------------------------------------------------------------------


@pytest.mark.unit
def test_attention_mask_switch_makes_a_non_causal_model_causal_and_restores_it():
    model = _seq_model(causal=False)
    x = torch.randint(0, 12, (2, 13), generator=torch.Generator().manual_seed(0))
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 1) % 12
    assert not torch.allclose(model(x)[:, :7], model(x2)[:, :7], atol=1e-4)  # trained view: sees the future
    with model.attention_mask(True):
        assert model.causal
        assert torch.allclose(model(x)[:, :7], model(x2)[:, :7], atol=1e-5)
    assert not model.causal


def test_causal_loss_reads_a_non_causal_model_under_the_mask(tmp_path, one_thread):
    common = ["preset=char_lm", "model.n_layers=1", "model.d_model=32", "data.context_length=16", "data.eval_windows=8",
              "task.causal_eval=true", "task.sample_length=40", "schedule=constant", "optimizer.lr=0.01", *fast_overrides(100)]
    leaky = run(compose([*common, "model.causal=false"]), tmp_path / "leaky")["metrics"]["final"]
    honest = run(compose(common), tmp_path / "honest")["metrics"]["final"]
    assert honest["val/causal_loss"] == pytest.approx(honest["val/loss"])  # the same model, the same mask
    assert leaky["val/causal_loss"] > leaky["val/loss"] + 0.1  # copying the next character stops working
    for final in (leaky, honest):
        assert 0 < final["test/sample_bigram_nll"] < 10


@pytest.mark.unit
def test_causal_eval_needs_a_switchable_mask():
    from labbench.tasks.language_model import LanguageModelTask

    with pytest.raises(ValueError, match="causal_eval"):
        LanguageModelTask(nn.Linear(2, 2), optimizer=None, loss=nn.CrossEntropyLoss(), vocab=["a"], causal_eval=True)


@pytest.mark.unit
def test_bigram_judge_by_hand(tmp_path):
    from labbench.data.text import CharText

    corpus = tmp_path / "c.txt"
    corpus.write_text("ab" * 500)  # train: every a is followed by b and every b by a
    data = CharText(path=str(corpus), context_length=4, val_fraction=0.1, test_fraction=0.1)
    a, b = data.encode("a")[0], data.encode("b")[0]
    n_ab = 400  # a->b pairs in the 800-character training split (and 399 b->a)
    assert data.bigram_nll([a, b]) == pytest.approx(-math.log((n_ab + 1) / (n_ab + 2)))
    assert data.bigram_nll([a, a]) == pytest.approx(-math.log(1 / (n_ab + 2)))


# ---- BatchNorm over batch and time (C7) --------------------------------------------------------


@pytest.mark.unit
def test_token_batch_norm_normalizes_each_channel_over_batch_and_time():
    x = torch.randn(4, 5, 3) * torch.tensor([1.0, 3.0, 0.5]) + torch.tensor([2.0, -1.0, 0.0])
    bn = TokenBatchNorm(3, eps=1e-5).train()
    out = bn(x)
    flat = x.reshape(-1, 3)
    expected = (flat - flat.mean(0)) / (flat.var(0, unbiased=False) + 1e-5).sqrt()
    assert torch.allclose(out.reshape(-1, 3), expected, atol=1e-5)
    assert torch.allclose(bn.running_mean, 0.1 * flat.mean(0), atol=1e-6)  # momentum 0.1 from 0
    bn.eval()
    assert torch.allclose(bn(x), (x - bn.running_mean) / (bn.running_var + 1e-5).sqrt(), atol=1e-5)  # running statistics
    with pytest.raises(ValueError, match="batch, time, channels"):
        bn(torch.randn(4, 3))


@pytest.mark.unit
def test_a_transformer_takes_batch_norm_and_refuses_feature_map_norms():
    model = Transformer(10, 8, n_layers=2, d_model=16, n_heads=2, norm="batch")
    assert sum(isinstance(m, TokenBatchNorm) for m in model.modules()) == 5  # two per block and the final norm
    assert model(torch.randint(0, 10, (3, 8))).shape == (3, 8, 10)
    with pytest.raises(ValueError, match="layer, rms, batch, none"):
        Transformer(10, 8, norm=Norm("group"))


@pytest.mark.unit
def test_batch_stats_probe_by_hand():
    bn = TokenBatchNorm(2)
    bn.running_mean.copy_(torch.tensor([1.0, 0.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    x = torch.tensor([[[3.0, 1.0], [3.0, -1.0]], [[-1.0, 1.0], [-1.0, -1.0]]])  # per channel: mean (1, 0), var (4, 1)
    x2 = x * torch.tensor([0.5, 3.0]) + torch.tensor([2.0, 0.0])  # mean (2.5, 0), var (1, 9)
    probe = BatchStats()
    model = nn.Sequential(bn)
    probe.attach(model)
    model(x2)
    values = probe.summarize(probe.values)
    for h in probe.handles:
        h.remove()
    # mean: (|2.5 - 1| / 2 + 0) / 2; var: (|1/4 - 1| + |9/1 - 1|) / 2
    assert values["probe/bn_mean_dev/0"] == pytest.approx((1.5 / 2) / 2)
    assert values["probe/bn_var_dev/0"] == pytest.approx((0.75 + 8) / 2)
    assert values["probe/bn_var_dev/mean"] == values["probe/bn_var_dev/0"]


def test_batch_norm_lm_run_logs_its_batch_statistics(tmp_path, one_thread):
    record = run(compose(["preset=char_lm", "norm=batch", "model.n_layers=1", "model.d_model=32", "data.context_length=16",
                          "data.eval_windows=8", "task.sample_length=0", "probes.batch_stats=true", "probes.interval=10",
                          *fast_overrides(30)]), tmp_path)
    curve = record["curves"]["probe/bn_var_dev/mean"]
    assert record["status"] == "completed" and [s for s, _ in curve] == [0, 10, 20]
    assert all(v >= 0 for _, v in curve)


# ---- head width (C3) ---------------------------------------------------------------------------


@pytest.mark.unit
def test_head_dim_sets_the_attention_width_apart_from_the_model_width():
    default = Transformer(10, 8, n_layers=1, d_model=16, n_heads=2)
    wide = Transformer(10, 8, n_layers=1, d_model=16, n_heads=2, head_dim=32)
    attn = wide.blocks[0].attn
    assert attn.head_dim == 32 and attn.qkv.weight.shape == (3 * 64, 16) and attn.proj.weight.shape == (16, 64)
    assert default.blocks[0].attn.head_dim == 8
    assert wide(torch.randint(0, 10, (2, 8))).shape == (2, 8, 10)
    torch.manual_seed(0)
    a = Transformer(10, 8, n_layers=1, d_model=16, n_heads=2)
    torch.manual_seed(0)
    b = Transformer(10, 8, n_layers=1, d_model=16, n_heads=2, head_dim=8)  # explicit default: the same model
    x = torch.randint(0, 10, (2, 8))
    assert torch.equal(a(x), b(x))
    with pytest.raises(ValueError, match="head_dim"):
        Transformer(10, 8, d_model=30, n_heads=4)


def test_unscaled_attention_at_a_wide_head_has_lower_entropy_at_init(tmp_path, one_thread):
    """The argument of Vaswani et al. 3.2.1, measured through the probe at step 0."""
    entropies = {}
    for scaled in ("true", "false"):
        record = run(compose(["preset=char_lm", "init=default", "model.n_layers=1", "model.n_heads=2", "model.head_dim=128",
                              f"model.scaled_attention={scaled}", "data.context_length=32", "data.eval_windows=4",
                              "task.sample_length=0", "probes.attention_entropy=true", *fast_overrides(2)]), tmp_path / scaled)
        entropies[scaled] = dict(record["curves"]["probe/attn_entropy/mean"])[0]
    assert entropies["false"] < entropies["true"] - 0.5


@pytest.mark.unit
def test_token_batch_norm_under_a_mask_pools_the_real_tokens_alone():
    """Shen et al.'s masked BatchNorm: padding enters neither the batch statistics nor the running ones."""
    x = torch.randn(3, 5, 2) * 2 + 1
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 3])[:, None]
    x_padded = x.masked_fill(~mask[..., None], 100.0)  # wild padding features: they must not matter
    bn = TokenBatchNorm(2, eps=1e-5).train()
    out = bn(x_padded, mask)
    real = x[mask]  # (10, 2)
    expected = (real - real.mean(0)) / (real.var(0, unbiased=False) + 1e-5).sqrt()
    assert torch.allclose(out[mask], expected, atol=1e-5)
    assert (out[~mask] == 0).all()
    assert torch.allclose(bn.running_mean, 0.1 * real.mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, 0.9 + 0.1 * real.var(0, unbiased=True), atol=1e-5)
    assert torch.equal(TokenBatchNorm.batch_values(x_padded, mask), real)
    bn.eval()  # evaluation: running statistics for every position, the mask changes nothing
    assert torch.equal(bn(x_padded, mask), bn(x_padded))


@pytest.mark.unit
def test_batch_stats_probe_skips_padding():
    bn = TokenBatchNorm(1)
    probe = BatchStats()
    probe.attach(bn)
    x = torch.tensor([[[1.0], [-1.0], [50.0]], [[1.0], [-1.0], [50.0]]])  # the real tokens: mean 0, var 1
    mask = torch.tensor([[True, True, False], [True, True, False]])
    bn(x, mask)
    for h in probe.handles:
        h.remove()
    assert probe.values["probe/bn_mean_dev/"] == pytest.approx(0.0, abs=1e-6)  # running mean 0, var 1 at init
    assert probe.values["probe/bn_var_dev/"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_a_causal_transformer_reads_a_padded_batch_as_its_real_tokens(norm):
    """Right padding: the real tokens' logits of a padded row equal those of the row cut to its length
    (LayerNorm, and BatchNorm in eval mode; in training BatchNorm's statistics are the real tokens')."""
    torch.manual_seed(0)
    model = Transformer(10, 8, n_layers=2, d_model=16, n_heads=2, norm=norm).eval()
    ids = torch.randint(0, 10, (2, 8))
    mask = torch.arange(8)[None, :] < torch.tensor([8, 5])[:, None]
    logits = model(ids.masked_fill(~mask, 0), token_mask=mask)
    assert torch.allclose(logits[1, :5], model(ids[1:, :5])[0], atol=1e-5)
    with pytest.raises(ValueError, match="pad on the right"):
        model(ids, token_mask=~mask)


@pytest.mark.unit
def test_training_batch_norm_on_a_padded_batch_equals_it_on_the_real_tokens():
    """In training, a padded batch normalizes exactly as a batch of its real tokens alone: the
    first layer's BatchNorm output at real positions does not depend on what the padding holds."""
    torch.manual_seed(0)
    model = Transformer(10, 8, n_layers=1, d_model=16, n_heads=2, norm="batch").train()
    mask = torch.arange(8)[None, :] < torch.tensor([8, 3, 6])[:, None]
    ids = torch.randint(0, 10, (3, 8))
    a = model(ids.masked_fill(~mask, 0), token_mask=mask)
    b = model(ids.masked_fill(~mask, 7), token_mask=mask)
    assert torch.allclose(a[mask], b[mask], atol=1e-5)
    c = model(ids.masked_fill(~mask, 7))  # unmasked: the padding enters the statistics
    assert not torch.allclose(a[mask], c[mask], atol=1e-3)


@pytest.mark.unit
def test_a_non_causal_transformer_keeps_queries_off_padded_keys():
    torch.manual_seed(0)
    model = Transformer(10, 8, n_layers=2, d_model=16, n_heads=2, causal=False).eval()
    ids = torch.randint(0, 10, (1, 8))
    mask = torch.arange(8)[None, :] < 5
    a = model(ids.masked_fill(~mask, 0), token_mask=mask)[0, :5]
    assert torch.allclose(a, model(ids[:, :5])[0], atol=1e-5)
    model.keep_attention(True)
    assert torch.allclose(model(ids.masked_fill(~mask, 3), token_mask=mask)[0, :5], a, atol=1e-5)  # the explicit path too
