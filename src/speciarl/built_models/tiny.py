"""A tiny Qwen2.5-VL built by code: same architecture and code path as the 7B, ~0.75M parameters.

The tokenizer is a byte-level BPE trained on the prompts and labels of the synthetic task, so
every taxonomy word is a single token; the image processor is Qwen2-VL's with small patches.
Building is deterministic and takes seconds; the result is cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

from speciarl.core.prompts import FORMAT_INSTRUCTION, PROMPTS, format_answer
from speciarl.data.synthetic import shapes_taxonomy
from speciarl.policy.processor import SPECIAL_TOKENS, ImageOnlyQwen2_5_VLProcessor, suppressed_token_ids

FORMAT_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BUILDER_VERSION = 2


@dataclass(frozen=True)
class TinyQwenSpec:
    """Sizes of the tiny model; the defaults are the measured embedded default (h128)."""

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_intermediate: int = 128
    vision_heads: int = 2
    patch_size: int = 4
    image_pixels: int = 32
    seed: int = 0

    def fingerprint(self) -> str:
        payload = json.dumps({**asdict(self), "v": BUILDER_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def cache_root() -> Path:
    """Where built models live: ``$SPECIARL_CACHE`` or ``~/.cache/speciarl``."""
    return Path(os.environ.get("SPECIARL_CACHE", Path.home() / ".cache" / "speciarl"))


def tokenizer_corpus() -> list[str]:
    """Sentences the BPE is trained on: the prompts, every label and synonym, and refusals."""
    taxonomy = shapes_taxonomy()
    labels = [name for key in taxonomy.nodes for name in taxonomy.names(key)]
    refusals = ["None", "none", "cannot tell", "unknown"]
    corpus = ["user", "assistant", "system"] * 20
    for _ in range(20):
        corpus.extend(PROMPTS.values())
        corpus.extend(format_answer(label) for label in labels + refusals)
        corpus.extend(labels)
    return corpus


def prompt_phrases() -> list[str]:
    """The instruction sentences of every prompt preset, each added as one token."""
    phrases = {" " + FORMAT_INSTRUCTION}
    for text in PROMPTS.values():
        phrases.add(text.replace(" " + FORMAT_INSTRUCTION, ""))
    return sorted(phrases)


def build_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(FORMAT_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(tokenizer_corpus(), trainer)
    core.add_tokens(FORMAT_TOKENS)
    # The fixed instruction sentences become single tokens: a tiny model need not spend most of
    # its sequence (and CPU time) re-reading the same 50-token instruction.
    core.add_tokens(prompt_phrases())
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_qwen(spec: TinyQwenSpec, folder: Path) -> None:
    """Write a randomly initialised tiny Qwen2.5-VL with tokenizer and processor to ``folder``."""
    tokenizer = build_tokenizer(spec.vocab_size)
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=spec.patch_size,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=(spec.patch_size * 4) ** 2,
        max_pixels=(spec.image_pixels * 2) ** 2,
    )
    processor = ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    head_dim = spec.hidden_size // spec.num_heads
    half = head_dim // 2
    mrope = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            num_key_value_heads=spec.num_kv_heads,
            max_position_embeddings=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": mrope},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=spec.vision_depth,
            hidden_size=spec.vision_hidden,
            intermediate_size=spec.vision_intermediate,
            num_heads=spec.vision_heads,
            patch_size=spec.patch_size,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=spec.patch_size * 8,
            out_hidden_size=spec.hidden_size,
            fullatt_block_indexes=[spec.vision_depth - 1],
        ),
        tie_word_embeddings=True,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(spec.seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.suppress_tokens = suppressed_token_ids(tokenizer)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "speciarl_spec.json").write_text(json.dumps(asdict(spec), indent=1))


def ensure_tiny_qwen(spec: TinyQwenSpec | None = None, root: Path | None = None) -> Path:
    """Return the folder of the tiny model for ``spec``, building it once if needed."""
    spec = spec or TinyQwenSpec()
    root = root or cache_root()
    folder = root / f"tiny-qwen2_5_vl-{spec.fingerprint()}" / "base"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=folder.parent))
    try:
        build_tiny_qwen(spec, staging)
        publish_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def publish_folder(staging: Path, folder: Path) -> None:
    """Atomically move a finished build into place; a concurrent identical build may win."""
    try:
        staging.rename(folder)
    except OSError:
        if not (folder / "config.json").is_file():
            raise
