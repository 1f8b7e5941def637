"""Prompts and rollouts as tensors: what the policy encodes, the backends fill and the RL step reads.

Shared by ``policy`` (which encodes prompts and computes log-probs), ``rollout`` (which samples
completions), ``rl`` (which scores and trains on them) and ``evaluation``, so it lives here, below
all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class PromptBatch:
    """Encoded prompts for B samples (left-padded)."""

    input_ids: Tensor
    attention_mask: Tensor
    mm_token_type_ids: Tensor
    pixel_values: Tensor
    image_grid_thw: Tensor

    def model_inputs(self) -> dict[str, Tensor]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "mm_token_type_ids": self.mm_token_type_ids,
            "pixel_values": self.pixel_values,
            "image_grid_thw": self.image_grid_thw,
        }

    def to(self, device: torch.device | str) -> PromptBatch:
        """The same prompts on ``device``."""
        return PromptBatch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            mm_token_type_ids=self.mm_token_type_ids.to(device),
            pixel_values=self.pixel_values.to(device),
            image_grid_thw=self.image_grid_thw.to(device),
        )

    def repeat(self, times: int) -> PromptBatch:
        """Each prompt ``times`` times in a row (rows b*times ... b*times+times-1 are prompt b)."""
        if times == 1:
            return self
        blocks = torch.split(self.pixel_values, self.image_grid_thw.prod(-1).tolist())
        return PromptBatch(
            input_ids=self.input_ids.repeat_interleave(times, 0),
            attention_mask=self.attention_mask.repeat_interleave(times, 0),
            mm_token_type_ids=self.mm_token_type_ids.repeat_interleave(times, 0),
            pixel_values=torch.cat([b for b in blocks for _ in range(times)]),
            image_grid_thw=self.image_grid_thw.repeat_interleave(times, 0),
        )

    def select(self, rows: Sequence[int]) -> PromptBatch:
        """The prompts at ``rows`` (image blocks follow their rows)."""
        blocks = torch.split(self.pixel_values, self.image_grid_thw.prod(-1).tolist())
        index = torch.as_tensor(list(rows), dtype=torch.long)
        return PromptBatch(
            input_ids=self.input_ids[index],
            attention_mask=self.attention_mask[index],
            mm_token_type_ids=self.mm_token_type_ids[index],
            pixel_values=torch.cat([blocks[i] for i in rows]),
            image_grid_thw=self.image_grid_thw[index],
        )


@dataclass
class Rollout:
    """N = B * G completions of B prompts, row-major by prompt (G rows per prompt)."""

    prompts: PromptBatch  # already repeated to N rows
    completion_ids: Tensor  # [N, T], tokens after the first EOS replaced by EOS
    completion_mask: Tensor  # [N, T] bool, True up to and including the first EOS
    texts: list[str]
    truncated: Tensor  # [N] bool, no EOS within the token budget
    group_size: int
    extras: dict[str, Any] = field(default_factory=dict)
    # [N, T] log-probs the rollout engine reported for the tokens it sampled (None: not reported);
    # compared with the policy's recomputed ones (the train/inference mismatch, rl/update.py).
    sampler_logp: Tensor | None = None

    @property
    def num_groups(self) -> int:
        return self.completion_ids.shape[0] // self.group_size

    def select(self, rows: Sequence[int]) -> Rollout:
        index = torch.as_tensor(list(rows), dtype=torch.long)
        return Rollout(
            prompts=self.prompts.select(rows),
            completion_ids=self.completion_ids[index],
            completion_mask=self.completion_mask[index],
            texts=[self.texts[i] for i in rows],
            truncated=self.truncated[index],
            group_size=self.group_size,
            sampler_logp=None if self.sampler_logp is None else self.sampler_logp[index],
        )


def concat_rollouts(rollouts: Sequence[Rollout], pad_id: int, eos_id: int) -> Rollout:
    """Rows of several rollouts (same G) as one: prompts left-padded, completions right-padded.

    Padding follows generation's own conventions (prompt pad masked out of attention, completion
    positions after the end filled with EOS and masked), so log-probs of the concatenation equal
    those of the parts.
    """
    if not rollouts:
        raise ValueError("concat_rollouts needs at least one rollout")
    if len(rollouts) == 1:
        return rollouts[0]
    group_sizes = {r.group_size for r in rollouts}
    if len(group_sizes) != 1:
        raise ValueError(f"cannot concatenate rollouts of different group sizes {sorted(group_sizes)}")
    prompt_width = max(r.prompts.input_ids.shape[1] for r in rollouts)
    width = max(r.completion_ids.shape[1] for r in rollouts)

    def left(t: Tensor, value: int) -> Tensor:
        return torch.nn.functional.pad(t, (prompt_width - t.shape[1], 0), value=value)

    def right(t: Tensor, value: int | bool) -> Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    prompts = PromptBatch(
        input_ids=torch.cat([left(r.prompts.input_ids, pad_id) for r in rollouts]),
        attention_mask=torch.cat([left(r.prompts.attention_mask, 0) for r in rollouts]),
        mm_token_type_ids=torch.cat([left(r.prompts.mm_token_type_ids, 0) for r in rollouts]),
        pixel_values=torch.cat([r.prompts.pixel_values for r in rollouts]),
        image_grid_thw=torch.cat([r.prompts.image_grid_thw for r in rollouts]),
    )
    return Rollout(
        prompts=prompts,
        completion_ids=torch.cat([right(r.completion_ids, eos_id) for r in rollouts]),
        completion_mask=torch.cat([right(r.completion_mask, False) for r in rollouts]),
        texts=[t for r in rollouts for t in r.texts],
        truncated=torch.cat([r.truncated for r in rollouts]),
        group_size=rollouts[0].group_size,
        sampler_logp=(
            torch.cat([right(r.sampler_logp, 0.0) for r in rollouts])
            if all(r.sampler_logp is not None for r in rollouts)
            else None
        ),
    )
