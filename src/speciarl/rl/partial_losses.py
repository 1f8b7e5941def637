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

The collectives themselves are in ``speciarl.core.distributed``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speciarl.rl.losses import LOSS_AGGREGATIONS


def aggregation_units(mask: Tensor, loss_agg: str) -> Tensor:
    """What ``loss_agg`` averages over (its registered units): the mask's token count, or its row
    count (also for units ``none``, where it only tells an empty part from a full one)."""
    if LOSS_AGGREGATIONS.lookup(loss_agg).units == "tokens":
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
    return LOSS_AGGREGATIONS.lookup(loss_agg).units == "none"
