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


def _scores(
    project: Callable[[Tensor], Tensor], hidden: Tensor, banned: Tensor | None, temperature: float
) -> Tensor:
    """Float logits z / tau of [M, H] hidden states, banned ids at -inf; [M, V]."""
    logits = project(hidden)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    return logits


def _chosen_logprobs(
    project: Callable[[Tensor], Tensor],
    hidden: Tensor,
    ids: Tensor,
    banned: Tensor | None,
    temperature: float,
) -> Tensor:
    """log softmax(z / tau)[id] with z = project(h) and banned ids at -inf, for [M, H] hidden -> [M]."""
    # log_softmax + pick in one fused call: its backward is one [M, V] pass (the log-partition +
    # gather pair costs three).
    return -F.cross_entropy(_scores(project, hidden, banned, temperature), ids, reduction="none")


def _chosen_with_entropy(
    project: Callable[[Tensor], Tensor],
    hidden: Tensor,
    ids: Tensor,
    banned: Tensor | None,
    temperature: float,
) -> Tensor:
    """[M, 2]: the chosen token's log-prob and the distribution's entropy, from one chunk of logits."""
    logits = _scores(project, hidden, banned, temperature)
    picked = -F.cross_entropy(logits, ids, reduction="none")
    return torch.stack([picked, entropy_from_logits(logits)], dim=-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """H = logsumexp(z) - sum_v softmax(z)_v z_v over the last dim; -inf logits (suppressed) add 0."""
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    probs = torch.exp(logits - lse)
    # where, not multiply: a suppressed logit is -inf and 0 * -inf is nan.
    finite = torch.where(torch.isfinite(logits), logits, torch.zeros_like(logits))
    return lse.squeeze(-1) - (probs * finite).sum(-1)


def chunk_count(tokens: int, vocab_size: int, max_logits: int = DEFAULT_MAX_LOGITS) -> int:
    """How many vocabulary projections ``completion_logprobs`` makes for ``tokens`` real positions."""
    chunk = max(1, max_logits // vocab_size)
    return max(1, -(-tokens // chunk))


def completion_logprobs(
    project: Callable[[Tensor], Tensor],
    hidden: Tensor,
    ids: Tensor,
    mask: Tensor,
    vocab_size: int,
    suppress_ids: Sequence[int] = (),
    temperature: float = 1.0,
    max_logits: int = DEFAULT_MAX_LOGITS,
    with_entropy: bool = False,
) -> Tensor:
    """[N, T] log-probs of ``ids`` given the hidden states that predict them ([N, T, H]); 0 where ``mask`` is False.

    ``project`` maps hidden states to vocabulary logits (the LM head). At most ``max_logits``
    logits are alive at once (one chunk of real positions), whatever N and T are.
    ``with_entropy``: [N, T, 2], the log-probs and the entropy of each position's distribution
    (from the same chunk of logits).
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
    pick = _chosen_with_entropy if with_entropy else _chosen_logprobs
    if real_ids.numel() <= chunk:
        picked = pick(project, real_hidden, real_ids, banned, temperature)
    else:
        parts = []
        for start in range(0, real_ids.numel(), chunk):
            args = (
                pick,
                project,
                real_hidden[start : start + chunk],
                real_ids[start : start + chunk],
                banned,
                temperature,
            )
            if torch.is_grad_enabled() and real_hidden.requires_grad:
                parts.append(checkpoint(*args, use_reentrant=False))
            else:
                parts.append(args[0](*args[1:]))
        picked = torch.cat(parts)
    out = torch.zeros((*ids.shape, *picked.shape[1:]), dtype=picked.dtype, device=picked.device)
    return out.masked_scatter(mask.view(*mask.shape, *([1] * (picked.dim() - 1))).expand_as(out), picked)
