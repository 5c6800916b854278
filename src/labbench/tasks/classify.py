"""Classification: loss, accuracy and learning rate logged as ``{split}/{metric}``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from labbench.data.augment import translate
from labbench.tasks.base import OptimizerFactory, ScheduleFactory, Task

SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right: (rows, columns) per pixel of shift


class ClassificationTask(Task):
    """Trains ``model`` with ``loss``; logs ``train/loss``, ``train/acc``, ``train/lr``,
    ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``, and on val and test ``nll`` and ``ece``.

    ``{split}/loss`` is the training criterion (with ``loss=label_smoothing`` the smoothed
    cross-entropy, which cannot fall below the smoothing's own entropy, about 0.5 nats at 0.1 over
    ten classes; with ``loss=mse`` a squared error). ``{split}/nll`` is the plain negative
    log-likelihood of the softmax of the outputs whatever the loss, the number to compare across
    losses; ``{split}/ece`` the expected calibration error (15 equal-width confidence bins, L1:
    torchmetrics' ``MulticlassCalibrationError``), what label smoothing is said to improve.

    ``l1`` penalizes ``l1 * sum |w|`` over the weight matrices and kernels (not biases or norm
    gains); ``train/loss`` stays the data loss and ``train/penalty`` is logged beside it.
    ``l1_method`` says how: ``subgradient`` adds the penalty to the training loss (its gradient
    ``l1 * sign(w)`` pulls every weight by the same amount, but a step overshoots 0, so weights
    hover around it and are never exactly 0); ``proximal`` leaves the loss alone and, after each
    optimizer step, applies the penalty's proximal map, soft-thresholding every weight matrix
    by its group's current rate times ``l1``: ``w <- sign(w) max(|w| - lr * l1, 0)``, which sets
    exactly to 0 the weights whose data gradient is too weak to hold them (ISTA, the lasso's own
    algorithm; Parikh & Boyd 2014, Sec. 4.2; with momentum or Adam it is the usual heuristic
    proximal variant, the threshold taken at the optimizer's nominal rate). ``test/l1_reach`` (with
    ``l1`` > 0) is ``l1`` times the rate summed over the steps: how far the penalty alone moves a
    weight that has no data gradient (exactly so for the proximal step; momentum multiplies a
    subgradient's pull by up to 1 / (1 - momentum)). A sparsity tolerance above it cannot be
    crossed by the penalty's work, which makes it the regime check of a sparsity claim. ``train_pass``: after the test, the trained model (eval mode) is
    run over the whole training split, without augmentation: ``test/train_loss``,
    ``test/train_acc`` and ``test/gap`` = train accuracy minus test accuracy (the per-batch
    ``train/acc`` of the last steps is not the training split's accuracy: dropout is on and a
    batch is a sample of the split).

    ``test_shift`` (k pixels, 0: off): every test batch is also classified moved by k pixels
    up, down, left and right (:func:`labbench.data.augment.translate`: no wrap-around, the
    vacated border filled with black in the data's own scale, the data module's ``fill``:
    ``-mean / std`` per channel when standardized, the value ``augment=crop`` pads with;
    0 where the data module has none). On MNIST and the digits black is the background, so
    a shifted digit lies on the same background as the original; on CIFAR-10 the border is
    black, as in torchvision's padded crops. Deterministic, no randomness. Logs
    ``test/shift_acc`` (the mean accuracy over the four shifts), ``test/shift_loss`` (their
    mean loss) and ``test/shift_drop`` = ``test/acc`` minus ``test/shift_acc``: the accuracy
    a shift costs the model (how robust it is, apart from how accurate). Images only.
    """

    metric_directions = {
        "acc": "higher", "nll": "lower", "ece": "lower", "penalty": "neither", "train_acc": "higher", "train_loss": "lower", "gap": "lower",
        "shift_acc": "higher", "shift_loss": "lower", "shift_drop": "lower", "l1_reach": "neither",
    }

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        loss: nn.Module,
        num_classes: int,
        schedule: ScheduleFactory | None = None,
        l1: float = 0.0,
        l1_method: str = "subgradient",
        train_pass: bool = False,
        test_shift: int = 0,
    ) -> None:
        super().__init__(model, optimizer, loss, schedule)
        if l1 < 0:
            raise ValueError(f"l1 is a penalty weight and must be >= 0, got {l1}")
        if l1_method not in L1_METHODS:
            raise ValueError(f"task.l1_method={l1_method!r} is not a way to apply the L1 penalty; valid: {', '.join(L1_METHODS)}")
        if not isinstance(test_shift, int) or isinstance(test_shift, bool) or test_shift < 0:
            raise ValueError(f"test_shift is a whole number of pixels >= 0 (0: off), got {test_shift!r}")
        self.num_classes, self.l1, self.l1_method, self.train_pass, self.test_shift = num_classes, l1, l1_method, train_pass, test_shift
        self.l1_reach = 0.0  # sum over steps of the rate times l1
        splits = ("val", "test", "test_shift") if test_shift else ("val", "test")
        self.acc = nn.ModuleDict({f"{split}_acc": MulticlassAccuracy(num_classes, average="micro") for split in splits})
        self.ece = nn.ModuleDict({f"{split}_ece": MulticlassCalibrationError(num_classes, n_bins=15, norm="l1") for split in ("val", "test")})

    def failure_values(self) -> dict[str, float]:
        """A uniform prediction: cross-entropy ln K, accuracy 1/K (shifted or not, on the test or the
        training split; a diverged run has no ``shift_drop`` or ``gap``)."""
        values = {"loss": math.log(self.num_classes), "nll": math.log(self.num_classes), "acc": 1.0 / self.num_classes}
        if self.test_shift:
            values.update(shift_loss=values["loss"], shift_acc=values["acc"])
        if self.train_pass:  # a claim about fitting the training split counts a diverged run as fitting none of it
            values.update(train_loss=values["loss"], train_acc=values["acc"])
        return values

    def setup(self, stage: str) -> None:
        """Refuse ``test_shift`` on data that are not images before any training step."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.test_shift and datamodule is not None and hasattr(datamodule, "input_shape"):
            check_shift(self.test_shift, tuple(datamodule.input_shape))

    def shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss(logits, y)
        if split == "train":
            penalty = self.l1 * l1_norm(self.model) if self.l1 and self.l1_method == "subgradient" else None
            if self.logs_this_step():
                values = {"train/loss": loss, "train/acc": (logits.detach().argmax(-1) == y).float().mean()}
                if self.l1:
                    values["train/penalty"] = penalty if penalty is not None else self.l1 * l1_norm(self.model).detach()
                self.log_train(values)
            return loss if penalty is None else loss + penalty
        accuracy = self.acc[f"{split}_acc"]
        accuracy(logits.detach(), y)
        # sync_dist: under DDP each rank holds part of the split; the logged loss is the
        # mean over all of it, as in one process (the accuracy metric syncs its counts).
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log(f"{split}/acc", accuracy, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{split}/nll", F.cross_entropy(logits.detach().float(), y), on_epoch=True, batch_size=len(y), sync_dist=True)
        calibration = self.ece[f"{split}_ece"]
        calibration(logits.detach().float().softmax(-1), y)
        self.log(f"{split}/ece", calibration, on_epoch=True, batch_size=len(y))
        if split == "test" and self.test_shift:
            self.shifted_step(x, y)
        return loss

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """The optimizer's step, then (``l1_method=proximal``) the L1 penalty's proximal map."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.l1:
            self.l1_reach += float(optimizer.param_groups[0]["lr"]) * self.l1
            if self.l1_method == "proximal":
                soft_threshold(self.model, optimizer, self.l1)

    def shifted_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The test batch moved ``test_shift`` pixels each way: ``test/shift_acc`` and ``test/shift_loss``.

        The four shifts hold the same images, so the accuracy over all four pooled (one
        metric updated four times) is the mean of the four accuracies.
        """
        check_shift(self.test_shift, tuple(x.shape[1:]))
        fill = getattr(self.trainer.datamodule, "fill", None)
        accuracy = self.acc["test_shift_acc"]
        losses = []
        for dy, dx in SHIFTS:
            logits = self.model(translate(x, dy * self.test_shift, dx * self.test_shift, fill))
            accuracy(logits.detach(), y)
            losses.append(self.loss(logits, y))
        self.log("test/shift_loss", torch.stack(losses).mean(), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("test/shift_acc", accuracy, on_epoch=True, batch_size=len(y))

    def on_test_epoch_end(self) -> None:
        if self.l1:
            self.log("test/l1_reach", self.l1_reach)
        if self.test_shift:
            self.log("test/shift_drop", float(self.acc["test_acc"].compute()) - float(self.acc["test_shift_acc"].compute()))
        if not self.train_pass:
            return
        x_all, y_all = self.trainer.datamodule.placed("train")
        batch = self.trainer.datamodule.eval_batch_size
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(y_all), batch):
                x, y = x_all[i : i + batch].to(self.device), y_all[i : i + batch].to(self.device)
                logits = self.model(x)
                loss_sum += float(self.loss(logits, y)) * len(y)
                correct += int((logits.argmax(-1) == y).sum())
        self.model.train(was_training)
        train_acc = correct / len(y_all)
        test_acc = float(self.acc["test_acc"].compute())
        for name, value in {"train_loss": loss_sum / len(y_all), "train_acc": train_acc, "gap": train_acc - test_acc}.items():
            self.log(f"test/{name}", value)


def check_shift(pixels: int, shape: tuple[int, ...]) -> None:
    """``test_shift`` needs images ``(C, H, W)`` larger than the shift."""
    if len(shape) != 3:
        raise ValueError(
            f"task.test_shift={pixels} moves images (C, H, W), but this data set's inputs have shape {shape}: "
            "use it with data=digits, mnist5k, mnist or cifar10 (an MLP flattens the images itself), or set task.test_shift=0"
        )
    if pixels >= min(shape[1:]):
        raise ValueError(f"task.test_shift={pixels} moves the whole {shape[1]}x{shape[2]} image out of its frame; use fewer pixels")


L1_METHODS = ("subgradient", "proximal")


@torch.no_grad()
def soft_threshold(model: nn.Module, optimizer, l1: float) -> None:
    """The proximal map of ``lr * l1 * sum |w|`` on the weight matrices and kernels (biases and
    norm gains untouched, as in :func:`l1_norm`): ``w <- sign(w) max(|w| - lr * l1, 0)``, each
    parameter at the rate of its optimizer group (the rate of this step, before a schedule moves it)."""
    weights = {id(p) for p in model.parameters() if p.dim() >= 2 and p.requires_grad}
    for group in optimizer.param_groups:
        threshold = float(group["lr"]) * l1
        for p in group["params"]:
            if id(p) in weights:
                p.copy_(p.sign() * (p.abs() - threshold).clamp_min(0))


def l1_norm(model: nn.Module) -> torch.Tensor:
    """sum |w| over the weight matrices and kernels (parameters of 2 or more dimensions)."""
    return sum(p.abs().sum() for p in model.parameters() if p.dim() >= 2 and p.requires_grad)
