"""Optimizers that torch does not ship in the form a claim needs.

:class:`KingmaBaAdam` is Algorithm 1 of Kingma & Ba (2015) written out, with its bias
correction switchable: the B14 claim compares Adam with and without it, and
``torch.optim.Adam`` always corrects. With ``bias_correction=True`` it takes the same steps
as ``torch.optim.Adam`` (a test checks it); without, the moments start at 0 and are used as
they are, so the first update is ``lr * (1 - beta1) / sqrt(1 - beta2)`` times the gradient's
sign (3.16 x lr at the default betas) instead of ``lr``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class KingmaBaAdam(torch.optim.Optimizer):
    """Adam, per parameter::

        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
        m_hat = m / (1 - beta1^t)            v_hat = v / (1 - beta2^t)      (bias_correction only)
        w = w - lr m_hat / (sqrt(v_hat) + eps)

    ``weight_decay`` (lambda) is L2 added to the gradient, as in ``torch.optim.Adam``; with
    ``decoupled`` it is Loshchilov & Hutter's AdamW instead (their Algorithm 2):
    ``w = w - eta_t * lambda * w`` beside the Adam step, where ``eta_t`` is the schedule's
    multiplier (the current rate over the initial rate), not the rate itself. Torch's
    ``AdamW`` multiplies the decay by the rate (``w = w - lr * wd * w``), which couples the
    two again in the (lr, wd) plane; the B5 claim is about the paper's decoupling.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        bias_correction: bool = True,
        decoupled: bool = False,
    ) -> None:
        if lr <= 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"KingmaBaAdam needs lr > 0, eps >= 0, weight_decay >= 0 and betas in [0, 1); "
                             f"got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={tuple(betas)}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "bias_correction": bias_correction, "decoupled": decoupled})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            multiplier = group["lr"] / group.get("initial_lr", group["lr"])  # eta_t: what the schedule has made of the rate
            for p in group["params"]:
                if p.grad is None:
                    continue
                coupled = group["weight_decay"] and not group["decoupled"]
                g = p.grad.add(p, alpha=group["weight_decay"]) if coupled else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t, m, v = state["step"], state["m"], state["v"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if group["bias_correction"]:
                    step_size = group["lr"] / (1 - beta1**t)
                    denom = (v / (1 - beta2**t)).sqrt_().add_(group["eps"])
                else:
                    step_size = group["lr"]
                    denom = v.sqrt().add_(group["eps"])
                if group["decoupled"] and group["weight_decay"]:
                    p.mul_(1 - multiplier * group["weight_decay"])  # from the weight before this step's update
                p.addcdiv_(m, denom, value=-step_size)
        return loss

