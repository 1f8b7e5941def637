"""SpeciaRLModule: one RL step = collect (rollout -> judge -> reward) -> advantages -> update -> log.

The module only orchestrates: collection lives in ``speciarl.rl.collect``, the advantage
estimators and losses in ``speciarl.rl.advantages`` / ``speciarl.rl.losses``, the update in
``speciarl.rl.update``, the statistics in ``speciarl.rl.step_metrics`` and the sample tables in
``speciarl.runs.callbacks``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn

from speciarl.core.completions import completion_rows
from speciarl.core.distributed import gather_objects, global_rank, world_size
from speciarl.core.interfaces import Judge, Reward
from speciarl.core.samples import Sample
from speciarl.data.datamodule import SampleBatch, SamplesDataModule
from speciarl.evaluation.loop import judge_greedy
from speciarl.evaluation.metrics import CategoryCounts
from speciarl.policy.policy import Policy, is_peft_model
from speciarl.rl.advantages import compute_advantages
from speciarl.rl.collect import Collection, Collector
from speciarl.rl.config import AlgorithmConfig
from speciarl.rl.dynamic_sampling import RefillStream
from speciarl.rl.rewards import check_group_size
from speciarl.rl.scoring import ScoredRollouts
from speciarl.rl.step_metrics import StepMetrics, UpdateSums
from speciarl.rl.update import PolicyUpdate, TrainBatch
from speciarl.rollout.backend import RolloutBackend
from speciarl.runs.callbacks import CompletionTable
from speciarl.runs.distributed import rng_state, set_rng_state
from speciarl.runs.host_memory import release_freed_memory, retain_freed_memory
from speciarl.runs.nonfinite import NonFiniteGuard
from speciarl.runs.preemption import PreemptionWatch
from speciarl.verifier.failure_guard import EmptyBatchGuard, JudgeFailureGuard, JudgeFailureRateExceeded
from speciarl.verifier.step_stats import sum_judge_stats

log = logging.getLogger(__name__)

TOTALS = (
    "judge_errors",
    "dropped_groups",
    "skipped_images",
    "empty_batches",
    "parse_failures",
    "truncated",
    "nonfinite_steps",
)
# Offset of the refill stream's seed, so that under the same seed its order is not the dataloader's.
REFILL_SEED_OFFSET = 104729


class SpeciaRLModule(LightningModule):
    """Group-relative RL of a vision-language policy with a verifier reward.

    Args:
        policy: model + processor + prompt.
        judge: sorts answers into the paper's categories (``speciarl.core.interfaces.Judge``).
        reward: groups of judgements -> [B, G] rewards (``speciarl.core.interfaces.Reward``).
        algorithm: advantage and loss settings.
        rollout: the generation backend (``speciarl.core.interfaces.RolloutBackend``).
        optimizer: builds the optimiser from the trainable parameters (Hydra ``_partial_``).
        lr_scheduler: builds the learning-rate schedule from the optimiser (None: constant).
        max_grad_norm: gradient clipping by global norm.
        val_breakdown_tag: sample tag whose values get their own validation metrics.
        log_completions_every: write a table of sample completions every this many steps (0: never).
        completions_per_table: completions per table.
        judge_max_failure_rate, judge_failure_window, judge_failure_min_verdicts: stop the run when
            the judge fails on more than this share of verdicts over the last window of steps
            (see ``verifier.failure_guard``).
        max_empty_batch_share, empty_batch_window: stop the run when more than this share of the
            last window of training batches had no readable image (``verifier.failure_guard``).
        logprob_token_budget: most tokens (rows x padded positions) per log-prob forward; larger
            batches are cut into micro-batches whose gradients add up to the unbatched one
            (None: one pass per mini-batch).
        retain_host_memory: on CPU, keep freed memory in the process between steps instead of
            returning it to the OS (``runs.host_memory``): no page faults after the first step.
            False hands every large tensor back when it is freed: the smallest resident set
            (the real-width rehearsal), for page faults on every large allocation.
        max_nonfinite_steps: optimiser steps with a non-finite loss or gradient norm are skipped
            (counted as ``train/total_nonfinite_steps``); this many in a row stop the run
            (``runs.nonfinite``).
    """

    def __init__(
        self,
        policy: Policy,
        judge: Judge,
        reward: Reward,
        algorithm: AlgorithmConfig,
        rollout: RolloutBackend,
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
        max_empty_batch_share: float = 0.5,
        empty_batch_window: int = 20,
        retain_host_memory: bool = True,
        max_nonfinite_steps: int = 3,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if logprob_token_budget is not None and logprob_token_budget <= 0:
            raise ValueError(f"logprob_token_budget must be positive or null, got {logprob_token_budget}")
        check_group_size(algorithm, reward)
        self.policy, self.model = policy, policy.model
        self.judge, self.reward, self.algorithm, self.rollout = judge, reward, algorithm, rollout
        self.optimizer_factory = optimizer or _default_optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.val_breakdown_tag = val_breakdown_tag
        self.log_completions_every = log_completions_every
        self.completions_per_table = completions_per_table
        self.collector = Collector(rollout, judge, reward, algorithm, self._refill)
        self.updater = PolicyUpdate(policy, algorithm, rollout, logprob_token_budget, max_grad_norm)
        self.completions = CompletionTable()
        self.judge_failures = JudgeFailureGuard(
            judge_max_failure_rate, judge_failure_window, judge_failure_min_verdicts
        )
        self.empty_batches = EmptyBatchGuard(max_empty_batch_share, empty_batch_window)
        self.retain_host_memory = retain_host_memory
        self.nonfinite = NonFiniteGuard(max_nonfinite_steps)
        # Signals abandon a step while it only collects (set by the entry point: runs.preemption).
        self.preemption = PreemptionWatch()
        totals = (
            (*TOTALS, "ds_round_limit_hits", "ds_empty_steps")
            if algorithm.dynamic_sampling.enabled
            else TOTALS
        )
        self.step_metrics = StepMetrics(totals, overlong=algorithm.overlong.enabled)
        self.val_counts = CategoryCounts()
        self.val_breakdown = nn.ModuleDict()
        self._refill_stream: RefillStream | None = None
        # RNG states read from a checkpoint, applied just before the first resumed step.
        self._pending_rng: dict[str, Any] | None = None
        # The running totals summed over ranks, as of the last training step.
        self.global_totals = dict(self.totals)

    @property
    def totals(self) -> dict[str, int]:
        """This rank's running totals (``global_totals``: summed over ranks)."""
        return self.step_metrics.totals.local()

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

    def configure_callbacks(self) -> list:
        return [self.completions]

    def on_fit_start(self) -> None:
        self.model.train()
        if world_size() > 1:
            # Every rank was seeded alike (identical initial weights); from here each samples its
            # own stream, or all ranks would draw the same random numbers for their rollouts.
            torch.manual_seed(torch.initial_seed() + global_rank())
        self.updater.to(self.device)
        if self.device.type == "cpu":
            retain_freed_memory() if self.retain_host_memory else release_freed_memory()

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
            "rollout": self.rollout.state_dict(),
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
            self.step_metrics.totals.load(extra.get("totals", {}))
        if extra.get("rollout") is not None:
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
        self.rollout.policy_updated()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Restored here, not at load time: nothing between this point and the rollout draws
        # random numbers, so the resumed step samples exactly what the uninterrupted one did.
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Rollout backends that hold their own copy of the weights (vLLM) reload them next time.
        self.rollout.policy_updated()

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Sequence[Sample], batch_idx: int) -> None:
        step = int(self.global_step)  # read before the optimiser steps advance it
        skipped = batch.skipped if isinstance(batch, SampleBatch) else 0
        self.step_metrics.count(skipped_images=skipped)
        if len(batch) == 0:
            return self._empty_step(step, skipped)
        self.empty_batches.record(False, skipped)
        table_rows = self.completions_per_table if self._table_step(step) else 0
        with self.preemption.abandonable(self.rollout):
            collection = self.collector.collect(self.policy, batch, len(batch) + skipped, step, table_rows)
        self.completions.add("train", collection.table)
        update = self.updater.run(self, self._advantages(collection.batch))
        skipped_updates = self.nonfinite.record(step, update.nonfinite) if update is not None else 0
        self.step_metrics.count(nonfinite_steps=skipped_updates)
        stats, judge_counts = self._statistics(collection, update)
        self.log_dict({f"train/{k}": float(v) for k, v in stats.items()}, batch_size=len(batch))
        self.log("reward", stats["reward_mean"], prog_bar=True, logger=False, batch_size=len(batch))
        self.log("hm", stats["hm"], prog_bar=True, logger=False, batch_size=len(batch))
        self._check_judge_failures(judge_counts, stats, step)
        return None

    def _empty_step(self, step: int, skipped: int) -> None:
        """A batch without a readable image: counted and logged, nothing trained; the guard stops
        a run that keeps getting them (the optimiser step does not advance, so it would loop)."""
        log.warning("step %d: empty batch (all %d images unreadable), skipped", step, skipped)
        self.step_metrics.count(empty_batches=1)
        if world_size() > 1:
            # The other ranks reduce gradients and statistics this step: take part with nothing.
            self._statistics(Collection(), self.updater.run(self, None))
        else:
            self.global_totals = self.step_metrics.compute_totals()
        totals = {f"train/total_{k}": float(v) for k, v in self.global_totals.items()}
        self.log_dict({**totals, "train/skipped_images": float(skipped)}, batch_size=1)
        self.empty_batches.record(True, skipped)
        return None

    def _table_step(self, step: int) -> bool:
        return bool(self.log_completions_every) and step % self.log_completions_every == 0

    def _advantages(self, batch: ScoredRollouts | None) -> TrainBatch | None:
        """The batch's completions with their advantages, one per completion (None: nothing to train on)."""
        if batch is None:
            return None
        advantages = compute_advantages(batch.shaped.to(self.device), self.algorithm).flatten()
        return TrainBatch(batch.rollout, advantages)

    def _statistics(
        self, collection: Collection, update: UpdateSums | None
    ) -> tuple[dict[str, float], tuple[int, int]]:
        """The step's figures and (judge errors, verdicts), summed over ranks (a collective: every
        rank calls it once a step)."""
        metrics = self.step_metrics
        report = collection.sampling
        if report is not None:
            metrics.count(
                ds_round_limit_hits=int(report.hit_round_limit), ds_empty_steps=int(collection.empty)
            )
        metrics.update_rollouts(collection.rounds, self.algorithm.group_size)
        stats = report.as_metrics() if report is not None else {}
        stats.update(metrics.compute_rollouts())
        judge_errors, dropped = stats.pop("judge_errors"), stats.pop("dropped_groups")
        stats.update(self.reward.stats())
        self.global_totals = metrics.compute_totals()
        stats.update({f"total_{key}": float(value) for key, value in self.global_totals.items()})
        if update is not None:
            trained = collection.batch.num_groups if collection.batch is not None else 0
            metrics.update_training(trained, update)
            stats.update(metrics.compute_training(update))
        seconds = {**collection.seconds, **(update.seconds if update is not None else {})}
        stats.update({f"time_{k}": v for k, v in seconds.items()})
        stats.update(judge_errors=judge_errors, dropped_groups=dropped)
        judge_stats = sum_judge_stats(collection.judge_calls)
        stats.update({f"judge_{k}": v for k, v in judge_stats.items() if f"judge_{k}" not in stats})
        judge_counts = metrics.judge_failures()
        metrics.reset_step()
        return stats, judge_counts

    def _check_judge_failures(self, counts: tuple[int, int], stats: dict[str, float], step: int) -> None:
        """Stop the run when the judge fails too often; this step's counters reach the loggers first."""
        try:
            self.judge_failures.record(*counts)
        except JudgeFailureRateExceeded:
            # Lightning hands logged values to the loggers only after the step: write them now.
            for logger in self.loggers:
                logger.log_metrics({f"train/{k}": float(v) for k, v in stats.items()}, step=step)
                logger.save()
            raise

    def _refill(self, n: int) -> list[Sample]:
        """``n`` fresh training samples for dynamic sampling (the stream is built on first use:
        it needs the trainer's training dataset)."""
        if self._refill_stream is None:
            datamodule = self.trainer.datamodule
            if isinstance(datamodule, SamplesDataModule):
                dataset, seed = datamodule.train_set, datamodule.seed
            else:
                dataset, seed = self.trainer.train_dataloader.dataset, 0
            self._refill_stream = RefillStream(dataset, seed=int(seed) + REFILL_SEED_OFFSET)
        return self._refill_stream.take(n)

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: Sequence[Sample], batch_idx: int) -> None:
        samples = list(batch)
        if not samples:
            return
        rollout, answers, judgements = judge_greedy(self.policy, self.rollout, self.judge, samples)
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
            rows = completion_rows(
                samples,
                rollout.texts,
                answers,
                judgements,
                None,
                1,
                self.global_step,
                self.completions_per_table,
            )
            self.completions.add("val", rows)

    def on_validation_epoch_end(self) -> None:
        # The images this measurement judged, summed over ranks (a debug run's limit_val_batches shows).
        judged = self.val_counts.counts.sum().float()
        self.log("val/n", judged, reduce_fx="sum", sync_dist=world_size() > 1)
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


def _default_optimizer(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW at the paper's defaults for the embedded run, when no optimiser is configured."""
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
