"""Plain ``nn.Module`` models. None of them knows about Lightning or Hydra.

Each takes what it needs of what the data offers (input shape, number of classes),
plus its own architecture arguments, and exposes ``activation`` so an init scheme can
take the right gain.
"""

from labbench.models.cnn import CNN
from labbench.models.diffusion import DDPM
from labbench.models.gan import GAN
from labbench.models.mlp import MLP
from labbench.models.resnet import ResNet
from labbench.models.transformer import Transformer
from labbench.models.vae import VAE

__all__ = ["CNN", "DDPM", "GAN", "MLP", "ResNet", "Transformer", "VAE"]
