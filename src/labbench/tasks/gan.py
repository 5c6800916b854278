"""GAN training with manual optimization: ``d_steps`` discriminator updates per generator update."""

from __future__ import annotations

import torch
from torch import nn

from labbench.components.gan_losses import KINDS, GANLoss
from labbench.tasks.base import OptimizerFactory, ScheduleFactory
from labbench.tasks.generative import GenerativeTask

STARVE_FROM = ("trained", "scratch")  # the starvation probe's discriminator: the run's trained one, or its initial weights


class GANTask(GenerativeTask):
    """One training step = ``d_steps`` discriminator updates, then one generator update.

    The discriminator reuses the step's real batch with fresh fakes each update (WGAN-GP's
    recipe draws a new real batch per critic update; here all ``d_steps`` updates see the
    same one), and learns at ``d_lr`` (null: the generator's ``optimizer.lr``). ``trainer.max_steps``
    counts generator updates: the discriminator steps through the strategy directly,
    outside Lightning's step counter (``d_updates`` and ``g_updates`` count both).
    Logs ``train/d_loss``, ``train/g_loss``, ``train/d_acc_real`` and ``train/d_acc_fake``
    (share of real / fake samples on the right side of 0; logistic and hinge scores),
    ``train/g_grad_norm`` (L2 norm of the generator's gradient: small means a starved
    generator; ``critic_gap`` instead of the accuracies for ``wasserstein_gp``), and on val / test the discriminator's loss and accuracies on held-out
    real data, plus the sample measures of :class:`GenerativeTask` (``evaluation``: its settings).
    """

    symmetric_images = True
    takes_gan_loss = True
    metric_directions = {
        "g_loss": "neither", "d_loss": "neither",  # an adversarial game: neither loss is a score of the run
        "d_acc_real": "neither", "d_acc_fake": "neither", "critic_gap": "neither", "g_grad_norm": "neither",
        # the starvation probe (labbench.probes.starvation): hypotheses state their own direction
        "starve_sat_drop": "neither", "starve_nonsat_drop": "neither", "starve_gap": "neither", "starve_d_acc_fake": "neither",
        "starve_sat_grad": "neither", "starve_nonsat_grad": "neither",
    }

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        loss: GANLoss,
        schedule: ScheduleFactory | None = None,
        d_steps: int = 1,
        d_lr: float | None = None,
        starve_steps: int = 0,
        starve_from: str = "trained",
        **evaluation,
    ) -> None:
        if not isinstance(loss, GANLoss):
            raise ValueError(
                f"task=gan needs a GAN loss (loss={'|'.join(KINDS)}), got {type(loss).__name__}; "
                "preset=gan or preset=gan_ring sets one"
            )
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        if starve_steps < 0 or (starve_steps and not loss.logistic):
            raise ValueError(f"starve_steps must be >= 0 and needs a logistic GAN loss (saturating or non_saturating: "
                             f"the probe trains the discriminator of that game), got {starve_steps} with loss={loss.kind}")
        if starve_from not in STARVE_FROM:
            raise ValueError(f"starve_from must be one of {', '.join(STARVE_FROM)} (the discriminator the starvation probe "
                             f"trains on: the run's trained one, or a fresh one from the run's own initial weights), got {starve_from!r}")
        super().__init__(model, optimizer, schedule, loss=loss, **evaluation)
        self.automatic_optimization = False
        self.d_steps, self.d_lr, self.starve_steps, self.starve_from = d_steps, d_lr, starve_steps, starve_from
        self._d_initial: dict[str, torch.Tensor] | None = None  # the discriminator as the run started (starve_from=scratch)
        self.d_updates = self.g_updates = 0

    def discriminator_optimizer(self, params):
        return self.optimizer_factory(params, **({} if self.d_lr is None else {"lr": self.d_lr}))

    def configure_optimizers(self):
        g_opt = self.optimizer_factory(self.model.generator.parameters())
        d_opt = self.discriminator_optimizer(self.model.discriminator.parameters())
        if self.schedule_factory is None:
            return [g_opt, d_opt]
        total = int(self.trainer.estimated_stepping_batches)
        schedules = [self.schedule_factory(opt, total_steps=total) for opt in (g_opt, d_opt)]
        return [g_opt, d_opt], [{"scheduler": s, "interval": "step"} for s in schedules]

    def scores(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.discriminate(real), self.model.discriminate(fake)

    def failure_values(self) -> dict[str, float]:
        """A generator that diverged covers no mode and puts no sample near one."""
        return {"modes": 0.0, "hq_share": 0.0}

    def discriminator_measures(self, split: str, d_loss: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's loss and how well it tells real from fake (a WGAN critic has no threshold: its score gap)."""
        real, fake = real.detach(), fake.detach()
        if self.loss.kind == "wasserstein_gp":
            return {f"{split}/d_loss": d_loss.detach(), f"{split}/critic_gap": real.mean() - fake.mean()}
        return {f"{split}/d_loss": d_loss.detach(), f"{split}/d_acc_real": (real > 0).float().mean(),
                f"{split}/d_acc_fake": (fake < 0).float().mean()}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        g_opt, d_opt = self.optimizers()
        real = self.to_model(batch[0])
        n = len(real)
        for _ in range(self.d_steps):
            fake = self.model(self.model.noise(n)).detach()
            real_scores, fake_scores = self.scores(real, fake)
            d_loss = self.loss.discriminator(real_scores, fake_scores)
            d_total = d_loss + self.loss.gradient_penalty(self.model.discriminate, real, fake)
            d_opt.zero_grad()
            self.manual_backward(d_total)
            self.trainer.strategy.optimizer_step(d_opt.optimizer, closure=lambda: None)  # not a counted step
            self.d_updates += 1
        log_now = self.logs_this_step()
        if log_now:
            measures = self.discriminator_measures("train", d_loss, real_scores, fake_scores)

        fake_scores = self.model.discriminate(self.model(self.model.noise(n)))
        g_loss = self.loss.generator(fake_scores)
        g_opt.zero_grad()
        self.manual_backward(g_loss)
        if log_now:
            measures["train/g_grad_norm"] = self.generator_grad_norm()
        g_opt.step()
        self.g_updates += 1
        if self.schedule_factory is not None:
            for scheduler in self.lr_schedulers():
                scheduler.step()
        if log_now:  # train/loss: the training curve reports plot
            self.log_train({**measures, "train/g_loss": g_loss, "train/loss": g_loss}, bar=("train/g_loss", "train/d_loss"))
        return g_loss.detach()

    def generator_grad_norm(self) -> torch.Tensor:
        """Global L2 norm of the generator's gradient, unscaled under 16-mixed."""
        grads = [p.grad for p in self.model.generator.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        return norm / scaler.get_scale() if scaler is not None else norm  # 16-mixed: grads still carry the loss scale

    def shared_step(self, batch, split: str) -> torch.Tensor:
        real = self.to_model(batch[0])
        fake = self.model(self.model.noise(len(real), self._eval_generator))  # the same fakes at every evaluation
        real_scores, fake_scores = self.scores(real, fake)
        d_loss = self.loss.discriminator(real_scores, fake_scores)
        for name, value in self.discriminator_measures(split, d_loss, real_scores, fake_scores).items():
            self.log(name, value, prog_bar=name.endswith("d_loss"), on_epoch=True, batch_size=len(real))
        return d_loss

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.starve_steps <= 0:
            return
        from labbench.probes.starvation import starve

        if self.starve_from == "scratch" and self._d_initial is None:
            raise RuntimeError("starve_from=scratch needs the discriminator's initial weights, kept when fitting starts; "
                               "this test ran without a fit (train the GAN first, or use starve_from=trained)")
        datamodule = self.trainer.datamodule
        with torch.inference_mode(False), torch.enable_grad(), self.fork_rng():
            real = self.to_model(datamodule.splits["train"][0].clone())
            result = starve(self.model, real, self.discriminator_optimizer, self.starve_steps, datamodule.batch_size, self.sample_seed,
                            discriminator_state=self._d_initial if self.starve_from == "scratch" else None)
        last = result["curve"][-1]
        values = {"sat_drop": result["sat_drop"], "nonsat_drop": result["nonsat_drop"], "gap": result["gap"],
                  "d_acc_fake": result["d_acc_fake"], "sat_grad": last["saturating"], "nonsat_grad": last["non_saturating"]}
        for point in result["curve"]:
            values[f"sat_grad_t{point['step']}"] = point["saturating"]
            values[f"nonsat_grad_t{point['step']}"] = point["non_saturating"]
        for name, value in values.items():
            self.log(f"test/starve_{name}", float(value))

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.starve_steps and self.starve_from == "scratch":  # kept before the first step: the probe's fresh discriminator
            self._d_initial = {k: v.detach().clone() for k, v in self.model.discriminator.state_dict().items()}
        from labbench.probes.layers import ActivationStats, GradNorms, LossSpikes, UpdateRatios

        probes = [type(c).__name__ for c in self.trainer.callbacks if isinstance(c, (GradNorms, UpdateRatios, ActivationStats, LossSpikes))]
        if probes:
            raise ValueError(
                f"probes {', '.join(probes)} assume one optimizer; a GAN has two. The GAN task logs its own "
                "train/g_grad_norm and discriminator accuracies: switch these probes off"
            )

    def generate_model_space(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.model.sample(n, generator)

    @staticmethod
    def statistics_forward(model, batch) -> None:
        """The generator (the one network with BatchNorm) on as many latent codes as a training batch
        holds real images, as it ran in training (precise statistics fork the RNG around this)."""
        model(model.noise(len(batch[0])))
