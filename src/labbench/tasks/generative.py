"""What the generative tasks share: data <-> model space, seeded sample measurements, sample figures.

Every generative task draws samples at the end of each validation and of the test
(from its own seeded generator, leaving the training RNG untouched) and logs how good
they are, so the ablation engine can compare arms on them like on any metric:

- 2-D data with known modes (``data=ring``): ``modes`` covered, ``hq_share`` of samples
  within 3 std of a mode, ``mode_kl`` from a uniform spread over modes;
- images: ``sharpness`` (variance of the Laplacian) and its ratio to real images of the
  same split, ``diversity`` (mean pairwise distance) and its ratio to real images, and a
  classifier trained on the same data's training split: ``confidence``,
  ``class_entropy``, ``classifier_score``, and ``kid``, the kernel distance between the
  classifier's features of samples and of real images of the split (lower is better).
  The real images' own ``confidence`` is recorded as a baseline, the floor the samples'
  competence gates are set against.

At the end of training a figure of samples (a grid or a scatter over the data) is saved
beside the run record and logged to W&B.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from labbench import measures
from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task


class GenerativeTask(Task):
    """Base of the VAE, GAN and diffusion tasks. Subclasses implement :meth:`generate_model_space`.

    ``symmetric_images``: the model works on images in [-1, 1] (GAN, diffusion) while
    the data and every measurement use [0, 1]. Image data must not be standardized
    (``data.normalize=false``; the presets set it). ``eval_samples``: samples measured at
    each val / test (0: none); ``figure_samples``: samples in ``samples.png`` (0: no
    figure); ``sample_seed``: their seed; ``classifier_steps``: training of the scoring
    classifier for images.
    """

    symmetric_images = False
    metric_directions = {  # labbench.measures: ring modes, then image samples against real ones
        "modes": "higher", "hq_share": "higher", "mode_kl": "lower",
        "sharpness": "neither", "sharpness_ratio": "neither",  # 1 = as sharp as real images, not more
        "diversity": "neither", "diversity_ratio": "neither",
        "confidence": "higher", "class_entropy": "neither", "classifier_score": "higher",
        "kid": "lower",
    }

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        schedule: ScheduleFactory | None = None,
        loss: nn.Module | None = None,
        eval_samples: int = 1000,
        figure_samples: int = 64,
        sample_seed: int = 0,
        classifier_steps: int = 500,
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        self.eval_samples, self.figure_samples = eval_samples, figure_samples
        self.sample_seed, self.classifier_steps = sample_seed, classifier_steps
        self.figures: dict[str, str] = {}
        self._eval_generator: torch.Generator | None = None

    eval_noise_on_device = False  # where evaluation noise is drawn: the model's device (DDPM) or the CPU

    def on_validation_epoch_start(self) -> None:
        """Evaluation noise from its own generator, seeded by ``sample_seed``: the same noise at every
        evaluation (val curves compare across steps and runs), and how often a run validates leaves
        its training path unchanged."""
        device = self.device if self.eval_noise_on_device else torch.device("cpu")
        self._eval_generator = torch.Generator(device).manual_seed(self.sample_seed)

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    # -- spaces -------------------------------------------------------------------------
    def is_image(self, x: torch.Tensor) -> bool:
        return x.dim() == 4

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1 if self.symmetric_images and self.is_image(x) else x

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_image(x):
            return x
        return ((x + 1) / 2 if self.symmetric_images else x).clamp(0, 1)

    def generate_model_space(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def fork_rng(self):
        """A context that restores the CPU (and this device's) RNG state on exit."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    @torch.no_grad()
    def generate(self, n: int, seed: int) -> torch.Tensor:
        """``n`` samples in data space, drawn from ``seed`` alone (the run's RNG state is kept)."""
        was_training = self.model.training
        self.model.eval()
        with self.fork_rng():
            samples = self.generate_model_space(n, torch.Generator().manual_seed(seed))
        self.model.train(was_training)
        return self.to_data(samples.float()).cpu()

    # -- measurements ---------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1:
            raise ValueError(
                f"{type(self).__name__} runs on one device (its sample measures and figures are not "
                f"gathered across ranks); got {self.trainer.world_size} processes: set trainer.devices=1"
            )
        x = self.trainer.datamodule.splits["train"][0]
        if self.is_image(x) and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{type(self).__name__} needs images in [0, 1], but the training split spans "
                f"[{float(x.min()):.3g}, {float(x.max()):.3g}]: set data.normalize=false"
            )

    def measure(self, samples: torch.Tensor, split: str) -> dict[str, float]:
        """Sample quality measures against the data module's ``split``."""
        datamodule = self.trainer.datamodule
        if not self.is_image(samples):
            if not hasattr(datamodule, "centers"):
                return {}
            return measures.mode_coverage(samples, datamodule.centers, datamodule.std)
        real = datamodule.splits[split][0][: len(samples)]
        sharpness = float(measures.laplacian_variance(samples).mean())
        diversity = measures.diversity(samples)
        out = {
            "sharpness": sharpness,
            "sharpness_ratio": sharpness / max(float(measures.laplacian_variance(real).mean()), 1e-12),
            "diversity": diversity,
            "diversity_ratio": diversity / max(measures.diversity(real), 1e-12),
        }
        classifier = self.classifier(datamodule)
        kid = measures.kernel_distance(classifier.features(samples), classifier.features(real)) if len(real) > 1 else float("nan")
        return {**out, **classifier.score(samples), "kid": kid}

    def classifier(self, datamodule) -> measures.SampleClassifier:
        """The scoring classifier of this data (trained once per process, seeded, RNG untouched)."""
        x_train, y_train = datamodule.splits["train"]
        key = f"{type(datamodule).__name__}:{getattr(datamodule, 'split_seed', 0)}:{len(x_train)}:{self.classifier_steps}"
        return measures.SampleClassifier.cached(key, x_train, y_train, datamodule.num_classes, steps=self.classifier_steps)

    def baselines(self, datamodule) -> dict[str, float]:
        """The real images' own classifier ``confidence`` per evaluated split: samples as recognisable
        as the data score it, so a gate asks for a fraction of it (see Task.baselines)."""
        datamodule.setup()
        x = datamodule.splits["train"][0]
        if not self.is_image(x) or self.eval_samples <= 0:
            return {}
        classifier = self.classifier(datamodule)
        return {f"{split}/confidence": classifier.score(datamodule.splits[split][0][: self.eval_samples])["confidence"]
                for split in ("val", "test") if len(datamodule.splits[split][0])}

    def log_sample_measures(self, split: str) -> None:
        if self.eval_samples <= 0 or self.trainer.sanity_checking:
            return
        seed = self.sample_seed + (1 if split == "test" else 0)
        for name, value in self.measure(self.generate(self.eval_samples, seed), split).items():
            self.log(f"{split}/{name}", float(value))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log_sample_measures("val")

    def on_test_epoch_end(self) -> None:
        self.log_sample_measures("test")

    # -- figures --------------------------------------------------------------------------
    def on_fit_end(self) -> None:
        if self.figure_samples <= 0:
            return
        out_dir = Path(self.trainer.default_root_dir)
        samples = self.generate(self.figure_samples if self.is_image_data() else max(self.figure_samples, 1000), self.sample_seed + 2)
        self.figures["samples"] = self.save_figure(samples, out_dir / "samples.png", "samples").name
        self.figures.update(self.extra_figures(out_dir))
        self.log_figures_to_wandb()

    def is_image_data(self) -> bool:
        return self.is_image(self.trainer.datamodule.splits["train"][0][:1])

    def save_figure(self, samples: torch.Tensor, path: Path, title: str) -> Path:
        datamodule = self.trainer.datamodule
        if self.is_image(samples):
            return measures.save_image_grid(samples, path, title=title)
        plane = getattr(datamodule, "plane", lambda points: points)  # data placed in D dimensions: its own plane
        reference = plane(datamodule.splits["val"][0][:2000])
        limit = float(reference.abs().max()) * 1.5
        centers = getattr(datamodule, "centers", None)
        return measures.save_scatter(plane(samples), path, centers=None if centers is None else plane(centers), reference=reference, title=title, limit=limit)

    def extra_figures(self, out_dir: Path) -> dict[str, str]:
        """Task-specific figures (e.g. VAE reconstructions): name -> PNG file name in the run folder."""
        return {}

    def log_figures_to_wandb(self) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                for name, path in self.figures.items():
                    logger.log_image(key=f"figures/{name}", images=[str(Path(self.trainer.default_root_dir) / path)], step=self.global_step)
