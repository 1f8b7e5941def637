"""Process-group queries and collectives that are no-ops in a single process.

Collectives are only issued when ``torch.distributed`` is initialised with more than one rank,
and every rank must call them the same number of times. Used by the update (unit sums), the
vLLM backend (which rank owns an engine) and the module (gathered counters).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def world_size() -> int:
    """Number of ranks in the default process group (1 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def global_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def all_reduce_sum(values: Tensor) -> Tensor:
    """Sum of ``values`` over every rank (a copy; the input is left alone)."""
    out = values.detach().clone()
    if world_size() > 1:
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
    return out


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (a list of one in a single process)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, obj)
    return out
