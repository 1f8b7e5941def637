"""The published Qwen2.5-VL-3B / -7B architectures, as data, and their config built by code.

The values are those of the model cards' ``config.json`` (huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct
and .../Qwen2.5-VL-7B-Instruct). transformers' own ``Qwen2_5_VLTextConfig`` defaults are not
either model (they describe a 72B-like text model: hidden 8192, 80 layers), so every width is set
here explicitly. Note the two vocabularies differ: 151,936 rows for 3B, 152,064 for 7B; both hold
the same 151,665 tokenizer entries, the rest are padding rows of the embedding.

A cut-down depth (``layers`` / ``vision_blocks``) keeps every width, the vocabulary and the image
geometry, so shape and dtype bugs still show while a test runs in seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# The real tokenizer's added tokens, in id order from 151,643 (tokenizer_config.json of both cards).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
FIRST_SPECIAL_ID = 151643


def special_token_id(token: str) -> int:
    """The real tokenizer's id of an added token, e.g. ``<|image_pad|>`` -> 151655."""
    return FIRST_SPECIAL_ID + QWEN_SPECIAL_TOKENS.index(token)


@dataclass(frozen=True)
class QwenVLArchitecture:
    """Widths and depths of a Qwen2.5-VL model (the fields of its config.json that shape tensors)."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    tie_word_embeddings: bool
    max_window_layers: int
    vision_depth: int = 32
    vision_hidden: int = 1280
    vision_intermediate: int = 3420
    vision_heads: int = 16
    patch_size: int = 14
    window_size: int = 112
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    rope_theta: float = 1_000_000.0
    mrope_section: tuple[int, int, int] = (16, 24, 24)
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 128000

    def cut_down(self, layers: int | None = None, vision_blocks: int | None = None) -> QwenVLArchitecture:
        """The same widths with fewer decoder layers / vision blocks (the last block keeps full attention)."""
        arch = self
        if layers is not None:
            if not 1 <= layers <= self.num_layers:
                raise ValueError(f"layers must be in 1..{self.num_layers}, got {layers}")
            arch = dataclasses.replace(arch, num_layers=layers, name=f"{arch.name}-L{layers}")
        if vision_blocks is not None:
            if not 1 <= vision_blocks <= self.vision_depth:
                raise ValueError(f"vision_blocks must be in 1..{self.vision_depth}, got {vision_blocks}")
            # Windowed blocks with one full-attention block last, as every 8th block of the real tower.
            full = (vision_blocks - 1,)
            arch = dataclasses.replace(
                arch,
                vision_depth=vision_blocks,
                fullatt_block_indexes=full,
                name=f"{arch.name}-V{vision_blocks}",
            )
        return arch


# huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct/blob/main/config.json
QWEN2_5_VL_3B = QwenVLArchitecture(
    name="qwen2_5_vl_3b",
    vocab_size=151936,
    hidden_size=2048,
    intermediate_size=11008,
    num_layers=36,
    num_heads=16,
    num_kv_heads=2,
    tie_word_embeddings=True,
    max_window_layers=70,
)
# huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json
QWEN2_5_VL_7B = QwenVLArchitecture(
    name="qwen2_5_vl_7b",
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_layers=28,
    num_heads=28,
    num_kv_heads=4,
    tie_word_embeddings=False,
    max_window_layers=28,
)
ARCHITECTURES = {"3b": QWEN2_5_VL_3B, "7b": QWEN2_5_VL_7B}


def architecture(size: str) -> QwenVLArchitecture:
    """``"3b"`` or ``"7b"``; anything else is an error that lists both."""
    if size not in ARCHITECTURES:
        raise ValueError(f"model size must be one of {sorted(ARCHITECTURES)}, got {size!r}")
    return ARCHITECTURES[size]


def qwen_vl_config(arch: QwenVLArchitecture) -> Any:
    """The transformers ``Qwen2_5_VLConfig`` of ``arch``, with the real special-token ids."""
    from transformers import Qwen2_5_VLConfig

    ids = {
        "bos_token_id": special_token_id("<|endoftext|>"),
        "eos_token_id": special_token_id("<|im_end|>"),
        "pad_token_id": special_token_id("<|endoftext|>"),
    }
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=arch.vocab_size,
            hidden_size=arch.hidden_size,
            intermediate_size=arch.intermediate_size,
            num_hidden_layers=arch.num_layers,
            num_attention_heads=arch.num_heads,
            num_key_value_heads=arch.num_kv_heads,
            max_position_embeddings=arch.max_position_embeddings,
            max_window_layers=arch.max_window_layers,
            rms_norm_eps=arch.rms_norm_eps,
            use_sliding_window=False,
            sliding_window=32768,
            hidden_act="silu",
            attention_dropout=0.0,
            rope_scaling={
                "type": "mrope",
                "mrope_section": list(arch.mrope_section),
                "rope_theta": arch.rope_theta,
            },
            tie_word_embeddings=arch.tie_word_embeddings,
            **ids,
        ),
        vision_config=dict(
            depth=arch.vision_depth,
            hidden_size=arch.vision_hidden,
            intermediate_size=arch.vision_intermediate,
            num_heads=arch.vision_heads,
            in_chans=3,
            patch_size=arch.patch_size,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=arch.window_size,
            out_hidden_size=arch.hidden_size,
            fullatt_block_indexes=list(arch.fullatt_block_indexes),
            tokens_per_second=2,
            hidden_act="silu",
        ),
        vocab_size=arch.vocab_size,
        tie_word_embeddings=arch.tie_word_embeddings,
        image_token_id=special_token_id("<|image_pad|>"),
        video_token_id=special_token_id("<|video_pad|>"),
        vision_start_token_id=special_token_id("<|vision_start|>"),
        vision_end_token_id=special_token_id("<|vision_end|>"),
        **ids,
    )
