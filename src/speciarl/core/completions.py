"""Sample completions as records: what a run writes to ``completions_<split>.jsonl`` and W&B.

The RL step builds the rows (it knows the samples, completions, verdicts and rewards); the run's
callback writes them. The record type sits here, below both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from speciarl.core.categories import Judgement
from speciarl.core.samples import Sample


@dataclass
class CompletionRow:
    """One completion of one prompt, as written to ``completions_<split>.jsonl``."""

    step: int
    sample_id: str
    ground_truth: str
    completion: str
    answer: str | None
    category: str
    reward: float | None
    tags: dict[str, str]
    image: Any = field(default=None, repr=False)  # the prompt's image, for the W&B table only

    def record(self) -> dict[str, Any]:
        """The JSONL record: every field but the image."""
        return {
            "step": self.step,
            "sample_id": self.sample_id,
            "ground_truth": self.ground_truth,
            "completion": self.completion,
            "answer": self.answer,
            "category": self.category,
            "reward": self.reward,
            "tags": self.tags,
        }


def completion_rows(
    samples: Sequence[Sample],
    texts: Sequence[str],
    answers: Sequence[str | None],
    judgements: Sequence[Judgement],
    rewards: torch.Tensor | None,
    group_size: int,
    step: int,
    limit: int,
) -> list[CompletionRow]:
    """The first ``limit`` completions (rows ordered prompt by prompt, ``group_size`` each)."""
    rows = []
    for i in range(min(len(texts), limit)):
        sample = samples[i // group_size]
        rows.append(
            CompletionRow(
                step=int(step),
                sample_id=sample.sample_id,
                ground_truth=sample.label,
                completion=texts[i],
                answer=answers[i],
                category=judgements[i].value,
                reward=None if rewards is None else float(rewards.flatten()[i]),
                tags=sample.tags,
                image=sample.image,
            )
        )
    return rows
