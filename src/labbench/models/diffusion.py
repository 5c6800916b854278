"""Denoising diffusion (DDPM, Ho et al. 2020) for 2-D toy data and small images.

The third generative family beside the VAE and the GAN, for claims such as "diffusion
samples are sharper than a VAE's" or "diffusion covers every mode". ``DDPM`` owns the schedule,
the training loss and the sampler; the denoiser that predicts the noise is an MLP (any
input shape, flattened) or a small U-Net (images). Sampling uses the DDIM update (Song et
al. 2021) on an evenly spaced subsequence of the timesteps, which with all of them and
``eta=1`` is exactly DDPM's ancestral sampler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from labbench.components.activations import Activation

SCHEDULES = ("linear", "cosine")
DENOISERS = ("mlp", "unet")


def beta_schedule(schedule: str, timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The ``timesteps`` noise variances beta_t, in float64.

    ``linear`` spaces them from ``beta_start`` to ``beta_end`` (Ho et al.'s values assume
    1000 steps; for fewer, scale both by 1000 / timesteps or the last step is far from
    pure noise). ``cosine`` (Nichol & Dhariwal 2021) makes alpha-bar follow a squared
    cosine with offset s = 0.008, betas clipped at 0.999; it adapts to any step count.
    """
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")


class _TimeEmbedding(nn.Module):
    """Transformer-style sinusoidal features of the step index, then a two-layer MLP.

    It ends in the activation, so every block's own linear projection of it is a
    nonlinear function of t.
    """

    def __init__(self, time_dim: int, out_dim: int, activation: Activation) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.mlp = nn.Sequential(
            nn.Linear(time_dim, out_dim), activation.make(), nn.Linear(out_dim, out_dim), activation.make()
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.time_dim // 2
        dtype = self.mlp[0].weight.dtype
        freqs = torch.exp(-math.log(10000.0) / half * torch.arange(half, device=t.device, dtype=dtype))
        args = t.to(dtype)[:, None] * freqs[None]
        return self.mlp(torch.cat([args.sin(), args.cos()], dim=1))


class _MLPDenoiser(nn.Module):
    """``depth`` hidden layers of ``width``; each adds its own projection of the time embedding."""

    def __init__(self, in_shape: Sequence[int], width: int, depth: int, time_dim: int, activation: Activation) -> None:
        super().__init__()
        features = math.prod(in_shape)
        self.time_embed = _TimeEmbedding(time_dim, width, activation)
        self.layers = nn.ModuleList(nn.Linear(features if i == 0 else width, width) for i in range(depth))
        self.time_projs = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.acts = nn.ModuleList(activation.make() for _ in range(depth))
        self.head = nn.Linear(width, features)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(t)
        h = x.flatten(1)
        for layer, proj, act in zip(self.layers, self.time_projs, self.acts):
            h = act(layer(h) + proj(emb))
        return self.head(h).view_as(x)


def _groups(channels: int) -> int:
    """GroupNorm groups: up to 8, always a divisor of ``channels``."""
    return math.gcd(channels, 8)


class _ResBlock(nn.Module):
    """Pre-activation residual block: (norm, act, conv) twice, the time embedding added in between."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, activation: Activation) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            nn.GroupNorm(_groups(c_in), c_in), activation.make(), nn.Conv2d(c_in, c_out, 3, padding=1)
        )
        self.time_proj = nn.Linear(emb_dim, c_out)
        self.out_layers = nn.Sequential(
            nn.GroupNorm(_groups(c_out), c_out), activation.make(), nn.Conv2d(c_out, c_out, 3, padding=1)
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.time_proj(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class _UNet(nn.Module):
    """A small U-Net: one residual block per resolution, ``width`` then ``2 * width`` channels.

    It halves the resolution once, or twice when H and W are multiples of 4 and at least
    16 (28x28 -> 14 -> 7). Up-sampling interpolates to the skip's size, so odd sizes work.
    """

    def __init__(self, in_shape: Sequence[int], width: int, time_dim: int, activation: Activation) -> None:
        super().__init__()
        c, h, w = in_shape
        levels = 2 if h % 4 == 0 and w % 4 == 0 and min(h, w) >= 16 else 1
        chans = [width] + [2 * width] * levels  # channels at each resolution, full first
        emb_dim = 4 * width
        self.time_embed = _TimeEmbedding(time_dim, emb_dim, activation)
        self.stem = nn.Conv2d(c, width, 3, padding=1)
        self.down_blocks, self.downsamples = nn.ModuleList(), nn.ModuleList()
        c_prev = width
        for i in range(levels):
            self.down_blocks.append(_ResBlock(c_prev, chans[i], emb_dim, activation))
            self.downsamples.append(nn.Conv2d(chans[i], chans[i], 3, stride=2, padding=1))
            c_prev = chans[i]
        self.middle = _ResBlock(c_prev, chans[levels], emb_dim, activation)
        c_prev = chans[levels]
        self.upsamples, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(levels)):
            self.upsamples.append(nn.Conv2d(c_prev, c_prev, 3, padding=1))
            self.up_blocks.append(_ResBlock(c_prev + chans[i], chans[i], emb_dim, activation))
            c_prev = chans[i]
        self.head = nn.Sequential(
            nn.GroupNorm(_groups(width), width), activation.make(), nn.Conv2d(width, c, 3, padding=1)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(t)
        h = self.stem(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downsamples):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.middle(h, emb)
        for up, block in zip(self.upsamples, self.up_blocks):
            skip = skips.pop()
            h = up(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.head(h)


class DDPM(nn.Module):
    """A noise-predicting diffusion model: ``forward(x_t, t)`` estimates the noise in ``x_t``.

    ``in_shape`` is one sample's shape, channels first: ``(D,)`` or ``(C, H, W)``. Step
    indices t run over ``0 .. timesteps - 1``; alpha-bar[t] is the product of
    ``1 - beta`` up to and including t. ``depth`` is the MLP denoiser's hidden layer
    count; the U-Net's layout is fixed. ``sample_steps``, ``eta`` and ``clip_sample``
    are the sampler's defaults (see ``sample``). The schedule lives in non-persistent
    buffers: it follows ``.to()`` but stays out of the state dict.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        denoiser: str = "mlp",
        timesteps: int = 1000,
        schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        width: int = 128,
        depth: int = 3,
        time_dim: int = 64,
        activation: Activation | str = "silu",
        sample_steps: int | None = None,
        eta: float = 1.0,
        clip_sample: float | None = None,
    ) -> None:
        super().__init__()
        if denoiser not in DENOISERS:
            raise ValueError(f"unknown denoiser {denoiser!r}; valid: {', '.join(DENOISERS)}")
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        if schedule == "linear" and not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"linear schedule needs 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        if time_dim < 2 or time_dim % 2:
            raise ValueError(f"time_dim must be even and >= 2 (sin and cos halves), got {time_dim}")
        if denoiser == "mlp" and depth < 1:
            raise ValueError(f"the mlp denoiser needs depth >= 1, got {depth}")
        if denoiser == "unet" and len(in_shape) != 3:
            raise ValueError(f"the unet denoiser needs images (C, H, W); got shape {tuple(in_shape)}")
        if clip_sample is not None and clip_sample <= 0:
            raise ValueError(f"clip_sample must be > 0 or None, got {clip_sample}")
        self.in_shape = tuple(in_shape)
        self.fixed_norm = "group (U-Net: up to 8 groups)" if denoiser == "unet" else "none"  # no norm group: recorded as is
        self.timesteps = timesteps
        self._check_steps(sample_steps)
        self._check_eta(eta)
        self.sample_steps = sample_steps
        self.eta = eta
        self.clip_sample = clip_sample
        self.activation = activation if isinstance(activation, Activation) else Activation(activation)
        betas = beta_schedule(schedule, timesteps, beta_start, beta_end)
        dtype = torch.get_default_dtype()
        self.register_buffer("betas", betas.to(dtype), persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, dim=0).to(dtype), persistent=False)
        if denoiser == "mlp":
            self.denoiser = _MLPDenoiser(in_shape, width, depth, time_dim, self.activation)
        else:
            self.denoiser = _UNet(in_shape, width, time_dim, self.activation)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise ``eps_hat`` for noisy inputs ``x_t`` at step indices ``t`` (N,)."""
        return self.denoiser(x_t, t)

    def _expand(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-sample scalars (N,) shaped (N, 1, ...) to broadcast against ``like``."""
        return values.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Diffuse clean ``x0`` to step ``t``: sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        abar = self._expand(self.alphas_cumprod[t], x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ho et al.'s simple loss: MSE between the noise and its prediction at a uniform random step."""
        draw_on = x0.device if generator is None else generator.device
        t = torch.randint(0, self.timesteps, (x0.shape[0],), generator=generator, device=draw_on).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=draw_on, dtype=x0.dtype).to(x0.device)
        return F.mse_loss(self(self.q_sample(x0, t, noise), t), noise)

    def _check_steps(self, steps: int | None) -> None:
        if steps is not None and not 1 <= steps <= self.timesteps:
            raise ValueError(f"sampling steps must be in [1, {self.timesteps}] (the timesteps), got {steps}")

    @staticmethod
    def _check_eta(eta: float) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM), got {eta}")

    def sample_timesteps(self, steps: int) -> list[int]:
        """The ``steps`` step indices the sampler visits, evenly spaced from T - 1 down to 0."""
        self._check_steps(steps)
        return torch.linspace(self.timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        eta: float | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` samples, shape (n, *in_shape), on the model's device, in eval mode.

        Runs the DDIM update over ``steps`` evenly spaced steps (default ``sample_steps``,
        None meaning all T) with sigma_t = eta * sqrt((1 - abar_prev) / (1 - abar_t))
        * sqrt(1 - abar_t / abar_prev): ``eta=1`` over all T is DDPM's ancestral sampler
        with the posterior variance, ``eta=0`` is deterministic DDIM. The predicted x0 is
        clipped to +-``clip_sample`` when set, and the noise estimate re-derived from it.
        Noise comes from ``generator`` (on its own device) in this order: x_T, then one
        draw per step except the last; none after x_T when eta = 0.
        """
        steps = self.sample_steps if steps is None else steps
        steps = self.timesteps if steps is None else steps
        eta = self.eta if eta is None else eta
        self._check_eta(eta)
        ts = self.sample_timesteps(steps)
        abar = self.alphas_cumprod
        device, dtype = abar.device, abar.dtype
        draw_on = device if generator is None else generator.device
        shape = (n, *self.in_shape)

        def randn() -> torch.Tensor:
            return torch.randn(shape, generator=generator, device=draw_on, dtype=dtype).to(device)

        was_training = self.training
        self.eval()
        try:
            x = randn()
            for i, t in enumerate(ts):
                last = i + 1 == len(ts)
                a_t = abar[t]
                a_prev = abar.new_tensor(1.0) if last else abar[ts[i + 1]]
                eps = self(x, torch.full((n,), t, device=device, dtype=torch.long))
                x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
                if self.clip_sample is not None:
                    x0 = x0.clamp(-self.clip_sample, self.clip_sample)
                    eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
                sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
                x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
                if eta > 0 and not last:
                    x = x + sigma * randn()
            return x
        finally:
            self.train(was_training)
