"""Our own decode loop for Qwen2-VL-style policies: a preallocated KV cache, one hand-written step a token.

At long responses ``generate`` spends most of a rollout outside the model's arithmetic: its
dynamic cache concatenates every layer's keys and values onto a new tensor at each token, its
attention repeats the shared KV heads for every query head, and its sampler draws one
exponential variate per vocabulary entry. Here, on the same weights and the same distribution:

* each prompt is prefilled once (``shared_prefill.prefill_prompts``) and its cache copied into
  buffers of prompt + ``max_new_tokens`` positions, G rows per prompt; a step writes one column;
* a step calls the text decoder's own modules (norms, projections, MLP, LM head; LoRA layers
  too) in the order of the HF forward, with rotary angles read from a table (a text token's
  three multimodal positions are equal, so its rope is the plain one) and the query heads that
  share a KV head attending together, so the cache is never repeated; a small layer of plain
  linears runs q|k|v and gate|up as one matmul each (``_fused_weights``), and float32 keys are
  stored transposed for a single score matmul (``_attend``);
* the logits are processed as ``generate`` does (suppressed tokens, ``min_new_tokens``,
  temperature, then top-p with transformers' own warper) and drawn by ``sampler``:
  ``"multinomial"`` is generate's own draw, vectorised on CPU (``exponential_race``: the same
  samples for a seed), ``"inverse_cdf"`` one
  uniform per row against the float64 cumulative probabilities (the same distribution, for
  ~1/500 of the random numbers; other samples than generate's for a seed);
* a finished row is fed the pad token, as in ``generate``, and the loop ends once every row has
  finished: checked every token on CPU (free there), every ``CHECK_EVERY`` tokens on an
  accelerator (a host sync), the columns past the last EOS then dropped.

tests/integration/test_fast_decode.py checks both: the multinomial loop gives generate's samples,
and the reported log-probs equal the textbook full forward's in float64. Whatever the loop does
not model (another architecture, sliding-window layers, a scaled rope, a generation config with
further processors such as a repetition penalty, sharded models) takes ``generate``:
``unsupported_reason`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speciarl.core.rollouts import PromptBatch
from speciarl.policy.completion_pass import rotate, unsupported_decoder_reason
from speciarl.rollout.shared_prefill import prefill_backbone, prefill_prompts

SAMPLERS = ("inverse_cdf", "multinomial")
CHECK_EVERY = 8
# Key layouts: transposed for one score matmul (float32 / float64), plain for the fused attention.
TRANSPOSED_KEY_DTYPES = (torch.float32, torch.float64)
# Largest layer (q, k, v, gate, up weights) whose projections are copied into fused matrices.
FUSE_MAX_WEIGHTS = 1 << 22
# Generation-config fields the loop applies itself, or that do not shape the distribution; any
# other field set away from its default sends the call to ``generate``.
HANDLED_SETTINGS = frozenset(
    {
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "suppress_tokens",
        "do_sample",
        "temperature",
        "top_p",
        "top_k",
        "max_length",
        "max_new_tokens",
        "min_new_tokens",
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "transformers_version",
        "cache_implementation",
        "_from_model_config",
    }
)


@dataclass(frozen=True)
class DecodeSettings:
    """What one call samples: budget, end and pad tokens, the processors of ``generate`` we apply."""

    max_new_tokens: int
    eos_id: int
    pad_id: int
    suppress_ids: tuple[int, ...] = ()
    min_new_tokens: int = 0
    greedy: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    sampler: str = "multinomial"
    report_logprobs: bool = False

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")


@dataclass
class _Decoder:
    """The text decoder's modules and shapes, read off the HF model."""

    text: nn.Module  # embed_tokens, layers, norm, rotary_emb
    lm_head: nn.Module
    heads: int
    kv_heads: int
    head_dim: int
    scale: float
    fused: list  # per layer: _fused_weights or None
    transposed_keys: bool = True


def _parts(model: nn.Module, backbone: nn.Module) -> _Decoder | None:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    text, lm_head = getattr(backbone, "language_model", None), getattr(base, "lm_head", None)
    if text is None or lm_head is None or not hasattr(text, "layers"):
        return None
    attn = text.layers[0].self_attn
    heads = attn.config.num_attention_heads
    return _Decoder(
        text, lm_head, heads, attn.num_key_value_heads, attn.head_dim, attn.scaling, [None] * len(text.layers)
    )


def unsupported_reason(model: nn.Module, prompts: PromptBatch) -> str | None:
    """Why ``decode`` cannot run this model on these prompts (None: it can)."""
    backbone = prefill_backbone(model, prompts)
    if backbone is None:
        return "not a Qwen2-VL-style backbone callable part by part, or prompts not left-padded"
    parts = _parts(model, backbone)
    if parts is None:
        return "no language_model / lm_head to call"
    reason = unsupported_decoder_reason(parts.text)
    if reason is not None:
        return reason
    extra = sorted(set(model.generation_config.to_diff_dict()) - HANDLED_SETTINGS)
    if extra:
        return f"the generation config sets {extra}"
    return None


def _kv_buffers(cache, group_size: int, width: int, transposed: bool) -> list[tuple[Tensor, Tensor]]:
    """Per layer, (keys, values) buffers of ``width`` slots, B*G rows, holding the prefilled prompts.

    Values are [B*G, KV heads, width, head dim]; keys the same, or [B*G, KV heads, head dim, width]
    when ``transposed``.
    """
    buffers = []
    for layer in cache.layers:
        b, heads, length, dim = layer.keys.shape
        values = layer.values.new_empty(b * group_size, heads, width, dim)
        values.view(b, group_size, heads, width, dim)[:, :, :, :length] = layer.values[:, None]
        if transposed:
            keys = layer.keys.new_empty(b * group_size, heads, dim, width)
            keys.view(b, group_size, heads, dim, width)[..., :length] = layer.keys.transpose(2, 3)[:, None]
        else:
            keys = torch.empty_like(values)
            keys.view(b, group_size, heads, width, dim)[:, :, :, :length] = layer.keys[:, None]
        buffers.append((keys, values))
    return buffers


def _rope_tables(rotary: nn.Module, length: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos and sin [length, head dim] of text positions 0..length-1, computed as the HF rotary module does."""
    inv_freq = rotary.inv_freq.float()
    positions = torch.arange(length, device=inv_freq.device)
    freqs = positions[:, None].float() * inv_freq
    scaling = getattr(rotary, "attention_scaling", 1.0)
    cos, sin = freqs.cos() * scaling, freqs.sin() * scaling
    return torch.cat((cos, cos), -1).to(dtype), torch.cat((sin, sin), -1).to(dtype)


def _fused_weights(layer: nn.Module) -> tuple[Tensor, Tensor | None, Tensor] | None:
    """(q|k|v weight, q|k|v bias, gate|up weight) of a small layer of plain linears, one matmul each.

    Saves three calls a layer, which matters only where calls cost more than their arithmetic
    (small layers); a large layer (or a LoRA-wrapped one) keeps its modules, as the copies would
    cost gigabytes.
    """
    attn, mlp = layer.self_attn, layer.mlp
    linears = (attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj)
    if (
        any(type(m) is not nn.Linear for m in linears)
        or mlp.gate_proj.bias is not None
        or mlp.up_proj.bias is not None
        or sum(m.weight.numel() for m in linears) > FUSE_MAX_WEIGHTS
    ):
        return None
    qkv = linears[:3]
    bias = None
    if any(m.bias is not None for m in qkv):
        bias = torch.cat([m.bias if m.bias is not None else m.weight.new_zeros(m.out_features) for m in qkv])
    return torch.cat([m.weight for m in qkv]), bias, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])


def _attend(
    parts: _Decoder,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    keys: Tensor,
    values: Tensor,
    slot: int,
    mask: Tensor | None,
) -> Tensor:
    """Write k, v at ``slot``; attention of the grouped queries q [N, KV heads, group, d] over slots 0..slot.

    float32 / float64 keys are stored transposed ([N, KV heads, d, slots]) for one score matmul,
    ~15% faster than scaled_dot_product_attention here; other dtypes (bf16, whose small batched
    matmuls are slow on CPU) use it on the plain layout.
    """
    if parts.transposed_keys:
        keys[:, :, :, slot] = k
        values[:, :, slot] = v
        scores = torch.matmul(q * parts.scale, keys[..., : slot + 1])
        if mask is not None:
            scores = scores + mask
        return torch.matmul(torch.softmax(scores, -1), values[:, :, : slot + 1])
    keys[:, :, slot] = k
    values[:, :, slot] = v
    return F.scaled_dot_product_attention(
        q, keys[:, :, : slot + 1], values[:, :, : slot + 1], attn_mask=mask, scale=parts.scale
    )


def _step(
    parts: _Decoder,
    tokens: Tensor,
    kv: list[tuple[Tensor, Tensor]],
    slot: int,
    cos: Tensor,
    sin: Tensor,
    mask: Tensor | None,
) -> Tensor:
    """Logits [N, V] of one new token per row at cache position ``slot``, written into the cache."""
    h = parts.text.embed_tokens(tokens)
    n, d, kvh, heads = h.shape[0], parts.head_dim, parts.kv_heads, parts.heads
    for layer, (keys, values), fused in zip(parts.text.layers, kv, parts.fused, strict=True):
        attn = layer.self_attn
        x = layer.input_layernorm(h)
        if fused is None:
            q = rotate(attn.q_proj(x).view(n, heads, d), cos, sin)
            k = rotate(attn.k_proj(x).view(n, kvh, d), cos, sin)
            v = attn.v_proj(x).view(n, kvh, d)
        else:
            qkv = F.linear(x, fused[0], fused[1]).view(n, heads + 2 * kvh, d)
            qk = rotate(qkv[:, : heads + kvh], cos, sin)
            q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, heads + kvh :]
        # Query head j uses KV head j // (heads / kv heads): the grouped queries attend together.
        out = _attend(parts, q.reshape(n, kvh, heads // kvh, d), k, v, keys, values, slot, mask)
        h = h + attn.o_proj(out.reshape(n, heads * d))
        x = layer.post_attention_layernorm(h)
        if fused is None:
            h = h + layer.mlp(x)
        else:
            gate, up = F.linear(x, fused[2]).chunk(2, -1)
            h = h + layer.mlp.down_proj(layer.mlp.act_fn(gate) * up)
    return parts.lm_head(parts.text.norm(h))


def inverse_cdf_draw(probs: Tensor, uniforms: Tensor) -> Tensor:
    """Row r's token: the first index whose cumulative probability exceeds ``uniforms[r]`` in [0, 1).

    Cumulated in float64 and divided by the row's total, so the last entry is exactly 1 and a
    zero-probability token (a suppressed one) can never be drawn.
    """
    cdf = probs.to(torch.float64).cumsum(-1)
    cdf = cdf / cdf[:, -1:]
    return torch.searchsorted(cdf, uniforms.to(torch.float64).view(-1, 1), right=True).squeeze(1)


def _scores(logits: Tensor, settings: DecodeSettings, step: int, suppress: Tensor | None) -> Tensor:
    """generate's processing (of a copy it may overwrite): suppressed tokens, EOS before min_new_tokens, temperature, top-p."""
    scores = logits
    if suppress is not None:
        scores.index_fill_(1, suppress, float("-inf"))
    if step < settings.min_new_tokens:
        scores[:, settings.eos_id] = float("-inf")
    if settings.greedy:
        return scores
    if settings.temperature != 1.0:
        scores = scores / settings.temperature
    if settings.top_p < 1.0:
        from transformers import TopPLogitsWarper

        scores = TopPLogitsWarper(top_p=settings.top_p)(None, scores)
    return scores


def exponential_race(probs: Tensor) -> Tensor:
    """``torch.multinomial(probs, 1)`` on float32 CPU rows, drawn the same way with vectorised math.

    For one sample, multinomial draws q ~ Exp(1) per entry and returns argmax(p / q) (the
    exponential race: P(token i) = p_i / sum p). On CPU its ``exponential_`` makes each q from
    one float64 uniform of the generator, q = -log1p(-u), one scalar call per vocabulary entry;
    here the same uniforms come from one ``torch.rand`` in float64 (the same stream, in the same
    order) and the logarithm is vectorised, so the tokens, and the generator state after the
    call, equal multinomial's (tests/integration/test_fast_decode.py) at about a third of its
    cost. Any other dtype or device calls ``torch.multinomial`` itself.
    """
    if probs.dtype != torch.float32 or probs.device.type != "cpu":
        return torch.multinomial(probs, num_samples=1).squeeze(1)
    uniforms = torch.rand(probs.shape, dtype=torch.float64, device=probs.device)
    race = torch.log1p(uniforms.neg_()).neg_().to(torch.float32)
    tokens = torch.div(probs, race, out=race).argmax(-1)
    # argmax picks a NaN wherever a row has one: multinomial refuses such rows, and so do we.
    if bool(probs.gather(1, tokens[:, None]).isnan().any()):
        raise RuntimeError("probability tensor contains nan: the logits were not finite")
    return tokens


def _draw(scores: Tensor, settings: DecodeSettings) -> Tensor:
    if settings.greedy:
        return scores.argmax(-1)
    probs = torch.softmax(scores, dim=-1)
    if settings.sampler == "multinomial":
        return exponential_race(probs)
    uniforms = torch.rand(probs.shape[0], dtype=torch.float64, device=probs.device)
    return inverse_cdf_draw(probs, uniforms)


@dataclass
class _Prepared:
    """The prefilled cache buffers and the per-row tables one decode call reads."""

    parts: _Decoder
    kv: list[tuple[Tensor, Tensor]]
    first: Tensor  # [N] rotary position of each row's last prompt token
    cos: Tensor
    sin: Tensor
    mask: Tensor | None  # [N, 1, 1, slots] additive, -inf on the prompts' left padding


def _prepare(model: nn.Module, prompts: PromptBatch, group_size: int, new: int) -> _Prepared:
    backbone = prefill_backbone(model, prompts)
    parts = _parts(model, backbone) if backbone is not None else None
    if parts is None:
        raise ValueError(f"decode cannot run this model: {unsupported_reason(model, prompts)}")
    cache, deltas = prefill_prompts(backbone, prompts)
    dtype, width = cache.layers[0].values.dtype, prompts.input_ids.shape[1]
    parts.transposed_keys = dtype in TRANSPOSED_KEY_DTYPES
    parts.fused = [_fused_weights(layer) for layer in parts.text.layers]
    kv = _kv_buffers(cache, group_size, width + new - 1, parts.transposed_keys)
    # A row's last prompt token sits at its index among the real tokens, shifted by the image
    # tokens' grid positions (the rope deltas).
    first = (prompts.attention_mask.sum(-1) - 1 + deltas.view(-1)).repeat_interleave(group_size)
    cos, sin = _rope_tables(parts.text.rotary_emb, int(first.max()) + new, dtype)
    mask = None
    if not bool(prompts.attention_mask.bool().all()):
        mask = torch.zeros(first.shape[0], 1, 1, width + new - 1, dtype=dtype, device=first.device)
        padding = ~prompts.attention_mask.bool().repeat_interleave(group_size, 0)
        mask[:, 0, 0, :width].masked_fill_(padding, float("-inf"))
    return _Prepared(parts, kv, first, cos, sin, mask)


@torch.no_grad()
def decode(
    model: nn.Module,
    prompts: PromptBatch,
    group_size: int,
    settings: DecodeSettings,
    check_every: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """G completions per prompt: generated tokens [B*G, T'] (rows b*G..b*G+G-1 continue prompt b)
    and, with ``report_logprobs`` when sampling, each token's log-prob under the distribution it was
    drawn from. T' is the step at which the last row ended, as ``generate`` returns. Check
    ``unsupported_reason`` first; the model must be in eval mode. ``check_every``: tokens between
    checks whether every row has ended (None: 1 on CPU, ``CHECK_EVERY`` elsewhere).
    """
    new, width = settings.max_new_tokens, prompts.input_ids.shape[1]
    prep = _prepare(model, prompts, group_size, new)
    device = prompts.input_ids.device
    suppress = torch.as_tensor(settings.suppress_ids, device=device) if settings.suppress_ids else None
    tokens = prompts.input_ids[:, -1].repeat_interleave(group_size)
    out = torch.full((tokens.shape[0], new), settings.pad_id, dtype=torch.long, device=device)
    # Scores in float32 as generate's (float64 for a float64 model, as the exactness tests run).
    score_dtype = torch.float64 if prep.cos.dtype == torch.float64 else torch.float32
    report = settings.report_logprobs and not settings.greedy
    logp = torch.zeros(out.shape, dtype=score_dtype, device=device) if report else None
    unfinished = torch.ones_like(tokens, dtype=torch.bool)
    if check_every is None:
        check_every = 1 if device.type == "cpu" else CHECK_EVERY
    steps = new
    for t in range(new):
        slot, position = width - 1 + t, prep.first + t
        mask = None if prep.mask is None else prep.mask[..., : slot + 1]
        cos, sin = prep.cos[position].unsqueeze(1), prep.sin[position].unsqueeze(1)
        logits = _step(prep.parts, tokens, prep.kv, slot, cos, sin, mask)
        scores = _scores(logits.to(score_dtype, copy=True), settings, t, suppress)
        tokens = torch.where(unfinished, _draw(scores, settings), settings.pad_id)
        out[:, t] = tokens
        if logp is not None:
            logp[:, t] = torch.log_softmax(scores, -1).gather(1, tokens[:, None]).squeeze(1)
        unfinished &= tokens != settings.eos_id
        if (t + 1) % check_every == 0 and t + 1 >= settings.min_new_tokens and not bool(unfinished.any()):
            steps = t + 1
            break
    if not bool(unfinished.any()):
        # generate stops at the step where the last row ended: drop the columns after it.
        steps = min(steps, int((out == settings.eos_id).int().argmax(-1).max()) + 1)
    return out[:, :steps], None if logp is None else logp[:, :steps]
