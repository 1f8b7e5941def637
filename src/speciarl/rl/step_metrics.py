"""The training step's statistics as torchmetrics ``Metric`` objects, summed over ranks by torchmetrics.

Every figure is a sum (or a ratio of two sums) of what each rank saw, reduced across ranks
before the ratio is taken, so the logged values are those of a single process on the whole
global batch. ``compute`` is a collective under DDP: every rank calls it, in the same order.

Rollout figures (over everything generated in the step, every round of dynamic sampling):
    correctness, specificity, hm, frac_<category>   judge verdicts, judge errors left out
    reward_mean = sum r / #r over groups without a judge error (NaN when there is none)
    zero_variance_groups = #groups whose rewards are all equal / #groups (G > 1)
    judge_error_groups = #groups with a judge error / #groups
    truncated = #completions cut at the budget; truncated_fraction = that / #completions
    response_length = sum of completion lengths / #completions
    overlong_penalty_mean, overlong_penalized_fraction   DAPO's shaping, when it is on
Update figures (``UpdateSums``): each loss term weighted by its share of the global units,
summed, divided by the number of optimiser steps; adv_abs_mean = sum |A| / #A.
Running totals (``RunningTotals``): counters over the whole run (``total_*``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, Metric

from speciarl.core.categories import Judgement, Outcome
from speciarl.evaluation.metrics import CategoryCounts

UPDATE_KEYS = ("loss", "policy_loss", "kl", "entropy", "clip_fraction", "ratio_mean")


class Sum(Metric):
    """A float64 sum over updates and ranks."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: float) -> None:
        self.total += value

    def compute(self) -> Tensor:
        return self.total.clone()


class Ratio(Metric):
    """sum(numerator) / sum(denominator) over updates and ranks; ``empty`` when the denominator is 0."""

    full_state_update = False

    def __init__(self, empty: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.empty = empty
        self.add_state("numerator", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("denominator", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, numerator: float, denominator: float) -> None:
        self.numerator += numerator
        self.denominator += denominator

    def compute(self) -> Tensor:
        den = float(self.denominator)
        value = float(self.numerator) / den if den else self.empty
        return torch.tensor(value, dtype=torch.float64)


class RunningTotals(Metric):
    """Integer counters over the whole run, one named state each; ``compute`` sums them over ranks."""

    full_state_update = False

    def __init__(self, keys: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = tuple(keys)
        for key in self.keys:
            self.add_state(key, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, counts: Mapping[str, int]) -> None:
        state = self.metric_state
        for key, value in counts.items():
            state[key].add_(int(value))

    def local(self) -> dict[str, int]:
        """This rank's counters (no communication)."""
        return self.compute_unsynced()

    def load(self, values: Mapping[str, int]) -> None:
        """Set this rank's counters (resuming: rank 0 carries the checkpoint's global totals)."""
        state = self.metric_state
        for key in self.keys:
            if key in values:
                state[key].fill_(int(values[key]))

    def compute_unsynced(self) -> dict[str, int]:
        state = self.metric_state
        return {key: int(state[key]) for key in self.keys}

    def compute(self) -> dict[str, int]:
        return self.compute_unsynced()


@dataclass
class RoundRecord:
    """What one generation round produced, kept for the step's statistics (no images, no tokens)."""

    judgements: list[Judgement]
    rewards: Tensor  # shaped, [B, G]
    overlong: Tensor  # [B, G]
    truncated: Tensor  # [B * G]
    lengths: Tensor  # [B * G]


@dataclass
class UpdateSums:
    """One rank's sums over the optimiser steps of a training step (``speciarl.rl.update``)."""

    weighted: dict[str, float] = field(default_factory=lambda: dict.fromkeys(UPDATE_KEYS, 0.0))
    grad_norm: float = 0.0
    updates: int = 0
    adv_abs_sum: float = 0.0
    adv_count: float = 0.0
    with_entropy: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    # |logp_engine - logp_old| over the sampled tokens: sum, count and max (the engine mismatch)
    mismatch_abs_sum: float = 0.0
    mismatch_tokens: float = 0.0
    mismatch_max: float = 0.0
    # per optimiser step: None when applied, else the non-finite quantity that skipped it
    nonfinite: list[str | None] = field(default_factory=list)

    def record_mismatch(self, old_logp: Tensor, sampler_logp: Tensor, mask: Tensor) -> None:
        """Add the rows' |log pi_old - log p_engine| over ``mask`` (each sampled token once)."""
        width = min(old_logp.shape[1], sampler_logp.shape[1], mask.shape[1])
        mask = mask[:, :width].to(torch.bool)
        diff = (old_logp[:, :width].detach().double() - sampler_logp[:, :width].double()).abs()[mask]
        if diff.numel():
            self.mismatch_abs_sum += float(diff.sum())
            self.mismatch_tokens += float(diff.numel())
            self.mismatch_max = max(self.mismatch_max, float(diff.max()))


class StepMetrics(nn.Module):
    """The training step's figures (reset every step) and the run's totals (never reset).

    Args:
        totals: names of the running counters, in logging order.
        overlong: log DAPO's overlong-shaping figures.
    """

    def __init__(self, totals: Sequence[str], overlong: bool) -> None:
        super().__init__()
        self.overlong = overlong
        self.verdicts = CategoryCounts()
        ratios = {
            "reward_mean": math.nan,
            "zero_variance_groups": 0.0,
            "judge_error_groups": 0.0,
            "truncated_fraction": 0.0,
            "response_length": 0.0,
            "overlong_penalty_mean": 0.0,
            "overlong_penalized_fraction": 0.0,
            "adv_abs_mean": math.nan,
        }
        self.ratios = nn.ModuleDict({name: Ratio(empty) for name, empty in ratios.items()})
        sums = ("truncated", "judge_errors", "judged", "dropped_groups", "trained_groups", *UPDATE_KEYS)
        self.sums = nn.ModuleDict({name: Sum() for name in sums})
        self.mismatch = Ratio(math.nan)
        self.mismatch_max = MaxMetric()
        self.totals = RunningTotals(totals)

    def count(self, **counts: int) -> None:
        """Add to the running totals."""
        self.totals.update(counts)

    def update_rollouts(self, rounds: Sequence[RoundRecord], group_size: int) -> None:
        """Everything generated this step (no rounds: this rank had no data, it still takes part)."""
        judgements = [j for r in rounds for j in r.judgements]
        rewards = torch.cat([r.rewards for r in rounds]) if rounds else torch.zeros(0, group_size)
        overlong = torch.cat([r.overlong for r in rounds]) if rounds else torch.zeros(0, group_size)
        truncated = torch.cat([r.truncated for r in rounds]) if rounds else torch.zeros(0, dtype=torch.bool)
        lengths = torch.cat([r.lengths for r in rounds]) if rounds else torch.zeros(0)
        failed = torch.isnan(rewards).any(dim=1)
        errors = sum(j is Outcome.JUDGE_ERROR for j in judgements)
        self.count(
            judge_errors=errors,
            dropped_groups=int(failed.sum()),
            parse_failures=sum(j is Outcome.PARSE_FAILURE for j in judgements),
            truncated=int(truncated.sum()),
        )
        self.verdicts.update(j for j in judgements if j is not Outcome.JUDGE_ERROR)
        ok = rewards[~failed]
        multi = ok.numel() > 0 and ok.shape[1] > 1
        rows = float(lengths.numel())
        ratios = self.ratios
        ratios["reward_mean"].update(float(ok.sum()) if ok.numel() else 0.0, float(ok.numel()))
        flat = float((ok.std(dim=1) == 0).sum()) if multi else 0.0
        ratios["zero_variance_groups"].update(flat, float(ok.shape[0]) if multi else 0.0)
        ratios["judge_error_groups"].update(float(failed.sum()), float(failed.numel()))
        ratios["truncated_fraction"].update(float(truncated.sum()), rows)
        ratios["response_length"].update(float(lengths.sum()), rows)
        ratios["overlong_penalty_mean"].update(float(overlong.sum()), float(ok.numel()))
        ratios["overlong_penalized_fraction"].update(float((overlong < 0).sum()), rows)
        self.sums["truncated"].update(float(truncated.sum()))
        self.sums["judge_errors"].update(float(errors))
        self.sums["judged"].update(float(sum(j is not Outcome.PARSE_FAILURE for j in judgements)))
        self.sums["dropped_groups"].update(float(failed.sum()))

    def update_training(self, trained_groups: int, sums: UpdateSums) -> None:
        """What the update did on this rank (zeros where it had nothing to train on)."""
        self.sums["trained_groups"].update(float(trained_groups))
        for key in UPDATE_KEYS:
            self.sums[key].update(sums.weighted[key])
        self.ratios["adv_abs_mean"].update(sums.adv_abs_sum, sums.adv_count)
        self.mismatch.update(sums.mismatch_abs_sum, sums.mismatch_tokens)
        self.mismatch_max.update(sums.mismatch_max)

    def compute_rollouts(self) -> dict[str, float]:
        """The rollout figures, the step's judge-failure counts and the running totals (a collective)."""
        verdicts = {k: float(v) for k, v in self.verdicts.compute().items()}
        stats = {k: verdicts[k] for k in ("correctness", "specificity", "hm")}
        stats.update({k: v for k, v in verdicts.items() if k.startswith("frac_")})
        for name in ("reward_mean", "zero_variance_groups", "judge_error_groups"):
            stats[name] = float(self.ratios[name].compute())
        stats["truncated"] = float(self.sums["truncated"].compute())
        for name in ("truncated_fraction", "response_length"):
            stats[name] = float(self.ratios[name].compute())
        if self.overlong:
            for name in ("overlong_penalty_mean", "overlong_penalized_fraction"):
                stats[name] = float(self.ratios[name].compute())
        for name in ("judge_errors", "dropped_groups"):
            stats[name] = float(self.sums[name].compute())
        return stats

    def judge_failures(self) -> tuple[int, int]:
        """(judge errors, verdicts that are not parse failures) of the step, over every rank (a collective)."""
        return int(self.sums["judge_errors"].compute()), int(self.sums["judged"].compute())

    def compute_training(self, sums: UpdateSums) -> dict[str, float]:
        """The update figures: each weighted sum over ranks / the number of optimiser steps (a collective)."""
        trained = float(self.sums["trained_groups"].compute())
        summed = {key: float(self.sums[key].compute()) for key in UPDATE_KEYS}
        adv = float(self.ratios["adv_abs_mean"].compute())
        stats = {"adv_abs_mean": adv} if not math.isnan(adv) else {}
        mismatch, mismatch_max = float(self.mismatch.compute()), float(self.mismatch_max.compute())
        if not math.isnan(mismatch):  # the engine reported its log-probs
            stats.update(rollout_logp_diff_mean=mismatch, rollout_logp_diff_max=mismatch_max)
        if trained:
            stats["trained_groups"] = trained
        if sums.updates == 0:
            return {**stats, "updates": 0.0}
        stats.update({key: summed[key] / sums.updates for key in UPDATE_KEYS})
        if not sums.with_entropy:
            stats.pop("entropy")
        stats["grad_norm"] = sums.grad_norm / sums.updates
        stats["updates"] = float(sums.updates)
        return stats

    def compute_totals(self) -> dict[str, int]:
        """The running totals summed over ranks (a collective)."""
        return self.totals.compute()

    def reset_step(self) -> None:
        """Clear the step's figures; the running totals stay."""
        self.verdicts.reset()
        for metric in (*self.ratios.values(), *self.sums.values(), self.mismatch, self.mismatch_max):
            metric.reset()
