"""Learning-rate schedules, stepped once per optimizer step.

Each factory takes the optimizer and the run's total number of steps (the task supplies
it from the trainer's budget) and returns a ``torch.optim.lr_scheduler`` instance. All but
one-cycle accept ``warmup_steps``: a linear ramp from 0 to the base learning rate, so
"warmup or not" is a one-key change that leaves the rest of the schedule alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def _with_warmup(warmup_steps: int, decay: Callable[[int], float]) -> Callable[[int], float]:
    """Multiplier: linear ramp over ``warmup_steps``, then ``decay(steps after warmup)``."""
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return decay(step - warmup_steps)

    return factor


def constant(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LRScheduler:
    return LambdaLR(optimizer, _with_warmup(warmup_steps, lambda s: 1.0))


def step(
    optimizer: Optimizer, total_steps: int, step_size: int, gamma: float = 0.1, warmup_steps: int = 0
) -> LRScheduler:
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps."""
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    return LambdaLR(optimizer, _with_warmup(warmup_steps, lambda s: gamma ** (s // step_size)))


def cosine(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> LRScheduler:
    """Half-cosine from the base rate down to ``min_lr_ratio`` x base at the last step."""
    decay_steps = max(1, total_steps - warmup_steps - 1)  # the last step (total_steps - 1) sits at the floor

    def decay(s: int) -> float:
        progress = min(1.0, s / decay_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, _with_warmup(warmup_steps, decay))


def inverse_sqrt(optimizer: Optimizer, total_steps: int, warmup_steps: int = 100) -> LRScheduler:
    """Vaswani et al. (2017): after warmup the rate falls as 1/sqrt(step), peaking at the base rate."""
    ref = max(1, warmup_steps)
    return LambdaLR(optimizer, _with_warmup(warmup_steps, lambda s: math.sqrt(ref / (s + ref))))


def one_cycle(
    optimizer: Optimizer,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
) -> LRScheduler:
    """Smith & Topin (2019), via torch's OneCycleLR; the peak is the optimizer's base rate."""
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(2, total_steps),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        anneal_strategy=anneal_strategy,
        cycle_momentum=cycle_momentum,
    )
