"""Arjovsky & Bottou's measurement: the generator fixed, the discriminator trained on, both costs' gradients."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from labbench.config import compose
from labbench.probes.starvation import checkpoints, generator_gradient_norms, starve
from labbench.train import build, run
from conftest import fast_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyGAN(nn.Module):
    """A linear generator and a linear discriminator: gradients a hand can follow."""

    latent_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(2, 2)
        self.discriminator = nn.Linear(2, 1)

    def noise(self, n, generator=None):
        return torch.randn(n, 2, generator=generator)

    def forward(self, z):
        return self.generator(z)

    def discriminate(self, x):
        return self.discriminator(x).squeeze(1)


def test_checkpoints_are_decades_and_the_end():
    assert checkpoints(1000) == [0, 1, 10, 100, 1000]
    assert checkpoints(250) == [0, 1, 10, 100, 250]
    assert checkpoints(1) == [0, 1]


def test_the_two_costs_gradients_differ_by_the_discriminators_odds():
    """For one sample with D's logit f: d/df log(1 - sigmoid(f)) = -sigmoid(f), d/df -log sigmoid(f) = -(1 - sigmoid(f)),
    so the saturating norm over the non-saturating norm is exactly the odds sigmoid(f) / (1 - sigmoid(f)) = e^f."""
    torch.manual_seed(0)
    model = TinyGAN()
    z = torch.randn(1, 2)
    f = float(model.discriminate(model(z)).detach())
    norms = generator_gradient_norms(model, z)
    assert norms["saturating"] / norms["non_saturating"] == pytest.approx(math.exp(f), rel=1e-5)
    # and by hand: the generator's gradient is dL/df x w (outer) [z, 1]
    w = model.discriminator.weight.detach()[0]
    expected = torch.sigmoid(torch.tensor(f)) * w.norm() * torch.cat([z[0], torch.ones(1)]).norm()
    assert norms["saturating"] == pytest.approx(float(expected), rel=1e-5)
    assert all(p.grad is None for p in model.generator.parameters())  # nothing left behind


def test_as_the_discriminator_trains_the_saturating_gradient_falls_and_the_run_is_untouched():
    torch.manual_seed(0)
    model = TinyGAN()
    real = torch.randn(512, 2) + torch.tensor([4.0, 4.0])  # far from the generator's samples: D wins easily
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    result = starve(model, real, lambda params: torch.optim.Adam(params, lr=0.01), steps=300, batch_size=64, seed=1)
    curve = result["curve"]
    assert [p["step"] for p in curve] == [0, 1, 10, 100, 300]
    assert curve[-1]["d_acc_fake"] > curve[0]["d_acc_fake"] and result["d_acc_fake"] > 0.95
    # Arjovsky & Bottou, Fig. 2 vs Fig. 3: the saturating gradient falls, the non-saturating one does not
    assert curve[-1]["saturating"] < curve[0]["saturating"] and curve[-1]["non_saturating"] > curve[0]["non_saturating"]
    assert result["sat_drop"] > 0 > result["nonsat_drop"] and result["gap"] > 0.5
    assert result["gap"] == pytest.approx(result["sat_drop"] - result["nonsat_drop"])
    assert result["sat_drop"] == pytest.approx(math.log10(curve[0]["saturating"] / curve[-1]["saturating"]))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # a copy was trained, not the run's
    assert torch.equal(rng, torch.get_rng_state())
    again = starve(model, real, lambda params: torch.optim.Adam(params, lr=0.01), steps=300, batch_size=64, seed=1)
    assert again["curve"] == curve  # seeded


def test_a_gan_run_logs_the_probe_at_its_test(tmp_path: Path):
    record = run(compose([*fast_overrides(20), "preset=gan_ring", "task.starve_steps=30", "task.eval_samples=200"]), tmp_path / "gan")
    assert record["status"] == "completed"
    final = record["metrics"]["final"]
    for key in ("test/starve_sat_drop", "test/starve_nonsat_drop", "test/starve_gap", "test/starve_d_acc_fake",
                "test/starve_sat_grad", "test/starve_sat_grad_t0", "test/starve_nonsat_grad_t10", "test/starve_sat_grad_t30"):
        assert key in final and math.isfinite(final[key]), key
    assert final["test/starve_gap"] == pytest.approx(final["test/starve_sat_drop"] - final["test/starve_nonsat_drop"], rel=1e-5)
    assert record["metrics"]["directions"]["test/starve_gap"] == "neither"
    # the probe leaves the run alone: the same run without it trains to the same test values
    plain = run(compose([*fast_overrides(20), "preset=gan_ring", "task.eval_samples=200"]), tmp_path / "plain")
    assert plain["metrics"]["final"]["test/modes"] == final["test/modes"] and plain["metrics"]["final"]["test/hq_share"] == final["test/hq_share"]


def test_the_probe_needs_the_logistic_game():
    cfg = compose([*fast_overrides(5), "preset=gan_ring", "loss=wasserstein_gp", "task.starve_steps=10"])
    with pytest.raises(Exception, match="needs a logistic GAN loss"):
        build(cfg)


def test_a_given_discriminator_state_restarts_the_probe_from_it():
    """Arjovsky & Bottou train the discriminator from scratch against the fixed generator: given the initial
    weights, the probe's step 0 reads them (not the trained discriminator's), and the run's own stay untouched."""
    torch.manual_seed(0)
    model = TinyGAN()
    initial = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    with torch.no_grad():
        model.discriminator.weight.mul_(10.0)  # "trained": a discriminator far from its start
    real = torch.randn(512, 2) + torch.tensor([4.0, 4.0])
    optimizer = lambda params: torch.optim.Adam(params, lr=0.01)  # noqa: E731
    from_trained = starve(model, real, optimizer, steps=10, batch_size=64, seed=1)
    from_scratch = starve(model, real, optimizer, steps=10, batch_size=64, seed=1, discriminator_state=initial)
    fresh = TinyGAN()
    fresh.load_state_dict(model.state_dict())
    fresh.discriminator.load_state_dict(initial)
    z = fresh.noise(64, torch.Generator().manual_seed(1))  # the probe's noise: its generator's first draw
    expected = generator_gradient_norms(fresh, z)
    assert from_scratch["curve"][0]["saturating"] == pytest.approx(expected["saturating"], rel=1e-6)
    assert from_trained["curve"][0]["saturating"] != pytest.approx(expected["saturating"], rel=1e-2)
    assert torch.equal(model.discriminator.weight, initial["weight"] * 10.0)  # the run's discriminator as it was


def test_starve_from_scratch_reads_the_runs_initial_discriminator(tmp_path: Path):
    overrides = [*fast_overrides(20), "preset=gan_ring", "task.starve_steps=30", "task.eval_samples=200"]
    trained = run(compose(overrides), tmp_path / "trained")["metrics"]["final"]
    scratch_cfg = compose([*overrides, "task.starve_from=scratch"])
    scratch = run(scratch_cfg, tmp_path / "scratch")["metrics"]["final"]
    assert scratch["test/modes"] == trained["test/modes"]  # the same training: only the probe's start differs
    assert scratch["test/starve_sat_grad_t0"] != pytest.approx(trained["test/starve_sat_grad_t0"], rel=1e-3)
    from labbench.config import run_id

    assert run_id(compose(overrides)) != run_id(scratch_cfg)  # a different probe is a different run
    # the default adds nothing to a run's identity: runs made before the key existed keep their ids
    from omegaconf import open_dict

    before = compose(overrides)
    with open_dict(before):
        before.task.pop("starve_from")
    assert run_id(before) == run_id(compose(overrides))


def test_starve_from_names_its_choices():
    cfg = compose([*fast_overrides(5), "preset=gan_ring", "task.starve_steps=10", "task.starve_from=fresh"])
    with pytest.raises(Exception, match="starve_from must be one of trained, scratch"):
        build(cfg)
