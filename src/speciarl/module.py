"""SpeciaRLModule: one RL step = rollout -> judge -> reward -> advantages -> log-probs -> update.

The module only orchestrates; every formula lives in ``rewards`` and ``algorithms``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn

from speciarl.algorithms import AlgorithmConfig, group_advantages, group_relative_loss
from speciarl.data.samples import Sample
from speciarl.metrics import CategoryCounts, summary
from speciarl.policy.policy import Policy, Rollout, token_logprobs
from speciarl.policy.rollout import HFRollout
from speciarl.verifier.categories import Judgement, Outcome, extract_answer
from speciarl.verifier.failure_guard import JudgeFailureGuard, JudgeFailureRateExceeded
from speciarl.verifier.step_stats import sum_judge_stats

log = logging.getLogger(__name__)


class SpeciaRLModule(LightningModule):
    """Group-relative RL of a vision-language policy with a verifier reward.

    Args:
        policy: model + processor + prompt.
        judge: anything with ``judge(ground_truths, predictions) -> list[Judgement]``.
        reward: callable mapping groups of judgements to a [B, G] float tensor.
        algorithm: advantage and loss settings.
        rollout: the generation backend.
        group_size: G, rollouts per prompt.
        lr, weight_decay, max_grad_norm: AdamW and gradient clipping (constant lr, as the paper).
        mini_batches: optimiser steps per batch (split by prompt groups); 1 = fully on-policy.
        ppo_epochs: passes over the batch.
        val_breakdown_tag: sample tag whose values get their own validation metrics.
        log_completions_every: write a table of sample completions every this many steps (0: never).
        judge_max_failure_rate, judge_failure_window, judge_failure_min_verdicts: stop the run when
            the judge fails on more than this share of verdicts over the last window of steps
            (see ``verifier.failure_guard``).
    """

    def __init__(
        self,
        policy: Policy,
        judge: Any,
        reward: Any,
        algorithm: AlgorithmConfig,
        rollout: HFRollout,
        group_size: int = 4,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        max_grad_norm: float = 1.0,
        mini_batches: int = 1,
        ppo_epochs: int = 1,
        val_breakdown_tag: str | None = "kind",
        log_completions_every: int = 50,
        completions_per_table: int = 8,
        judge_max_failure_rate: float = 0.05,
        judge_failure_window: int = 20,
        judge_failure_min_verdicts: int = 100,
    ) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        if mini_batches < 1 or ppo_epochs < 1:
            raise ValueError("mini_batches and ppo_epochs must be >= 1")
        self.automatic_optimization = False
        self.policy = policy
        self.model = policy.model
        self.judge = judge
        self.reward = reward
        self.algorithm = algorithm
        self.rollout = rollout
        self.group_size = group_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.mini_batches = mini_batches
        self.ppo_epochs = ppo_epochs
        self.val_breakdown_tag = val_breakdown_tag
        self.log_completions_every = log_completions_every
        self.completions_per_table = completions_per_table
        # Kept in a tuple, not registered as a submodule: it is frozen, needs no checkpointing,
        # and stays in eval mode without Lightning warning about it.
        self._frozen_reference: tuple[nn.Module, ...] = ()
        if algorithm.kl_coef > 0 and not _is_peft(self.model):
            # Full fine-tuning: the reference is a frozen copy of the starting weights.
            self._frozen_reference = (copy.deepcopy(self.model).eval().requires_grad_(False),)
        self.val_counts = CategoryCounts()
        self.val_breakdown = nn.ModuleDict()
        self.totals = {"judge_errors": 0, "dropped_groups": 0, "skipped_images": 0, "parse_failures": 0}
        self.judge_failures = JudgeFailureGuard(
            judge_max_failure_rate, judge_failure_window, judge_failure_min_verdicts
        )

    # ------------------------------------------------------------------ setup
    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the policy has no trainable parameters")
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def on_fit_start(self) -> None:
        self.model.train()
        for ref in self._frozen_reference:
            ref.to(self.device)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Samples hold PIL images and tags: nothing to move, and the batch keeps its skip count.
        return batch

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Sequence[Sample], batch_idx: int) -> None:
        timings: dict[str, float] = {}
        step = int(self.global_step)  # read before the optimiser steps advance it
        self.totals["skipped_images"] += int(getattr(batch, "skipped", 0))
        if len(batch) == 0:
            log.warning("step %d: empty batch (all images unreadable), skipped", self.global_step)
            return None
        samples = list(batch)
        G = self.group_size

        t = time.perf_counter()
        rollout = self.rollout.generate(self.policy, samples, group_size=G)
        timings["rollout"] = time.perf_counter() - t

        t = time.perf_counter()
        answers = [extract_answer(text) for text in rollout.texts]
        labels = [s.label for s in samples for _ in range(G)]
        judgements = self.judge.judge(labels, answers)
        timings["judge"] = time.perf_counter() - t
        # Judges that keep per-call counters (tiered, LLM) expose them as ``last_stats``.
        judge_stats = sum_judge_stats([getattr(self.judge, "last_stats", None)])
        judge_errors = sum(j is Outcome.JUDGE_ERROR for j in judgements)
        parse_failures = sum(j is Outcome.PARSE_FAILURE for j in judgements)

        groups = [judgements[i * G : (i + 1) * G] for i in range(len(samples))]
        rewards = self.reward(groups).to(self.device)
        failed = torch.isnan(rewards).any(dim=1)
        self.totals["judge_errors"] += judge_errors
        self.totals["dropped_groups"] += int(failed.sum())
        self.totals["parse_failures"] += parse_failures
        keep = [i for i in range(len(samples)) if not failed[i]]

        stats = self._rollout_stats(judgements, rewards, failed, rollout)
        if keep:
            rows = [i * G + g for i in keep for g in range(G)]
            train_rollout = rollout if len(keep) == len(samples) else rollout.select(rows)
            advantages = group_advantages(
                rewards[keep], self.algorithm.normalize_std, self.algorithm.eps
            ).flatten()
            stats["adv_abs_mean"] = float(advantages.abs().mean())
            stats.update(self._update(train_rollout, advantages, timings))
        else:
            log.warning("step %d: every group had a judge error; no update", self.global_step)

        stats.update({f"time_{k}": v for k, v in timings.items()})
        stats["judge_errors"] = float(judge_errors)
        stats["dropped_groups"] = float(failed.sum())
        stats.update({f"judge_{k}": v for k, v in judge_stats.items() if f"judge_{k}" not in stats})
        self.log_dict({f"train/{k}": float(v) for k, v in stats.items()}, batch_size=len(samples))
        self.log("reward", stats["reward_mean"], prog_bar=True, logger=False, batch_size=len(samples))
        self.log("hm", stats["hm"], prog_bar=True, logger=False, batch_size=len(samples))
        for key, value in self.totals.items():
            self.log(f"train/total_{key}", float(value), batch_size=len(samples))
        if self.log_completions_every and step % self.log_completions_every == 0:
            self._log_completions("train", samples, rollout, answers, judgements, rewards, step)
        self._check_judge_failures(judge_errors, len(judgements) - parse_failures, stats, step)
        return None

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
        self, rollout: Rollout, advantages: torch.Tensor, timings: dict[str, float]
    ) -> dict[str, float]:
        """Old/reference log-probs, then mini-batch clipped updates."""
        opt = self.optimizers()
        suppress = self.policy.suppress_ids
        temperature = self.rollout.temperature
        on_policy = self.mini_batches == 1 and self.ppo_epochs == 1
        t = time.perf_counter()
        old_logp = None
        if not on_policy:
            # The rollout policy's log-probs; with a single update they equal the current ones.
            with torch.no_grad():
                old_logp = token_logprobs(self.model, rollout, suppress, temperature)
        ref_logp = None
        if self.algorithm.kl_coef > 0:
            with torch.no_grad(), self._reference() as ref:
                ref_logp = token_logprobs(ref, rollout, suppress, temperature)
        timings["old_ref_logprobs"] = time.perf_counter() - t

        t = time.perf_counter()
        G = rollout.group_size
        groups = list(range(rollout.num_groups))
        chunks = [groups[i :: self.mini_batches] for i in range(self.mini_batches)]
        chunks = [sorted(c) for c in chunks if c]
        totals: dict[str, float] = {
            "loss": 0.0,
            "policy_loss": 0.0,
            "kl": 0.0,
            "clip_fraction": 0.0,
            "ratio_mean": 0.0,
        }
        grad_norm = 0.0
        updates = 0
        for _ in range(self.ppo_epochs):
            for chunk in chunks:
                rows = [g * G + k for g in chunk for k in range(G)]
                sub = rollout if len(rows) == rollout.completion_ids.shape[0] else rollout.select(rows)
                index = torch.as_tensor(rows)
                logp = token_logprobs(self.model, sub, suppress, temperature)
                old = logp.detach() if old_logp is None else old_logp[index]
                out = group_relative_loss(
                    self.algorithm,
                    logp,
                    old,
                    advantages[index].to(logp.dtype),
                    sub.completion_mask,
                    None if ref_logp is None else ref_logp[index],
                    max_length=self.rollout.max_new_tokens,
                )
                if not torch.isfinite(out.loss):
                    raise FloatingPointError(
                        f"non-finite loss {float(out.loss)} at step {self.global_step}: check the "
                        "log-prob masking and the rewards (a NaN reward must never reach the loss)"
                    )
                opt.zero_grad()
                self.manual_backward(out.loss)
                grad_norm += float(_grad_norm(self.model))
                self.clip_gradients(opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
                opt.step()
                updates += 1
                for key in totals:
                    totals[key] += float(getattr(out, key).detach())
        timings["update"] = time.perf_counter() - t
        result = {k: v / updates for k, v in totals.items()}
        result["grad_norm"] = grad_norm / updates
        result["updates"] = float(updates)
        return result

    @contextmanager
    def _reference(self):
        if self._frozen_reference:
            yield self._frozen_reference[0]
        elif _is_peft(self.model):
            with self.model.disable_adapter():
                yield self.model
        else:
            raise RuntimeError("kl_coef > 0 but there is no reference model")

    def _rollout_stats(
        self, judgements: list[Judgement], rewards: torch.Tensor, failed: torch.Tensor, rollout: Rollout
    ) -> dict[str, float]:
        judged = [j for j in judgements if j is not Outcome.JUDGE_ERROR]
        stats = summary(judged)
        stats.pop("n")
        ok = rewards[~failed]
        stats["reward_mean"] = float(ok.mean()) if ok.numel() else math.nan
        stats["zero_variance_groups"] = (
            float((ok.std(dim=1) == 0).float().mean()) if ok.numel() and ok.shape[1] > 1 else 0.0
        )
        stats["judge_error_groups"] = float(failed.float().mean())
        stats["truncated_fraction"] = float(rollout.truncated.float().mean())
        stats["response_length"] = float(rollout.completion_mask.sum(-1).float().mean())
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
        for name, metric in self.val_breakdown.items():
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


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def _grad_norm(model: nn.Module) -> torch.Tensor:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
