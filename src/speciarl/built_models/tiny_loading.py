"""The embedded default as a ``Policy``: the tiny Qwen2.5-VL built by code, warm-started by default.

``model=tiny_qwen2_5_vl`` (and the benchmark presets) instantiate :func:`tiny_policy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import Qwen2_5_VLForConditionalGeneration

from speciarl.built_models.tiny import TinyQwenSpec, ensure_tiny_qwen
from speciarl.built_models.warm_start import Phase, WarmStartSpec, ensure_warm_started
from speciarl.policy.loading import DTYPES, finish_policy
from speciarl.policy.policy import Policy
from speciarl.policy.processor import load_processor


def tiny_policy(
    warm_start: bool = True,
    phases: Sequence[dict[str, float]] | None = None,
    spec: dict[str, Any] | None = None,
    lora: dict[str, Any] | None = None,
    prompt: str = "base",
    cache_dir: str | None = None,
    gradient_checkpointing: bool = False,
    hard_types: Sequence[str] = (),
    confusable_types: Sequence[str] = (),
    instruction_share: float | None = None,
    warm_start_seed: int | None = None,
    dtype: str = "float32",
) -> Policy:
    """The embedded default: the tiny Qwen2.5-VL, warm-started unless ``warm_start`` is False.

    ``hard_types``: shape types whose leaf the warm start rarely says (each phase's ``hard`` mix);
    ``confusable_types``: types whose colour it never teaches; ``instruction_share``: share of its
    steps on the "be specific" prompt with leaf labels; ``warm_start_seed``: its seed, to measure
    how reliable a recipe is (``WarmStartSpec``); ``dtype``: the weights' (and so the
    activations') precision after loading, float32 or bfloat16 (the warm start runs in float32).
    """
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")

    tiny_spec = TinyQwenSpec(**(spec or {}))
    root = Path(cache_dir) if cache_dir else None
    if warm_start:
        ws = warm_start_spec(phases, hard_types, confusable_types, instruction_share)
        if warm_start_seed is not None:
            ws = dataclasses.replace(ws, seed=warm_start_seed)
        folder = ensure_warm_started(tiny_spec, ws, root)
    else:
        folder = ensure_tiny_qwen(tiny_spec, root)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=DTYPES[dtype])
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return finish_policy(model, load_processor(str(folder)), lora, prompt)


def warm_start_spec(
    phases: Sequence[dict[str, Any]] | None = None,
    hard_types: Sequence[str] = (),
    confusable_types: Sequence[str] = (),
    instruction_share: float | None = None,
) -> WarmStartSpec:
    """The warm-start recipe of a model config (None phases: the default recipe)."""
    kwargs: dict[str, Any] = {
        "hard_types": tuple(hard_types),
        "confusable_types": tuple(confusable_types),
        "instruction_share": instruction_share,
    }
    if phases:
        kwargs["phases"] = tuple(
            Phase(**{**p, "hard": tuple(p["hard"]) if p.get("hard") is not None else None}) for p in phases
        )
    return WarmStartSpec(**kwargs)
