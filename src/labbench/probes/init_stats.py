"""Activation statistics at initialization, layer by layer, before any optimizer step.

He et al. (2015) and Glorot & Bengio (2010) argue from how the spread of activations
changes with depth at init. This probe measures it: the standard deviation of every
activation layer's output on a fixed slice of training data, and the ratio of the last
layer's to the first's. It works on a copy of the model with the RNG state restored, so
a run with the probe on computes exactly the same numbers as one without.
"""

from __future__ import annotations

import copy
import math

import lightning as L
import torch
from torch import nn


class InitActivationStats(L.Callback):
    """Logs ``init/act_std_first``, ``init/act_std_last``, ``init/act_std_ratio``, ``init/act_std_log_ratio`` at step 0
    and keeps the per-layer list in ``self.per_layer`` for the run record."""

    def __init__(self, num_samples: int = 512) -> None:
        self.num_samples = num_samples
        self.per_layer: list[float] = []

    @torch.no_grad()
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model
        act_type = type(model.activation.make())
        if act_type is nn.Identity:  # a linear net: measure the layers' outputs instead
            act_type = (nn.Linear, nn.Conv1d, nn.Conv2d)
        x = trainer.datamodule.probe_batch(self.num_samples).to(pl_module.device)
        with torch.random.fork_rng(devices=[]):
            probe = copy.deepcopy(model).train()
            stds: list[float] = []
            hooks = [
                m.register_forward_hook(lambda _m, _i, out: stds.append(float(out.float().std())))
                for name, m in probe.named_modules()
                if isinstance(m, act_type) and not name.startswith("head")
            ]
            probe(x)
            for h in hooks:
                h.remove()
        self.per_layer = stds
        if not stds:
            return
        metrics = {
            "init/act_std_first": stds[0],
            "init/act_std_last": stds[-1],
            "init/act_std_ratio": stds[-1] / stds[0] if stds[0] > 0 else float("nan"),
            # how far the spread drifted from layer 1 to the last, either way: 0 is kept, lower is better
            "init/act_std_log_ratio": abs(math.log(stds[-1] / stds[0])) if stds[0] > 0 and stds[-1] > 0 else float("inf"),
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=0)
