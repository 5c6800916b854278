"""DDPM: schedules, forward diffusion, denoiser shapes, the sampler against hand-written loops, learning."""

from __future__ import annotations

import math

import pytest
import torch

from labbench.models.diffusion import DDPM


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _small(**kwargs) -> DDPM:
    """A tiny 2-D model with a short, properly scaled linear schedule (Ho et al.'s betas x 1000/T)."""
    torch.manual_seed(0)
    defaults = dict(timesteps=50, beta_start=2e-3, beta_end=0.4, width=32, depth=2)
    return DDPM((2,), **{**defaults, **kwargs})


# ---------------------------------------------------------------------------------------
# Schedules and forward diffusion
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_alphas_cumprod_strictly_decrease_inside_the_unit_interval(schedule):
    abar = DDPM((2,), schedule=schedule, width=8).alphas_cumprod
    assert abar.shape == (1000,)
    assert (abar > 0).all() and (abar < 1).all()
    assert (abar[1:] < abar[:-1]).all()


def test_linear_betas_run_from_beta_start_to_beta_end():
    betas = DDPM((2,), timesteps=200, beta_start=3e-4, beta_end=0.05, width=8).betas
    assert betas[0].item() == pytest.approx(3e-4)
    assert betas[-1].item() == pytest.approx(0.05)
    assert torch.allclose(betas.diff(), torch.full((199,), (0.05 - 3e-4) / 199), atol=1e-7)


def test_cosine_schedule_ends_at_pure_noise_and_follows_the_squared_cosine():
    """abar_T is ~0; mid-way abar follows cos^2((t/T + s)/(1 + s) pi/2) / f(0)."""
    model = DDPM((2,), timesteps=100, schedule="cosine", width=8)
    abar = model.alphas_cumprod
    assert abar[-1] < 1e-3
    f = lambda t: math.cos((t / 100 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert abar[49].item() == pytest.approx(f(50) / f(0), rel=1e-5)  # index 49 is step t = 50
    assert model.betas.max() <= 0.999 + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "valid"), [({"schedule": "quadratic"}, "linear, cosine"), ({"denoiser": "vit"}, "mlp, unet")]
)
def test_unknown_schedule_or_denoiser_names_the_valid_ones(kwargs, valid):
    with pytest.raises(ValueError, match=valid):
        DDPM((2,), **kwargs)


def test_unet_needs_images():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        DDPM((2,), denoiser="unet")


def test_q_sample_shrinks_the_signal_and_adds_unit_variance_noise_at_the_end():
    model = DDPM((2,), width=8)
    abar = model.alphas_cumprod
    n = 20000
    noise = torch.randn(n, 2, generator=_gen(0))
    t = lambda i: torch.full((n,), i, dtype=torch.long)  # noqa: E731

    x_end = model.q_sample(torch.zeros(n, 2), t(999), noise)
    assert x_end.std().item() == pytest.approx(1.0, abs=0.02)

    x0 = torch.full((n, 2), 3.0)
    x_mid = model.q_sample(x0, t(300), noise)
    assert x_mid.mean().item() == pytest.approx(3.0 * abar[300].sqrt().item(), abs=0.02)
    assert x_mid.std().item() == pytest.approx((1 - abar[300]).sqrt().item(), rel=0.03)

    assert torch.allclose(model.q_sample(x0, t(0), noise), x0, atol=0.05)


# ---------------------------------------------------------------------------------------
# Denoisers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("denoiser", "shape"),
    [("mlp", (2,)), ("unet", (1, 8, 8)), ("unet", (1, 28, 28)), ("unet", (3, 32, 32)), ("mlp", (1, 8, 8))],
)
def test_forward_predicts_noise_of_the_input_shape(denoiser, shape):
    model = DDPM(shape, denoiser=denoiser, width=16, timesteps=100)
    x = torch.randn(3, *shape)
    eps = model(x, torch.tensor([0, 50, 99]))
    assert eps.shape == x.shape
    assert torch.isfinite(eps).all()


def test_forward_depends_on_the_timestep():
    model = _small()
    x = torch.randn(4, 2).repeat(2, 1)
    eps = model(x, torch.tensor([0] * 4 + [40] * 4))
    assert not torch.allclose(eps[:4], eps[4:])


def test_models_expose_their_activation():
    from labbench.components.activations import Activation

    assert DDPM((2,), width=8).activation == Activation("silu")
    assert DDPM((1, 8, 8), denoiser="unet", width=8, activation="gelu").activation.name == "gelu"


def test_unet_trains_a_few_steps_with_a_finite_loss():
    torch.manual_seed(0)
    model = DDPM((1, 8, 8), denoiser="unet", width=16, timesteps=100)
    x = torch.rand(16, 1, 8, 8, generator=_gen(0)) * 2 - 1
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(3):
        loss = model.loss(x, generator=_gen(step))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_loss_is_reproducible_with_a_seeded_generator():
    model = DDPM((1, 8, 8), denoiser="unet", width=8, timesteps=100)
    x = torch.randn(8, 1, 8, 8)
    assert model.loss(x, generator=_gen(5)).item() == model.loss(x, generator=_gen(5)).item()
    assert model.loss(x, generator=_gen(5)).item() != model.loss(x, generator=_gen(6)).item()


# ---------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------


def test_sample_shape_and_seeding():
    model = _small()
    a = model.sample(6, generator=_gen(1))
    assert a.shape == (6, 2)
    assert torch.equal(a, model.sample(6, generator=_gen(1)))
    assert not torch.allclose(a, model.sample(6, generator=_gen(2)))
    unet = DDPM((1, 8, 8), denoiser="unet", width=8, timesteps=20, clip_sample=1.0)
    images = unet.sample(2, generator=_gen(0), steps=3)
    assert images.shape == (2, 1, 8, 8)
    assert images.abs().max() <= 1.0 + 1e-6


@pytest.mark.parametrize("clip", [None, 1.0])
def test_all_steps_with_eta_one_is_ddpm_ancestral_sampling(clip):
    """Against Ho et al.'s Algorithm 2 (with x0 clipping: the posterior mean of the clipped x0).

    In float64, so the two orders of arithmetic agree to ~1e-12 even where an untrained
    denoiser drives x far from the data. The buffers were rounded to float32 on the way,
    so beta_t is taken as 1 - abar_t / abar_{t-1}, which the stored betas match only to
    float32 precision.
    """
    model = _small(clip_sample=clip).double()
    T, n = model.timesteps, 64
    g_model = _gen(3)
    got = model.sample(n, generator=g_model, steps=T, eta=1.0)

    abar = model.alphas_cumprod
    betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])
    assert torch.allclose(betas, model.betas, rtol=1e-4)
    g = _gen(3)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for t in reversed(range(T)):
            eps = model(x, torch.full((n,), t, dtype=torch.long))
            beta, a_t = betas[t], abar[t]
            a_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
            if clip is None:
                mean = (x - beta / (1 - a_t).sqrt() * eps) / (1 - beta).sqrt()
            else:
                x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-clip, clip)
                mean = a_prev.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t) * x
            if t > 0:
                z = torch.randn(n, 2, generator=g, dtype=torch.float64)
                x = mean + (beta * (1 - a_prev) / (1 - a_t)).sqrt() * z
            else:
                x = mean
    assert torch.allclose(got, x, atol=1e-9, rtol=1e-9)
    assert torch.equal(torch.randn(8, generator=g_model), torch.randn(8, generator=g))  # same draws, same order


def test_eta_zero_is_deterministic_ddim_from_the_initial_noise():
    model = _small()
    n, steps = 32, 10
    g = _gen(4)
    got = model.sample(n, generator=g, steps=steps, eta=0.0)
    # Only x_T was drawn: the generator is where one draw of that shape leaves it.
    g_ref = _gen(4)
    x = torch.randn(n, 2, generator=g_ref)
    assert torch.equal(torch.randn(8, generator=g), torch.randn(8, generator=g_ref))

    ts = model.sample_timesteps(steps)
    assert ts[0] == model.timesteps - 1 and ts[-1] == 0 and len(set(ts)) == steps
    assert max(a - b for a, b in zip(ts, ts[1:])) - min(a - b for a, b in zip(ts, ts[1:])) <= 1
    abar = model.alphas_cumprod
    with torch.no_grad():
        for t, t_prev in zip(ts, ts[1:] + [None]):
            a_t = abar[t]
            a_prev = abar[t_prev] if t_prev is not None else torch.tensor(1.0)
            eps = model(x, torch.full((n,), t, dtype=torch.long))
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    assert torch.allclose(got, x, atol=1e-5, rtol=1e-5)


def test_steps_sets_the_number_of_denoiser_calls_in_eval_mode_and_restores_the_mode():
    model = _small(sample_steps=7)
    modes: list[bool] = []
    model.denoiser.register_forward_hook(lambda mod, args, out: modes.append(mod.training))
    model.train()
    model.sample(4, generator=_gen(0), steps=10)
    assert len(modes) == 10 and not any(modes)
    assert model.training
    modes.clear()
    model.eval()
    model.sample(4, generator=_gen(0))  # default: sample_steps
    assert len(modes) == 7
    assert not model.training


@pytest.mark.parametrize("steps", [0, 51, -3])
def test_invalid_steps_raise(steps):
    model = _small()
    with pytest.raises(ValueError, match=r"steps must be in \[1, 50\]"):
        model.sample(2, steps=steps)
    with pytest.raises(ValueError, match="steps"):
        _small(sample_steps=steps)


# ---------------------------------------------------------------------------------------
# Buffers and devices
# ---------------------------------------------------------------------------------------


def test_schedule_buffers_are_not_saved_but_follow_dtype_moves():
    model = _small()
    assert not {"betas", "alphas_cumprod"} & set(model.state_dict())
    fresh = _small()
    fresh.load_state_dict(model.state_dict())  # strict: no missing keys
    model = model.to(torch.float64)
    assert model.alphas_cumprod.dtype == torch.float64
    assert torch.allclose(model.alphas_cumprod, torch.cumprod(1 - model.betas, 0), rtol=1e-6)
    sample = model.sample(3, generator=_gen(0), steps=5)
    assert sample.dtype == torch.float64 and torch.isfinite(sample).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cpu_generator_gives_the_same_samples_on_cuda():
    model = _small()
    cpu = model.sample(16, generator=_gen(9), steps=20)
    cuda = model.to("cuda").sample(16, generator=_gen(9), steps=20)
    assert cuda.device.type == "cuda"
    assert torch.allclose(cpu, cuda.cpu(), atol=1e-4)
    assert torch.isfinite(model.loss(torch.randn(8, 2, device="cuda"), generator=_gen(0)))


# ---------------------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------------------


def test_mlp_ddpm_learns_a_ring_of_eight_gaussians():
    """1500 Adam steps: the loss falls, samples land on the ring and cover most modes."""
    torch.manual_seed(0)
    g = _gen(0)
    angles = torch.arange(8) * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    model = DDPM((2,), timesteps=100, beta_start=1e-3, beta_end=0.2, width=64, depth=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(1500):
        x0 = centres[torch.randint(0, 8, (256,), generator=g)] + 0.05 * torch.randn(256, 2, generator=g)
        loss = model.loss(x0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-100:]) / 100 < 0.75 * sum(losses[:100]) / 100

    samples = model.sample(1000, generator=_gen(1), steps=100)
    assert 1.5 < samples.norm(dim=1).median().item() < 2.5
    distance, nearest = torch.cdist(samples, centres).min(dim=1)
    counts = torch.bincount(nearest[distance < 0.5], minlength=8)
    assert (counts >= 50).sum().item() >= 6
