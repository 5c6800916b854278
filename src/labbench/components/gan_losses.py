"""GAN objectives: what the discriminator minimizes and what the generator minimizes.

Written on logits (or critic scores) so every loss is numerically stable:
log D(x) = -softplus(-logit), log(1 - D(x)) = -softplus(logit).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

KINDS = ("saturating", "non_saturating", "wasserstein_gp", "hinge")


class GANLoss(nn.Module):
    """One of four GAN objectives, chosen by ``kind``.

    - ``saturating``: the minimax game of Goodfellow et al. (2014); the generator
      minimizes log(1 - D(G(z))), whose gradient vanishes when D rejects fakes confidently.
    - ``non_saturating``: the same discriminator, the generator maximizes log D(G(z))
      (Goodfellow et al.'s practical fix).
    - ``wasserstein_gp``: WGAN critic with gradient penalty ``gp_weight`` (Gulrajani et al. 2017).
    - ``hinge``: hinge loss for the discriminator, -D(G(z)) for the generator (Miyato et al. 2018).
    """

    def __init__(self, kind: str = "non_saturating", gp_weight: float = 10.0) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown GAN loss {kind!r}; valid: {', '.join(KINDS)}")
        self.kind, self.gp_weight = kind, gp_weight

    @property
    def logistic(self) -> bool:
        """Whether scores are logits of a real-vs-fake probability (so D accuracy is meaningful at 0)."""
        return self.kind in ("saturating", "non_saturating")

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss on real and fake scores (without the gradient penalty)."""
        if self.logistic:
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        if self.kind == "hinge":
            return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
        return fake.mean() - real.mean()

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        """The generator's loss on the scores of its samples."""
        if self.kind == "saturating":
            return -F.softplus(fake).mean()  # log(1 - D(G(z)))
        if self.kind == "non_saturating":
            return F.softplus(-fake).mean()  # -log D(G(z))
        return -fake.mean()

    def gradient_penalty(self, critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``gp_weight`` x E[(||grad critic(x_hat)|| - 1)^2] on random interpolates (zero unless wasserstein_gp)."""
        if self.kind != "wasserstein_gp":
            return real.new_zeros(())
        eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
        return self.gp_weight * (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()
