"""Rewards over a group of G judged rollouts of one prompt (SPEC.md section 3).

Every function here is pure: judgements in, floats out. A parse failure earns -1 under every
reward and never sets SpeciaRL's bar. A judge error is not a verdict: its reward is NaN, so the
caller must drop (or stop on) the group instead of training on a made-up score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from speciarl.verifier.categories import Category, Judgement, Outcome

PARSE_FAILURE_REWARD = -1.0

STATIC_TABLES: dict[str, dict[Category, float]] = {
    "reward3": {
        Category.MORE_SPECIFIC: 1.0,
        Category.SPECIFIC: 1.0,
        Category.LESS_SPECIFIC: 0.0,
        Category.GENERIC: 0.0,
        Category.ABSTAIN: 0.0,
        Category.WRONG: 0.0,
    },
}


def _non_category(j: Judgement) -> float | None:
    """The reward of an outcome that is not a category, or None for a category."""
    if j is Outcome.PARSE_FAILURE:
        return PARSE_FAILURE_REWARD
    if j is Outcome.JUDGE_ERROR:
        return math.nan
    if j is Outcome.UNRESOLVED:
        raise ValueError("an unresolved judgement reached the reward: resolve it to a category first")
    return None


def speciarl_reward(group: Sequence[Judgement], mode: str = "all") -> list[float]:
    """r_i = 1 if rank(c_i) == best rank of the judged group (and best is not wrong), else 0; parse failure -1.

    ``mode="all"`` rewards every rollout at the best rank; ``mode="single"`` only the first.
    """
    if mode not in ("all", "single"):
        raise ValueError(f"speciarl mode must be 'all' or 'single', got {mode!r}")
    judged = [j.rank for j in group if isinstance(j, Category)]
    best = min(judged) if judged else None
    rewards: list[float] = []
    given = False
    for j in group:
        fixed = _non_category(j)
        if fixed is not None:
            rewards.append(fixed)
        elif best is None or best == Category.WRONG.rank or j.rank != best or (mode == "single" and given):
            rewards.append(0.0)
        else:
            rewards.append(1.0)
            given = True
    return rewards


def static_reward(group: Sequence[Judgement], table: Mapping[Category, float]) -> list[float]:
    """r_i = table[c_i]; parse failure -1."""
    missing = set(Category) - set(table)
    if missing:
        raise ValueError(f"static reward table lacks {sorted(c.value for c in missing)}")
    out = []
    for j in group:
        fixed = _non_category(j)
        out.append(float(table[j]) if fixed is None else fixed)
    return out


class SpeciaRLReward:
    """Dynamic, best-prediction-anchored reward (``reward=speciarl``)."""

    def __init__(self, mode: str = "all") -> None:
        speciarl_reward([], mode)  # validates the mode early
        self.mode = mode
        self.name = "speciarl" if mode == "all" else f"speciarl_{mode}"

    def __call__(self, groups: Sequence[Sequence[Judgement]]) -> torch.Tensor:
        return torch.tensor([speciarl_reward(g, self.mode) for g in groups], dtype=torch.float32)


class StaticReward:
    """Fixed score per category (``reward=reward3`` and the scala variants)."""

    def __init__(self, name: str, table: Mapping[str, float] | None = None) -> None:
        if table is None:
            if name not in STATIC_TABLES:
                raise ValueError(
                    f"unknown static reward {name!r}: expected one of {sorted(STATIC_TABLES)} or a table"
                )
            self.table = dict(STATIC_TABLES[name])
        else:
            self.table = {Category(k): float(v) for k, v in table.items()}
        self.name = name

    def __call__(self, groups: Sequence[Sequence[Judgement]]) -> torch.Tensor:
        return torch.tensor([static_reward(g, self.table) for g in groups], dtype=torch.float32)
