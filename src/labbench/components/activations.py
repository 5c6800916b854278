"""Activation functions chosen by name, with the facts init schemes need about them."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

_MODULES = {
    "relu": lambda slope: nn.ReLU(),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope),
    "gelu": lambda slope: nn.GELU(),
    "silu": lambda slope: nn.SiLU(),
    "tanh": lambda slope: nn.Tanh(),
    "sigmoid": lambda slope: nn.Sigmoid(),
    "identity": lambda slope: nn.Identity(),
}

# The `nonlinearity` argument torch.nn.init.calculate_gain understands for each activation.
# GELU and SiLU have no closed-form gain; they behave like ReLU for positive inputs and
# practice (and PyTorch's own transformer code) uses the ReLU gain for them.
_GAIN_NAME = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "gelu": "relu",
    "silu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "identity": "linear",
}

NAMES = tuple(_MODULES)


@dataclass(frozen=True)
class Activation:
    """An activation kind; ``make()`` returns a fresh module for each layer."""

    name: str = "relu"
    negative_slope: float = 0.01  # only used by leaky_relu

    def __post_init__(self) -> None:
        if self.name not in _MODULES:
            raise ValueError(f"unknown activation {self.name!r}; valid: {', '.join(NAMES)}")

    def make(self) -> nn.Module:
        return _MODULES[self.name](self.negative_slope)

    @property
    def gain_nonlinearity(self) -> str:
        """Name to pass to ``torch.nn.init.calculate_gain`` / kaiming's ``nonlinearity``."""
        return _GAIN_NAME[self.name]

    @property
    def gain_param(self) -> float | None:
        return self.negative_slope if self.name == "leaky_relu" else None
