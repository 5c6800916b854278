"""CIFAR-style ResNet (He et al. 2016, section 4.2) and its plain twin without shortcuts.

Depth 6n+2: a 3x3 stem, three stages of n basic blocks (two 3x3 convs each) at widths
w, 2w, 4w with stride 2 between stages, global average pooling and a linear head. The
shortcut is the paper's option A (identity; subsample and zero-pad channels when the
shape changes), which has no parameters: the residual and plain nets have exactly the
same weights and differ only in the addition.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from labbench.components.activations import Activation
from labbench.components.norms import Norm


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: Norm, activation: Activation, residual: bool) -> None:
        super().__init__()
        bias = norm.kind == "none"
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = norm.make(c_out, spatial_dims=2)
        self.act1 = activation.make()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias)
        self.norm2 = norm.make(c_out, spatial_dims=2)
        self.act2 = activation.make()
        self.residual, self.stride, self.pad = residual, stride, c_out - c_in

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        if self.residual:
            out = out + self.shortcut(x)
        return self.act2(out)


class ResNet(nn.Module):
    """ResNet-(6n+2) for ``(C, H, W)`` images with 1 or 3 channels; ``residual=False`` is the plain net."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        depth: int = 20,
        width: int = 16,
        residual: bool = True,
        activation: Activation | str = "relu",
        norm: Norm | str = "batch",
    ) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"ResNet needs images (C, H, W); got input shape {tuple(in_shape)}")
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, ...); got {depth}")
        self.activation = activation if isinstance(activation, Activation) else Activation(activation)
        norm = norm if isinstance(norm, Norm) else Norm(norm)
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_shape[0], width, 3, padding=1, bias=norm.kind == "none"),
            norm.make(width, spatial_dims=2),
            self.activation.make(),
        )
        blocks, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, norm, self.activation, residual))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        return self.head(h.mean(dim=(2, 3)))
