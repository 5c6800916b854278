"""Batched image augmentation on the training device: one gather per batch, no per-sample Python.

The random parameters of a whole pass are drawn at once on the CPU from the data order's
generator and moved to the device once, so a batch is the same on every device and under
any number of DDP processes (they are drawn for the global batch, and each process takes
its share). Each transform equals torchvision's per-sample version with the same
parameters (``tests/test_augment.py`` checks it against ``torchvision.transforms.v2``).
"""

from __future__ import annotations

import torch


class CropFlip:
    """Random translation and horizontal flip: the standard CIFAR-10 recipe (He et al. 2016).

    Translation is a crop of the image padded by ``padding`` pixels on every side with
    black (torchvision's ``RandomCrop(size, padding)``; in a standardized data set black is
    ``-mean / std``, which the data module passes as ``fill``), so an image moves by up
    to ``padding`` pixels in each direction. ``flip`` is the probability of a horizontal
    flip (0 for digits, whose mirror images are not digits).
    """

    def __init__(self, padding: int = 4, flip: float = 0.5) -> None:
        if padding < 0:
            raise ValueError(f"augment.padding must be >= 0 pixels, got {padding}")
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"augment.flip is a probability in [0, 1], got {flip}")
        self.padding, self.flip = padding, flip

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Parameters for ``n`` images: crop offsets ``(n, 2)`` (top, left) and flip flags ``(n,)``."""
        offsets = torch.randint(0, 2 * self.padding + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < self.flip
        return {"offsets": offsets, "flips": flips}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor], fill: torch.Tensor | None = None) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)`` with ``params`` of the same length, on ``x``'s device."""
        n, c, h, w = x.shape
        p = self.padding
        if p:
            padded = x.new_empty(n, c, h + 2 * p, w + 2 * p)
            padded[:] = 0.0 if fill is None else fill.reshape(1, c, 1, 1)
            padded[:, :, p : p + h, p : p + w] = x
            offsets = params["offsets"]
            rows = (offsets[:, 0:1] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
            cols = (offsets[:, 1:2] + torch.arange(w, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            channel = torch.arange(c, device=x.device)[None, :, None, None]
            x = padded[batch, channel, rows, cols]
        if self.flip:
            x = torch.where(params["flips"][:, None, None, None], x.flip(-1), x)
        return x


def take(params: dict[str, torch.Tensor], index) -> dict[str, torch.Tensor]:
    """The parameters of the images selected by ``index`` (a slice or index tensor)."""
    return {k: v[index] for k, v in params.items()}


def to_device(params: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in params.items()}


def translate(x: torch.Tensor, dy: int, dx: int, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Images ``(N, C, H, W)`` moved ``dy`` pixels down and ``dx`` right (negative: up, left).

    Nothing wraps around: the ``|dy|`` rows and ``|dx|`` columns the image leaves take
    ``fill`` (one value per channel; 0 without one), and what moves past the far edge is
    lost. It is :class:`CropFlip`'s crop with a fixed offset (``padding`` at least the shift,
    no flip), as one slice copy: deterministic (``tests/test_claim_components.py`` checks both).
    """
    if x.dim() != 4:
        raise ValueError(f"translate moves images (N, C, H, W); got a tensor of shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    out = x.new_empty(x.shape)
    out[:] = 0.0 if fill is None else fill.to(x).reshape(1, c, 1, 1)
    if abs(dy) < h and abs(dx) < w:
        out[:, :, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[:, :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out
