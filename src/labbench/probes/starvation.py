"""Does a better discriminator starve the generator? Arjovsky & Bottou's measurement (2017, Sec. 2.2).

Comparing generator gradients across runs with different discriminators is unfair: the
runs have different generators, and a wider discriminator changes the scale of every
gradient. Arjovsky & Bottou hold the generator fixed and train the discriminator alone
towards optimality, measuring at intervals the norm of the generator's gradient under
each cost on the same noise: the saturating cost log(1 - D(G(z))) and the non-saturating
cost -log D(G(z)). Same generator, same discriminator at every point: the only
difference between the two curves is the cost. Their Fig. 2 shows the saturating
gradient falling by orders of magnitude as D improves; Fig. 3, the non-saturating one
staying large.

:func:`starve` does that on a copy of a trained GAN (the run's own networks and RNG are
untouched), with the discriminator's loss of the logistic game and a fresh optimizer
from the run's optimizer factory. The copy's discriminator either continues from the one
the run trained, or, as Arjovsky & Bottou do ("with the generator fixed we train a
discriminator from scratch"), starts again from given weights: the task passes the run's
own initial discriminator, one draw of the run's init scheme, so no scheme is re-implemented.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from labbench.components.gan_losses import GANLoss

COSTS = ("saturating", "non_saturating")


def generator_gradient_norms(model: nn.Module, z: torch.Tensor) -> dict[str, float]:
    """L2 norm of the generator's gradient under each logistic generator cost, on the same samples."""
    out = {}
    for kind in COSTS:
        model.generator.zero_grad(set_to_none=True)
        GANLoss(kind).generator(model.discriminate(model(z))).backward()
        grads = [p.grad for p in model.generator.parameters() if p.grad is not None]
        out[kind] = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    model.generator.zero_grad(set_to_none=True)
    return out


def checkpoints(steps: int) -> list[int]:
    """0, 1, 10, 100, ... up to ``steps``, and ``steps`` itself: where the gradients are measured."""
    points = {0, steps}
    k = 1
    while k < steps:
        points.add(k)
        k *= 10
    return sorted(points)


def starve(
    model: nn.Module,
    real: torch.Tensor,
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    steps: int,
    batch_size: int,
    seed: int = 0,
    discriminator_state: dict[str, torch.Tensor] | None = None,
) -> dict[str, object]:
    """Train a copy of the discriminator ``steps`` times against the fixed generator; gradients on the way.

    ``real``: training samples in model space. ``discriminator_state``: weights the copy's
    discriminator starts from (None: the trained one's). Returns ``curve`` (per checkpoint: step,
    the two gradient norms, D's accuracy on the fixed fakes), ``sat_drop`` and
    ``nonsat_drop`` (log10 of each norm at step 0 over its norm at the end: 2 = a
    hundredfold fall), ``gap`` (``sat_drop - nonsat_drop``) and ``d_acc_fake`` at the end.
    """
    if steps < 1:
        raise ValueError(f"the starvation probe needs at least 1 discriminator step, got {steps}")
    probe = copy.deepcopy(model).train()
    if discriminator_state is not None:
        probe.discriminator.load_state_dict(discriminator_state)
    device = next(probe.parameters()).device
    d_loss = GANLoss("non_saturating")  # the logistic discriminator loss, shared by both generator costs
    optimizer = make_optimizer(probe.discriminator.parameters())
    generator = torch.Generator().manual_seed(seed)
    z = probe.noise(batch_size, generator)
    real = real.to(device)
    curve = []
    marks = set(checkpoints(steps))
    for step in range(steps + 1):
        if step in marks:
            norms = generator_gradient_norms(probe, z)
            with torch.no_grad():
                acc = float((probe.discriminate(probe(z)) < 0).float().mean())
            curve.append({"step": step, "saturating": norms["saturating"], "non_saturating": norms["non_saturating"], "d_acc_fake": acc})
        if step == steps:
            break
        idx = torch.randint(len(real), (batch_size,), generator=generator).to(device)
        with torch.no_grad():
            fake = probe(probe.noise(batch_size, generator))
        loss = d_loss.discriminator(probe.discriminate(real[idx]), probe.discriminate(fake))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def drop(kind: str) -> float:
        first, last = curve[0][kind], curve[-1][kind]
        return math.log10(first / last) if first > 0 and last > 0 else (math.inf if first > 0 else math.nan)

    sat, nonsat = drop("saturating"), drop("non_saturating")
    return {"curve": curve, "sat_drop": sat, "nonsat_drop": nonsat, "gap": sat - nonsat, "d_acc_fake": curve[-1]["d_acc_fake"]}
