"""DAPO dynamic sampling (Yu et al. 2025): keep generating until the batch holds only informative groups.

A group whose rewards are all equal has zero advantage under every group-relative estimator: it
costs a forward and backward pass and teaches nothing (and with token-mean it dilutes the
others). Dynamic sampling drops such groups and rolls out more prompts until ``batch_size``
informative groups are collected, or ``max_rounds`` generation rounds were spent.

Where the extra prompts come from: a dedicated ``RefillStream`` over the training dataset, with
its own seed, not the Lightning dataloader. Pulling extra batches out of the dataloader from
inside ``training_step`` would fight Lightning's loop (its epoch and batch counters, prefetching,
``limit_train_batches``) and would make the number of optimiser steps per epoch depend on the
policy. With a separate stream, the fit loop sees one batch per step as usual and the refill
order is reproducible from the seed; the price is that an "epoch" is no longer an exact pass
(refill prompts may repeat prompts of the main order), which does not matter for sampled RL.

At the round limit the step trains on the informative groups collected so far (fewer than
``batch_size``; possibly none, then there is no update) and logs a warning saying so; the
counters ``ds_rounds``, ``ds_kept_groups``, ``ds_dropped_*`` and ``ds_hit_round_limit`` go to the
logger every step. This differs from verl, which raises an error at its limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from speciarl.core.samples import Sample
from speciarl.rl.config import DynamicSampling

log = logging.getLogger(__name__)

T = TypeVar("T")


def informative_groups(rewards: Tensor) -> Tensor:
    """keep_g = max_i r_gi != min_i r_gi (a group whose rewards are all equal has zero advantage).

    A group holding a NaN reward (a judge error) is never kept: it must not be trained on.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [groups, group_size], got shape {tuple(rewards.shape)}")
    finite = ~torch.isnan(rewards).any(dim=1)
    spread = rewards.amax(dim=1) != rewards.amin(dim=1)
    return finite & spread


class RefillStream:
    """An endless, seeded, reshuffled-every-pass stream of readable samples from a dataset.

    Args:
        dataset: map-style dataset of ``Sample`` (``None`` for an unreadable item, skipped).
        seed: seed of the order; different from the dataloader's so refills are other prompts.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("dynamic sampling needs a non-empty training dataset to refill from")
        self.dataset = dataset
        self.generator = torch.Generator().manual_seed(int(seed))
        self.order: list[int] = []
        self.position = 0
        self.skipped = 0

    def take(self, n: int) -> list[Sample]:
        """The next ``n`` readable samples (unreadable ones are skipped and counted)."""
        out: list[Sample] = []
        misses = 0
        size = len(self.dataset)  # type: ignore[arg-type]
        while len(out) < n:
            if self.position >= len(self.order):
                self.order = torch.randperm(size, generator=self.generator).tolist()
                self.position = 0
            item = self.dataset[self.order[self.position]]
            self.position += 1
            if item is None:
                self.skipped += 1
                misses += 1
                if misses >= size:
                    raise RuntimeError("dynamic sampling refill: no item of the training dataset is readable")
                continue
            misses = 0
            out.append(item)
        return out


@dataclass
class SamplingReport:
    """What one step of dynamic sampling did (all counts are groups, i.e. prompts)."""

    rounds: int = 0
    generated: int = 0
    informative: int = 0
    kept: int = 0
    dropped_equal: int = 0
    dropped_failed: int = 0
    hit_round_limit: bool = False

    def as_metrics(self) -> dict[str, float]:
        return {
            "ds_rounds": float(self.rounds),
            "ds_generated_groups": float(self.generated),
            "ds_informative_groups": float(self.informative),
            "ds_kept_groups": float(self.kept),
            "ds_dropped_equal_groups": float(self.dropped_equal),
            "ds_dropped_error_groups": float(self.dropped_failed),
            "ds_hit_round_limit": float(self.hit_round_limit),
        }


@dataclass
class Collected(Generic[T]):
    """The training batch as parts (the kept groups of each round, in order) and the report.

    Only kept groups are held, so memory stays at one training batch plus one round however many
    rounds run.
    """

    parts: list[T] = field(default_factory=list)
    report: SamplingReport = field(default_factory=SamplingReport)


class DynamicSampler:
    """The refill loop: score rounds of prompts, keep informative groups, stop when full or at the limit.

    Args:
        config: the ``algorithm.dynamic_sampling`` settings.
        refill: ``n -> n`` fresh training samples (a ``RefillStream.take``).
    """

    def __init__(self, config: DynamicSampling, refill: Callable[[int], list[Sample]]) -> None:
        self.config = config
        self.refill = refill

    def collect(
        self,
        first: Sequence[Sample],
        batch_size: int,
        score: Callable[[list[Sample]], T],
        filter_rewards: Callable[[T], Tensor],
        select: Callable[[T, list[int]], T],
    ) -> Collected[T]:
        """Round 1 rolls out ``first`` topped up from the refill to multiple x batch_size prompts;
        each later round rolls out multiple x batch_size refill prompts. ``filter_rewards`` gives a
        round's [groups, G] rewards that decide which groups are informative; ``select`` takes the
        kept groups out of a round. Surplus informative groups of the last round are discarded.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        per_round = self.config.generation_batch_multiple * batch_size
        result: Collected[T] = Collected()
        report = result.report
        prompts = list(first)[:per_round]
        prompts += self.refill(per_round - len(prompts))
        while True:
            scored = score(prompts)
            rewards = filter_rewards(scored)
            if rewards.shape[0] != len(prompts):
                raise ValueError(f"scored {rewards.shape[0]} groups for {len(prompts)} prompts")
            keep = informative_groups(rewards)
            failed = torch.isnan(rewards).any(dim=1)
            report.rounds += 1
            report.generated += len(prompts)
            report.informative += int(keep.sum())
            report.dropped_failed += int(failed.sum())
            report.dropped_equal += int((~keep & ~failed).sum())
            room = batch_size - report.kept
            chosen = torch.nonzero(keep).flatten().tolist()[:room]
            if chosen:
                result.parts.append(select(scored, chosen))
                report.kept += len(chosen)
            del scored
            if report.kept >= batch_size:
                break
            if report.rounds >= self.config.max_rounds:
                report.hit_round_limit = True
                log.warning(
                    "dynamic sampling: round limit %d reached with %d of %d informative groups "
                    "(%d generated); training on the %d collected%s",
                    self.config.max_rounds,
                    report.kept,
                    batch_size,
                    report.generated,
                    report.kept,
                    "" if report.kept else ": none, so this step makes no update",
                )
                break
            prompts = self.refill(per_round)
        return result
