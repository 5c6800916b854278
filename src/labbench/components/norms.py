"""Normalization layers chosen by kind, for feature vectors (MLP) and feature maps (CNN)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

KINDS = ("none", "batch", "group", "layer", "rms", "instance")


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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown norm kind {self.kind!r}; valid: {', '.join(KINDS)}")

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
