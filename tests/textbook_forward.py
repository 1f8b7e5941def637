"""The textbook log-probs that the fast paths are checked against: every row's whole sequence
(prompt + completion) through the stock model, suppressed tokens masked, temperature applied."""

from __future__ import annotations

import torch


def textbook_logprobs(policy, rollout, temperature: float = 1.0) -> torch.Tensor:
    """log p of each completion token under the stock forward, shape (rows, completion width)."""
    p, ids, mask = rollout.prompts, rollout.completion_ids, rollout.completion_mask
    logits = policy.model(
        input_ids=torch.cat([p.input_ids, ids], 1),
        attention_mask=torch.cat([p.attention_mask, mask.long()], 1),
        mm_token_type_ids=torch.cat([p.mm_token_type_ids, torch.zeros_like(ids)], 1),
        pixel_values=p.pixel_values,
        image_grid_thw=p.image_grid_thw,
        use_cache=False,
    ).logits
    logits = logits[:, p.input_ids.shape[1] - 1 : -1] / temperature
    logits[..., policy.suppress_ids] = float("-inf")
    return torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
