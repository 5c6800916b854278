"""Variational autoencoder (Kingma & Welling 2014) with a Gaussian latent and a choice of likelihood.

The model knows its likelihood (how a decoder output scores data and what its mean
image is); the objective's weighting (beta, KL warm-up) belongs to the task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from labbench.components.activations import Activation
from labbench.models.blocks import as_activation, conv_decoder, conv_encoder, features, mlp_stack, resolve_architecture

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(nn.Module):
    """Encoder -> (mu, log variance) of a diagonal Gaussian posterior; decoder -> likelihood parameters.

    ``architecture``: ``mlp`` (``depth`` hidden layers of ``width``), ``conv`` (two
    stride-2 convs of ``channels`` and their transposes; images with H, W divisible by
    4), or ``auto`` (conv for images). ``likelihood``: ``bernoulli`` (decoder gives
    logits; data in [0, 1]) or ``gaussian`` with fixed ``gaussian_std`` (decoder gives
    the mean). Inputs and samples live in the data's own range.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        latent_dim: int = 16,
        architecture: str = "auto",
        width: int = 256,
        depth: int = 2,
        channels: Sequence[int] = (32, 64),
        activation: Activation | str = "relu",
        likelihood: str = "bernoulli",
        gaussian_std: float = 0.1,
    ) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; valid: {', '.join(LIKELIHOODS)}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.in_shape = tuple(in_shape)
        self.latent_dim, self.likelihood, self.gaussian_std = latent_dim, likelihood, gaussian_std
        self.activation = as_activation(activation)
        self.architecture = resolve_architecture(architecture, self.in_shape)
        if self.architecture == "conv":
            self.encoder = conv_encoder(self.in_shape, channels, 2 * latent_dim, self.activation)
            self.decoder = conv_decoder(latent_dim, channels, self.in_shape, self.activation)
        else:
            n = features(self.in_shape)
            self.encoder = nn.Sequential(nn.Flatten(), mlp_stack(n, width, depth, 2 * latent_dim, self.activation))
            self.decoder = nn.Sequential(mlp_stack(latent_dim, width, depth, n, self.activation), nn.Unflatten(1, self.in_shape))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log variance, each ``(N, latent_dim)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters (logits or means) shaped like the data."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One reparameterized pass: ``(decoder output, mu, logvar)``; noise from ``generator`` or the global RNG."""
        mu, logvar = self.encode(x)
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device) if generator is not None else torch.randn_like(mu)
        z = mu + noise * (0.5 * logvar).exp()
        return self.decode(z), mu, logvar

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x | z) per sample, summed over dimensions (nats)."""
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        var = self.gaussian_std**2
        sq = (x - out).pow(2).flatten(1).sum(1)
        return -0.5 * sq / var - 0.5 * x[0].numel() * math.log(2 * math.pi * var)

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) per sample, in closed form (nats)."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z): what a reconstruction or a sample shows."""
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction through the posterior mean (no sampling noise)."""
        return self.mean(self.decode(self.encode(x)[0]))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` prior samples: z ~ N(0, I) decoded to the likelihood's mean."""
        z = torch.randn(n, self.latent_dim, generator=generator).to(next(self.parameters()).device)
        return self.mean(self.decode(z))
