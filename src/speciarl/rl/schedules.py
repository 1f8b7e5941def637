"""Learning-rate schedules, built from the optimiser (Hydra ``_partial_`` targets in conf/lr_scheduler).

The update steps the schedule once per optimiser step, so ``step`` below counts optimiser steps
(``trainer.max_steps`` of them in a run), not rollout batches.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def constant(optimizer: Optimizer) -> LambdaLR:
    """The configured learning rate at every step (the paper: constant, no warm-up)."""
    return LambdaLR(optimizer, lambda step: 1.0)


def cosine_with_warmup(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Linear warm-up from 0 over ``warmup_steps``, then a cosine decay to ``min_lr_ratio`` x lr.

    factor(s) = s / W                                              for s < W
              = r + (1 - r) * (1 + cos(pi * (s - W) / (T - W))) / 2  for W <= s <= T (then r)
    """
    if warmup_steps < 0 or total_steps <= 0:
        raise ValueError(f"need warmup_steps >= 0 and total_steps > 0, got {warmup_steps}, {total_steps}")
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be below total_steps ({total_steps})")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
