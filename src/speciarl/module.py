"""SpeciaRLModule: one RL step = rollout -> judge -> reward -> advantages -> log-probs -> update.

The module only orchestrates; every formula lives in ``rewards`` and ``algorithms``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import torch
from lightning.pytorch import LightningModule
from torch import nn

from speciarl.core.categories import Judgement, Outcome, extract_answer
from speciarl.core.samples import Sample
from speciarl.evaluation.metrics import (
    SLOTS,
    CategoryCounts,
    correctness_specificity,
    count_judgements,
    slot_name,
)
from speciarl.policy.microbatch import chunked_token_logprobs, micro_batches
from speciarl.policy.policy import Policy, Rollout, is_peft_model, token_logprobs, token_logprobs_with_entropy
from speciarl.rl.algorithms import (
    AlgorithmConfig,
    group_advantages,
    group_relative_loss,
    loss_mask_for_truncation,
)
from speciarl.rl.dynamic_sampling import DynamicSampler, RefillStream
from speciarl.rl.scoring import RolloutScorer, ScoredRollouts
from speciarl.rollout.hf import HFRollout
from speciarl.runs.distributed import (
    aggregation_units,
    all_reduce_sum,
    gather_objects,
    global_rank,
    partial_loss_weight,
    rng_state,
    set_rng_state,
    world_size,
)
from speciarl.verifier.failure_guard import JudgeFailureGuard, JudgeFailureRateExceeded
from speciarl.verifier.step_stats import sum_judge_stats

log = logging.getLogger(__name__)


class _RoundRecord(NamedTuple):
    """What one generation round produced, kept for the step's statistics (no images, no tokens)."""

    judgements: list[Judgement]
    rewards: torch.Tensor  # shaped, [B, G]
    overlong: torch.Tensor  # [B, G]
    truncated: torch.Tensor  # [B * G]
    lengths: torch.Tensor  # [B * G]


class SpeciaRLModule(LightningModule):
    """Group-relative RL of a vision-language policy with a verifier reward.

    Args:
        policy: model + processor + prompt.
        judge: anything with ``judge(ground_truths, predictions) -> list[Judgement]``.
        reward: callable mapping groups of judgements to a [B, G] float tensor.
        algorithm: advantage and loss settings.
        rollout: the generation backend.
        optimizer: builds the optimiser from the trainable parameters (Hydra ``_partial_``).
        lr_scheduler: builds the learning-rate schedule from the optimiser (None: constant).
        max_grad_norm: gradient clipping by global norm.
        val_breakdown_tag: sample tag whose values get their own validation metrics.
        log_completions_every: write a table of sample completions every this many steps (0: never).
        judge_max_failure_rate, judge_failure_window, judge_failure_min_verdicts: stop the run when
            the judge fails on more than this share of verdicts over the last window of steps
            (see ``verifier.failure_guard``).
        logprob_token_budget: most tokens (rows x padded positions) per log-prob forward; larger
            batches are cut into micro-batches whose gradients add up to the unbatched one
            (None: one pass per mini-batch).
    """

    def __init__(
        self,
        policy: Policy,
        judge: Any,
        reward: Any,
        algorithm: AlgorithmConfig,
        rollout: HFRollout,
        optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
        lr_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        max_grad_norm: float = 1.0,
        val_breakdown_tag: str | None = "kind",
        log_completions_every: int = 50,
        completions_per_table: int = 8,
        judge_max_failure_rate: float = 0.05,
        judge_failure_window: int = 20,
        judge_failure_min_verdicts: int = 100,
        logprob_token_budget: int | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.policy = policy
        self.model = policy.model
        self.judge = judge
        self.reward = reward
        self.algorithm = algorithm
        self.rollout = rollout
        self.group_size = algorithm.group_size
        self.optimizer_factory = optimizer or _default_optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.max_grad_norm = max_grad_norm
        self.mini_batches = algorithm.mini_batches
        self.ppo_epochs = algorithm.ppo_epochs
        self.val_breakdown_tag = val_breakdown_tag
        self.log_completions_every = log_completions_every
        self.completions_per_table = completions_per_table
        if logprob_token_budget is not None and logprob_token_budget <= 0:
            raise ValueError(f"logprob_token_budget must be positive or null, got {logprob_token_budget}")
        self.logprob_token_budget = logprob_token_budget
        # RNG states read from a checkpoint, applied just before the first resumed step.
        self._pending_rng: dict[str, Any] | None = None
        # Kept in a tuple, not registered as a submodule: it is frozen, needs no checkpointing,
        # and stays in eval mode without Lightning warning about it.
        self._frozen_reference: tuple[nn.Module, ...] = ()
        if algorithm.kl_coef > 0 and not is_peft_model(self.model):
            # Full fine-tuning: the reference is a frozen copy of the starting weights.
            self._frozen_reference = (copy.deepcopy(self.model).eval().requires_grad_(False),)
        self.val_counts = CategoryCounts()
        self.val_breakdown = nn.ModuleDict()
        self.totals = {"judge_errors": 0, "dropped_groups": 0, "skipped_images": 0, "parse_failures": 0}
        RolloutScorer(judge, reward, algorithm, rollout.max_new_tokens)  # checks the settings now
        self.totals["truncated"] = 0
        self._sampler: DynamicSampler | None = None
        self._empty_steps = 0
        if algorithm.dynamic_sampling.enabled:
            self.totals.update(ds_round_limit_hits=0, ds_empty_steps=0)
        self.judge_failures = JudgeFailureGuard(
            judge_max_failure_rate, judge_failure_window, judge_failure_min_verdicts
        )
        # self.totals summed over ranks, as of the last training step.
        self.global_totals = dict(self.totals)

    # ------------------------------------------------------------------ setup
    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the policy has no trainable parameters")
        optimizer = self.optimizer_factory(params)
        if self.lr_scheduler_factory is None:
            return optimizer
        # Stepped once per optimiser step by the update (manual optimisation).
        return {"optimizer": optimizer, "lr_scheduler": self.lr_scheduler_factory(optimizer)}

    def on_fit_start(self) -> None:
        self.model.train()
        if world_size() > 1:
            # Every rank was seeded alike (identical initial weights); from here each samples its
            # own stream, or all ranks would draw the same random numbers for their rollouts.
            torch.manual_seed(torch.initial_seed() + global_rank())
        for ref in self._frozen_reference:
            ref.to(self.device)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Samples hold PIL images and tags: nothing to move, and the batch keeps its skip count.
        return batch

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add what exact resumption needs beyond Lightning's own state (weights, optimiser, loops).

        Every rank's RNG states (torch, CUDA, numpy, python) are gathered, so each rank resumes
        with its own stream; with LoRA only the trainable weights are kept (the frozen base is
        read from ``model.path`` again), which makes a 7B checkpoint a few hundred MB, not 16 GB.
        """
        checkpoint["speciarl"] = {
            "rng": gather_objects(rng_state()),
            # summed over ranks; on resume rank 0 carries them and the other ranks start at 0
            "totals": dict(self.global_totals),
            "rollout": self.rollout.state_dict() if hasattr(self.rollout, "state_dict") else None,
            "trainable_only": is_peft_model(self.model),
        }
        if is_peft_model(self.model):
            trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get("speciarl")
        if extra is None:
            log.warning("checkpoint has no speciarl state (RNG, totals): resuming without them")
            return
        if extra.get("trainable_only"):
            # Base weights are not in the checkpoint: they were just loaded from model.path.
            self.strict_loading = False
        if global_rank() == 0:
            self.totals.update(extra.get("totals", {}))
        if extra.get("rollout") is not None and hasattr(self.rollout, "load_state_dict"):
            self.rollout.load_state_dict(extra["rollout"])
        states = extra.get("rng") or []
        rank = global_rank()
        if len(states) != world_size():
            log.warning(
                "checkpoint holds RNG states of %d ranks, this run has %d: every rank resumes with "
                "rank 0's state (sampling will not repeat the interrupted run exactly)",
                len(states),
                world_size(),
            )
            rank = 0
        self._pending_rng = states[rank] if states else None
        stale = getattr(self.rollout, "policy_updated", None)
        if stale is not None:
            stale()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Restored here, not at load time: nothing between this point and the rollout draws
        # random numbers, so the resumed step samples exactly what the uninterrupted one did.
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Rollout backends that hold their own copy of the weights (vLLM) reload them next time.
        stale = getattr(self.rollout, "policy_updated", None)
        if stale is not None:
            stale()

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Sequence[Sample], batch_idx: int) -> None:
        timings: dict[str, float] = {"rollout": 0.0, "judge": 0.0}
        step = int(self.global_step)  # read before the optimiser steps advance it
        self.totals["skipped_images"] += int(getattr(batch, "skipped", 0))
        if len(batch) == 0:
            log.warning("step %d: empty batch (all images unreadable), skipped", self.global_step)
            if world_size() > 1:
                # The other ranks reduce statistics and gradients this step: take part with nothing.
                self._rollout_stats([])
                self._update(None, None, {})
            return None
        samples = list(batch)
        G = self.group_size
        generated: list[_RoundRecord] = []  # what every round produced, for the statistics
        judge_calls: list[dict | None] = []  # per-call counters of judges that keep them (tiered, LLM)
        scorer = RolloutScorer(self.judge, self.reward, self.algorithm, self.rollout.max_new_tokens)

        def score(prompts: list[Sample]) -> ScoredRollouts:
            t = time.perf_counter()
            rollout = self.rollout.generate(self.policy, prompts, group_size=G)
            timings["rollout"] += time.perf_counter() - t
            t = time.perf_counter()
            scored = scorer.score(prompts, rollout)
            timings["judge"] += time.perf_counter() - t
            judge_calls.append(getattr(self.judge, "last_stats", None))
            if not generated and self.log_completions_every and step % self.log_completions_every == 0:
                self._log_completions(
                    "train", prompts, rollout, scored.answers, scored.judgements, scored.shaped, step
                )
            generated.append(
                _RoundRecord(
                    scored.judgements,
                    scored.shaped,
                    scored.overlong,
                    rollout.truncated,
                    rollout.completion_mask.sum(-1),
                )
            )
            return scored

        stats: dict[str, float] = {}
        if self.algorithm.dynamic_sampling.enabled:
            target = len(samples) + int(getattr(batch, "skipped", 0))
            train = self._dynamic_batch(samples, target, score, stats)
        else:
            train = score(samples)

        stats.update(self._rollout_stats(generated))
        trained = False
        if train is not None:
            failed = torch.isnan(train.shaped).any(dim=1)
            keep = [i for i in range(train.num_groups) if not failed[i]]
            if keep:
                trained = True
                train = train.select_groups(keep)
                advantages = group_advantages(
                    train.shaped.to(self.device), self.algorithm.normalize_std, self.algorithm.eps
                ).flatten()
                stats["adv_abs_mean"] = float(advantages.abs().mean())
                stats["trained_groups"] = float(len(keep))
                stats.update(self._update(train.rollout, advantages, timings))
            else:
                log.warning("step %d: every group had a judge error; no update", self.global_step)
        if not trained and world_size() > 1:
            # The other ranks reduce gradients this step: take part with nothing.
            stats.update(self._update(None, None, timings))

        stats.update({f"time_{k}": v for k, v in timings.items()})
        step_judgements = [j for record in generated for j in record.judgements]
        step_errors = sum(j is Outcome.JUDGE_ERROR for j in step_judgements)
        step_judged = sum(j is not Outcome.PARSE_FAILURE for j in step_judgements)
        stats["judge_errors"] = float(step_errors)
        stats["dropped_groups"] = float(
            sum(int(torch.isnan(record.rewards).any(dim=1).sum()) for record in generated)
        )
        judge_stats = sum_judge_stats(judge_calls)
        stats.update({f"judge_{k}": v for k, v in judge_stats.items() if f"judge_{k}" not in stats})
        self.log_dict({f"train/{k}": float(v) for k, v in stats.items()}, batch_size=len(samples))
        self.log("reward", stats["reward_mean"], prog_bar=True, logger=False, batch_size=len(samples))
        self.log("hm", stats["hm"], prog_bar=True, logger=False, batch_size=len(samples))
        self._check_judge_failures(step_errors, step_judged, stats, step)
        return None

    def _dynamic_batch(
        self,
        samples: list[Sample],
        target: int,
        score: Callable[[list[Sample]], ScoredRollouts],
        stats: dict[str, float],
    ) -> ScoredRollouts | None:
        """DAPO dynamic sampling: the informative groups of as many rounds as it takes (None: none)."""
        ds = self.algorithm.dynamic_sampling
        collected = self._dynamic_sampler().collect(
            samples,
            target,
            score,
            (lambda s: s.rewards) if ds.filter_on == "reward" else (lambda s: s.shaped),
            lambda s, groups: s.select_groups(groups),
        )
        stats.update(collected.report.as_metrics())
        self.totals["ds_round_limit_hits"] += int(collected.report.hit_round_limit)
        if collected.parts:
            self._empty_steps = 0
            return ScoredRollouts.concat(collected.parts, self.policy.pad_id, self.policy.eos_id)
        self._empty_steps += 1
        self.totals["ds_empty_steps"] += 1
        if self._empty_steps >= ds.max_empty_steps:
            raise RuntimeError(
                f"dynamic sampling found no group with unequal rewards in {self._empty_steps} "
                f"consecutive steps ({ds.max_rounds} rounds each): the policy gets no signal from "
                "this data. Check the rewards, or disable algorithm.dynamic_sampling.enabled."
            )
        return None

    def _dynamic_sampler(self) -> DynamicSampler:
        """Built on first use: the refill stream needs the trainer's training dataset."""
        if self._sampler is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            dataset = getattr(datamodule, "train_set", None)
            if dataset is None:
                dataset = self.trainer.train_dataloader.dataset
            seed = int(getattr(datamodule, "seed", 0))
            # Offset, so that under the same seed the refill order is not the dataloader's order.
            stream = RefillStream(dataset, seed=seed + 104729)
            self._sampler = DynamicSampler(self.algorithm.dynamic_sampling, stream.take)
        return self._sampler

    def _check_judge_failures(self, failed: int, judged: int, stats: dict[str, float], step: int) -> None:
        """Stop the run when the judge fails too often; this step's counters reach the loggers first."""
        try:
            self.judge_failures.record(failed, judged)
        except JudgeFailureRateExceeded:
            # Lightning hands logged values to the loggers only after the step: write them now.
            for logger in self.loggers:
                logger.log_metrics({f"train/{k}": float(v) for k, v in stats.items()}, step=step)
                logger.save()
            raise

    def _update(
        self, rollout: Rollout | None, advantages: torch.Tensor | None, timings: dict[str, float]
    ) -> dict[str, float]:
        """Old/reference log-probs, then mini-batch clipped updates.

        ``rollout`` None: this rank has nothing to train on this step, but takes part in every
        collective the other ranks issue (the same number of backward passes and reductions).
        Each mini-batch's loss is split into micro-batches of at most ``logprob_token_budget``
        tokens, each weighted by its share of the global aggregation units (speciarl.runs.distributed),
        so the summed gradient equals that of the whole mini-batch in one process.
        """
        opt = self.optimizers()
        suppress = self.policy.suppress_ids
        temperature = self.rollout.temperature
        budget = self.logprob_token_budget
        ranks = world_size()
        on_policy = self.mini_batches == 1 and self.ppo_epochs == 1
        with_entropy = self.algorithm.entropy_coef != 0
        loss_mask = (
            loss_mask_for_truncation(rollout.completion_mask, rollout.truncated, self.algorithm.truncation)
            if rollout is not None
            else None
        )
        t = time.perf_counter()
        old_logp = None
        ref_logp = None
        if rollout is not None and not on_policy:
            # The rollout policy's log-probs; with a single update they equal the current ones.
            with torch.no_grad():
                old_logp = chunked_token_logprobs(self.model, rollout, suppress, temperature, budget)
        if rollout is not None and self.algorithm.kl_coef > 0:
            with torch.no_grad(), self._reference() as ref:
                ref_logp = chunked_token_logprobs(ref, rollout, suppress, temperature, budget)
        timings["old_ref_logprobs"] = time.perf_counter() - t

        t = time.perf_counter()
        G = self.group_size
        groups = list(range(rollout.num_groups)) if rollout is not None else []
        # Always mini_batches chunks (some maybe empty), so every rank runs the same loop.
        chunks = [sorted(groups[i :: self.mini_batches]) for i in range(self.mini_batches)]
        keys = ("loss", "policy_loss", "kl", "entropy", "clip_fraction", "ratio_mean")
        # Local sums of each figure weighted by its share of the global units; summed over ranks
        # and divided by the update count at the end they are the single-process figures.
        weighted = torch.zeros(len(keys) + 2, dtype=torch.float64)
        grad_norm = 0.0
        updates = 0
        for _ in range(self.ppo_epochs):
            for chunk in chunks:
                rows = [g * G + k for g in chunk for k in range(G)]
                sub = None
                if rows:
                    whole = len(rows) == rollout.completion_ids.shape[0]
                    sub = rollout if whole else rollout.select(rows)
                # The loss mask (truncated rows may be masked out) sets the aggregation units.
                mask = (
                    loss_mask[torch.as_tensor(rows)]
                    if sub is not None
                    else torch.zeros(0, 1, dtype=torch.bool)
                )
                local = torch.stack([self._units(mask), mask.sum().to(torch.float64)])
                units, tokens = all_reduce_sum(local.to(self.device)).tolist()
                if units == 0:
                    continue  # no rank has data for this mini-batch: skip it everywhere alike
                opt.zero_grad()
                pieces = micro_batches(sub, budget) if sub is not None else []
                if not pieces:
                    # Zero gradients through every trainable parameter keep DDP's all-reduce aligned.
                    self.manual_backward(
                        sum((p * 0.0).sum() for p in self.model.parameters() if p.requires_grad)
                    )
                index = torch.as_tensor(rows, dtype=torch.long)
                for i, (piece_rows, piece) in enumerate(pieces):
                    at = index[torch.as_tensor(piece_rows, dtype=torch.long)]
                    width = piece.completion_ids.shape[1]
                    piece_mask = loss_mask[at][:, :width].to(piece.completion_mask.device)
                    entropy = None
                    if with_entropy:
                        logp, entropy = token_logprobs_with_entropy(self.model, piece, suppress, temperature)
                    else:
                        logp = token_logprobs(self.model, piece, suppress, temperature)
                    old = logp.detach() if old_logp is None else old_logp[at][:, :width].to(logp.device)
                    out = group_relative_loss(
                        self.algorithm,
                        logp,
                        old,
                        advantages[at].to(device=logp.device, dtype=logp.dtype),
                        piece_mask,
                        None if ref_logp is None else ref_logp[at][:, :width].to(logp.device),
                        max_length=self.rollout.max_new_tokens,
                        entropy=entropy,
                    )
                    if not torch.isfinite(out.loss):
                        raise FloatingPointError(
                            f"non-finite loss {float(out.loss)} at step {self.global_step}: check the "
                            "log-prob masking and the rewards (a NaN reward must never reach the loss)"
                        )
                    piece_units = float(self._units(piece_mask))
                    piece_tokens = float(piece_mask.sum())
                    weight = partial_loss_weight(piece_units, units, ranks)
                    last = i == len(pieces) - 1
                    # Only the last micro-batch all-reduces gradients; the others accumulate locally.
                    with nullcontext() if last else self._no_backward_sync():
                        self.manual_backward(out.loss * weight)
                    for k, key in enumerate(keys):
                        share = (
                            (piece_tokens / tokens if tokens else 0.0)
                            if key in ("clip_fraction", "ratio_mean")
                            else piece_units / units
                        )
                        weighted[k] += float(getattr(out, key).detach()) * share
                grad_norm += float(_grad_norm(self.model))
                self.clip_gradients(opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
                opt.step()
                scheduler = self.lr_schedulers()
                if scheduler is not None:
                    scheduler.step()
                updates += 1
        if advantages is not None:
            weighted[-2] = float(advantages.abs().sum())
            weighted[-1] = float(advantages.numel())
        weighted = all_reduce_sum(weighted.to(self.device)).cpu()
        timings["update"] = time.perf_counter() - t
        if updates == 0:
            return {"updates": 0.0}
        result = {key: float(weighted[k]) / updates for k, key in enumerate(keys)}
        if not with_entropy:
            result.pop("entropy")
        result["grad_norm"] = grad_norm / updates
        result["updates"] = float(updates)
        if weighted[-1] > 0:
            result["adv_abs_mean"] = float(weighted[-2] / weighted[-1])
        return result

    def _units(self, mask: torch.Tensor) -> torch.Tensor:
        """Units the loss aggregation averages over (speciarl.runs.distributed.aggregation_units)."""
        try:
            return aggregation_units(mask, self.algorithm.loss_agg)
        except ValueError:
            if world_size() > 1 or self.logprob_token_budget:
                raise
            # One rank, one piece: the weight is n / n = 1 whatever n counts.
            return torch.tensor(float(mask.shape[0]), dtype=torch.float64)

    def _no_backward_sync(self):
        """DDP's no_sync for gradient accumulation over micro-batches (a no-op elsewhere)."""
        strategy = getattr(self.trainer, "strategy", None) if self._trainer is not None else None
        block = getattr(strategy, "block_backward_sync", None)
        return block() if block is not None else nullcontext()

    @contextmanager
    def _reference(self):
        if self._frozen_reference:
            yield self._frozen_reference[0]
        elif is_peft_model(self.model):
            with self.model.disable_adapter():
                yield self.model
        else:
            raise RuntimeError("kl_coef > 0 but there is no reference model")

    def _rollout_stats(self, rounds: Sequence[_RoundRecord]) -> dict[str, float]:
        """Figures of everything generated this step (every round under dynamic sampling) and the
        running totals, summed over ranks before any ratio is taken, so that the logged values
        are those of a single process on the whole global batch (one all-reduce)."""
        G = self.group_size
        judgements = [j for r in rounds for j in r.judgements]
        rewards = torch.cat([r.rewards for r in rounds]) if rounds else torch.zeros(0, G)
        overlong = torch.cat([r.overlong for r in rounds]) if rounds else torch.zeros(0, G)
        truncated = torch.cat([r.truncated for r in rounds]) if rounds else torch.zeros(0, dtype=torch.bool)
        lengths = torch.cat([r.lengths for r in rounds]) if rounds else torch.zeros(0)
        failed = torch.isnan(rewards).any(dim=1)
        self.totals["judge_errors"] += sum(j is Outcome.JUDGE_ERROR for j in judgements)
        self.totals["dropped_groups"] += int(failed.sum())
        self.totals["parse_failures"] += sum(j is Outcome.PARSE_FAILURE for j in judgements)
        self.totals["truncated"] += int(truncated.sum())
        counts = count_judgements(j for j in judgements if j is not Outcome.JUDGE_ERROR)
        ok = rewards[~failed]
        multi = ok.numel() > 0 and ok.shape[1] > 1
        local = [float(counts[j]) for j in SLOTS]
        local += [
            float(ok.sum()) if ok.numel() else 0.0,
            float(ok.numel()),
            float((ok.std(dim=1) == 0).sum()) if multi else 0.0,
            float(ok.shape[0]) if multi else 0.0,
            float(failed.sum()),
            float(failed.numel()),
            float(truncated.sum()),
            float(lengths.sum()),
            float(lengths.numel()),
            float(overlong.sum()),
            float((overlong < 0).sum()),
        ]
        local += [float(self.totals[key]) for key in self.totals]
        summed = all_reduce_sum(torch.tensor(local, dtype=torch.float64, device=self.device)).tolist()
        slot_counts = dict(zip(SLOTS, summed[: len(SLOTS)], strict=True))
        n_fixed = 11
        (
            reward_sum,
            reward_n,
            flat_groups,
            multi_groups,
            failed_n,
            groups_n,
            trunc,
            tokens,
            rows,
            overlong_sum,
            overlong_hit,
        ) = summed[len(SLOTS) : len(SLOTS) + n_fixed]
        totals = summed[len(SLOTS) + n_fixed :]
        c, s, hm = correctness_specificity(slot_counts)
        judged_n = sum(slot_counts.values())
        stats = {"correctness": c, "specificity": s, "hm": hm}
        for j, k in slot_counts.items():
            stats[f"frac_{slot_name(j)}"] = k / judged_n if judged_n else 0.0
        stats["reward_mean"] = reward_sum / reward_n if reward_n else math.nan
        stats["zero_variance_groups"] = flat_groups / multi_groups if multi_groups else 0.0
        stats["judge_error_groups"] = failed_n / groups_n if groups_n else 0.0
        stats["truncated"] = trunc
        stats["truncated_fraction"] = trunc / rows if rows else 0.0
        stats["response_length"] = tokens / rows if rows else 0.0
        if self.algorithm.overlong.enabled:
            stats["overlong_penalty_mean"] = overlong_sum / reward_n if reward_n else 0.0
            stats["overlong_penalized_fraction"] = overlong_hit / rows if rows else 0.0
        reward_stats = getattr(self.reward, "stats", None)
        if callable(reward_stats):
            stats.update(reward_stats())
        self.global_totals = {key: int(value) for key, value in zip(self.totals, totals, strict=True)}
        stats.update({f"total_{key}": float(value) for key, value in self.global_totals.items()})
        return stats

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: Sequence[Sample], batch_idx: int) -> None:
        samples = list(batch)
        if not samples:
            return
        rollout = self.rollout.generate(self.policy, samples, group_size=1, greedy=True)
        answers = [extract_answer(t) for t in rollout.texts]
        judgements = self.judge.judge([s.label for s in samples], answers)
        self.val_counts.update(judgements)
        if self.val_breakdown_tag:
            for sample, judgement in zip(samples, judgements, strict=True):
                value = sample.tags.get(self.val_breakdown_tag)
                if value is None:
                    continue
                if value not in self.val_breakdown:
                    self.val_breakdown[value] = CategoryCounts().to(self.device)
                self.val_breakdown[value].update([judgement])
        if batch_idx == 0:
            self._log_completions("val", samples, rollout, answers, judgements, None)

    def on_validation_epoch_end(self) -> None:
        values = self.val_counts.compute()
        self.log_dict({f"val/{k}": v for k, v in values.items()})
        self.log("val_hm", values["hm"], prog_bar=True, logger=False)
        self.val_counts.reset()
        if world_size() > 1:
            # Metrics sync on compute(): every rank must hold and compute the same breakdown keys.
            for name in sorted({k for keys in gather_objects(sorted(self.val_breakdown)) for k in keys}):
                if name not in self.val_breakdown:
                    self.val_breakdown[name] = CategoryCounts().to(self.device)
        for name in sorted(self.val_breakdown):
            metric = self.val_breakdown[name]
            part = metric.compute()
            self.log_dict({f"val_{name}/{k}": part[k] for k in ("correctness", "specificity", "hm")})
            metric.reset()

    # ------------------------------------------------------------------ logging helpers
    def _log_completions(
        self,
        split: str,
        samples: Sequence[Sample],
        rollout: Rollout,
        answers: Sequence[str | None],
        judgements: Sequence[Judgement],
        rewards: torch.Tensor | None,
        step: int | None = None,
    ) -> None:
        if self.trainer is None or not self.trainer.is_global_zero:
            return
        G = rollout.group_size
        rows = []
        for i in range(min(len(rollout.texts), self.completions_per_table)):
            sample = samples[i // G]
            rows.append(
                {
                    "step": int(self.global_step if step is None else step),
                    "sample_id": sample.sample_id,
                    "ground_truth": sample.label,
                    "completion": rollout.texts[i],
                    "answer": answers[i],
                    "category": judgements[i].value,
                    "reward": None if rewards is None else float(rewards.flatten()[i]),
                    "tags": sample.tags,
                }
            )
        path = Path(self.trainer.default_root_dir) / f"completions_{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                columns = ["step", "image", "ground_truth", "answer", "category", "reward", "completion"]
                data = [
                    [
                        r["step"],
                        wandb.Image(samples[i // G].image),
                        r["ground_truth"],
                        r["answer"],
                        r["category"],
                        r["reward"],
                        r["completion"],
                    ]
                    for i, r in enumerate(rows)
                ]
                logger.log_table(key=f"{split}/completions", columns=columns, data=data)


def _default_optimizer(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW at the paper's defaults for the embedded run, when no optimiser is configured."""
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)


def _grad_norm(model: nn.Module) -> torch.Tensor:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
