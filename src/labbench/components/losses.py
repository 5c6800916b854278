"""Classification losses that torch does not ship as-is."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class OneHotMSELoss(nn.Module):
    """Squared error between the logits and one-hot targets (Hui & Belkin 2021).

    Summed over classes, averaged over the batch: the squared length of the error vector.
    ``scale`` multiplies the one-hot target (their recipe for many classes; 1 by default).
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(target, logits.shape[-1]).to(logits.dtype) * self.scale
        return (logits - onehot).pow(2).sum(dim=-1).mean()
