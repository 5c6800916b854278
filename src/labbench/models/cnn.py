"""A small CNN: stages of (conv -> norm -> activation), pooling between stages, then a head: global average pool or
the flattened feature map (optionally through a hidden fully connected layer)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labbench.components.activations import Activation
from labbench.components.norms import Norm

POOLINGS = ("max", "avg", "stride", "none")
PADDINGS = ("zeros", "circular")
HEADS = ("gap", "flatten")


class CNN(nn.Module):
    """Convolutional classifier for 1-D ``(C, L)`` or 2-D ``(C, H, W)`` inputs.

    One stage per entry of ``channels``, each ``depth`` conv layers wide; between stages
    the resolution halves by ``pooling`` (max / avg pooling, or a stride-2 first conv of
    the next stage; ``none`` keeps it). Convs carry a bias only when no norm follows.

    ``padding_mode``: ``zeros`` (the usual) or ``circular`` (wrap around). With zeros a 3x3 conv on a
    small map sees few real inputs at its border (on a 2x2 map 4 of 9 taps): the activations' second
    moment shrinks by that share per layer, whatever the init, so an init's variance arithmetic
    (He et al. 2015: fan-in = channels x 9 at every output) does not hold there. Wrapping gives every
    output all 9 taps, each an independent weight, as the interior of a large image does.

    ``head``: ``gap`` (the default) averages each channel over the last map's positions before the linear
    classifier, which makes the net nearly invariant to shifts and, at a few channels, too small to fit a training
    split by heart; ``flatten`` feeds every position of the last map to the classifier, as LeNet and Simard et al.'s
    2003 CNN do: a net that can memorise a small training set, so that what augmentation does against overfitting can
    show. ``head_width`` > 0 puts a hidden fully connected layer of that width (with the activation) before the
    classifier (Simard et al.: 100 units); ``dropout`` then acts on the features entering the hidden layer.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        depth: int = 1,
        kernel_size: int = 3,
        activation: Activation | str = "relu",
        norm: Norm | str = "none",
        pooling: str = "max",
        dropout: float = 0.0,
        padding_mode: str = "zeros",
        head: str = "gap",
        head_width: int = 0,
    ) -> None:
        super().__init__()
        if len(in_shape) not in (2, 3):
            raise ValueError(
                f"CNN needs channels-first inputs (C, L) or (C, H, W); got shape {tuple(in_shape)}"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        if padding_mode not in PADDINGS:
            raise ValueError(f"unknown padding_mode {padding_mode!r}; valid: {', '.join(PADDINGS)}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
        if head_width < 0:
            raise ValueError(f"head_width must be 0 (no hidden layer) or a positive width; got {head_width}")
        if depth < 1 or not channels:
            raise ValueError("CNN needs depth >= 1 and at least one stage in channels")
        self.activation = activation if isinstance(activation, Activation) else Activation(activation)
        norm = norm if isinstance(norm, Norm) else Norm(norm)
        dims = len(in_shape) - 1
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        pool = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}
        layers: list[nn.Module] = []
        c_in = in_shape[0]
        for s, c_out in enumerate(channels):
            if s > 0 and pooling in pool:
                layers.append(pool[pooling][dims - 1](2))
            for b in range(depth):
                stride = 2 if (pooling == "stride" and s > 0 and b == 0) else 1
                layers += [
                    conv(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2,
                         padding_mode=padding_mode, bias=norm.kind == "none"),
                    norm.make(c_out, spatial_dims=dims),
                    self.activation.make(),
                ]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool_positions = head == "gap"
        if self.pool_positions:
            n_features = c_in
        else:  # the last map's size, measured on a dummy input (pooling and strides decide it), in eval mode: a
            # BatchNorm's running statistics stay untouched and a 1x1 last map needs no batch of two
            with torch.no_grad():
                self.features.eval()
                n_features = self.features(torch.zeros(1, *in_shape)).numel()
                self.features.train()
        self.dropout = nn.Dropout(dropout)
        hidden: list[nn.Module] = []
        if head_width:
            hidden = [nn.Linear(n_features, head_width), self.activation.make()]
            n_features = head_width
        self.head = nn.Sequential(*hidden, nn.Linear(n_features, num_classes)) if hidden else nn.Linear(n_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        h = h.flatten(2).mean(dim=2) if self.pool_positions else h.flatten(1)  # global average pool, or every position
        return self.head(self.dropout(h))
