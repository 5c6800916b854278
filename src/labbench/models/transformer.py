"""A decoder-only Transformer for character language modelling (GPT-style, plain nn.Module).

Every choice a claim is about is a constructor argument: norm position (pre / post) and
kind (BatchNorm too, over batch and time), positional encoding, causal mask, attention
scaling, head count and width, weight tying, depth.
Attention uses ``scaled_dot_product_attention``; with ``keep_attention`` set it takes an
explicit path that keeps the attention weights for probes.

Padded batches (variable-length windows, ``data.min_length``): ``forward(ids, token_mask)``
takes the real tokens' mask and hands it to the norms that pool over tokens (BatchNorm's
statistics then skip the padding) and, in a model without the causal mask, to attention as a
key mask. Padding is on the right, so a causal model's real tokens never attend to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from labbench.components.activations import Activation
from labbench.components.norms import TOKEN_NORMS, Norm, TokenBatchNorm

NORM_POSITIONS = ("pre", "post")
POSITIONAL = ("none", "sinusoidal", "learned")


class SelfAttention(nn.Module):
    """Multi-head self-attention; ``head_dim`` (None: ``d_model // n_heads``) sets each head's
    query/key width apart from the model's, so a claim can vary it at a fixed width and head count."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, causal: bool, scaled: bool, head_dim: int | None = None) -> None:
        super().__init__()
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads} (or give model.head_dim)")
            head_dim = d_model // n_heads
        if head_dim < 1:
            raise ValueError(f"head_dim must be a positive integer; got {head_dim}")
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.qkv = nn.Linear(d_model, 3 * inner)
        self.proj = nn.Linear(inner, d_model)
        self.dropout = dropout
        self.causal, self.scaled = causal, scaled
        self.keep_attention = False
        self.attention: torch.Tensor | None = None  # (N, heads, T, T) when keep_attention

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``key_mask`` (``(N, T)`` bool, True at real tokens) keeps queries off padded keys; a causal
        layer ignores it (with right padding its real tokens never reach a padded key)."""
        n, t, _ = x.shape
        if self.causal:
            key_mask = None
        q, k, v = self.qkv(x).view(n, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scale = 1.0 / math.sqrt(self.head_dim) if self.scaled else 1.0
        p = self.dropout if self.training else 0.0
        if self.keep_attention:
            scores = (q @ k.transpose(-2, -1)) * scale
            if self.causal:
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
                scores = scores.masked_fill(mask, float("-inf"))
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
            weights = scores.softmax(dim=-1)
            self.attention = weights.detach()
            out = F.dropout(weights, p, self.training) @ v
        else:
            attn_mask = None if key_mask is None else key_mask[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p, is_causal=self.causal, scale=scale)
        return self.proj(out.transpose(1, 2).reshape(n, t, self.n_heads * self.head_dim))


class Block(nn.Module):
    """Attention and feed-forward sublayers, each with a residual and a norm (pre or post)."""

    def __init__(self, d_model, n_heads, ffn_mult, activation: Activation, norm: Norm, position, dropout, causal, scaled, head_dim=None):
        super().__init__()
        self.position = position
        self.norm1, self.norm2 = norm.make_for_tokens(d_model), norm.make_for_tokens(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout, causal, scaled, head_dim)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_mult * d_model), activation.make(), nn.Linear(ffn_mult * d_model, d_model), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        norm1, norm2 = (lambda h: normed(self.norm1, h, token_mask)), (lambda h: normed(self.norm2, h, token_mask))
        if self.position == "pre":  # x + f(norm(x)): the residual path is never normalized
            x = x + self.drop(self.attn(norm1(x), token_mask))
            return x + self.ffn(norm2(x))
        x = norm1(x + self.drop(self.attn(x, token_mask)))  # post: norm(x + f(x)), as in Vaswani et al.
        return norm2(x + self.ffn(x))


def normed(norm: nn.Module, x: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """``norm(x)``, with the real tokens' mask for a norm that pools over tokens (BatchNorm)."""
    if token_mask is not None and isinstance(norm, TokenBatchNorm):
        return norm(x, token_mask)
    return norm(x)


def sinusoidal_table(length: int, d_model: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


class Transformer(nn.Module):
    """Token ids ``(N, T)`` -> next-token logits ``(N, T, vocab_size)``."""

    channels_last = True  # hidden activations are (N, T, C): probes take C as the unit axis

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        n_layers: int = 4,
        d_model: int = 128,
        n_heads: int = 4,
        ffn_mult: int = 4,
        activation: Activation | str = "gelu",
        norm: Norm | str = "layer",
        norm_position: str = "pre",
        positional: str = "learned",
        causal: bool = True,
        scaled_attention: bool = True,
        tie_weights: bool = True,
        dropout: float = 0.0,
        head_dim: int | None = None,
    ) -> None:
        super().__init__()
        if norm_position not in NORM_POSITIONS:
            raise ValueError(f"unknown norm_position {norm_position!r}; valid: {', '.join(NORM_POSITIONS)}")
        if positional not in POSITIONAL:
            raise ValueError(f"unknown positional encoding {positional!r}; valid: {', '.join(POSITIONAL)}")
        self.activation = activation if isinstance(activation, Activation) else Activation(activation)
        norm = norm if isinstance(norm, Norm) else Norm(norm)
        if norm.kind not in TOKEN_NORMS:
            raise ValueError(f"a Transformer takes norm kind {', '.join(TOKEN_NORMS)}; got {norm.kind!r}")
        self.context_length, self.positional = context_length, positional
        self.embed = nn.Embedding(vocab_size, d_model)
        if positional == "learned":
            # a learned position table is an embedding and starts like the token embedding: nn.Embedding's N(0, 1)
            # under init=default, the init group's draw otherwise (GPT-2: 0.02 for both), so that positions and
            # tokens enter the residual stream at one scale (the sinusoidal table has amplitude 1: it matches
            # unit-scale token embeddings, as in Vaswani et al., whose embeddings are scaled to unit size)
            self.pos = nn.Parameter(torch.randn(context_length, d_model))
        elif positional == "sinusoidal":
            self.register_buffer("pos", sinusoidal_table(context_length, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, ffn_mult, self.activation, norm, norm_position, dropout, causal, scaled_attention, head_dim)
            for _ in range(n_layers)
        )
        # Pre-norm stacks end with a norm (GPT-2); post-norm blocks already end with one.
        self.final_norm = norm.make_for_tokens(d_model) if norm_position == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.embed.weight

    @property
    def causal(self) -> bool:
        """Whether attention is masked to past positions (every layer alike)."""
        return self.blocks[0].attn.causal if len(self.blocks) else True

    @contextmanager
    def attention_mask(self, causal: bool) -> Iterator[None]:
        """Evaluate with the causal mask on or off whatever the model was trained with (C2:
        a model trained without the mask, read under it, shows what it learned to predict)."""
        before = self.causal
        for block in self.blocks:
            block.attn.causal = causal
        try:
            yield
        finally:
            for block in self.blocks:
                block.attn.causal = before

    def keep_attention(self, keep: bool = True) -> None:
        """Switch every layer to the explicit attention path that stores its weights."""
        for block in self.blocks:
            block.attn.keep_attention = keep

    def forward(self, ids: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for ``ids``; ``token_mask`` (``(N, T)`` bool, True at real tokens) marks a padded
        batch's real tokens, which must come first in each row (right padding)."""
        t = ids.shape[1]
        if t > self.context_length:
            raise ValueError(f"sequence of {t} tokens is longer than context_length={self.context_length}")
        if token_mask is not None:
            if token_mask.shape != ids.shape:
                raise ValueError(f"token_mask must have the ids' shape {tuple(ids.shape)}, got {tuple(token_mask.shape)}")
            if bool((token_mask[:, 1:] & ~token_mask[:, :-1]).any()):
                raise ValueError("token_mask must pad on the right: a real token follows a padded one in some row")
        x = self.embed(ids)
        if self.positional != "none":
            x = x + self.pos[:t]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, token_mask)
        return self.head(normed(self.final_norm, x, token_mask))

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, length: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``length`` tokens after ``prompt`` (1-D ids); returns the new ids."""
        ids = prompt[None, :]
        out = []
        for _ in range(length):
            logits = self(ids[:, -self.context_length :])[0, -1] / max(temperature, 1e-6)
            nxt = torch.multinomial(logits.softmax(-1).float().cpu(), 1, generator=generator).to(ids.device)
            out.append(int(nxt))
            ids = torch.cat([ids, nxt[None, :]], dim=1)
        return torch.tensor(out)
