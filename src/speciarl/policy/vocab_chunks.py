"""Log-probs of chosen tokens without holding every position's full-vocabulary logits at once.

For a 150k-token vocabulary, [rows, positions, vocab] float logits are gigabytes: 128 rollouts of
1024 tokens make 80 GB. Only the chosen token's log-prob and the log-partition are needed, so the
real (unmasked) positions are projected to the vocabulary a chunk at a time; with gradients on,
each chunk runs under activation checkpointing, so only one chunk's logits exist at a time and
its projection is recomputed in the backward pass. Below the budget it is one plain pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

# 2**26 float32 logits = 256 MiB: far above the tiny model's needs (one pass), far below a 7B's.
DEFAULT_MAX_LOGITS = 2**26


def _chosen_logprobs(
    project: Callable[[Tensor], Tensor],
    hidden: Tensor,
    ids: Tensor,
    banned: Tensor | None,
    temperature: float,
) -> Tensor:
    """log softmax(z / tau)[id] with z = project(h) and banned ids at -inf, for [M, H] hidden -> [M]."""
    logits = project(hidden)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    # log_softmax + pick in one fused call: its backward is one [M, V] pass (the log-partition +
    # gather pair costs three).
    return -F.cross_entropy(logits, ids, reduction="none")


def completion_logprobs(
    project: Callable[[Tensor], Tensor],
    hidden: Tensor,
    ids: Tensor,
    mask: Tensor,
    vocab_size: int,
    suppress_ids: Sequence[int] = (),
    temperature: float = 1.0,
    max_logits: int = DEFAULT_MAX_LOGITS,
) -> Tensor:
    """[N, T] log-probs of ``ids`` given the hidden states that predict them ([N, T, H]); 0 where ``mask`` is False.

    ``project`` maps hidden states to vocabulary logits (the LM head). At most ``max_logits``
    logits are alive at once (one chunk of real positions), whatever N and T are.
    """
    if max_logits < vocab_size:
        raise ValueError(f"max_logits ({max_logits}) must hold at least one row of {vocab_size} logits")
    banned = None
    if suppress_ids:
        banned = torch.zeros(vocab_size, dtype=torch.bool, device=hidden.device)
        banned[list(suppress_ids)] = True
    real_hidden = hidden[mask]
    real_ids = ids[mask]
    chunk = max(1, max_logits // vocab_size)
    if real_ids.numel() <= chunk:
        picked = _chosen_logprobs(project, real_hidden, real_ids, banned, temperature)
    else:
        parts = []
        for start in range(0, real_ids.numel(), chunk):
            args = (
                project,
                real_hidden[start : start + chunk],
                real_ids[start : start + chunk],
                banned,
                temperature,
            )
            if torch.is_grad_enabled() and real_hidden.requires_grad:
                parts.append(checkpoint(_chosen_logprobs, *args, use_reentrant=False))
            else:
                parts.append(_chosen_logprobs(*args))
        picked = torch.cat(parts)
    out = torch.zeros(ids.shape, dtype=picked.dtype, device=picked.device)
    return out.masked_scatter(mask, picked)
