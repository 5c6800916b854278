"""Weight initialization applied by config to every weight matrix and kernel of a model.

"Every weight" means every parameter with two or more dimensions (linear, conv and
embedding weights). Normalization layers keep their identity start (scale 1, shift 0):
their gains are not what init schemes are about.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from labbench.components.activations import Activation

SCHEMES = (
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
    "zeros",
    "constant",
)
BIAS_POLICIES = ("default", "zeros", "constant")

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
)


@dataclass(frozen=True)
class InitScheme:
    """How to initialize weights and biases; ``apply(model, activation)`` does it in place."""

    scheme: str = "default"
    mode: str = "fan_in"  # kaiming only: fan_in keeps forward variance, fan_out backward variance
    gain: float = 1.0  # xavier / orthogonal: multiplier (Glorot's original is 1.0)
    std: float = 0.01  # normal only
    value: float = 0.0  # constant only
    bias: str = "zeros"  # default (PyTorch's) | zeros | constant
    bias_value: float = 0.0  # bias=constant only

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown init scheme {self.scheme!r}; valid: {', '.join(SCHEMES)}")
        if self.bias not in BIAS_POLICIES:
            raise ValueError(f"unknown bias policy {self.bias!r}; valid: {', '.join(BIAS_POLICIES)}")
        if self.mode not in ("fan_in", "fan_out"):
            raise ValueError(f"unknown kaiming mode {self.mode!r}; valid: fan_in, fan_out")

    @torch.no_grad()
    def apply(self, model: nn.Module, activation: Activation | None = None) -> nn.Module:
        """Initialize ``model`` in place; kaiming takes its gain from ``activation``."""
        activation = activation or Activation("relu")
        for module in model.modules():
            if isinstance(module, _NORM_TYPES):
                continue
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    self._init_weight(param, activation)
                elif name.endswith("bias"):
                    self._init_bias(param)
        return model

    def _init_weight(self, w: torch.Tensor, activation: Activation) -> None:
        s = self.scheme
        if s == "default":
            return
        if s == "xavier_uniform":
            nn.init.xavier_uniform_(w, gain=self.gain)
        elif s == "xavier_normal":
            nn.init.xavier_normal_(w, gain=self.gain)
        elif s in ("kaiming_uniform", "kaiming_normal"):
            fn = nn.init.kaiming_uniform_ if s == "kaiming_uniform" else nn.init.kaiming_normal_
            a = activation.gain_param or 0.0
            fn(w, a=a, mode=self.mode, nonlinearity=activation.gain_nonlinearity)
        elif s == "orthogonal":
            nn.init.orthogonal_(w, gain=self.gain)
        elif s == "normal":
            nn.init.normal_(w, mean=0.0, std=self.std)
        elif s == "zeros":
            nn.init.zeros_(w)
        elif s == "constant":
            nn.init.constant_(w, self.value)

    def _init_bias(self, b: torch.Tensor) -> None:
        if self.bias == "zeros":
            nn.init.zeros_(b)
        elif self.bias == "constant":
            nn.init.constant_(b, self.bias_value)
