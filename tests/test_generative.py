"""VAE, GAN and diffusion: the models, their tasks end to end, and what the runs record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from torch import distributions as D

from conftest import fast_overrides
from labbench.ablation import engine
from labbench.ablation import spec as specs
from labbench.ablation.validation import validate
from labbench.components.gan_losses import GANLoss
from labbench.config import compose
from labbench.data.embedded import Ring
from labbench.models import GAN, VAE
from labbench.train import build, run


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


def _run(tmp_path: Path, name: str, overrides: list[str], steps: int = 40) -> dict:
    return run(compose([*fast_overrides(steps), *overrides]), tmp_path / name)


# -- data --------------------------------------------------------------------------------


def test_ring_points_sit_on_their_modes():
    data = Ring(modes=8, radius=2.0, std=0.02)
    data.setup()
    x, y = data.splits["train"]
    assert x.shape[1:] == (2,) and data.input_shape == (2,)
    assert torch.allclose(data.centers.norm(dim=1), torch.full((8,), 2.0))
    offsets = x - data.centers[y]
    assert abs(float(offsets.std()) - 0.02) < 0.002  # each point is its mode's centre plus std-0.02 noise
    assert torch.bincount(y, minlength=8).min() > 0.8 * len(y) / 8  # the modes are about equally likely
    with pytest.raises(ValueError, match="normalize must be false"):
        Ring(normalize=True)


def test_the_ring_placed_in_sixteen_dimensions_lies_on_a_plane_and_keeps_its_modes():
    """data.embed_dim: the same 2-D points, mapped by a fixed orthonormal 2 x 16 basis; the centres with them,
    so mode measures count distance in all 16 coordinates (a sample off the plane is not near a mode)."""
    from labbench.measures import mode_coverage

    flat, placed = Ring(), Ring(embed_dim=16)
    flat.setup(), placed.setup()
    x, y = placed.splits["train"]
    assert x.shape[1:] == (16,) and placed.input_shape == (16,) and placed.centers.shape == (8, 16)
    assert torch.allclose(placed.basis @ placed.basis.T, torch.eye(2), atol=1e-6)
    assert torch.allclose(placed.plane(x), flat.splits["train"][0], atol=1e-5)  # the same ring, seeded alike
    assert torch.allclose(placed.plane(x) @ placed.basis, x, atol=1e-5)  # every point on the plane
    assert torch.equal(y, flat.splits["train"][1])
    own = mode_coverage(x, placed.centers, 0.02)["hq_share"]
    assert own == pytest.approx(mode_coverage(flat.splits["train"][0], flat.centers, 0.02)["hq_share"], abs=1e-4)
    assert own == pytest.approx(1 - math.exp(-4.5), abs=0.003)  # within 3 std in the plane: P(chi2 with 2 dof <= 9)
    normal = torch.linalg.qr(torch.cat([placed.basis.T, torch.randn(16, 1)], 1))[0][:, 2]  # a unit vector off the plane
    lifted = x + 0.1 * normal  # 0.1 off the plane: more than 3 std (0.06) from every mode
    assert mode_coverage(lifted, placed.centers, 0.02)["hq_share"] == 0.0
    assert torch.equal(Ring(embed_dim=16).basis, placed.basis)  # fixed by split_seed
    with pytest.raises(ValueError, match="data.embed_dim is the dimension the ring is placed in"):
        Ring(embed_dim=1)


def test_a_gan_trains_on_the_ring_placed_in_sixteen_dimensions(tmp_path):
    record = run(compose(["preset=gan_ring", "data.embed_dim=16", "data.batch_size=128", "data.num_train=2000", "task.eval_samples=200",
                          "model.width=16", "task.starve_steps=10", *fast_overrides(10)]), tmp_path)
    assert record["status"] == "completed"
    final = record["metrics"]["final"]
    assert final["test/starve_d_acc_fake"] == 1.0  # an untrained generator's samples fill 16 dimensions: the discriminator rejects all
    assert (tmp_path / "samples.png").is_file()


# -- models ------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_terms_match_torch_distributions(likelihood):
    torch.manual_seed(0)
    vae = VAE((1, 8, 8), latent_dim=4, likelihood=likelihood, gaussian_std=0.3)
    x = torch.rand(5, 1, 8, 8)
    out, mu, logvar = vae(x)
    if likelihood == "bernoulli":
        expected = D.Bernoulli(logits=out, validate_args=False).log_prob(x).flatten(1).sum(1)
    else:
        expected = D.Normal(out, 0.3).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(vae.log_likelihood(x, out), expected, atol=1e-4)
    q, p = D.Normal(mu, (0.5 * logvar).exp()), D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(vae.kl(mu, logvar), D.kl_divergence(q, p).sum(1), atol=1e-5)


def test_vae_elbo_adds_up_and_bounds_the_log_likelihood():
    """ELBO = E_q[log p(x|z)] - KL, and it lies below a Monte Carlo estimate of log p(x)."""
    torch.manual_seed(0)
    vae = VAE((6,), latent_dim=2, architecture="mlp", width=16, likelihood="gaussian", gaussian_std=0.5)
    x = torch.randn(1, 6)
    mu, logvar = vae.encode(x)
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(20000, 2)
    log_lik = vae.log_likelihood(x.expand(len(z), -1), vae.decode(z))
    log_q = D.Normal(mu, std).log_prob(z).sum(1)
    log_prior = D.Normal(0.0, 1.0).log_prob(z).sum(1)
    elbo_mc = (log_lik + log_prior - log_q).mean()
    elbo_closed = log_lik.mean() - vae.kl(mu, logvar)[0]
    assert abs(float(elbo_mc - elbo_closed)) < 0.02 * abs(float(elbo_closed)), (float(elbo_mc), float(elbo_closed))
    log_px = torch.logsumexp(log_lik + log_prior - log_q, 0) - math.log(len(z))  # importance-sampled log p(x)
    assert float(elbo_closed) <= float(log_px) + 1e-3


def test_gan_losses_saturate_as_described():
    fake = torch.full((4,), -8.0, requires_grad=True)  # a discriminator that confidently rejects the fakes
    grads = {}
    for kind in ("saturating", "non_saturating"):
        (g,) = torch.autograd.grad(GANLoss(kind).generator(fake), fake)
        grads[kind] = float(g.abs().mean())
    assert grads["saturating"] < 1e-3 < 0.1 < grads["non_saturating"]
    real = torch.full((4,), 8.0)
    assert float(GANLoss("non_saturating").discriminator(real, fake.detach())) < 1e-3  # D is right: tiny loss
    assert float(GANLoss("hinge").discriminator(real, fake.detach())) == 0.0
    with pytest.raises(ValueError, match="valid: saturating, non_saturating, wasserstein_gp, hinge"):
        GANLoss("minimax")


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    loss = GANLoss("wasserstein_gp", gp_weight=10.0)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert float(loss.gradient_penalty(lambda x: x[:, 0], real, fake)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss.gradient_penalty(lambda x: 3 * x[:, 0], real, fake)) == pytest.approx(40.0, rel=1e-5)
    assert float(GANLoss("hinge").gradient_penalty(lambda x: 3 * x[:, 0], real, fake)) == 0.0


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_generative_models_fit_every_shape(shape):
    vae, gan = VAE(shape, likelihood="gaussian"), GAN(shape)
    x = torch.rand(3, *shape)
    assert vae(x)[0].shape == x.shape and vae.sample(2).shape == (2, *shape)
    assert gan.sample(2).shape == (2, *shape) and gan.discriminate(x).shape == (3,)
    expected = "conv" if len(shape) == 3 else "mlp"
    assert vae.architecture == gan.architecture == expected
    if len(shape) == 3:
        assert gan.sample(64).abs().max() <= 1.0  # tanh output: images in [-1, 1]


def test_conv_architecture_rejects_sizes_it_cannot_fit():
    with pytest.raises(ValueError, match="divisible by 4"):
        VAE((1, 10, 10), architecture="conv")
    with pytest.raises(ValueError, match="valid: auto, mlp, conv"):
        GAN((2,), architecture="resnet")


# -- tasks end to end ----------------------------------------------------------------------


def _curve(record: dict, key: str) -> list[float]:
    return [v for _, v in record["curves"][key]]


def test_vae_run_learns_and_records_its_terms(tmp_path):
    record = _run(tmp_path, "vae", ["preset=vae", "task.eval_samples=64", "task.classifier_steps=30"], steps=150)
    assert record["status"] == "completed"
    loss = _curve(record, "train/loss")
    assert sum(loss[-3:]) / 3 < 0.8 * sum(loss[:3]) / 3  # the loss falls
    final = record["metrics"]["final"]
    for split in ("val", "test"):  # the logged ELBO is exactly -(recon + KL)
        assert final[f"{split}/elbo"] == pytest.approx(-(final[f"{split}/recon"] + final[f"{split}/kl"]), rel=1e-5)
    assert 0 <= final["test/active_units"] <= 8
    assert 0 < final["test/recon_sharpness_ratio"] and 0 < final["test/sharpness_ratio"]
    assert 0 < final["test/confidence"] <= 1 and 0 <= final["test/class_entropy"] <= math.log(10) + 1e-6
    assert math.isfinite(final["test/kid"]) and record["metrics"]["directions"]["test/kid"] == "lower"
    # the real digits' own confidence under the same classifier: the floor a gate names as `confidence`
    assert 0.1 < record["baselines"]["test/confidence"] <= 1 and record["baselines"]["test/confidence"] > final["test/confidence"]
    assert record["figures"] == {"samples": "samples.png", "reconstructions": "reconstructions.png"}
    assert all((tmp_path / "vae" / f).stat().st_size > 1000 for f in record["figures"].values())


def test_kl_warmup_ramps_beta(tmp_path):
    record = _run(tmp_path, "warm", ["preset=vae", "task.kl_weight=2.0", "task.kl_warmup_steps=100",
                                     "task.eval_samples=0", "task.figure_samples=0", "trainer.log_every_n_steps=10"], steps=40)
    betas = dict((int(s), v) for s, v in record["curves"]["train/kl_weight"])
    assert betas[min(betas)] < betas[max(betas)] < 2.0
    assert betas[max(betas)] == pytest.approx(2.0 * max(betas) / 100, abs=0.03)


def test_gan_moves_its_samples_onto_the_ring(tmp_path):
    torch.manual_seed(0)
    cfg = compose([*fast_overrides(400), "preset=gan_ring", "task.eval_samples=0", "task.figure_samples=0", "evaluate_test=false"])
    datamodule, model, task = build(cfg)

    def distance_to_ring() -> float:
        with torch.no_grad():
            return float((model.sample(2000, torch.Generator().manual_seed(1)).norm(dim=1) - 2.0).abs().mean())

    before = distance_to_ring()
    L.Trainer(max_steps=400, logger=False, enable_progress_bar=False, enable_checkpointing=False,
              enable_model_summary=False, limit_val_batches=0).fit(task, datamodule=datamodule)
    after = distance_to_ring()
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("d_steps", [1, 3])
def test_discriminator_steps_per_generator_step(tmp_path, d_steps):
    cfg = compose([*fast_overrides(12), "preset=gan_ring", f"task.d_steps={d_steps}", "task.eval_samples=0", "task.figure_samples=0"])
    datamodule, model, task = build(cfg)
    trainer = L.Trainer(max_steps=12, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(task, datamodule=datamodule)
    assert trainer.global_step == 12 and task.g_updates == 12 and task.d_updates == 12 * d_steps
    g_opt, d_opt = task.optimizers(use_pl_optimizer=False)
    adam_steps = lambda opt: {int(s["step"]) for s in opt.state.values()}  # noqa: E731
    assert adam_steps(g_opt) == {12} and adam_steps(d_opt) == {12 * d_steps}


def test_gan_run_records_discriminator_and_mode_measures(tmp_path):
    record = _run(tmp_path, "gan", ["preset=gan_ring", "task.d_lr=0.0004", "trainer.log_every_n_steps=5"], steps=30)
    assert record["status"] == "completed"
    final = record["metrics"]["final"]
    for key in ("train/d_loss", "train/g_loss", "train/d_acc_real", "train/d_acc_fake", "train/g_grad_norm",
                "val/modes", "test/modes", "test/hq_share", "test/mode_kl", "test/d_loss"):
        assert key in final and math.isfinite(final[key]), key
    assert 0 <= final["test/modes"] <= 8 and 0 <= final["test/hq_share"] <= 1
    assert record["config"]["task"]["d_lr"] == 0.0004
    assert (tmp_path / "gan" / "samples.png").stat().st_size > 1000


def test_diffusion_run_learns(tmp_path):
    record = _run(tmp_path, "ddpm", ["preset=diffusion_ring", "task.eval_samples=200", "model.sample_steps=50",
                                     "trainer.log_every_n_steps=5"], steps=150)
    assert record["status"] == "completed"
    loss = _curve(record, "train/loss")
    assert sum(loss[-5:]) / 5 < 0.8 * sum(loss[:5]) / 5
    assert {"test/loss", "test/modes", "test/hq_share"} <= set(record["metrics"]["final"])


def test_generative_runs_are_reproducible(tmp_path):
    overrides = ["preset=gan_ring", "task.eval_samples=300", "task.figure_samples=0"]
    a, b = _run(tmp_path, "a", overrides, steps=20), _run(tmp_path, "b", overrides, steps=20)
    assert a["curves"] == b["curves"] and a["metrics"] == b["metrics"]


def test_wandb_gets_the_sample_figure(tmp_path):
    cfg = compose(["trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.enable_progress_bar=false",
                   "preset=gan_ring", "task.eval_samples=100", "logger.wandb.mode=offline"])
    record = run(cfg, tmp_path / "w")
    images = list(Path(record["files"]["wandb"]).rglob("media/images/figures/samples*.png"))
    assert len(images) == 1 and images[0].stat().st_size > 1000


# -- bad input -----------------------------------------------------------------------------


def test_a_task_with_its_own_objective_rejects_a_loss_group(tmp_path):
    cfg = compose([*fast_overrides(4), "model=vae", "task=vae", "data.normalize=false"])
    with pytest.raises(ValueError, match=r"takes no loss group.*preset=vae.*~loss"):
        build(cfg)


def test_gan_needs_a_gan_loss():
    cfg = compose([*fast_overrides(4), "preset=gan_ring", "loss=ce"])
    with pytest.raises(Exception, match=r"task=gan needs a GAN loss \(loss=saturating\|non_saturating"):
        build(cfg)


def test_standardized_images_are_refused(tmp_path):
    record_dir = tmp_path / "norm"
    with pytest.raises(ValueError, match="data.normalize=false"):
        run(compose([*fast_overrides(4), "preset=vae", "data.normalize=true"]), record_dir)
    assert json.loads((record_dir / "run.json").read_text())["status"] == "failed"


# -- ablation plumbing for generative claims ----------------------------------------------------


def _spec(folder: Path, hypotheses: list[dict]) -> Path:
    raw = {
        "name": "ref",
        "claim": "a GAN covers fewer modes than the data has",
        "factors": ["loss"],
        "base": ["preset=gan_ring", "trainer.max_steps=6", "trainer.val_check_interval=3",
                 "task.eval_samples=200", "task.figure_samples=200", "data.num_train=3000"],
        "arms": {"gan": [], "hinge": ["loss=hinge"]},
        "hypotheses": hypotheses,
        "curves": ["val/modes", "train/g_grad_norm"],
        "profiles": {"smoke": {"seeds": 3}},
    }
    path = folder / "ref.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_hypothesis_against_a_fixed_reference_value(tmp_path):
    path = _spec(tmp_path, [{"name": "fewer than 8", "metric": "test/modes", "better": 8, "worse": "gan", "direction": "higher"}])
    spec = specs.load(path)
    assert spec.hypotheses[0].better == 8 and spec.curves == ("val/modes", "train/g_grad_norm")
    engine.reproduce(spec, "smoke", root=tmp_path / "out", wandb=False)
    folder = tmp_path / "out" / "ref" / "smoke"
    verdict = json.loads((folder / "verdict.json").read_text())
    h = verdict["hypotheses"][0]
    modes = verdict["arms"]["gan"]["metrics"]["test/modes"]["values"]
    assert h["better"] == 8 and h["mean_diff"] == pytest.approx(8 - sum(modes) / len(modes))
    report = (folder / "report.md").read_text()
    assert "![samples](samples.png)" in report and (folder / "samples.png").stat().st_size > 1000


def test_both_sides_numbers_is_refused(tmp_path):
    path = _spec(tmp_path, [{"metric": "test/modes", "better": 8, "worse": 7, "direction": "higher"}])
    with pytest.raises(specs.SpecError, match="at least one must name an arm"):
        specs.load(path)
    path = _spec(tmp_path, [{"metric": "test/modes", "better": "gann", "worse": "gan", "direction": "higher"}])
    with pytest.raises(specs.SpecError, match=r"arms are: gan, hinge \(or a number"):
        validate(specs.load(path))


def test_validating_more_often_leaves_the_training_path_alone(tmp_path):
    base = ["preset=vae", "task.eval_samples=32", "task.classifier_steps=10", "task.figure_samples=0", "trainer.log_every_n_steps=5"]
    often = run(compose([*fast_overrides(40), *base, "trainer.val_check_interval=10"]), tmp_path / "often")
    rarely = run(compose([*fast_overrides(40), *base, "trainer.val_check_interval=40"]), tmp_path / "rarely")
    assert often["curves"]["train/loss"] == rarely["curves"]["train/loss"]
    assert often["metrics"]["final"]["val/elbo"] == rarely["metrics"]["final"]["val/elbo"]  # same eval noise too


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["loss=hinge"], "loss=hinge is a GAN objective: use it with task=gan"),
        (["preset=gan_ring", "probes.grad_norms=true"], "probes GradNorms assume one optimizer"),
        (["preset=vae", "data=ring"], "a Bernoulli likelihood needs data in \\[0, 1\\]"),
    ],
)
def test_mismatched_pieces_fail_clearly(tmp_path, overrides, message):
    with pytest.raises(Exception, match=message):
        run(compose([*fast_overrides(4), *overrides]), tmp_path / "bad")
