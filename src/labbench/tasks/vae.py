"""VAE training: the (beta-weighted) negative ELBO, its two terms, and latent usage."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from labbench import measures
from labbench.tasks.base import OptimizerFactory, ScheduleFactory
from labbench.tasks.generative import GenerativeTask

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: a latent unit is active if Cov_x(E[z_u | x]) > 0.01


class VAETask(GenerativeTask):
    """Minimizes recon + beta_t x KL per sample (nats), beta_t = ``kl_weight`` x min(1, step / ``kl_warmup_steps``).

    ``kl_weight`` is beta (Higgins et al. 2017; 1 = the ELBO); ``kl_warmup_steps`` ramps
    it up linearly from 0 (Bowman et al. 2016; 0 = no warm-up). Logs per split:
    ``loss`` (the weighted objective), ``elbo`` (beta = 1, a lower bound on log p(x)),
    ``recon`` (-log p(x|z)), ``kl``; at the end of val / test ``active_units`` and, for
    images, ``recon_sharpness_ratio`` (Laplacian variance of reconstructions / of the
    originals); plus the sample measures of :class:`GenerativeTask` on prior samples
    (``evaluation``: its settings, ``eval_samples`` etc.).
    """

    metric_directions = {
        "elbo": "higher", "recon": "lower", "kl": "neither", "kl_weight": "neither",
        "active_units": "higher", "recon_sharpness_ratio": "neither",
    }

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        schedule: ScheduleFactory | None = None,
        kl_weight: float = 1.0,
        kl_warmup_steps: int = 0,
        **evaluation,
    ) -> None:
        super().__init__(model, optimizer, schedule, **evaluation)
        if kl_weight < 0 or kl_warmup_steps < 0:
            raise ValueError(f"kl_weight and kl_warmup_steps must be >= 0; got {kl_weight}, {kl_warmup_steps}")
        self.kl_weight, self.kl_warmup_steps = kl_weight, kl_warmup_steps
        self._eval: dict[str, list[torch.Tensor]] = {}

    def beta(self) -> float:
        if self.kl_warmup_steps <= 0:
            return self.kl_weight
        return self.kl_weight * min(1.0, self.global_step / self.kl_warmup_steps)

    def terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample reconstruction term -log p(x|z), KL term, and the posterior means."""
        out, mu, logvar = self.model(x, generator)
        return -self.model.log_likelihood(x, out), self.model.kl(mu, logvar), mu

    def on_fit_start(self) -> None:
        super().on_fit_start()
        x = self.trainer.datamodule.splits["train"][0]
        if self.model.likelihood == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"a Bernoulli likelihood needs data in [0, 1], but the training split spans "
                f"[{float(x.min()):.3g}, {float(x.max()):.3g}]: use model.likelihood=gaussian (or data.normalize=false for images)"
            )

    def shared_step(self, batch, split: str) -> torch.Tensor:
        x = batch[0]
        recon, kl, mu = self.terms(x, None if split == "train" else self._eval_generator)
        beta = self.beta()
        loss = (recon + beta * kl).mean()
        terms = {"loss": loss, "elbo": -(recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}
        if split == "train":
            if self.logs_this_step():
                self.log_train({**{f"train/{k}": v for k, v in terms.items()}, "train/kl_weight": beta})
            return loss
        for name, value in terms.items():
            self.log(f"{split}/{name}", value.detach(), prog_bar=name == "loss", on_epoch=True, batch_size=len(x))
        self._eval.setdefault("mu", []).append(mu.detach())
        if self.is_image(x) and sum(len(t) for t in self._eval.get("x", [])) < self.eval_samples:
            self._eval.setdefault("x", []).append(x.detach())
        return loss

    def log_latent_measures(self, split: str) -> None:
        if self.trainer.sanity_checking or not self._eval:
            self._eval = {}
            return
        mu = torch.cat(self._eval["mu"])
        self.log(f"{split}/active_units", float((mu.var(dim=0) > ACTIVE_UNIT_THRESHOLD).sum()))
        if "x" in self._eval:
            x = torch.cat(self._eval["x"])[: self.eval_samples]
            recon = self.model.reconstruct(x).clamp(0, 1)
            ratio = measures.laplacian_variance(recon.float().cpu()).mean() / measures.laplacian_variance(x.float().cpu()).mean().clamp_min(1e-12)
            self.log(f"{split}/recon_sharpness_ratio", float(ratio))
        self._eval = {}

    def on_validation_epoch_end(self) -> None:
        self.log_latent_measures("val")
        super().on_validation_epoch_end()

    def on_test_epoch_end(self) -> None:
        self.log_latent_measures("test")
        super().on_test_epoch_end()

    def generate_model_space(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.model.sample(n, generator)

    def extra_figures(self, out_dir: Path) -> dict[str, str]:
        x = self.trainer.datamodule.splits["val"][0][: min(32, self.figure_samples)].to(self.device)
        if not self.is_image(x):
            return {}
        was_training = self.model.training
        self.model.eval()
        recon = self.model.reconstruct(x).clamp(0, 1)
        self.model.train(was_training)
        pairs = torch.stack([x, recon], dim=1).flatten(0, 1).float().cpu()  # original, reconstruction, ...
        path = measures.save_image_grid(pairs, out_dir / "reconstructions.png", nrow=8, title="originals | reconstructions")
        return {"reconstructions": path.name}
