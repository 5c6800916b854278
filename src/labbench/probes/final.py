"""Measurements of the trained model, taken once after the test (``test/...`` values).

- :class:`NeverActive`: the share of hidden units that never fire on any training sample.
  The per-batch dead-unit probe (:class:`~labbench.probes.layers.DeadUnits`) counts a unit
  silent on one batch; a unit is dead only when it is silent on the whole training split
  (CS231n's "as much as 40% of your network can be dead"), which this pass measures.
- :class:`WeightStructure`: the numerical rank of each hidden weight matrix (constant or
  zero init leaves every hidden unit a copy of the others: rank 1) and the share of weights
  that are (near) zero (what an L1 penalty is said to produce and L2 is not).

Both read the trained model in eval mode, without gradients, and log through the
LightningModule, so the values reach run.json's final metrics like ``test/acc``.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from labbench.probes.layers import _activation_modules, _weights


def hidden_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weight matrices whose rows are hidden units: every one but the output layer's (the last).

    Kernels of conv layers are flattened to (out channels, in channels x kernel)."""
    weights = list(_weights(model).items())[:-1]
    return {name: w.detach().flatten(1).float() for name, w in weights}


def numerical_rank(w: torch.Tensor, rtol: float = 1e-3) -> int:
    """Singular values above ``rtol`` x the largest (0 for an all-zero matrix)."""
    s = torch.linalg.svdvals(w)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0
    return int((s > rtol * s[0]).sum())


class NeverActive(L.Callback):
    """``test/never_active/<layer>`` and ``test/never_active`` (all units together): the share of
    units whose pre-activation is <= 0 on every training sample (and position, or pixel of
    a channel's map). Needs an activation that is zero below 0 (ReLU) to mean "dead"; for
    others it is the share of units that are never positive."""

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model
        modules = _activation_modules(model)
        if not modules:
            return
        fired: dict[str, torch.Tensor] = {}
        channels_last = getattr(model, "channels_last", False)

        def hook(_m, inputs, _out, name):
            pre = inputs[0].detach()
            units = pre.reshape(-1, pre.shape[-1]) if pre.dim() == 2 or channels_last else pre.transpose(0, 1).flatten(1).T
            now = (units > 0).any(dim=0)
            fired[name] = now if name not in fired else fired[name] | now

        handles = [m.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)) for name, m in modules.items()]
        x_all, _ = trainer.datamodule.placed("train")
        batch = trainer.datamodule.eval_batch_size
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for i in range(0, len(x_all), batch):
                    model(x_all[i : i + batch].to(pl_module.device))
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
        values = {f"test/never_active/{name}": float((~f).float().mean()) for name, f in fired.items()}
        total = sum(f.numel() for f in fired.values())
        values["test/never_active"] = float(sum(int((~f).sum()) for f in fired.values())) / total
        for name, value in values.items():
            pl_module.log(name, value)


class WeightStructure(L.Callback):
    """``test/hidden_rank`` (mean numerical rank of the hidden weight matrices),
    ``test/hidden_rank_share`` (that rank over the largest it could be, averaged over layers),
    ``test/weight_sparsity`` (share of all weight-matrix entries with |w| < ``tol``),
    ``test/weight_zeros`` (share exactly 0: what a proximal L1 step leaves and a subgradient step
    never does) and ``test/rank/<layer>``."""

    def __init__(self, tol: float = 1e-3) -> None:
        if tol <= 0:
            raise ValueError(f"probes.sparsity_tol must be > 0, got {tol}")
        self.tol = tol

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model
        hidden = hidden_weights(model)
        values: dict[str, float] = {}
        if hidden:
            ranks = {name: numerical_rank(w) for name, w in hidden.items()}
            values.update({f"test/rank/{name}": float(r) for name, r in ranks.items()})
            values["test/hidden_rank"] = sum(ranks.values()) / len(ranks)
            values["test/hidden_rank_share"] = sum(r / min(hidden[n].shape) for n, r in ranks.items()) / len(ranks)
        weights = [p.detach() for p in _weights(model).values()]
        if weights:
            small = sum(int((w.abs() < self.tol).sum()) for w in weights)
            total = sum(w.numel() for w in weights)
            values["test/weight_sparsity"] = small / total
            values["test/weight_zeros"] = sum(int((w == 0).sum()) for w in weights) / total
        for name, value in values.items():
            pl_module.log(name, value)
