"""Rewards over a group of G judged rollouts of one prompt (the SpeciaRL paper, arXiv 2603.03197, Sec. 3).

Every function here is pure: judgements in, floats out. A parse failure earns -1 under every
reward and never sets SpeciaRL's bar. A judge error is not a verdict: its reward is NaN, so the
caller must drop (or stop on) the group instead of training on a made-up score.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from speciarl.core.categories import Category, Judgement, Outcome
from speciarl.core.interfaces import Reward

if TYPE_CHECKING:
    from speciarl.rl.config import AlgorithmConfig

log = logging.getLogger(__name__)

PARSE_FAILURE_REWARD = -1.0


def _table(less_specific: float, generic: float, abstain: float) -> dict[Category, float]:
    """A static table: specific and more specific 1, wrong 0, the middle three as given."""
    return {
        Category.MORE_SPECIFIC: 1.0,
        Category.SPECIFIC: 1.0,
        Category.LESS_SPECIFIC: less_specific,
        Category.GENERIC: generic,
        Category.ABSTAIN: abstain,
        Category.WRONG: 0.0,
    }


# The static baselines of the paper (Sec. 4): reward3 (1 for specific, else 0) and the scala tables.
STATIC_TABLES: dict[str, dict[Category, float]] = {
    "reward3": _table(less_specific=0.0, generic=0.0, abstain=0.0),
    "scala1": _table(less_specific=0.75, generic=0.5, abstain=0.25),
    "scala2": _table(less_specific=0.75, generic=0.5, abstain=0.0),
    "scala3": _table(less_specific=0.75, generic=0.0, abstain=0.0),
}

# The chain along which the noisy reward moves a verdict, best first (more specific counts as
# specific: the move is by rank, and rank 1 holds both).
NOISE_CHAIN = (Category.SPECIFIC, Category.LESS_SPECIFIC, Category.GENERIC, Category.ABSTAIN, Category.WRONG)


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


def perturb_category(category: Category, p: float, rng: random.Random) -> Category:
    """With probability p move one step along NOISE_CHAIN: up or down with p/2 each, inward with p at the ends.

    More specific counts as specific (its only move is down to less specific); when no move is
    drawn the category is returned unchanged, more specific included.
    """
    if rng.random() >= p:
        return category
    index = NOISE_CHAIN.index(Category.SPECIFIC if category is Category.MORE_SPECIFIC else category)
    if index == 0:
        step = 1
    elif index == len(NOISE_CHAIN) - 1:
        step = -1
    else:
        step = rng.choice((-1, 1))
    return NOISE_CHAIN[index + step]


def perturb_group(group: Sequence[Judgement], p: float, rng: random.Random) -> list[Judgement]:
    """Each judged category perturbed independently; parse failures and judge errors untouched."""
    return [perturb_category(j, p, rng) if isinstance(j, Category) else j for j in group]


class SpeciaRLReward(Reward):
    """Dynamic, best-prediction-anchored reward (``reward=speciarl``)."""

    def __init__(self, mode: str = "all") -> None:
        speciarl_reward([], mode)  # validates the mode early
        self.mode = mode
        self.name = "speciarl" if mode == "all" else f"speciarl_{mode}"

    def __call__(self, groups: Sequence[Sequence[Judgement]]) -> torch.Tensor:
        return torch.tensor([speciarl_reward(g, self.mode) for g in groups], dtype=torch.float32)


class StaticReward(Reward):
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


class NoisySpeciaRLReward(Reward):
    """SpeciaRL on verdicts each moved one step with probability p (``reward=noisy``, robustness ablation).

    The noise is drawn from its own seeded generator, so a run is reproducible from its seed; the
    generator advances from call to call (fresh noise every step).

    Args:
        p: probability of moving a verdict (0.05, 0.10 and 0.25 in the paper).
        seed: seed of the noise generator.
        mode: SpeciaRL mode, ``all`` (as the paper) or ``single``.
    """

    def __init__(self, p: float, seed: int = 0, mode: str = "all") -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"noisy reward p must be in [0, 1], got {p}")
        speciarl_reward([], mode)
        self.p = float(p)
        self.mode = mode
        self.rng = random.Random(seed)
        self.name = f"noisy_p{p:g}"
        self.moved = 0
        self.judged = 0

    def __call__(self, groups: Sequence[Sequence[Judgement]]) -> torch.Tensor:
        rewards = []
        for group in groups:
            noisy = perturb_group(group, self.p, self.rng)
            self.judged += sum(isinstance(j, Category) for j in group)
            self.moved += sum(a is not b for a, b in zip(group, noisy, strict=True))
            rewards.append(speciarl_reward(noisy, self.mode))
        return torch.tensor(rewards, dtype=torch.float32)

    def stats(self) -> dict[str, float]:
        """Running counts for the logs: verdicts moved, and the fraction moved."""
        return {"noise_moved": float(self.moved), "noise_rate": self.moved / max(self.judged, 1)}


def check_group_size(algorithm: AlgorithmConfig, reward: Reward) -> None:
    """SpeciaRL's reward is anchored to the best rollout of the group: in a group of one that is
    the rollout itself, so every answer is rewarded as the best and nothing pushes for specificity.
    A static reward still means something per rollout (advantage = reward, REINFORCE without a
    baseline, as verl does), so it is allowed with a warning."""
    if algorithm.group_size >= 2:
        return
    if isinstance(reward, SpeciaRLReward):
        raise ValueError(
            f"algorithm.group_size={algorithm.group_size} with reward=speciarl: the reward is anchored "
            "to the best rollout of each group, which in a group of one is the rollout itself (no "
            "specificity pressure). Use algorithm.group_size >= 2 (the paper uses 8)"
        )
    log.warning("algorithm.group_size=1: no group baseline, each rollout's advantage is its own reward")
