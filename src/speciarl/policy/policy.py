"""The policy: a vision-language model with its processor, prompt and token log-probs.

Generation and the training forward must see the same distribution, or PPO ratios drift. Three
things make them agree to ~1e-6 on Qwen2.5-VL: the same suppressed special tokens are masked
in both, ``mm_token_type_ids`` is passed in the training forward (zeros for completion tokens),
and each image's patch block is repeated for its G rollouts, not its rows (the forward then
encodes each distinct image once: ``shared_images``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from speciarl.core.prompts import chat_messages, prompt_text
from speciarl.core.rollouts import PromptBatch, Rollout
from speciarl.core.samples import Sample
from speciarl.policy.shared_images import direct_calls_allowed, image_inputs
from speciarl.policy.shared_prompts import shared_prompt_hidden
from speciarl.policy.vocab_chunks import DEFAULT_MAX_LOGITS, completion_logprobs


class Policy:
    """A model, its processor and a prompt preset; owns prompt encoding and token log-probs."""

    def __init__(self, model: torch.nn.Module, processor: Any, prompt: str = "base") -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.prompt = prompt_text(prompt)
        self.eos_id = int(self.tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self.pad_id = int(self.tokenizer.pad_token_id)
        suppress = getattr(model.generation_config, "suppress_tokens", None) or []
        self.suppress_ids = [int(i) for i in suppress]

    def encode_prompts(self, samples: Sequence[Sample]) -> PromptBatch:
        texts = [
            self.processor.apply_chat_template(
                chat_messages(s.image, self.prompt), add_generation_prompt=True, tokenize=False
            )
            for s in samples
        ]
        enc = self.processor(text=texts, images=[s.image for s in samples], return_tensors="pt", padding=True)
        return PromptBatch(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            mm_token_type_ids=enc["mm_token_type_ids"],
            pixel_values=enc["pixel_values"],
            image_grid_thw=enc["image_grid_thw"],
        ).to(_device_of(self.model))

    def completion_tensors(self, raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Clean generated tokens: EOS after the first EOS, the mask through it, truncation flags."""
        is_eos = raw == self.eos_id
        after_first_eos = (is_eos.cumsum(-1) - is_eos.long()) > 0
        mask = ~after_first_eos
        ids = torch.where(mask, raw, torch.full_like(raw, self.eos_id))
        truncated = ~is_eos.any(-1)
        return ids, mask, truncated

    def decode(self, ids: Tensor, mask: Tensor) -> list[str]:
        return [
            self.tokenizer.decode(row[m].tolist(), skip_special_tokens=True)
            for row, m in zip(ids, mask, strict=True)
        ]


def is_peft_model(model: torch.nn.Module) -> bool:
    """True for a peft ``PeftModel`` (a LoRA adapter on a frozen base), without importing peft.

    Checked by isinstance where peft is importable; otherwise no model can be a peft model.
    """
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (prompts are encoded onto it, so GPU runs work)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def token_logprobs(
    model: torch.nn.Module,
    rollout: Rollout,
    suppress_ids: Sequence[int] = (),
    temperature: float = 1.0,
    max_logits: int = DEFAULT_MAX_LOGITS,
    completion_pass: bool | None = None,
) -> Tensor:
    """log pi(token_t | prefix) for every completion token, [N, T]; 0 where masked out.

    Suppressed tokens get the same -inf that generation gave them, so the two distributions
    agree. Savings, each exact: columns that are padding in every row are cut off (left prompt
    padding, completion tail past the longest response); a prompt shared by G rollouts runs
    once (``shared_prompts``), else each distinct image goes through the vision tower once
    (``shared_images``); only real completion positions are projected to the vocabulary, in
    chunks of at most ``max_logits`` logits (``vocab_chunks``). ``completion_pass``: run the
    completion tokens through our own layer pass (``completion_pass``) after the shared prompt;
    None decides by device (CPU only), as ``logprob_route.choose_route`` does at setup.
    """
    return _fast_token_logprobs(model, rollout, suppress_ids, temperature, max_logits, False, completion_pass)


def token_logprobs_with_entropy(
    model: torch.nn.Module,
    rollout: Rollout,
    suppress_ids: Sequence[int] = (),
    temperature: float = 1.0,
    max_logits: int = DEFAULT_MAX_LOGITS,
    completion_pass: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """``token_logprobs`` and the policy's entropy at every completion position, both [N, T].

    On the same route as ``token_logprobs`` (shared prompt, completion pass, vocabulary chunks):
    each chunk's logits give both figures.
    """
    both = _fast_token_logprobs(model, rollout, suppress_ids, temperature, max_logits, True, completion_pass)
    return both[..., 0], both[..., 1]


def _fast_token_logprobs(
    model: torch.nn.Module,
    rollout: Rollout,
    suppress_ids: Sequence[int],
    temperature: float,
    max_logits: int,
    with_entropy: bool = False,
    completion_pass: bool | None = None,
) -> Tensor:
    """The body of ``token_logprobs``: trimmed, shared-prefill, chunked-vocabulary log-probs ([N, T, 2] with entropy)."""
    prompts = rollout.prompts
    mask = rollout.completion_mask
    left = _leading_padding(prompts.attention_mask)
    width = max(1, int(mask.sum(-1).max()))
    ids = rollout.completion_ids[:, :width]
    kept = mask[:, :width]
    prompt = {
        "input_ids": prompts.input_ids[:, left:],
        "attention_mask": prompts.attention_mask[:, left:],
        "mm_token_type_ids": prompts.mm_token_type_ids[:, left:],
        "pixel_values": prompts.pixel_values,
        "image_grid_thw": prompts.image_grid_thw,
    }
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    decoder = getattr(base, "model", None)
    if decoder is not None and isinstance(head, torch.nn.Linear) and direct_calls_allowed(model):
        hidden = shared_prompt_hidden(decoder, base, prompt, ids, kept, completion_pass)
        if hidden is None:
            full = _full_sequence(prompt, ids, kept)
            images = image_inputs(base, prompt["pixel_values"], prompt["image_grid_thw"])
            # The hidden states that predict completion tokens: positions P-1 ... P+T-2.
            hidden = decoder(**full, **images, use_cache=False).last_hidden_state[:, -(width + 1) : -1]
        logp = completion_logprobs(
            head, hidden, ids, kept, head.out_features, suppress_ids, temperature, max_logits, with_entropy
        )
    else:  # no separable LM head, or a sharded model: full logits of the last T+1 positions
        full = _full_sequence(prompt, ids, kept)
        images = image_inputs(model, prompt["pixel_values"], prompt["image_grid_thw"])
        logits = model(**full, **images, logits_to_keep=width + 1, use_cache=False).logits[:, :-1, :]
        vocab = logits.shape[-1]
        logp = completion_logprobs(
            torch.nn.Identity(), logits, ids, kept, vocab, suppress_ids, temperature, max_logits, with_entropy
        )
    if width == mask.shape[1]:
        return logp
    return torch.cat([logp, logp.new_zeros(mask.shape[0], mask.shape[1] - width, *logp.shape[2:])], dim=1)


def _full_sequence(prompt: dict[str, Tensor], ids: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Prompt + completion tokens as one left-padded sequence per row."""
    attention = prompt["attention_mask"]
    return {
        "input_ids": torch.cat([prompt["input_ids"], ids], dim=1),
        "attention_mask": torch.cat([attention, mask.to(attention.dtype)], dim=1),
        "mm_token_type_ids": torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(ids)], dim=1),
    }


def _leading_padding(attention_mask: Tensor) -> int:
    """Number of leading columns that are padding in every row (prompts are left-padded)."""
    real = attention_mask.bool().any(dim=0)
    return int(real.int().argmax()) if bool(real.any()) else 0
