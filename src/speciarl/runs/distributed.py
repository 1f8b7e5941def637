"""Reductions that make a multi-rank (or micro-batched) update equal the single-process one.

DDP and FSDP average gradients over the W ranks. A loss that each rank normalises by its own
token count is then a mean of per-rank means, which is not the batch's token mean when ranks hold
different numbers of tokens (TRL's ``dapo`` normaliser fixes the same problem the same way). Here
every partial loss (a rank's share, or a micro-batch's share of it) is computed with the plain
aggregation on its rows and then multiplied by

    weight = W * n_part / n_global

where n counts the units the aggregation averages over (tokens for ``token_mean``, sequences for
the sequence-mean modes), summed over every rank. The W undoes DDP's averaging, so the summed
gradient is exactly that of the whole batch in one process. An aggregation that is a plain sum over
rows (units ``none``: ``token_sum_over_max_length``) needs no share: every part weighs W.

Everything here is a no-op in a single process; collectives are only issued when
``torch.distributed`` is initialised with more than one rank, and every rank must call them the
same number of times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from speciarl.rl.losses import LOSS_AGGREGATIONS


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


def aggregation_units(mask: Tensor, loss_agg: str) -> Tensor:
    """What ``loss_agg`` averages over (its registered units): the mask's token count, or its row
    count (also for units ``none``, where it only tells an empty part from a full one)."""
    if loss_agg not in LOSS_AGGREGATIONS:
        raise ValueError(
            f"unknown loss aggregation {loss_agg!r}: expected one of {sorted(LOSS_AGGREGATIONS)}"
        )
    if LOSS_AGGREGATIONS[loss_agg].units == "tokens":
        return mask.sum().to(torch.float64)
    return torch.tensor(float(mask.shape[0]), dtype=torch.float64, device=mask.device)


def partial_loss_weight(local_units: float, global_units: float, ranks: int, additive: bool = False) -> float:
    """weight = W * n_part / n_global (0 when the batch has no units at all); W for an ``additive`` one."""
    if global_units <= 0:
        return 0.0
    if additive:
        return float(ranks)
    return ranks * float(local_units) / float(global_units)


def is_additive(loss_agg: str) -> bool:
    """True for an aggregation that sums over rows (units ``none``): its parts add up unweighted."""
    return LOSS_AGGREGATIONS[loss_agg].units == "none"


def token_budget_chunks(lengths: Sequence[int], budget: int | None) -> list[list[int]]:
    """Consecutive row groups whose padded size rows * max(length) stays within ``budget`` tokens.

    A row longer than the budget gets a chunk of its own; ``budget`` None or <= 0 gives one chunk.
    """
    rows = list(range(len(lengths)))
    if not budget or budget <= 0 or not rows:
        return [rows] if rows else []
    chunks: list[list[int]] = []
    current: list[int] = []
    widest = 0
    for row in rows:
        grown = max(widest, lengths[row])
        if current and grown * (len(current) + 1) > budget:
            chunks.append(current)
            current, widest = [], 0
            grown = lengths[row]
        current.append(row)
        widest = grown
    chunks.append(current)
    return chunks


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (a list of one in a single process)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def rng_state() -> dict[str, Any]:
    """The process's random states: torch (CPU and every CUDA device), numpy and python."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # Plain types only: checkpoints load with torch.load(weights_only=True), which refuses arrays.
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def layer_classes(
    names: Sequence[str], module: str = "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl"
) -> set[type]:
    """The block classes FSDP shards one by one (its ``auto_wrap_policy``), looked up by name."""
    import importlib

    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise ValueError(f"{module} has no class {missing[0]!r}: set trainer.strategy.auto_wrap_policy.names")
    return {getattr(mod, n) for n in names}
