"""Multi-layer perceptron: depth x (linear -> norm -> activation -> dropout), optional residuals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from labbench.components.activations import Activation
from labbench.components.norms import Norm


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units and a linear classifier head.

    With ``residual`` every hidden layer after the first adds its input back
    (``h + block(h)``); the first one changes the width, so it cannot. ``depth=0`` is
    multinomial logistic regression.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        depth: int = 2,
        width: int = 128,
        activation: Activation | str = "relu",
        norm: Norm | str = "none",
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self.activation = activation if isinstance(activation, Activation) else Activation(activation)
        norm = norm if isinstance(norm, Norm) else Norm(norm)
        self.residual = residual
        in_features = math.prod(in_shape)
        self.hidden = nn.ModuleList()
        for i in range(depth):
            self.hidden.append(
                nn.Sequential(
                    nn.Linear(in_features if i == 0 else width, width),
                    norm.make(width, spatial_dims=0),
                    self.activation.make(),
                    nn.Dropout(dropout),
                )
            )
        self.head = nn.Linear(width if depth else in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for i, block in enumerate(self.hidden):
            h = h + block(h) if self.residual and i > 0 else block(h)
        return self.head(h)
