"""Per-layer measurements of training dynamics, taken every ``interval`` optimizer steps.

Each probe is a Lightning callback with one job. Hooks are attached only for the steps
being measured and removed right after, so a probe costs nothing on the other steps and
a run without probes pays nothing at all. Values go to every logger under ``probe/...``
(so they land in the CSV curves and in ``run.json``) at the step they describe.

Layer names are the model's module names (``hidden.3.0``, ``blocks.2.attn``).
"""

from __future__ import annotations

import math
from collections import deque

import lightning as L
import torch
from torch import nn

from labbench.components.activations import Activation


def _emit(trainer: L.Trainer, metrics: dict[str, float], step: int | None = None) -> None:
    """Send to every logger at ``step`` (default: the current global step)."""
    if metrics:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step if step is None else step)


def _weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weight matrices and kernels by owning layer (biases and norm gains are left out)."""
    return {name.rsplit(".", 1)[0]: p for name, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad}


def _activation_modules(model: nn.Module) -> dict[str, nn.Module]:
    act = getattr(model, "activation", None)
    kind = type(act.make()) if isinstance(act, Activation) else nn.ReLU
    return {name: m for name, m in model.named_modules() if isinstance(m, kind) and not isinstance(m, nn.Identity)}


class _Every(L.Callback):
    def __init__(self, interval: int = 50) -> None:
        if interval < 1:
            raise ValueError(f"probe interval must be >= 1 step, got {interval}")
        self.interval = interval

    def due(self, trainer: L.Trainer) -> bool:
        return trainer.global_step % self.interval == 0


class GradNorms(_Every):
    """``probe/grad_norm/<layer>``: L2 norm of each weight's gradient, and ``/total``;
    ``probe/grad_norm_log_ratio``: log10 of the first weight layer's gradient over the
    last's, per weight (each norm over the square root of the layer's size, so that a
    784 x 128 input layer and a 128 x 10 output layer compare weight for weight; in the
    model's parameter order, input to output): -3 means a first-layer weight gets a
    thousandth of an output weight's gradient (Glorot & Bengio 2010's vanishing gradients)."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self.due(trainer):
            return
        weights = {name: p for name, p in _weights(pl_module.model).items() if p.grad is not None}
        norms = {f"probe/grad_norm/{name}": float(p.grad.norm()) for name, p in weights.items()}
        if norms:
            norms["probe/grad_norm/total"] = math.sqrt(sum(v * v for v in norms.values()))
            grads = list(weights.values())
            first, last = (float(g.grad.norm()) / math.sqrt(g.numel()) for g in (grads[0], grads[-1]))
            if len(grads) >= 2 and first > 0 and last > 0:
                norms["probe/grad_norm_log_ratio"] = math.log10(first / last)
        _emit(trainer, norms)


class UpdateRatios(_Every):
    """``probe/update_ratio/<layer>``: ||w_after - w_before|| / ||w_before|| of one optimizer step."""

    def __init__(self, interval: int = 50) -> None:
        super().__init__(interval)
        self.before: dict[str, torch.Tensor] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.due(trainer):
            self.before = {name: p.detach().clone() for name, p in _weights(pl_module.model).items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.before:
            return
        weights = _weights(pl_module.model)
        ratios = {
            f"probe/update_ratio/{name}": float((weights[name].detach() - w0).norm() / w0.norm().clamp_min(1e-12))
            for name, w0 in self.before.items()
        }
        self.before = {}
        _emit(trainer, ratios, trainer.global_step - 1)  # global_step already advanced: the step taken


class _Hooked(_Every):
    """Attaches forward hooks for the measured step only."""

    def __init__(self, interval: int = 50) -> None:
        super().__init__(interval)
        self.handles: list = []
        self.values: dict[str, float] = {}

    def attach(self, model: nn.Module) -> None:
        raise NotImplementedError

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.due(trainer):
            self.values = {}
            self.attach(pl_module.model)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.handles:
            return
        for handle in self.handles:
            handle.remove()
        self.handles = []
        _emit(trainer, self.summarize(self.values), trainer.global_step - 1)
        self.detach(pl_module.model)

    def detach(self, model: nn.Module) -> None:
        pass

    def summarize(self, values: dict[str, float]) -> dict[str, float]:
        """The values to log (a probe may add a mean over its layers)."""
        return values


def _with_means(values: dict[str, float], prefixes: tuple[str, ...]) -> dict[str, float]:
    """``values`` plus ``<prefix>mean``: the mean over the layers logged under each prefix."""
    out = dict(values)
    for prefix in prefixes:
        layer_values = [v for k, v in values.items() if k.startswith(prefix)]
        if layer_values:
            out[f"{prefix}mean"] = sum(layer_values) / len(layer_values)
    return out


class ActivationStats(_Hooked):
    """``probe/act_mean/<layer>`` and ``probe/act_std/<layer>`` of every activation layer's output."""

    def attach(self, model: nn.Module) -> None:
        for name, module in _activation_modules(model).items():
            def hook(_m, _inp, out, name=name):
                out = out.detach().float()
                self.values[f"probe/act_mean/{name}"] = float(out.mean())
                self.values[f"probe/act_std/{name}"] = float(out.std())
            self.handles.append(module.register_forward_hook(hook))


class DeadUnits(_Hooked):
    """``probe/dead_fraction/<layer>``: share of units whose pre-activation is <= 0 for every
    sample (and position) of the batch: a dead ReLU passes no signal and gets no gradient."""

    def attach(self, model: nn.Module) -> None:
        channels_last = getattr(model, "channels_last", False)  # (N, T, C) sequences in a Transformer
        for name, module in _activation_modules(model).items():
            def hook(_m, inputs, _out, name=name):
                pre = inputs[0].detach()
                if pre.dim() == 2 or channels_last:  # a unit is a feature
                    units = pre.reshape(-1, pre.shape[-1]).T
                else:  # a unit is a channel of a feature map
                    units = pre.transpose(0, 1).reshape(pre.shape[1], -1)
                self.values[f"probe/dead_fraction/{name}"] = float((units <= 0).all(dim=1).float().mean())
            self.handles.append(module.register_forward_hook(hook))


class AttentionEntropy(_Hooked):
    """``probe/attn_entropy/<layer>``: mean entropy (nats) of the attention distributions,
    over batch, heads and query positions, and ``probe/attn_entropy/mean`` over the layers
    (the value at step 0 is the entropy at initialization: a saturated softmax has entropy
    near 0, a uniform one ln T). Needs a model with ``keep_attention``."""

    def summarize(self, values: dict[str, float]) -> dict[str, float]:
        return _with_means(values, ("probe/attn_entropy/",))

    def attach(self, model: nn.Module) -> None:
        if not hasattr(model, "keep_attention"):
            return
        model.keep_attention(True)
        for name, module in model.named_modules():
            if hasattr(module, "keep_attention") and hasattr(module, "attention"):
                def hook(m, _inp, _out, name=name):
                    w = m.attention.float()
                    self.values[f"probe/attn_entropy/{name}"] = float(-(w * w.clamp_min(1e-12).log()).sum(-1).mean())
                self.handles.append(module.register_forward_hook(hook))

    def detach(self, model: nn.Module) -> None:
        if hasattr(model, "keep_attention"):
            model.keep_attention(False)


class BatchStats(_Hooked):
    """How far one training batch's statistics are from the running estimates every BatchNorm
    layer evaluates with (Shen et al. 2020, "PowerNorm", Fig. 2: in Transformers these
    fluctuate far more than in CNNs): ``probe/bn_mean_dev/<layer>``, the mean over channels of
    ``|mu_B - mu_running| / sqrt(var_running)``, and ``probe/bn_var_dev/<layer>``, of
    ``|var_B / var_running - 1|``; ``.../mean`` over the layers. Measured on the batch entering
    the layer, before it updates the running estimates. Models without BatchNorm log nothing.
    """

    def attach(self, model: nn.Module) -> None:
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                def hook(m, inputs, name=name):
                    x = inputs[0].detach().float()
                    if hasattr(m, "batch_values"):  # token features (N, T, C), real tokens only under a mask
                        x = m.batch_values(x, *inputs[1:])
                    dims = tuple(d for d in range(x.dim()) if d != 1)
                    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
                    running_mean, running_var = m.running_mean.float(), m.running_var.float().clamp_min(m.eps)
                    self.values[f"probe/bn_mean_dev/{name}"] = float(((mean - running_mean).abs() / running_var.sqrt()).mean())
                    self.values[f"probe/bn_var_dev/{name}"] = float((var / running_var - 1).abs().mean())
                self.handles.append(module.register_forward_pre_hook(hook))

    def summarize(self, values: dict[str, float]) -> dict[str, float]:
        return _with_means(values, ("probe/bn_mean_dev/", "probe/bn_var_dev/"))


class LossSpikes(L.Callback):
    """``probe/loss_spikes``: running count of steps whose training loss exceeds ``factor`` x
    the median of the previous ``window`` losses (non-finite losses count too; the
    divergence detector stops the run on those).

    ``probe/loss_spike_events``: running count of bursts, a spike step whose previous step was not
    one. A burst that lasts 20 steps adds 20 to the step count and 1 to the events: the step count
    weighs one long excursion like twenty separate ones, so a claim about *how often* training spikes
    reads the events."""

    def __init__(self, factor: float = 2.0, window: int = 50) -> None:
        self.factor, self.recent = factor, deque(maxlen=window)
        self.count = 0
        self.events = 0
        self.steps: list[int] = []

    def _values(self) -> dict[str, float]:
        return {"probe/loss_spikes": float(self.count), "probe/loss_spike_events": float(self.events)}

    def on_train_start(self, trainer, pl_module) -> None:
        # the running count starts at 0 on the curve: without this point, "spikes up to step N"
        # (probe/loss_spikes@N) has no value for a run with no spike before N
        _emit(trainer, self._values())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach())
        if len(self.recent) >= 10:
            median = sorted(self.recent)[len(self.recent) // 2]
            if not math.isfinite(value) or value > self.factor * median:
                step = trainer.global_step - 1
                self.events += int(not self.steps or self.steps[-1] != step - 1)
                self.count += 1
                self.steps.append(step)
                _emit(trainer, self._values(), step)
        if math.isfinite(value):
            self.recent.append(value)

    def on_train_end(self, trainer, pl_module) -> None:
        _emit(trainer, self._values())  # the final counts, also when they are 0


PROBES = {
    "grad_norms": GradNorms,
    "update_ratios": UpdateRatios,
    "activations": ActivationStats,
    "dead_units": DeadUnits,
    "attention_entropy": AttentionEntropy,
    "batch_stats": BatchStats,
}


def make_probes(settings: dict) -> list[L.Callback]:
    """Callbacks for the probes switched on in the config's ``probes`` section."""
    interval = int(settings.get("interval", 50))
    callbacks: list[L.Callback] = [cls(interval) for key, cls in PROBES.items() if settings.get(key)]
    if settings.get("loss_spikes"):
        callbacks.append(LossSpikes(float(settings.get("spike_factor", 2.0))))
    if settings.get("never_active") or settings.get("weight_structure"):
        from labbench.probes.final import NeverActive, WeightStructure

        if settings.get("never_active"):
            callbacks.append(NeverActive())
        if settings.get("weight_structure"):
            callbacks.append(WeightStructure(float(settings.get("sparsity_tol", 1e-3))))
    return callbacks
