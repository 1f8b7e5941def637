"""Run each distinct prompt once in the log-prob passes, however many rollouts continue it.

A group's G rollouts share their prompt (image tokens and text), and for a VLM the prompt is
most of the sequence: here 28 prompt tokens against ~7 response tokens. The stock forward
recomputes the prompt for each of the G rows. Instead the prompt rows run once with a KV cache,
the cache is indexed out to the G rows (an autograd-tracked gather), and only the completion
tokens run per row, attending to the shared prompt keys and values. Gradients from all G rows
flow back through the gather into the one prompt pass, so values and gradients equal the stock
forward's (checked in float64 by tests/integration/test_fast_logprobs.py), for a prompt cost
divided by G.

Positions come from the model's own multimodal rope index over the full sequences, so this
needs a Qwen2-VL-style model (``get_rope_index``); anything else takes the stock path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from speciarl.policy.completion_pass import completion_hidden, unsupported_decoder_reason
from speciarl.policy.shared_images import distinct_image_index, image_inputs


def prompt_owner(
    input_ids: Tensor, attention_mask: Tensor, pixel_values: Tensor, image_grid_thw: Tensor
) -> list[int]:
    """For every row, the index of the distinct prompt it repeats; equal neighbouring rows are one prompt.

    Rows are the same prompt when their tokens, padding and (single) image are all equal.
    """
    image_of = distinct_image_index(pixel_values, image_grid_thw)
    owner: list[int] = []
    distinct = -1
    for row in range(input_ids.shape[0]):
        same = (
            row > 0
            and image_of[row] == image_of[row - 1]
            and torch.equal(input_ids[row], input_ids[row - 1])
            and torch.equal(attention_mask[row], attention_mask[row - 1])
        )
        if not same:
            distinct += 1
        owner.append(distinct)
    return owner


def _checkpointing(module: torch.nn.Module) -> bool:
    # Checkpointed layers turn the KV cache off, which this path relies on.
    return any(getattr(m, "gradient_checkpointing", False) for m in module.modules())


def _path_allowed(decoder: torch.nn.Module, prompt: dict[str, Tensor], n: int) -> bool:
    """Whether the shared-prompt path may run: several rows, one image each, left padding, no checkpointing."""
    return not (
        n < 2
        or not hasattr(decoder, "get_rope_index")
        or prompt["image_grid_thw"].shape[0] != n
        or not bool(
            prompt["attention_mask"][:, -1].bool().all()
        )  # left padding: the last prompt column is real
        or _checkpointing(decoder)
    )


def _rope_positions(
    decoder: torch.nn.Module, prompt: dict[str, Tensor], ids: Tensor, full_attention: Tensor
) -> Tensor:
    """Multimodal rotary positions of every row's prompt and completion, as one sequence."""
    with torch.no_grad():
        positions, _ = decoder.get_rope_index(
            torch.cat([prompt["input_ids"], ids], dim=1),
            mm_token_type_ids=torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(ids)], dim=1),
            image_grid_thw=prompt["image_grid_thw"],
            attention_mask=full_attention,
        )
    return positions


def _rows_after_prompt(
    decoder: torch.nn.Module,
    cache: Any,
    owner_index: Tensor,
    ids: Tensor,
    positions: Tensor,
    full_attention: Tensor,
    completion_pass: bool | None,
) -> Tensor:
    """[N, T-1, H] hidden states of each row's completion tokens (all but the last) after its shared prompt.

    ``completion_pass`` None: our layer pass on CPU only, where it is measured; a GPU keeps the
    decoder's own cached call and its fused kernels (which of them takes a GQA mask varies with
    torch: a math fallback would store scores).
    """
    prompt_attention = full_attention[:, : full_attention.shape[1] - ids.shape[1]]
    use_pass = ids.device.type == "cpu" if completion_pass is None else completion_pass
    text = getattr(decoder, "language_model", None)
    if use_pass and unsupported_decoder_reason(text) is None:
        # Each row's prompt keys and values (autograd-tracked gathers) and its completion tokens.
        kv = [(layer.keys[owner_index], layer.values[owner_index]) for layer in cache.layers]
        valid = None if bool(prompt_attention.bool().all()) else prompt_attention.bool()
        return completion_hidden(text, kv, ids[:, :-1], positions, valid)
    cache.batch_select_indices(owner_index)
    return decoder(
        input_ids=ids[:, :-1],
        attention_mask=full_attention[:, :-1],
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    ).last_hidden_state


def shared_prompt_hidden(
    decoder: torch.nn.Module,
    encoder_owner: torch.nn.Module,
    prompt: dict[str, Tensor],
    ids: Tensor,
    mask: Tensor,
    completion_pass: bool | None = None,
) -> Tensor | None:
    """[N, T, H] hidden states that predict each completion token, each distinct prompt run once.

    ``decoder`` is the multimodal backbone (``model.model`` of a Qwen2.5-VL), ``encoder_owner``
    the module whose ``get_image_features`` encodes images; ``prompt`` holds left-padded
    ``input_ids``, ``attention_mask``, ``mm_token_type_ids``, ``pixel_values`` and
    ``image_grid_thw`` with one image per row. Returns None when the batch has no repeated
    prompt or the model does not allow the path (then run the plain forward).
    ``completion_pass``: the completion tokens through ``completion_pass.completion_hidden``
    where the decoder allows it (None: on CPU only), else the decoder's own cached call.
    """
    from transformers.cache_utils import DynamicCache

    input_ids, attention = prompt["input_ids"], prompt["attention_mask"]
    n, width = ids.shape
    if not _path_allowed(decoder, prompt, n):
        return None
    owner = prompt_owner(input_ids, attention, prompt["pixel_values"], prompt["image_grid_thw"])
    if owner[-1] + 1 == n:
        return None
    owner_index = torch.as_tensor(owner, device=ids.device)
    first = [owner.index(d) for d in range(owner[-1] + 1)]
    first_index = torch.as_tensor(first, device=ids.device)
    prompt_len = input_ids.shape[1]

    full_attention = torch.cat([attention, mask.to(attention.dtype)], dim=1)
    positions = _rope_positions(decoder, prompt, ids, full_attention)
    blocks = torch.split(prompt["pixel_values"], prompt["image_grid_thw"].prod(-1).tolist())
    images: dict[str, Any] = image_inputs(
        encoder_owner, torch.cat([blocks[i] for i in first]), prompt["image_grid_thw"][first_index]
    )
    cache = DynamicCache(config=decoder.config.get_text_config())
    prompt_out = decoder(
        input_ids=input_ids[first_index],
        attention_mask=attention[first_index],
        mm_token_type_ids=prompt["mm_token_type_ids"][first_index],
        position_ids=positions[:, first_index, :prompt_len],
        past_key_values=cache,
        use_cache=True,
        **images,
    )
    # The last prompt position predicts the first completion token.
    hidden = [prompt_out.last_hidden_state[:, -1:][owner_index]]
    if width > 1:
        completion_positions = positions[:, :, prompt_len:-1]
        hidden.append(
            _rows_after_prompt(
                decoder, cache, owner_index, ids, completion_positions, full_attention, completion_pass
            )
        )
    return torch.cat(hidden, dim=1)
