"""Non-finite steps are never applied, never saved, and stop the run when they persist.

The update (``speciarl.rl.update``) skips an optimiser step whose loss or gradient norm is NaN or
infinite: the weights and the optimiser state stay as they were. :class:`NonFiniteGuard` counts
such steps in a row and stops the run after ``module.max_nonfinite_steps`` of them, naming the
step, the quantity and the likely cause. :func:`first_nonfinite` is the last line of defence
before anything is written: a checkpoint or an exported policy holding a non-finite tensor is
refused (:class:`NonFiniteStateError`), so the previous ``last.ckpt`` stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

LIKELY_CAUSE = (
    "likely causes: a learning rate far too high for this model (optimizer.lr), an overflow in "
    "half precision (try trainer.precision=32-true or bf16), or a reward/advantage that is not finite"
)


class NonFiniteStepError(FloatingPointError):
    """Too many optimiser steps in a row had a non-finite loss or gradient norm."""


class NonFiniteStateError(FloatingPointError):
    """A checkpoint or export was about to hold a non-finite tensor; nothing was written."""


class NonFiniteGuard:
    """Counts skipped (non-finite) optimiser steps in a row; raises after ``max_in_row`` of them.

    Args:
        max_in_row (int): skipped optimiser steps in a row that stop the run (>= 1).
    """

    def __init__(self, max_in_row: int = 3) -> None:
        if int(max_in_row) < 1:
            raise ValueError(f"module.max_nonfinite_steps must be at least 1, got {max_in_row}")
        self.max_in_row = int(max_in_row)
        self.in_row = 0

    def record(self, step: int, outcomes: Iterable[str | None]) -> int:
        """Record one training step's optimiser steps, in order.

        Args:
            step (int): the training step (global step when it began).
            outcomes (iterable of str or None): per optimiser step, None when it was applied, or
                the name of the non-finite quantity (``"loss"``, ``"grad_norm"``) when skipped.

        Returns:
            int: how many of this step's optimiser steps were skipped.

        Raises:
            NonFiniteStepError: when ``max_in_row`` skipped steps follow each other.
        """
        skipped = 0
        for quantity in outcomes:
            if quantity is None:
                self.in_row = 0
                continue
            skipped += 1
            self.in_row += 1
            if self.in_row >= self.max_in_row:
                raise NonFiniteStepError(
                    f"step {step}: the {quantity} was not finite in {self.in_row} optimiser steps in a "
                    f"row (module.max_nonfinite_steps={self.max_in_row}); none of them was applied and "
                    f"the saved checkpoints hold the last finite weights. {LIKELY_CAUSE}"
                )
        return skipped


def _tensors(value: Any, prefix: str) -> Iterable[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts / lists, with a dotted name."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{prefix}.{i}")


def first_nonfinite(state: Any, prefix: str = "") -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity (None: all finite)."""
    for name, tensor in _tensors(state, prefix):
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def refuse_nonfinite(state: Any, what: str, prefix: str = "") -> None:
    """Raise :class:`NonFiniteStateError` when ``state`` holds a non-finite tensor.

    Args:
        state: a state dict (or a checkpoint: nested dicts and lists of tensors).
        what (str): what was about to be written (a path), for the message.
    """
    name = first_nonfinite(state, prefix)
    if name is not None:
        raise NonFiniteStateError(
            f"refusing to write {what}: tensor {name} is not finite (NaN or inf); the previous "
            f"files are kept. {LIKELY_CAUSE}"
        )
