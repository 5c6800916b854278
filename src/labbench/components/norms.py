"""Normalization layers chosen by kind, for feature vectors (MLP) and feature maps (CNN)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

KINDS = ("none", "batch", "group", "layer", "rms", "instance")
TOKEN_NORMS = ("layer", "rms", "batch", "none")  # what a Transformer's (N, T, C) token features take


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm for token features ``(N, T, C)``: each channel is normalized over batch *and*
    time (N x T values), as in Shen et al. 2020's "BN in Transformers" baseline.

    In a causal language model this lets a position's normalization see statistics of later
    positions of the batch during training (evaluation uses the running statistics): a small
    leak that a claim about BatchNorm in sequence models inherits from BatchNorm itself.

    Padding: given ``token_mask`` (``(N, T)`` bool, True at real tokens) a training batch's
    statistics, and the running estimates they update, are computed over the real tokens
    alone, as in Shen et al.'s masked BatchNorm (a batch of padded sentences otherwise
    normalizes with the padding's features mixed in); padded positions come out as zeros
    (a right-padded causal model's real tokens never read them). Evaluation normalizes every position with the running estimates,
    so the mask changes nothing there. :meth:`batch_values` tells probes which values the
    batch statistics average over.
    """

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"TokenBatchNorm takes (batch, time, channels) features; got shape {tuple(x.shape)}")
        n, t, c = x.shape
        flat = x.reshape(n * t, c)
        if token_mask is None or not (self.training or not self.track_running_stats):
            return super().forward(flat).reshape(n, t, c)
        if token_mask.shape != (n, t):
            raise ValueError(f"token_mask must be (batch, time) = {(n, t)}, got {tuple(token_mask.shape)}")
        keep = token_mask.reshape(n * t)
        out = torch.zeros_like(flat)
        out[keep] = super().forward(flat[keep])  # padded positions stay 0: nothing real reads them
        return out.reshape(n, t, c)

    @staticmethod
    def batch_values(x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(M, C)``: the values each channel's batch statistics average over (every token, or the
        real ones under ``token_mask``)."""
        flat = x.reshape(-1, x.shape[-1])
        return flat if token_mask is None else flat[token_mask.reshape(-1)]


@dataclass(frozen=True)
class Norm:
    """A normalization kind; ``make(channels, spatial_dims)`` builds one layer.

    ``rms`` is RMSNorm (Zhang & Sennrich 2019): layer norm without centring.

    ``spatial_dims`` is 0 for feature vectors ``(N, C)``, 1 for sequences ``(N, C, L)``
    and 2 for images ``(N, C, H, W)``. Layer norm on feature maps normalizes over
    (C, H, W) per sample, i.e. GroupNorm with one group, as in Wu & He (2018).
    """

    kind: str = "none"
    groups: int = 8  # group norm only: number of channel groups (must divide the channels)
    eps: float = 1e-5
    affine: bool = True  # learnable scale and shift
    momentum: float = 0.1  # batch norm only: running-statistics momentum
    # batch norm only: the population statistics evaluation reads (labbench.probes.precise_bn).
    # 0: the running statistics (the moving average kept in training); N > 0: precise statistics,
    # re-estimated before each evaluation from N training batches with the weights of that moment
    precise_batches: int = 0
    precise_batch_size: int | None = None  # their size (None: the per-process training batch)
    precise_splits: str = "both"  # the evaluations that read them: val | test | both

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown norm kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if not isinstance(self.precise_batches, int) or isinstance(self.precise_batches, bool) or self.precise_batches < 0:
            raise ValueError(f"norm.precise_batches is a whole number of batches >= 0 (0: running statistics), got {self.precise_batches!r}")
        if self.precise_batches and self.kind != "batch":
            raise ValueError(f"norm.precise_batches re-estimates BatchNorm's statistics; norm={self.kind} keeps none (use norm=batch or drop it)")
        if self.precise_splits not in ("val", "test", "both"):
            raise ValueError(f"norm.precise_splits must be val, test or both, got {self.precise_splits!r}")
        if self.precise_batch_size is not None and (
            not isinstance(self.precise_batch_size, int) or isinstance(self.precise_batch_size, bool) or self.precise_batch_size < 2
        ):
            raise ValueError(f"norm.precise_batch_size is a batch size >= 2 (a variance needs two values) or null, got {self.precise_batch_size!r}")
        if not self.precise_batches and (self.precise_batch_size is not None or self.precise_splits != "both"):
            raise ValueError(
                "norm.precise_batch_size and norm.precise_splits apply to precise statistics only: set norm.precise_batches "
                "to the number of training batches to estimate them from (e.g. 20), or drop them"
            )

    def make(self, channels: int, spatial_dims: int = 0) -> nn.Module:
        if self.kind == "none":
            return nn.Identity()
        if self.kind == "batch":
            cls = (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[spatial_dims]
            return cls(channels, eps=self.eps, momentum=self.momentum, affine=self.affine)
        if self.kind == "group":
            if channels % self.groups:
                raise ValueError(
                    f"group norm with groups={self.groups} needs a channel count divisible by it; "
                    f"got {channels} channels (set norm.groups to a divisor of {channels})"
                )
            return nn.GroupNorm(self.groups, channels, eps=self.eps, affine=self.affine)
        if self.kind == "layer":
            if spatial_dims == 0:
                return nn.LayerNorm(channels, eps=self.eps, elementwise_affine=self.affine)
            return nn.GroupNorm(1, channels, eps=self.eps, affine=self.affine)
        if self.kind == "rms":
            if spatial_dims:
                raise ValueError("rms norm is for feature vectors (MLP, Transformer); for feature maps use layer or group")
            return nn.RMSNorm(channels, eps=self.eps, elementwise_affine=self.affine)
        # instance
        if spatial_dims == 0:
            raise ValueError(
                "instance norm normalizes each channel over its spatial positions, and a feature "
                "vector has none: use it with a CNN, or choose norm=none|batch|group|layer for an MLP"
            )
        cls = nn.InstanceNorm1d if spatial_dims == 1 else nn.InstanceNorm2d
        return cls(channels, eps=self.eps, affine=self.affine)

    def make_for_tokens(self, channels: int) -> nn.Module:
        """A norm for token features ``(N, T, C)`` (a Transformer): layer and RMS norm act on the last
        axis as for feature vectors; batch norm averages each channel over batch and time."""
        if self.kind not in TOKEN_NORMS:
            raise ValueError(f"a Transformer takes norm kind {', '.join(TOKEN_NORMS)}; got {self.kind!r}")
        if self.kind == "batch":
            return TokenBatchNorm(channels, eps=self.eps, momentum=self.momentum, affine=self.affine)
        return self.make(channels)
