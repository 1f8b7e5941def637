"""Qwen2.5-VL-3B / -7B at their real widths with random weights, tokenizer and processor built by code.

Nothing is downloaded: the architecture is ``qwen_architecture``'s, the weights are transformers'
own random initialisation (in the requested dtype from the start, so a 3B model never exists in
float32), and the tokenizer is a small byte-level BPE whose vocabulary is padded to the real
tokenizer's 151,643 entries, followed by the real added tokens at their real ids
(``<|im_start|>`` 151644, ``<|vision_start|>`` 151652, ``<|image_pad|>`` 151655, ...). The chat
template and the image processor are those of the model card (default system turn; 14-pixel
patches, 2x2 merge, ``min_pixels`` 3136, ``max_pixels`` 12845056), so a 448x448 image becomes
32 x 32 patches and 256 ``<|image_pad|>`` tokens, as for the real model.

Used for the scale rehearsal (docs/scaling.md): shape, dtype and memory behaviour at full width
on a machine without the real weights.
"""

from __future__ import annotations

import functools
import json
import logging
from contextlib import contextmanager
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

from speciarl.policy.qwen_architecture import (
    FIRST_SPECIAL_ID,
    QWEN_SPECIAL_TOKENS,
    QwenVLArchitecture,
    architecture,
    qwen_vl_config,
    special_token_id,
)

log = logging.getLogger(__name__)

# The model card's template for image + text turns (videos and tool calls left out: unused here),
# with its default system turn when the conversation brings none.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# preprocessor_config.json of both cards.
MIN_PIXELS = 3136
MAX_PIXELS = 12845056
BPE_MERGES_VOCAB = 2048
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    """The serialised tokenizer (deterministic): trained BPE, padded vocabulary, real added tokens."""
    from speciarl.built_models.tiny import tokenizer_corpus

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_MERGES_VOCAB,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = tokenizer_corpus() + ["You are a helpful assistant.", "system", "user", "assistant"]
    core.train_from_iterator(corpus, trainer)
    state = json.loads(core.to_str())
    vocab = state["model"]["vocab"]
    # Rows no merge reaches: they give the vocabulary its real size, so the added tokens get their real ids.
    for index in range(len(vocab), FIRST_SPECIAL_ID):
        vocab[f"<|reserved_{index}|>"] = index
    padded = Tokenizer.from_str(json.dumps(state))
    padded.add_special_tokens(list(QWEN_SPECIAL_TOKENS))
    return padded.to_str()


def build_qwen_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer with the real Qwen2.5-VL added tokens at their real ids and the real chat template."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    for token in QWEN_SPECIAL_TOKENS:
        if tokenizer.convert_tokens_to_ids(token) != special_token_id(token):
            raise RuntimeError(f"{token} did not land on its real id {special_token_id(token)}")
    return tokenizer


def build_qwen_processor() -> Any:
    """Image processor (the card's patch geometry) and tokenizer, as one processor."""
    from speciarl.policy.processor import ImageOnlyQwen2_5_VLProcessor

    image_processor = Qwen2VLImageProcessorPil(
        patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS
    )
    return ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=build_qwen_tokenizer(), chat_template=QWEN_CHAT_TEMPLATE
    )


@contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_random_qwen(arch: QwenVLArchitecture, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Any:
    """``Qwen2_5_VLForConditionalGeneration`` of ``arch`` with transformers' random init, built in ``dtype``."""
    config = qwen_vl_config(arch)
    torch.manual_seed(seed)
    with _default_dtype(dtype):
        model = Qwen2_5_VLForConditionalGeneration(config)
    generation = model.generation_config
    generation.eos_token_id = special_token_id("<|im_end|>")
    generation.pad_token_id = special_token_id("<|endoftext|>")
    generation.bos_token_id = special_token_id("<|endoftext|>")
    # As the pretrained loader does for a card without suppressed tokens: never sample vision tokens.
    generation.suppress_tokens = [
        special_token_id(t)
        for t in ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
    ]
    return model


def random_qwen_policy(
    size: str = "3b",
    layers: int | None = None,
    vision_blocks: int | None = None,
    dtype: str = "bfloat16",
    lora: dict[str, Any] | None = None,
    prompt: str = "base",
    gradient_checkpointing: bool = False,
    seed: int = 0,
    cpu_float32_matmuls: str | bool = "auto",
) -> Any:
    """A ``Policy`` on the real-width Qwen2.5-VL ``size`` ("3b" | "7b") with random weights.

    ``layers`` / ``vision_blocks`` cut the depth (None: the real 36/28 layers and 32 blocks);
    ``dtype`` "bfloat16" (the preset) or "float32" (tests that compare paths); ``lora`` as
    ``apply_lora``'s keyword arguments (None: full fine-tuning); ``cpu_float32_matmuls`` as
    ``pretrained_policy``'s.
    """
    from speciarl.policy.loading import finish_policy

    if dtype not in _DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    arch = architecture(size).cut_down(layers, vision_blocks)
    model = build_random_qwen(arch, _DTYPES[dtype], seed)
    log.info(
        "random %s (%s): %d parameters, built by code",
        arch.name,
        dtype,
        sum(p.numel() for p in model.parameters()),
    )
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return finish_policy(model, build_qwen_processor(), lora, prompt, cpu_float32_matmuls)
