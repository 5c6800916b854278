"""Building blocks the generative models share: MLP stacks and the small conv encoder/decoder pair.

The conv pair halves the resolution twice (stride-2 convs) and doubles it back twice
(stride-2 transposed convs), so it fits every image size divisible by 4: 8x8 digits,
28x28 MNIST, 32x32 CIFAR-10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from labbench.components.activations import Activation
from labbench.components.norms import Norm

ARCHITECTURES = ("auto", "mlp", "conv")


def resolve_architecture(architecture: str, in_shape: Sequence[int]) -> str:
    """``auto`` -> ``conv`` for images ``(C, H, W)``, ``mlp`` otherwise; checks the choice fits."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}")
    is_image = len(in_shape) == 3
    if architecture == "auto":
        architecture = "conv" if is_image else "mlp"
    if architecture == "conv":
        if not is_image or in_shape[1] % 4 or in_shape[2] % 4:
            raise ValueError(
                f"architecture=conv needs images (C, H, W) with H and W divisible by 4; got {tuple(in_shape)}; "
                "use architecture=mlp"
            )
    return architecture


def mlp_stack(in_features: int, width: int, depth: int, out_features: int, activation: Activation, norm: Norm | None = None) -> nn.Sequential:
    """``depth`` x (linear -> [norm] -> activation), then a linear output layer."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_features if i == 0 else width, width)]
        if norm is not None:
            layers.append(norm.make(width, spatial_dims=0))
        layers.append(activation.make())
    layers.append(nn.Linear(width if depth else in_features, out_features))
    return nn.Sequential(*layers)


def conv_encoder(in_shape: Sequence[int], channels: Sequence[int], out_features: int, activation: Activation) -> nn.Sequential:
    """Two stride-2 convs (``channels[0]``, ``channels[1]``) -> flatten -> linear to ``out_features``."""
    c, h, w = in_shape
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(c, c1, 4, stride=2, padding=1),
        activation.make(),
        nn.Conv2d(c1, c2, 4, stride=2, padding=1),
        activation.make(),
        nn.Flatten(),
        nn.Linear(c2 * (h // 4) * (w // 4), out_features),
    )


def conv_decoder(latent_dim: int, channels: Sequence[int], out_shape: Sequence[int], activation: Activation, norm: Norm | None = None) -> nn.Sequential:
    """Linear to a ``channels[1]`` x H/4 x W/4 map, then two stride-2 transposed convs up to ``out_shape``."""
    c, h, w = out_shape
    c1, c2 = channels
    norm = norm or Norm("none")
    return nn.Sequential(
        nn.Linear(latent_dim, c2 * (h // 4) * (w // 4)),
        activation.make(),
        nn.Unflatten(1, (c2, h // 4, w // 4)),
        nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
        norm.make(c1, spatial_dims=2),
        activation.make(),
        nn.ConvTranspose2d(c1, c, 4, stride=2, padding=1),
    )


def as_activation(activation: Activation | str) -> Activation:
    return activation if isinstance(activation, Activation) else Activation(activation)


def as_norm(norm: Norm | str) -> Norm:
    return norm if isinstance(norm, Norm) else Norm(norm)


def features(in_shape: Sequence[int]) -> int:
    return math.prod(in_shape)
