"""A trained policy on disk: ``<run>/policy`` written at the end of training, read by evaluation.

A fully fine-tuned model is saved whole (``save_pretrained`` of model and processor); a LoRA
policy saves only its adapter, which is loaded back onto the base model of the ``model`` config.
``speciarl_policy.json`` says which, and which prompt the policy was trained with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from speciarl.policy.policy import Policy, is_peft_model

MARKER = "speciarl_policy.json"


def save_policy(policy: Policy, folder: str | Path, prompt: str | None = None) -> Path:
    """Write the policy (whole model, or the LoRA adapter only) and its processor to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = policy.model
    is_adapter = is_peft_model(model)
    model.save_pretrained(str(folder))
    policy.processor.save_pretrained(str(folder))
    info = {"kind": "adapter" if is_adapter else "full", "prompt": prompt}
    (folder / MARKER).write_text(json.dumps(info, indent=1))
    return folder


def load_saved_policy(
    folder: str | Path,
    prompt: str = "base",
    base: Callable[[], Policy] | None = None,
    dtype: str = "auto",
) -> Policy:
    """A policy saved by ``save_policy``; ``base`` builds the base model when it is an adapter."""
    from speciarl.policy.loading import finish_policy
    from speciarl.policy.processor import load_processor

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no saved policy at {folder}: expected the <run>/policy folder written by "
            "`python -m speciarl.train save_policy=true` (or any transformers model folder)"
        )
    marker = folder / MARKER
    kind = json.loads(marker.read_text()).get("kind", "full") if marker.is_file() else None
    if kind is None:
        kind = "adapter" if (folder / "adapter_config.json").is_file() else "full"
    if kind == "adapter":
        if base is None:
            raise ValueError(f"{folder} holds a LoRA adapter: its base model must come from the model config")
        from peft import PeftModel

        base_policy = base()
        model = base_policy.model
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        model = PeftModel.from_pretrained(model, str(folder))
        model.train()
        return Policy(model, base_policy.processor, prompt)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} has neither config.json nor adapter_config.json: not a saved policy"
        )
    from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2_5_VLForConditionalGeneration

    dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, got {dtype!r}")
    config = AutoConfig.from_pretrained(str(folder))
    cls = (
        Qwen2_5_VLForConditionalGeneration
        if getattr(config, "model_type", "") == "qwen2_5_vl"
        else AutoModelForImageTextToText
    )
    model = cls.from_pretrained(str(folder), dtype=dtypes[dtype])
    return finish_policy(model, load_processor(str(folder)), None, prompt)


def save_adapter(policy: Policy, out_dir: str | Path) -> Path:
    """The LoRA adapter (peft format, vLLM-loadable) and the processor, in ``out_dir``."""
    if not is_peft_model(policy.model):
        raise ValueError("the policy has no LoRA adapter (full fine-tuning): export it with save_model")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(str(out))
    policy.processor.save_pretrained(str(out))
    return out


def save_model(policy: Policy, out_dir: str | Path, merge: bool = True) -> Path:
    """A complete transformers model folder; a LoRA policy is merged into its base first.

    Merging changes the policy's model in place (the adapter is folded into the base weights),
    so call it when training is over.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = policy.model
    if is_peft_model(model):
        if not merge:
            raise ValueError(
                "a LoRA policy exports either as an adapter (save_adapter) or merged (merge=True)"
            )
        model = model.merge_and_unload()
    model.save_pretrained(str(out))
    policy.processor.save_pretrained(str(out))
    return out


def save_checkpoint_export(policy: Policy, folder: str | Path) -> Path:
    """What a periodic checkpoint exports beside itself: the LoRA adapter, or the unmerged model."""
    if is_peft_model(policy.model):
        return save_adapter(policy, folder)
    return save_model(policy, folder, merge=False)
