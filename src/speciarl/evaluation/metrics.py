"""Correctness, specificity and their harmonic mean, as pure functions and torchmetrics.

Over N judged answers (parse failures count as not correct; judge errors are not verdicts and
are counted apart, outside N):
    C = (generic + less specific + specific + more specific) / N
    S = (specific + more specific) / (generic + less specific + specific + more specific)
    HM = 2 C S / (C + S)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torchmetrics import Metric

from speciarl.core.categories import Category, Judgement, Outcome

# Slots of the count vector: the six categories, then parse failures, then judge errors.
SLOTS: tuple[Judgement, ...] = (*Category, Outcome.PARSE_FAILURE, Outcome.JUDGE_ERROR)
_SLOT = {j: i for i, j in enumerate(SLOTS)}


def slot_name(judgement: Judgement) -> str:
    return judgement.value.replace(" ", "_")


def count_judgements(judgements: Iterable[Judgement]) -> dict[Judgement, int]:
    counts = dict.fromkeys(SLOTS, 0)
    for j in judgements:
        if j is Outcome.UNRESOLVED:
            raise ValueError(
                "an unresolved judgement reached the metrics: resolve it with a judge (or count "
                "it as wrong) before computing correctness"
            )
        counts[j] += 1
    return counts


def correctness_specificity(counts: Mapping[Judgement, int]) -> tuple[float, float, float]:
    """(C, S, HM) from category counts; every ratio with an empty denominator is 0."""
    correct = sum(counts.get(c, 0) for c in Category if c.is_correct)
    specific = sum(counts.get(c, 0) for c in Category if c.is_specific)
    n = correct + sum(counts.get(j, 0) for j in (Category.ABSTAIN, Category.WRONG, Outcome.PARSE_FAILURE))
    c = correct / n if n else 0.0
    s = specific / correct if correct else 0.0
    hm = 2 * c * s / (c + s) if c + s else 0.0
    return c, s, hm


def summary(judgements: Iterable[Judgement]) -> dict[str, float]:
    """C, S, HM and the share of each slot, keyed for logging."""
    counts = count_judgements(judgements)
    c, s, hm = correctness_specificity(counts)
    total = sum(counts.values())
    out = {"correctness": c, "specificity": s, "hm": hm, "n": float(total)}
    for j, k in counts.items():
        out[f"frac_{slot_name(j)}"] = k / total if total else 0.0
    return out


class CategoryCounts(Metric):
    """Accumulates judgement counts, summed across ranks by torchmetrics on ``compute``.

    ``compute`` gives correctness, specificity, hm and the share of each slot (``frac_<slot>``);
    the training step and validation both log from it.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("counts", default=torch.zeros(len(SLOTS), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, judgements: Iterable[Judgement]) -> None:
        counts = count_judgements(judgements)
        self.counts += torch.tensor([counts[j] for j in SLOTS], dtype=torch.long, device=self.counts.device)

    def as_mapping(self) -> dict[Judgement, int]:
        return {j: int(v) for j, v in zip(SLOTS, self.counts.tolist(), strict=True)}

    def compute(self) -> dict[str, torch.Tensor]:
        counts = self.as_mapping()
        c, s, hm = correctness_specificity(counts)
        total = max(sum(counts.values()), 1)
        out = {"correctness": c, "specificity": s, "hm": hm}
        out.update({f"frac_{slot_name(j)}": k / total for j, k in counts.items()})
        return {k: torch.tensor(v, dtype=torch.float32) for k, v in out.items()}
