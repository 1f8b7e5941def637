"""Scoring a rollout: answers -> judge -> truncation handling -> reward -> overlong shaping.

``speciarl.rl.collect`` calls this once per generation round (more than once a step under
dynamic sampling), so everything that turns completions into per-group rewards lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from speciarl.core.categories import Judgement, Outcome, extract_answer
from speciarl.core.interfaces import Judge, Reward
from speciarl.core.rollouts import Rollout, concat_rollouts
from speciarl.core.samples import Sample
from speciarl.rl.config import AlgorithmConfig


def overlong_penalty(lengths: Tensor, max_length: int, buffer: int, factor: float = 1.0) -> Tensor:
    """DAPO soft overlong shaping: min(0, -(len - (L - B)) / B) * factor."""
    if not 0 < buffer <= max_length:
        raise ValueError(f"need 0 < buffer <= max_length, got buffer={buffer}, max_length={max_length}")
    return torch.clamp(-(lengths.float() - (max_length - buffer)) / buffer, max=0.0) * factor


def penalize_truncated(judgements: Sequence[Judgement], truncated: Sequence[bool]) -> list[Judgement]:
    """A truncated completion is scored as a parse failure (-1, never SpeciaRL's bar); others unchanged.

    A judge error stays a judge error: a failure to judge must surface, not become a score.
    """
    if len(judgements) != len(truncated):
        raise ValueError(f"{len(judgements)} judgements but {len(truncated)} truncation flags")
    return [
        Outcome.PARSE_FAILURE if cut and j is not Outcome.JUDGE_ERROR else j
        for j, cut in zip(judgements, truncated, strict=True)
    ]


@dataclass
class ScoredRollouts:
    """B prompts x G completions with their verdicts and rewards.

    ``judgements`` are the judge's verdicts (what metrics count); ``rewards`` the reward function's
    output on them after truncation handling, [B, G]; ``overlong`` the DAPO penalty, [B, G] (zeros
    when shaping is off); ``shaped`` = rewards + overlong, what advantages are computed from.
    """

    samples: list[Sample]
    rollout: Rollout
    answers: list[str | None]
    judgements: list[Judgement]
    rewards: Tensor
    overlong: Tensor
    shaped: Tensor

    @property
    def num_groups(self) -> int:
        return len(self.samples)

    @property
    def group_size(self) -> int:
        return self.rollout.group_size

    def select_groups(self, groups: Sequence[int]) -> ScoredRollouts:
        """The prompts at ``groups`` with all their completions."""
        groups = list(groups)
        if groups == list(range(self.num_groups)):
            return self
        G = self.group_size
        rows = [g * G + k for g in groups for k in range(G)]
        index = torch.as_tensor(groups, dtype=torch.long)
        return ScoredRollouts(
            samples=[self.samples[g] for g in groups],
            rollout=self.rollout.select(rows),
            answers=[self.answers[r] for r in rows],
            judgements=[self.judgements[r] for r in rows],
            rewards=self.rewards[index],
            overlong=self.overlong[index],
            shaped=self.shaped[index],
        )

    @staticmethod
    def concat(parts: Sequence[ScoredRollouts], pad_id: int, eos_id: int) -> ScoredRollouts:
        """One batch from several rounds (prompts and completions padded to a common width)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        if len(parts) == 1:
            return parts[0]
        return ScoredRollouts(
            samples=[s for p in parts for s in p.samples],
            rollout=concat_rollouts([p.rollout for p in parts], pad_id, eos_id),
            answers=[a for p in parts for a in p.answers],
            judgements=[j for p in parts for j in p.judgements],
            rewards=torch.cat([p.rewards for p in parts]),
            overlong=torch.cat([p.overlong for p in parts]),
            shaped=torch.cat([p.shaped for p in parts]),
        )


class RolloutScorer:
    """Turns a rollout into per-group rewards with the configured truncation and overlong handling.

    Args:
        judge: sorts each completion's answer into a category.
        reward: maps groups of judgements to a [B, G] float tensor.
        algorithm: reads ``truncation`` and ``overlong``.
        max_new_tokens: the rollout's token budget, the overlong L when none is configured.
    """

    def __init__(self, judge: Judge, reward: Reward, algorithm: AlgorithmConfig, max_new_tokens: int) -> None:
        self.judge = judge
        self.reward = reward
        self.algorithm = algorithm
        shaping = algorithm.overlong
        self.overlong_max_length, self.overlong_buffer = shaping.resolved(max_new_tokens)
        if shaping.enabled and not 0 < self.overlong_buffer <= self.overlong_max_length:
            raise ValueError(
                f"algorithm.overlong.buffer={self.overlong_buffer} must be in (0, max_length="
                f"{self.overlong_max_length}]: the penalty ramps over the last `buffer` tokens of the budget"
            )
        if shaping.enabled and self.overlong_max_length > max_new_tokens:
            raise ValueError(
                f"algorithm.overlong.max_length={self.overlong_max_length} exceeds the rollout budget "
                f"rollout.max_new_tokens={max_new_tokens}: no completion could reach it"
            )

    def score(self, samples: Sequence[Sample], rollout: Rollout) -> ScoredRollouts:
        G = rollout.group_size
        if rollout.completion_ids.shape[0] != len(samples) * G:
            raise ValueError(
                f"rollout has {rollout.completion_ids.shape[0]} rows for {len(samples)} prompts x G={G}"
            )
        answers = [extract_answer(text) for text in rollout.texts]
        labels = [s.label for s in samples for _ in range(G)]
        judgements = list(self.judge.judge(labels, answers))
        scored = judgements
        if self.algorithm.truncation == "penalize":
            scored = penalize_truncated(judgements, rollout.truncated.tolist())
        groups = [scored[i * G : (i + 1) * G] for i in range(len(samples))]
        rewards = self.reward(groups).float().reshape(len(samples), G)
        shaping = self.algorithm.overlong
        if shaping.enabled:
            lengths = rollout.completion_mask.sum(-1)
            overlong = overlong_penalty(
                lengths, self.overlong_max_length, self.overlong_buffer, shaping.penalty_factor
            ).reshape(len(samples), G)
        else:
            overlong = torch.zeros_like(rewards)
        return ScoredRollouts(
            samples=list(samples),
            rollout=rollout,
            answers=answers,
            judgements=judgements,
            rewards=rewards,
            overlong=overlong,
            shaped=rewards + overlong,
        )
