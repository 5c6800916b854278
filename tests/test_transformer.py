"""The Transformer's options do what their names say."""

from __future__ import annotations

import pytest
import torch

from labbench.models.transformer import Transformer

V, T = 23, 12


def make(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(V, T, **{"n_layers": 2, "d_model": 32, "n_heads": 4, **kw}).eval()


def ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(seed))


def test_output_shape():
    assert make()(ids()).shape == (2, T, V)


@pytest.mark.parametrize("explicit", [False, True])
def test_causal_output_at_t_ignores_tokens_after_t(explicit):
    model = make()
    model.keep_attention(explicit)
    x, x2 = ids(), ids()
    x2[:, 7:] = (x2[:, 7:] + 1) % V  # change every token from position 7 on
    a, b = model(x), model(x2)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-5)
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-3)


def test_without_the_mask_earlier_positions_see_the_future():
    model = make(causal=False)
    x, x2 = ids(), ids()
    x2[:, 7:] = (x2[:, 7:] + 1) % V
    assert not torch.allclose(model(x)[:, :7], model(x2)[:, :7], atol=1e-3)


def test_explicit_attention_path_matches_sdpa_and_keeps_weights():
    model = make()
    fast = model(ids())
    model.keep_attention(True)
    slow = model(ids())
    assert torch.allclose(fast, slow, atol=1e-5)
    weights = model.blocks[0].attn.attention
    assert weights.shape == (2, 4, T, T)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, T), atol=1e-5)
    assert torch.all(weights.triu(1) == 0)  # causal: no weight on the future


def test_attention_scaling_changes_the_softmax():
    """Without 1/sqrt(d_head) the same scores are sqrt(d_head) times larger: a sharper softmax."""
    scaled, unscaled = make(), make(scaled_attention=False)
    unscaled.load_state_dict(scaled.state_dict())
    for m in (scaled, unscaled):
        m.keep_attention(True)
        m(ids())

    def entropy(w):
        return -(w.clamp_min(1e-12).log() * w).sum(-1).mean()

    assert entropy(unscaled.blocks[0].attn.attention) < entropy(scaled.blocks[0].attn.attention)


def test_pre_and_post_norm_place_the_norm_differently():
    """Post-LN normalizes the residual stream itself: the block output has unit spread per token.
    Pre-LN leaves the stream unnormalized; and gradients reach the embedding differently."""
    pre, post = make(norm_position="pre"), make(norm_position="post")
    post.load_state_dict({k: v for k, v in pre.state_dict().items() if "final_norm" not in k}, strict=False)
    x = pre.embed(ids()) * 10 + pre.pos[:T]
    out_post = post.blocks[0](x)
    out_pre = pre.blocks[0](x)
    assert torch.allclose(out_post.std(-1, unbiased=False), torch.ones(2, T), atol=1e-3)
    assert out_pre.std(-1).mean() > 5  # the residual path carries the unnormalized input through
    grads = []
    for m in (pre, post):
        m.train()
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(ids()).reshape(-1, V), ids(1).reshape(-1)).backward()
        grads.append(m.embed.weight.grad.norm().item())
    assert grads[0] != pytest.approx(grads[1], rel=1e-3)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_position_information_makes_the_output_order_sensitive(positional):
    """Without positions (and without a mask) attention is permutation-equivariant."""
    none, with_pos = make(positional="none", causal=False), make(positional=positional, causal=False)
    if positional == "learned":
        torch.nn.init.normal_(with_pos.pos, std=1.0)
    x = ids()
    perm = torch.randperm(T, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(none(x)[:, perm], none(x[:, perm]), atol=1e-5)
    assert not torch.allclose(with_pos(x)[:, perm], with_pos(x[:, perm]), atol=1e-3)


def test_weight_tying_shares_one_parameter():
    tied, untied = make(tie_weights=True), make(tie_weights=False)
    assert tied.head.weight is tied.embed.weight
    assert untied.head.weight is not untied.embed.weight
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(untied) - n(tied) == V * 32


def test_rms_and_no_norm_build_and_bad_options_fail_clearly():
    assert make(norm="rms")(ids()).shape == (2, T, V)
    assert make(norm="none")(ids()).shape == (2, T, V)
    with pytest.raises(ValueError, match="pre, post"):
        make(norm_position="middle")
    with pytest.raises(ValueError, match="none, sinusoidal, learned"):
        make(positional="rotary")
    with pytest.raises(ValueError, match="divisible"):
        make(d_model=30)


def test_generation_is_seeded():
    model = make()
    g = lambda: model.generate(torch.tensor([1, 2]), 8, generator=torch.Generator().manual_seed(3))  # noqa: E731
    assert torch.equal(g(), g()) and len(g()) == 8
