"""Plain ``nn.Module`` models. None of them knows about Lightning or Hydra.

Each takes the input shape (channels first) and the number of classes from the data,
plus its own architecture arguments, and exposes ``activation`` so an init scheme can
take the right gain.
"""

from labbench.models.cnn import CNN
from labbench.models.mlp import MLP
from labbench.models.resnet import ResNet
from labbench.models.transformer import Transformer

__all__ = ["CNN", "MLP", "ResNet", "Transformer"]
