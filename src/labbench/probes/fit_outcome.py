"""Hand what the training processes learned back to the process that writes the record.

With ``ddp_spawn`` or ``ddp_fork`` the fit runs in child processes: the divergence
detector, the init statistics and the task's text sample are set there and never reach
the parent, nor does the step count. Rank 0 writes them to a small JSON file at the end
of fit (after the task's own ``on_fit_end``), and the parent reads them back. A
single-process run goes through the same path, so the path is always exercised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L

from labbench.record import write_json_atomic


class FitOutcome(L.Callback):
    """Writes the fit's outcome on rank 0 at teardown; :meth:`restore` applies it in the caller."""

    def __init__(self, path: str | Path, divergence, init_stats=None) -> None:
        self.path = Path(path)
        self.divergence, self.init_stats = divergence, init_stats

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero:
            return
        write_json_atomic(self.path, {
            "steps": trainer.global_step,
            "epochs": trainer.current_epoch,
            "divergence": {"step": self.divergence.step, "reason": self.divergence.reason},
            "init_activation_std": self.init_stats.per_layer if self.init_stats is not None else None,
            "last_val_step": getattr(pl_module, "last_val_step", None),
            "sample": getattr(pl_module, "sample", None),
        })

    def restore(self, trainer: L.Trainer, task: L.LightningModule) -> dict[str, Any]:
        """Apply the stored outcome to this process's callbacks and task; returns ``steps`` and ``epochs``.

        Ranks 1..N-1 re-launched by ``ddp`` trained themselves and keep their own state.
        """
        if not trainer.is_global_zero:
            return {"steps": trainer.global_step, "epochs": trainer.current_epoch}
        state = json.loads(self.path.read_text())
        self.path.unlink()
        self.divergence.step, self.divergence.reason = state["divergence"]["step"], state["divergence"]["reason"]
        if self.init_stats is not None:
            self.init_stats.per_layer = state["init_activation_std"]
        task.last_val_step = state["last_val_step"]
        if state["sample"] is not None:
            task.sample = state["sample"]
        return {"steps": state["steps"], "epochs": state["epochs"]}
