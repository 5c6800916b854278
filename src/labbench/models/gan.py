"""A generator / discriminator pair (Goodfellow et al. 2014): MLPs for 2-D toy data, DCGAN-style convs for images.

Both networks sit in one module so one config builds them and an init scheme reaches
both; the task trains them with their own optimizers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labbench.components.activations import Activation
from labbench.components.norms import Norm
from labbench.models.blocks import as_activation, as_norm, conv_decoder, conv_encoder, features, mlp_stack, resolve_architecture


class GAN(nn.Module):
    """``generator``: z ~ N(0, I) of ``latent_dim`` -> a sample; ``discriminator``: a sample -> one logit.

    ``architecture``: ``mlp`` (``depth`` hidden layers of ``width``, Metz et al. 2017's
    ring setup; the discriminator ``d_width`` wide, default ``width``), ``conv``
    (DCGAN-style (Radford et al. 2016): transposed convs up, stride-2 convs down, over
    ``channels``), or ``auto`` (conv for images). Image samples come out of a tanh, in
    [-1, 1]; vector samples are unbounded. ``norm`` applies to the generator's hidden
    layers only (a critic trained with a gradient penalty must not use batch norm).
    One ``activation`` serves both networks.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        latent_dim: int = 64,
        architecture: str = "auto",
        width: int = 128,
        d_width: int | None = None,
        depth: int = 2,
        channels: Sequence[int] = (32, 64),
        activation: Activation | str = "relu",
        norm: Norm | str = "none",
    ) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.latent_dim = latent_dim
        self.activation = as_activation(activation)
        norm = as_norm(norm)
        self.architecture = resolve_architecture(architecture, self.in_shape)
        if self.architecture == "conv":
            self.generator = nn.Sequential(conv_decoder(latent_dim, channels, self.in_shape, self.activation, norm), nn.Tanh())
            self.discriminator = conv_encoder(self.in_shape, channels, 1, self.activation)
        else:
            n = features(self.in_shape)
            self.generator = nn.Sequential(
                mlp_stack(latent_dim, width, depth, n, self.activation, norm), nn.Unflatten(1, self.in_shape)
            )
            self.discriminator = nn.Sequential(nn.Flatten(), mlp_stack(n, d_width or width, depth, 1, self.activation))

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latent codes on the model's device (drawn on the CPU when a CPU generator is given)."""
        device = next(self.parameters()).device
        if generator is not None:
            return torch.randn(n, self.latent_dim, generator=generator).to(device)
        return torch.randn(n, self.latent_dim, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """One real-vs-fake logit (or critic score) per sample, shape ``(N,)``."""
        return self.discriminator(x).squeeze(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generator samples in model space ([-1, 1] for images)."""
        return self.generator(self.noise(n, generator))
