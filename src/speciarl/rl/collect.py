"""Collecting a training batch: rollout -> judge -> reward, with DAPO's dynamic sampling.

One ``collect`` call per training step. Without dynamic sampling it rolls out the step's
prompts once; with it (Yu et al. 2025, DAPO) it keeps rolling out refill prompts until the
batch holds only groups whose rewards differ (``speciarl.rl.dynamic_sampling``). Groups with a
judge error (a NaN reward) are then dropped: a failure to judge must never become a score.
Everything every round generated is kept, without images or tokens, for the step's statistics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from speciarl.core.completions import CompletionRow, completion_rows
from speciarl.core.interfaces import Judge, Reward
from speciarl.core.samples import Sample
from speciarl.policy.policy import Policy
from speciarl.rl.config import AlgorithmConfig
from speciarl.rl.dynamic_sampling import DynamicSampler, SamplingReport
from speciarl.rl.scoring import RolloutScorer, ScoredRollouts
from speciarl.rl.step_metrics import RoundRecord
from speciarl.rollout.backend import RolloutBackend

log = logging.getLogger(__name__)


@dataclass
class Collection:
    """What a step collected.

    ``batch``: the groups to train on (None: none); ``rounds``: every round's verdicts, rewards and
    lengths; ``judge_calls``: the judge's counters of each call; ``sampling``: the dynamic
    sampling report (None when it is off); ``empty``: dynamic sampling found nothing;
    ``seconds``: time spent generating and judging; ``table``: sample completions of round 1.
    """

    batch: ScoredRollouts | None = None
    rounds: list[RoundRecord] = field(default_factory=list)
    judge_calls: list[Mapping[str, float]] = field(default_factory=list)
    sampling: SamplingReport | None = None
    empty: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: {"rollout": 0.0, "judge": 0.0})
    table: list[CompletionRow] = field(default_factory=list)


class Collector:
    """Rolls out, judges and rewards prompts (every round of dynamic sampling).

    Args:
        rollout: the generation backend.
        judge: sorts each completion's answer into a category.
        reward: groups of judgements -> [B, G] rewards.
        algorithm: group size, truncation, overlong shaping and dynamic sampling settings.
        refill: ``n -> n`` fresh training samples, for dynamic sampling's later rounds.
    """

    def __init__(
        self,
        rollout: RolloutBackend,
        judge: Judge,
        reward: Reward,
        algorithm: AlgorithmConfig,
        refill: Callable[[int], list[Sample]],
    ) -> None:
        self.rollout = rollout
        self.judge = judge
        self.algorithm = algorithm
        self.scorer = RolloutScorer(
            judge, reward, algorithm, rollout.max_new_tokens
        )  # checks the settings now
        self.sampler = DynamicSampler(algorithm.dynamic_sampling, refill)
        self.empty_steps = 0  # consecutive steps in which dynamic sampling found nothing

    def collect(
        self, policy: Policy, samples: Sequence[Sample], target: int, step: int, table_rows: int
    ) -> Collection:
        """The step's training batch from ``samples`` (dynamic sampling fills it to ``target`` groups).

        ``table_rows``: completions of the first round to hand back for the sample table (0: none).
        """
        out = Collection()

        def score(prompts: list[Sample]) -> ScoredRollouts:
            t = time.perf_counter()
            rollout = self.rollout.generate(policy, prompts, group_size=self.algorithm.group_size)
            out.seconds["rollout"] += time.perf_counter() - t
            t = time.perf_counter()
            scored = self.scorer.score(prompts, rollout)
            out.seconds["judge"] += time.perf_counter() - t
            out.judge_calls.append(self.judge.last_stats)
            if not out.rounds and table_rows:
                out.table = completion_rows(
                    prompts, rollout.texts, scored.answers, scored.judgements, scored.shaped,
                    rollout.group_size, step, table_rows,
                )  # fmt: skip
            out.rounds.append(
                RoundRecord(
                    scored.judgements,
                    scored.shaped,
                    scored.overlong,
                    rollout.truncated,
                    rollout.completion_mask.sum(-1),
                )
            )
            return scored

        if self.algorithm.dynamic_sampling.enabled:
            batch = self._sample_dynamically(list(samples), target, score, out, policy)
        else:
            batch = score(list(samples))
        out.batch = _without_judge_errors(batch, step)
        return out

    def _sample_dynamically(
        self,
        samples: list[Sample],
        target: int,
        score: Callable[[list[Sample]], ScoredRollouts],
        out: Collection,
        policy: Policy,
    ) -> ScoredRollouts | None:
        """DAPO dynamic sampling: the informative groups of as many rounds as it takes (None: none)."""
        ds = self.algorithm.dynamic_sampling
        collected = self.sampler.collect(
            samples,
            target,
            score,
            (lambda s: s.rewards) if ds.filter_on == "reward" else (lambda s: s.shaped),
            lambda s, groups: s.select_groups(groups),
        )
        out.sampling = collected.report
        if collected.parts:
            self.empty_steps = 0
            return ScoredRollouts.concat(collected.parts, policy.pad_id, policy.eos_id)
        self.empty_steps += 1
        out.empty = True
        if self.empty_steps >= ds.max_empty_steps:
            raise RuntimeError(
                f"dynamic sampling found no group with unequal rewards in {self.empty_steps} "
                f"consecutive steps ({ds.max_rounds} rounds each): the policy gets no signal from "
                "this data. Check the rewards, or disable algorithm.dynamic_sampling.enabled."
            )
        return None


def _without_judge_errors(batch: ScoredRollouts | None, step: int) -> ScoredRollouts | None:
    """The groups without a NaN reward (None when none is left)."""
    if batch is None:
        return None
    failed = torch.isnan(batch.shaped).any(dim=1)
    keep = [i for i in range(batch.num_groups) if not failed[i]]
    if not keep:
        log.warning("step %d: every group had a judge error; no update", step)
        return None
    return batch.select_groups(keep)
