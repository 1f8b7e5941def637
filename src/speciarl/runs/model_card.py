"""Model cards: the ``README.md`` a saved policy or adapter carries to the Hugging Face Hub.

Written beside every saved policy (``save_policy=true``) and export (``python -m speciarl.export``):
YAML metadata the Hub reads (license, base model, library, tags) and a body saying what the
model is, how it was trained (method, reward, data), its held-out figures before and after
training as ``results.json`` has them, the command that made it, and how to load it.

An adapter's ``adapter_config.json`` names its base model; peft writes the local folder it was
loaded from, which means nothing on another machine: :func:`portable_base_model` puts the hub id
(or the model's name) there instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speciarl.runs.dashboard import method_names

LICENSE = "apache-2.0"
# The embedded default has no hub id: it is built by code (speciarl.built_models.tiny, 0.75M parameters).
TINY_BASE = "tiny-qwen2.5-vl"


@dataclass
class CardInfo:
    """What a card says about a model; ``results`` is a run's results.json (may be empty)."""

    base_model: str
    method: str
    reward: str
    data: str
    kind: str  # "adapter" | "full"
    results: Mapping[str, Any] = field(default_factory=dict)
    command: str = field(default_factory=lambda: "python -m " + " ".join(_argv()))
    prompt: str = "base"  # the prompt preset it was trained with (speciarl.core.prompts)


def _argv() -> list[str]:
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py"):  # python -m speciarl.train ... runs .../speciarl/train.py
        argv[0] = "speciarl." + Path(argv[0]).stem
    return argv


def base_model_id(model_cfg: Mapping[str, Any]) -> str:
    """The base model by hub id or name: ``model.path``'s hub id, or the tiny model's name.

    A local folder is named by its last two parts (``/models/Qwen/Qwen2.5-VL-7B-Instruct`` ->
    ``Qwen/Qwen2.5-VL-7B-Instruct``), which is the hub id when the folder mirrors the hub.
    """
    path = model_cfg.get("path")
    if not path:
        return TINY_BASE
    parts = Path(str(path)).parts
    if str(path).startswith(("/", "~", ".")) and len(parts) >= 2:
        return "/".join(parts[-2:])
    return str(path)


def figures_rows(results: Mapping[str, Any], method: str) -> list[tuple[str, float, float, float]]:
    """(method, C, S, HM) of each measured row of results.json, in its order."""
    rows = []
    for row, name in method_names(results, method).items():
        v = results[row]
        rows.append((name, v["val/correctness"], v["val/specificity"], v["val/hm"]))
    return rows


def render_card(info: CardInfo) -> str:
    """The card's text: YAML metadata, then markdown."""
    hub_base = info.base_model if "/" in info.base_model and " " not in info.base_model else None
    meta = [f"license: {LICENSE}", "library_name: " + ("peft" if info.kind == "adapter" else "transformers")]
    if hub_base:
        meta.append(f"base_model: {hub_base}")
    meta += ["pipeline_tag: image-text-to-text", "tags:", "- speciarl", "- reinforcement-learning"]
    meta.append(f"- {info.method}")
    what = "LoRA adapter" if info.kind == "adapter" else "fine-tuned model"
    lines = ["---", *meta, "---", "", f"# {info.method} on {info.data}", ""]
    lines += [
        f"A {what} of **{info.base_model}**, trained with speciarl (SpeciaRL, Angheben et al.,",
        "arXiv 2603.03197): reinforcement learning with a judge that sorts each answer into six",
        "categories and a reward anchored to the best category reached in each group of rollouts.",
        "",
        f"- method: `{info.method}` (reward `{info.reward}`)",
        f"- data: `{info.data}`",
        f"- base model: `{info.base_model}`",
        "",
    ]
    rows = figures_rows(info.results, info.method)
    if rows:
        split = info.results.get("after", info.results.get("before", {})).get("val/n")
        lines += [
            "## Held-out figures",
            "",
            f"From the run's `results.json` ({info.results.get('steps', '?')} "
            f"steps{f', {int(split)} samples' if split else ''}).",
            "",
        ]
        lines += ["| method | correctness | specificity | HM |", "|---|---|---|---|"]
        lines += [f"| {m} | {c:.4f} | {s:.4f} | {h:.4f} |" for m, c, s, h in rows]
        lines.append("")
    lines += ["## Command", "", "```bash", info.command, "```", ""]
    lines += prompt_section(info.prompt) + use_section(info.kind, info.prompt)
    lines += ["## License", "", "Apache-2.0, as speciarl; the base model's own license also applies.", ""]
    return "\n".join(lines)


def prompt_section(preset: str) -> list[str]:
    """How the model was prompted in training: one user turn, the image, then this text."""
    from speciarl.core.prompts import prompt_text

    return [
        "## Prompt format",
        "",
        f"One user turn of the chat template: the image, then the text of the `{preset}` prompt:",
        "",
        "```text",
        prompt_text(preset),
        "```",
        "",
        "with the generation prompt added. The model answers `<think>...</think><answer>label</answer>`;",
        "the label (or `None`) is the text inside the first `<answer>`; what follows it, if anything, is",
        "ignored. Greedy decoding gave the figures above.",
        "",
    ]


def use_section(kind: str, preset: str = "base") -> list[str]:
    """Loading and one greedy answer: speciarl's environment first, stock transformers second.

    speciarl's CPU environment has no torchvision, which the stock Qwen2-VL video processor needs,
    so ``AutoProcessor`` fails there; ``speciarl.policy.processor.load_processor`` reads the same
    folder image-only (and is ``AutoProcessor`` wherever torchvision works).
    """
    if kind == "adapter":
        load = [
            "from peft import PeftModel",
            "from transformers import AutoModelForImageTextToText",
            "base_model = AutoModelForImageTextToText.from_pretrained(BASE_MODEL_FOLDER)",
            "model = PeftModel.from_pretrained(base_model, FOLDER)",
            "processor = load_processor(BASE_MODEL_FOLDER)",
        ]
    else:
        load = [
            "from transformers import AutoModelForImageTextToText",
            "model = AutoModelForImageTextToText.from_pretrained(FOLDER)",
            "processor = load_processor(FOLDER)",
        ]
    return [
        "## Use",
        "",
        "In speciarl's environment (no torchvision: `load_processor` reads the folder image-only):",
        "",
        "```python",
        'FOLDER = "<this folder>"',
        *(['BASE_MODEL_FOLDER = "<the base model folder>"'] if kind == "adapter" else []),
        "from PIL import Image",
        "from speciarl.core.categories import extract_answer",
        "from speciarl.core.prompts import chat_messages, prompt_text",
        "from speciarl.policy.processor import load_processor",
        *load,
        'image = Image.new("RGB", (64, 64), "red")  # your image',
        f"messages = chat_messages(image, prompt_text({preset!r}))",
        "prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)",
        'inputs = processor(text=[prompt], images=[image], return_tensors="pt")',
        'end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")  # the end of the answer turn',
        "output = model.generate(**inputs, max_new_tokens=64, do_sample=False, eos_token_id=end, pad_token_id=end)",
        'completion = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]',
        "print(extract_answer(completion))  # the label, read as the judge reads it (None: no answer)",
        "```",
        "",
        "Where torchvision works, `AutoProcessor.from_pretrained(FOLDER)` and",
        '`pipeline("image-text-to-text", model=FOLDER)` load it as they are. Or evaluate it:',
        "`python -m speciarl.evaluate ckpt=<this folder>`.",
        "",
    ]


def write_model_card(folder: str | Path, info: CardInfo) -> Path:
    """``README.md`` in ``folder``; an adapter's ``base_model_name_or_path`` is made portable too."""
    folder = Path(folder)
    marker = folder / "speciarl_policy.json"  # speciarl.policy.saved: the prompt it was trained with
    if marker.is_file():
        info.prompt = json.loads(marker.read_text()).get("prompt") or info.prompt
    path = folder / "README.md"
    path.write_text(render_card(info))
    if info.kind == "adapter":
        portable_base_model(folder, info.base_model)
    return path


def portable_base_model(folder: str | Path, base_model: str) -> None:
    """Replace a local path in ``adapter_config.json``'s ``base_model_name_or_path`` by ``base_model``."""
    config_path = Path(folder) / "adapter_config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    current = str(config.get("base_model_name_or_path") or "")
    if not current or Path(current).is_absolute() or current.startswith((".", "~")):
        config["base_model_name_or_path"] = base_model
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


def card_info_from_run(run_dir: str | Path | None, model_cfg: Mapping[str, Any], kind: str) -> CardInfo:
    """A card's facts read from a training run folder (results.json; the command from ``.hydra``).

    Without a run folder the card still names the base model and says the rest is unknown.
    """
    from omegaconf import OmegaConf

    info = CardInfo(base_model_id(model_cfg), "unknown", "unknown", "unknown", kind)
    if run_dir is None:
        return info
    run = Path(run_dir)
    if not (run / "results.json").is_file():
        raise FileNotFoundError(f"{run} has no results.json: run_dir must be a training run folder")
    info.results = results = json.loads((run / "results.json").read_text())
    info.method = str(results.get("method", "unknown"))
    info.reward = str(results.get("reward", "unknown"))
    info.data = str(results.get("data", "unknown"))
    overrides = run / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        info.command = "python -m speciarl.train " + " ".join(str(o) for o in OmegaConf.load(overrides))
    return info
