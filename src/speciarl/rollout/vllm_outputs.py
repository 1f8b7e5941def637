"""vLLM's outputs as our ``Rollout``: completion tokens, texts and the sampler's log-probs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from speciarl.core.rollouts import Rollout
from speciarl.core.samples import Sample
from speciarl.policy.policy import Policy


def rollout_from_outputs(
    policy: Policy, samples: Sequence[Sample], outputs: Sequence[Any], group_size: int
) -> Rollout:
    """Build the module's ``Rollout`` from vLLM ``RequestOutput``s (one per sample, in order).

    Uses each output's ``prompt_token_ids`` and, for each of its ``group_size`` completions,
    ``token_ids`` and ``finish_reason`` (``"stop"`` or ``"length"``).
    """
    if len(outputs) != len(samples):
        raise ValueError(f"{len(outputs)} vLLM outputs for {len(samples)} prompts")
    prompts = policy.encode_prompts(samples)
    for i, out in enumerate(outputs):
        ours = prompts.input_ids[i][prompts.attention_mask[i].bool()].tolist()
        if list(out.prompt_token_ids) != ours:
            raise RuntimeError(
                f"vLLM tokenised prompt {i} ({samples[i].sample_id}) differently from the policy's processor "
                f"({len(out.prompt_token_ids)} vs {len(ours)} tokens): the training log-probs would be "
                "computed on another prompt. Check that vLLM reads the same processor config (model.path) "
                "and image size limits."
            )
        if len(out.outputs) != group_size:
            raise ValueError(
                f"vLLM returned {len(out.outputs)} completions for prompt {i}, expected {group_size}"
            )
    rows = [c for out in outputs for c in out.outputs]
    width = max(1, max(len(c.token_ids) for c in rows))
    ids = torch.full((len(rows), width), policy.eos_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, completion in enumerate(rows):
        n = len(completion.token_ids)
        ids[r, :n] = torch.as_tensor(list(completion.token_ids), dtype=torch.long)
        mask[r, :n] = True  # through the stop token: its probability is part of the policy's choice
    truncated = torch.tensor([c.finish_reason != "stop" for c in rows])
    device = prompts.input_ids.device
    sampler_logp = sampled_logprobs(rows, width)
    return Rollout(
        prompts=prompts.repeat(group_size),
        completion_ids=ids.to(device),
        completion_mask=mask.to(device),
        texts=policy.decode(ids, mask),
        truncated=truncated.to(device),
        group_size=group_size,
        sampler_logp=None if sampler_logp is None else sampler_logp.to(device),
    )


def sampled_logprobs(completions: Sequence[Any], width: int) -> torch.Tensor | None:
    """[N, width] log-probs vLLM reported for each sampled token (``logprobs=0``); None if absent."""
    if any(getattr(c, "logprobs", None) is None for c in completions):
        return None
    out = torch.zeros((len(completions), width), dtype=torch.float32)
    for r, completion in enumerate(completions):
        if len(completion.logprobs) != len(completion.token_ids):
            raise ValueError(
                f"vLLM reported {len(completion.logprobs)} log-probs for {len(completion.token_ids)} tokens"
            )
        for t, (token, entry) in enumerate(zip(completion.token_ids, completion.logprobs, strict=True)):
            out[r, t] = float(entry[token].logprob)
    return out
