"""Prefill each prompt once before sampling its G rollouts.

``generate(num_return_sequences=G)`` copies every prompt G times before the prefill, so the
prompt (image tokens included) runs through the language model G times: most of a rollout's
cost when responses are short. Here the prompts run once, all but their last token, into a KV
cache; the cache is repeated to the G rows and ``generate`` continues from it (the standard
"reuse a prompt cache" use of ``past_key_values``), feeding only each row's last prompt token.
Same logits as the stock call (to ~1e-6 in float32), hence the same samples for the same seed:
tests/integration/test_shared_prefill.py checks both.

Qwen2-VL-style models need their multimodal rope offsets for the continuation: they are
computed from the full prompts and set where ``generate`` reads them. Other models, and a
model with gradient checkpointing on (no cache) and sharded (FSDP) models take the stock call.
"""

from __future__ import annotations

from typing import Any

import torch

from speciarl.core.rollouts import PromptBatch
from speciarl.policy.shared_images import direct_calls_allowed


@torch.no_grad()
def prefilled_generate_inputs(
    model: torch.nn.Module, prompts: PromptBatch, group_size: int
) -> dict[str, Any] | None:
    """``generate`` kwargs for B prompts x G rollouts with each prompt prefilled once; None: use the stock call."""
    decoder = prefill_backbone(model, prompts) if group_size > 1 else None
    if decoder is None:
        return None
    cache, deltas = prefill_prompts(decoder, prompts)
    cache.batch_repeat_interleave(group_size)
    # generate continues the positions from these offsets once a cache is present.
    decoder.rope_deltas = deltas.repeat_interleave(group_size, dim=0)
    rows = prompts.repeat(group_size)
    return {
        "input_ids": rows.input_ids,
        "attention_mask": rows.attention_mask,
        "mm_token_type_ids": rows.mm_token_type_ids,
        "image_grid_thw": rows.image_grid_thw,
        "past_key_values": cache,
    }


def prefill_backbone(model: torch.nn.Module, prompts: PromptBatch) -> torch.nn.Module | None:
    """The multimodal backbone to prefill with (``model.model`` of a Qwen2.5-VL); None: take the stock call."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(base, "model", None)
    if (
        decoder is None
        or not hasattr(decoder, "get_rope_index")
        or not hasattr(decoder, "rope_deltas")
        or prompts.input_ids.shape[1] < 2
        or not bool(prompts.attention_mask[:, -1].bool().all())  # left padding: last column is real
        or any(getattr(m, "gradient_checkpointing", False) and m.training for m in decoder.modules())
        or not direct_calls_allowed(model)
    ):
        return None
    return decoder


@torch.no_grad()
def prefill_prompts(decoder: torch.nn.Module, prompts: PromptBatch) -> tuple[Any, torch.Tensor]:
    """Run every prompt but its last token into a KV cache, once per prompt; (cache, rope deltas [B, 1]).

    The deltas are the multimodal rope offsets: a text token at sequence index i of row b sits at
    rotary position ``i - padding_b + delta_b`` (the image tokens' grid positions shift the rest).
    """
    from transformers.cache_utils import DynamicCache

    positions, deltas = decoder.get_rope_index(
        prompts.input_ids,
        mm_token_type_ids=prompts.mm_token_type_ids,
        image_grid_thw=prompts.image_grid_thw,
        attention_mask=prompts.attention_mask,
    )
    cache = DynamicCache(config=decoder.config.get_text_config())
    decoder(
        input_ids=prompts.input_ids[:, :-1],
        attention_mask=prompts.attention_mask[:, :-1],
        mm_token_type_ids=prompts.mm_token_type_ids[:, :-1],
        position_ids=positions[:, :, :-1],
        pixel_values=prompts.pixel_values,
        image_grid_thw=prompts.image_grid_thw,
        past_key_values=cache,
        use_cache=True,
    )
    return cache, deltas
