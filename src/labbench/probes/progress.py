"""A progress bar for step-budgeted runs (Lightning's shows "Epoch 3/-2" without max_epochs)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepBudgetProgressBar(RichProgressBar):
    """Lightning's rich progress bar, labelled with the step budget instead of an epoch count."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_steps and trainer.max_steps > 0:
            return f"epoch {current_epoch} (budget {trainer.max_steps} steps)"
        return super()._get_train_description(current_epoch)

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the logger's version: noise in a run folder named by its id
        metrics.update({k: f"{v:.4g}" for k, v in getattr(pl_module, "bar_metrics", {}).items()})  # Task.log_train's
        return metrics
