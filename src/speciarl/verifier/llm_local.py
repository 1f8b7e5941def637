"""The LLM judge in process: a transformers causal LM scores each of the six labels as its answer.

Same messages as the HTTP judge (``judge_prompt``), rendered with the model's chat template; the
verdict is the label whose tokens, followed by the end-of-turn token, are most likely after the
assistant prefix: argmax over c of log p(label_c + <end> | prompt). This is the six-way choice
that guided decoding approximates, computed exactly, and it cannot produce anything but one of
the six categories: there is no answer text to parse.

Sequences are left-padded so every continuation ends at the last position; only the last few
positions' logits are materialised (``logits_to_keep``), so a large vocabulary costs little.
Runs on CPU with any small model and on GPU with a large one (``device: auto``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from speciarl.core.categories import Category, Judgement, Outcome, normalize_label
from speciarl.core.interfaces import Judge
from speciarl.verifier.judge_prompt import LABELS, PROMPT_VERSION, pair_messages

Pair = tuple[str, str]


class LLMLocalJudge(Judge):
    """Judge pairs with a causal LM loaded in this process, by label log-likelihood.

    Args:
        model_path: a local transformers model folder (or a cached hub id).
        model, tokenizer: an already loaded model and tokenizer (instead of ``model_path``).
        name: the model's name in the judge identity (default: the path or the config's name).
        device: ``auto`` (cuda when available), ``cpu``, ``cuda:0``...
        dtype: ``auto`` (bfloat16 on GPU, float32 on CPU) or a torch dtype name.
        batch_size: sequences per forward pass (each pair is six sequences).
        normalize: judge the normalised strings (``core.categories.normalize_label``).
        length_normalize: score labels by mean instead of summed token log-probability.
        end_token: the end-of-turn token appended to each label (default: the tokenizer's eos).
        chat_template_kwargs: passed to ``apply_chat_template`` (e.g. ``{enable_thinking: false}``).
        allow_download: let ``from_pretrained`` fetch a hub id that is not cached locally.
    """

    def __init__(
        self,
        model_path: str | None = None,
        model: Any = None,
        tokenizer: Any = None,
        name: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 24,
        normalize: bool = True,
        length_normalize: bool = False,
        end_token: str | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        allow_download: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if model is None or tokenizer is None:
            if model_path is None:
                raise ValueError(
                    "the local LLM judge needs a model: set verifier.llm.model_path to a local "
                    "transformers model folder (or pass model and tokenizer)"
                )
            model, tokenizer = _load(model_path, self.device, dtype, allow_download)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or model_path or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.batch_size = batch_size
        self.normalize = normalize
        self.length_normalize = length_normalize
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        end_token = end_token or tokenizer.eos_token
        if end_token is None:
            raise ValueError(
                "the tokenizer has no eos token: set verifier.end_token to the end-of-turn token"
            )
        end_id = tokenizer.convert_tokens_to_ids(end_token)
        if end_id is None or (tokenizer.unk_token_id is not None and end_id == tokenizer.unk_token_id):
            raise ValueError(f"end token {end_token!r} is not in the tokenizer's vocabulary")
        self._label_ids = [
            tokenizer(label, add_special_tokens=False)["input_ids"] + [end_id] for label in LABELS
        ]
        pad = tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else end_id
        self.totals: Counter[str] = Counter()
        self.last_stats: dict[str, float] = {}

    @property
    def prompt_version(self) -> str:
        return PROMPT_VERSION

    @property
    def identity(self) -> str:
        return f"llm_local|{self.name}|{PROMPT_VERSION}|{'norm' if self.normalize else 'raw'}"

    def __repr__(self) -> str:
        return f"LLMLocalJudge(name={self.name!r}, device={str(self.device)!r})"

    def judge(self, ground_truths: Sequence[str], predictions: Sequence[str | None]) -> list[Judgement]:
        """One judgement per pair; a missing prediction is a parse failure, anything else a category."""
        if len(ground_truths) != len(predictions):
            raise ValueError(
                f"judge got {len(ground_truths)} ground truths for {len(predictions)} predictions"
            )
        started = time.perf_counter()
        where: dict[Pair, list[int]] = {}
        out: list[Judgement] = [Outcome.PARSE_FAILURE] * len(predictions)
        for i, (truth, prediction) in enumerate(zip(ground_truths, predictions, strict=True)):
            if prediction is not None:
                pair = (
                    (normalize_label(truth), normalize_label(prediction))
                    if self.normalize
                    else (truth, prediction)
                )
                where.setdefault(pair, []).append(i)
        unique = list(where)
        if unique:
            scores = self.label_scores(unique)
            for pair, row in zip(unique, scores.argmax(dim=1).tolist(), strict=True):
                for i in where[pair]:
                    out[i] = Category(LABELS[row])
        stats = Counter(
            {"verdicts": len(out), "unique_pairs": len(unique), "forward_sequences": 6 * len(unique)}
        )
        self.totals.update(stats)
        self.last_stats = {k: float(v) for k, v in stats.items()}
        self.last_stats["seconds"] = time.perf_counter() - started
        return out

    def prompt_ids(self, ground_truth: str, prediction: str) -> list[int]:
        """Token ids of the chat up to the assistant's answer, for one pair."""
        messages = pair_messages(ground_truth, prediction)
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False, **self.chat_template_kwargs
            )
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def label_scores(self, pairs: Sequence[Pair]) -> torch.Tensor:
        """[n_pairs, 6] log p(label + end | prompt), summed (or averaged) over the label's tokens."""
        sequences: list[tuple[list[int], list[int]]] = []
        for truth, prediction in pairs:
            prefix = self.prompt_ids(truth, prediction)
            sequences.extend((prefix, label) for label in self._label_ids)
        scores: list[float] = []
        for start in range(0, len(sequences), self.batch_size):
            scores.extend(self._score_batch(sequences[start : start + self.batch_size]))
        return torch.tensor(scores, dtype=torch.float64).view(len(pairs), len(LABELS))

    def _score_batch(self, batch: list[tuple[list[int], list[int]]]) -> list[float]:
        rows = [prefix + label for prefix, label in batch]
        length = max(len(r) for r in rows)
        keep = max(len(label) for _, label in batch) + 1
        ids = torch.full((len(rows), length), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, length - len(row) :] = torch.tensor(row)
            mask[i, length - len(row) :] = 1
        # Left padding: positions count real tokens only, as if each row were alone.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        logits = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
        ).logits
        logp = torch.log_softmax(logits[:, -keep:].float(), dim=-1)
        out = []
        for i, (_, label) in enumerate(batch):
            c = len(label)
            # Token at absolute position q is predicted by the logits at q - 1; the label fills the
            # last c positions, so its predictors are kept indices keep-c-1 .. keep-2.
            window = logp[i, keep - c - 1 : keep - 1]
            target = torch.tensor(label, device=window.device).unsqueeze(1)
            total = window.gather(1, target).sum()
            out.append(float(total / c) if self.length_normalize else float(total))
        return out


def _load(model_path: str, device: torch.device, dtype: str, allow_download: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from speciarl.core.model_paths import resolve_model_path

    try:
        path = resolve_model_path(model_path, allow_download=allow_download)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"judge model {model_path!r} is not a local model folder nor in the Hugging Face cache: set "
            "verifier.llm.model_path to a local folder, or verifier.llm.allow_download=true with network access"
        ) from err
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=not allow_download)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=not allow_download)
    return model.to(device), tokenizer
