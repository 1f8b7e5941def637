"""The training pass over completion tokens, written out layer by layer over the model's own modules.

After the shared prompt pass (``shared_prompts``), every rollout row runs its completion tokens
through the text decoder, attending to its prompt's keys and values. The stock forward does that
with a 4-D additive mask over prompt + completion positions, the KV heads repeated for every
query head. Here, on the same modules (norms, projections, MLP: LoRA layers too), so the values
and gradients are the stock forward's (tests/integration/test_fast_logprobs.py, float64):

* rotary angles come from the model's own rotary module on the model's own positions;
* attention is one ``scaled_dot_product_attention`` per layer with the KV heads shared
  (``enable_gqa``), no repeated keys; when no prompt is left-padded and the completion is longer
  than the prompt it needs no mask at all: the queries are preceded by one zero query per prompt
  position, which makes the causal ("top-left") mask of the fused kernel the completion's own
  mask (query i sees every prompt key and the completion keys up to i), and lets it skip the
  blocks above the diagonal; the zero queries' outputs are dropped (they receive no gradient).
  Otherwise (left-padded prompts, or short completions after a long prompt, where the zero
  queries would cost more than they save) an explicit boolean mask.

Used on CPU (``shared_prompts``); a GPU keeps the stock call and its fused kernels.

Completion padding needs no mask: padding sits after each row's last real token, and a causal
model never attends forward, so real positions never see it; padded positions are masked out of
the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def unsupported_decoder_reason(text: nn.Module | None) -> str | None:
    """Why a text decoder's layers cannot be called part by part here (None: they can).

    Needs Qwen2-style layers (``self_attn`` with q/k/v/o projections, ``mlp``, two RMS norms),
    full attention in every layer, the default rope and no attention dropout.
    """
    if text is None or not hasattr(text, "layers") or not hasattr(text, "rotary_emb"):
        return "no language_model with layers and a rotary module"
    config = text.config
    if getattr(config, "use_sliding_window", False) or any(
        kind != "full_attention" for kind in getattr(config, "layer_types", None) or ()
    ):
        return "sliding-window attention layers"
    rope_type = getattr(text.rotary_emb, "rope_type", "default")
    if rope_type != "default":
        return f"rope type {rope_type!r}"
    if getattr(config, "attention_dropout", 0.0):
        return "attention dropout"
    attn = text.layers[0].self_attn
    if not all(hasattr(attn, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj", "scaling")):
        return "attention without q/k/v/o projections"
    return None


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of the last dimension (the HF ``rotate_half`` convention)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


def _attention(q: Tensor, keys: Tensor, values: Tensor, scale: float, prompt_valid: Tensor | None) -> Tensor:
    """q [N, heads, T, d] over keys/values [N, KV heads, P + T, d]: prompt keys all, completion keys causally."""
    n, heads, t, d = q.shape
    prompt = keys.shape[2] - t
    # The zero queries cost (P + T)^2 / 2 score entries against T (P + T) with a mask: fewer
    # only when the completion is longer than the prompt.
    if prompt_valid is None and prompt < t:
        padded = torch.cat([q.new_zeros(n, heads, prompt, d), q], dim=2)
        out = F.scaled_dot_product_attention(
            padded, keys, values, is_causal=True, scale=scale, enable_gqa=True
        )
        return out[:, :, prompt:]
    if prompt_valid is None:
        prompt_valid = torch.ones(n, prompt, dtype=torch.bool, device=q.device)
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    mask = torch.cat([prompt_valid[:, None, :].expand(n, t, prompt), causal.expand(n, t, t)], dim=2)
    return F.scaled_dot_product_attention(
        q, keys, values, attn_mask=mask[:, None], scale=scale, enable_gqa=True
    )


def completion_hidden(
    text: nn.Module,
    prompt_kv: list[tuple[Tensor, Tensor]],
    ids: Tensor,
    positions: Tensor,
    prompt_valid: Tensor | None,
) -> Tensor:
    """Final hidden states [N, T, H] of completion tokens ``ids`` [N, T] after their prompts.

    ``prompt_kv``: per layer, the prompt keys (rotated) and values of each row, [N, KV heads, P, d];
    ``positions``: the tokens' multimodal rotary positions [3, N, T]; ``prompt_valid``: [N, P]
    real prompt positions, or None when no prompt is padded.
    """
    h = text.embed_tokens(ids)
    cos, sin = text.rotary_emb(h, positions)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    n, t = ids.shape
    for layer, (prompt_keys, prompt_values) in zip(text.layers, prompt_kv, strict=True):
        attn = layer.self_attn
        d = attn.head_dim
        x = layer.input_layernorm(h)
        q = rotate(attn.q_proj(x).view(n, t, -1, d).transpose(1, 2), cos, sin)
        k = rotate(attn.k_proj(x).view(n, t, -1, d).transpose(1, 2), cos, sin)
        v = attn.v_proj(x).view(n, t, -1, d).transpose(1, 2)
        keys = torch.cat([prompt_keys, k], dim=2)
        values = torch.cat([prompt_values, v], dim=2)
        out = _attention(q, keys, values, attn.scaling, prompt_valid)
        h = h + attn.o_proj(out.transpose(1, 2).reshape(n, t, -1))
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return text.norm(h)
