"""Micro-batches of a rollout by token budget, for the log-prob passes.

The forward of N rows over P prompt + T completion positions holds activations (and, in the
training pass, the graph) for N * (P + T) tokens at once; at the paper's scale (1280 rows, up to
4096 positions) that does not fit. Rows are cut into consecutive micro-batches whose padded size
stays within a token budget, and each micro-batch's completion columns are trimmed to its longest
completion. Trimming only removes positions *after* every real token of the micro-batch, which a
causal model never attends to, so the log-probs equal the unbatched ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from speciarl.core.rollouts import Rollout
from speciarl.policy.policy import token_logprobs


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


def trimmed(rollout: Rollout) -> Rollout:
    """The rollout with completion columns cut after its longest completion (at least one column)."""
    width = max(int(rollout.completion_mask.sum(-1).max()) if rollout.completion_mask.numel() else 1, 1)
    if width >= rollout.completion_ids.shape[1]:
        return rollout
    return Rollout(
        prompts=rollout.prompts,
        completion_ids=rollout.completion_ids[:, :width],
        completion_mask=rollout.completion_mask[:, :width],
        texts=rollout.texts,
        truncated=rollout.truncated,
        group_size=rollout.group_size,
        extras=rollout.extras,
        sampler_logp=None if rollout.sampler_logp is None else rollout.sampler_logp[:, :width],
    )


def micro_batches(rollout: Rollout, token_budget: int | None) -> list[tuple[list[int], Rollout]]:
    """(rows, trimmed sub-rollout) pairs covering every row once, in order, each within the budget.

    A row's cost is its prompt width plus its completion length; ``token_budget`` None keeps the
    whole rollout as one micro-batch (still trimmed).
    """
    n = rollout.completion_ids.shape[0]
    if n == 0:
        return []
    prompt_width = rollout.prompts.input_ids.shape[1]
    lengths = (rollout.completion_mask.sum(-1) + prompt_width).tolist()
    chunks = token_budget_chunks([int(x) for x in lengths], token_budget)
    if len(chunks) == 1:
        return [(chunks[0], trimmed(rollout))]
    return [(rows, trimmed(rollout.select(rows))) for rows in chunks]


def padded_to(values: Tensor, width: int) -> Tensor:
    """[N, w] -> [N, width] with zeros on the right."""
    if values.shape[1] == width:
        return values
    out = values.new_zeros((values.shape[0], width))
    out[:, : values.shape[1]] = values
    return out


def chunked_token_logprobs(
    model: torch.nn.Module,
    rollout: Rollout,
    suppress_ids: Sequence[int] = (),
    temperature: float = 1.0,
    token_budget: int | None = None,
    completion_pass: bool | None = None,
) -> Tensor:
    """``token_logprobs`` of the whole rollout, computed micro-batch by micro-batch; [N, T].

    ``completion_pass``: the route's choice (``logprob_route``; None: by device).
    """
    width = rollout.completion_ids.shape[1]
    parts = micro_batches(rollout, token_budget)
    out = None
    for rows, part in parts:
        logp = padded_to(
            token_logprobs(model, part, suppress_ids, temperature, completion_pass=completion_pass), width
        )
        if out is None:
            out = logp.new_zeros((rollout.completion_ids.shape[0], width))
        out[torch.as_tensor(rows, device=logp.device)] = logp
    if out is None:
        return torch.zeros((0, width))
    return out
