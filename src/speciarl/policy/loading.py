"""Build a ``Policy`` from a pretrained folder, optionally with LoRA (the tiny default: ``speciarl.built_models``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2_5_VLForConditionalGeneration

from speciarl.core.model_paths import resolve_model_path
from speciarl.policy.cpu_matmuls import route_frozen_linears
from speciarl.policy.policy import Policy
from speciarl.policy.processor import load_processor, suppressed_token_ids

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pretrained_policy(
    path: str,
    lora: dict[str, Any] | None = None,
    prompt: str = "base",
    dtype: str = "bfloat16",
    allow_download: bool = False,
    gradient_checkpointing: bool = False,
    attn_implementation: str | None = None,
    cpu_float32_matmuls: str | bool = "auto",
) -> Policy:
    """A pretrained VLM (e.g. Qwen2.5-VL-7B-Instruct) from a local folder or the local HF cache.

    ``cpu_float32_matmuls``: frozen bf16 layers multiply in float32 on a CPU without bf16
    arithmetic (``auto``), always (``true``) or never (``false``): ``policy.cpu_matmuls``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    local = resolve_model_path(path, allow_download)
    config = AutoConfig.from_pretrained(local)
    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype]}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if getattr(config, "model_type", "") == "qwen2_5_vl":
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(local, **kwargs)
    else:
        model = AutoModelForImageTextToText.from_pretrained(local, **kwargs)
    processor = load_processor(local)
    if not model.generation_config.suppress_tokens:
        model.generation_config.suppress_tokens = _vision_token_ids(processor)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return finish_policy(model, processor, lora, prompt, cpu_float32_matmuls)


def _vision_token_ids(processor: Any) -> list[int]:
    tok = processor.tokenizer
    names = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>"]
    ids = [tok.convert_tokens_to_ids(n) for n in names]
    unk = tok.unk_token_id
    return [int(i) for i in ids if i is not None and i != unk]


def finish_policy(
    model: torch.nn.Module,
    processor: Any,
    lora: dict[str, Any] | None,
    prompt: str,
    cpu_float32_matmuls: str | bool = "auto",
) -> Policy:
    if lora:
        model = apply_lora(model, **lora)
    route_frozen_linears(model, cpu_float32_matmuls)  # after LoRA: it decides what is frozen
    # from_pretrained returns eval mode and Lightning leaves it so; dropout and gradient
    # checkpointing would silently stay off.
    model.train()
    if not model.generation_config.suppress_tokens and hasattr(processor, "tokenizer"):
        model.generation_config.suppress_tokens = suppressed_token_ids(processor.tokenizer)
    return Policy(model, processor, prompt)


def apply_lora(
    model: torch.nn.Module,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: Sequence[str] | str = "all-linear-language",
) -> torch.nn.Module:
    """Wrap with a LoRA adapter on the language model only; the vision tower stays frozen, without LoRA."""
    from peft import LoraConfig, get_peft_model

    if target_modules == "all-linear-language":
        target = r"^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
    else:
        target = list(target_modules)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target, bias="none")
    wrapped = get_peft_model(model, config)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.parameters())
    log.info("LoRA r=%d alpha=%d: %d trainable of %d parameters", r, alpha, trainable, total)
    return wrapped
