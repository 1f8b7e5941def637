"""The policy update of one training step: old and reference log-probs, then clipped updates.

For ``ppo_epochs`` passes, the rollout batch is split by prompt groups into ``mini_batches``
optimiser steps (one step, on-policy, by default: then pi_old = pi and the old log-probs are
the current ones, detached). Each mini-batch's loss is cut into micro-batches of at most
``logprob_token_budget`` tokens; every partial loss is weighted by

    weight = W * n_part / n_global

(n: the units the loss aggregation averages over, summed over the W ranks; see
``speciarl.rl.partial_losses``), so the summed gradient is that of the whole mini-batch in one
process. Only the last micro-batch lets DDP all-reduce gradients (``no_sync`` before it).

A rank with nothing to train on this step (every group dropped, or an empty batch) still runs
the same loop with empty mini-batches: the other ranks issue collectives (the unit sums, DDP's
gradient all-reduce) that it must match; in a single process it skips the update instead.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.strategies import ParallelStrategy
from torch import Tensor, nn

from speciarl.core.distributed import all_reduce_sum, world_size
from speciarl.core.rollouts import Rollout
from speciarl.policy.logprob_route import LogprobRoute, announce, choose_route
from speciarl.policy.microbatch import chunked_token_logprobs, micro_batches
from speciarl.policy.policy import Policy, is_peft_model, token_logprobs, token_logprobs_with_entropy
from speciarl.rl.advantages import ADVANTAGE_ESTIMATORS
from speciarl.rl.config import AlgorithmConfig
from speciarl.rl.losses import (
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    LossOutput,
    group_relative_loss,
    loss_mask_for_truncation,
    truncated_importance_weights,
)
from speciarl.rl.partial_losses import aggregation_units, is_additive, partial_loss_weight
from speciarl.rl.step_metrics import UPDATE_KEYS, UpdateSums
from speciarl.rollout.backend import RolloutBackend

# Figures averaged over tokens whatever the loss aggregation (the others follow its units).
TOKEN_WEIGHTED = ("clip_fraction", "ratio_mean")


@dataclass
class TrainBatch:
    """The completions to train on and their advantages, one per completion ([N])."""

    rollout: Rollout
    advantages: Tensor


@dataclass
class _Targets:
    """What every micro-batch of the step reads: the loss mask and the fixed log-probs, all [N, T]."""

    batch: TrainBatch
    loss_mask: Tensor
    old_logp: Tensor | None
    ref_logp: Tensor | None


def check_registered_names(algorithm: AlgorithmConfig) -> None:
    """Look the algorithm's named parts up once, when the update is built: an unknown name fails
    before any rollout, with the registered names in the error."""
    ADVANTAGE_ESTIMATORS.lookup(algorithm.advantage_estimator)
    POLICY_LOSSES.lookup(algorithm.policy_loss)
    LOSS_AGGREGATIONS.lookup(algorithm.loss_agg)


class PolicyUpdate:
    """Owns the update: reference model, mini- and micro-batches, DDP ``no_sync``, lr schedule steps.

    Args:
        policy: the model being trained (its suppressed token ids shape the log-probs).
        algorithm: loss, clipping, KL, mini-batches and epochs.
        rollout: the backend that sampled the completions (its temperature and token budget).
        logprob_token_budget: most tokens per log-prob forward (None: one pass per mini-batch).
        max_grad_norm: gradient clipping by global norm.
    """

    def __init__(
        self,
        policy: Policy,
        algorithm: AlgorithmConfig,
        rollout: RolloutBackend,
        logprob_token_budget: int | None,
        max_grad_norm: float,
    ) -> None:
        self.policy = policy
        self.model = policy.model
        self.algorithm = algorithm
        self.rollout = rollout
        self.budget = logprob_token_budget
        self.max_grad_norm = max_grad_norm
        check_registered_names(algorithm)
        # Kept in a tuple, not registered as a submodule: it is frozen, needs no checkpointing,
        # and stays in eval mode without Lightning warning about it.
        self._frozen_reference: tuple[nn.Module, ...] = ()
        if algorithm.kl_coef > 0 and not is_peft_model(self.model):
            # Full fine-tuning: the reference is a frozen copy of the starting weights.
            self._frozen_reference = (copy.deepcopy(self.model).eval().requires_grad_(False),)
        # Chosen by ``to`` at fit start, once the device is known (None before: each call decides by device).
        self.route: LogprobRoute | None = None

    def to(self, device: torch.device) -> None:
        """Move the reference to ``device`` and choose the run's log-prob route there (logged once)."""
        for ref in self._frozen_reference:
            ref.to(device)
        self.route = announce(
            choose_route(
                self.model,
                device,
                entropy=self.algorithm.entropy_coef != 0,
                fast_decode=getattr(self.rollout, "fast_decode", None),
            )
        )

    @property
    def completion_pass(self) -> bool | None:
        """The route's completion-pass choice (None before setup: decided by device per call)."""
        return None if self.route is None else self.route.completion_pass

    def run(self, module: LightningModule, batch: TrainBatch | None) -> UpdateSums | None:
        """All optimiser steps of one training step; None when skipped (no data, one process)."""
        if batch is None and world_size() == 1:
            return None
        sums = UpdateSums(with_entropy=self.algorithm.entropy_coef != 0)
        t = time.perf_counter()
        targets = self._targets(batch, sums)
        sums.seconds["old_ref_logprobs"] = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(self.algorithm.ppo_epochs):
            for rows in self._mini_batch_rows(batch):
                self._mini_batch_step(module, targets, rows, sums)
        if batch is not None:
            sums.adv_abs_sum = float(batch.advantages.abs().sum())
            sums.adv_count = float(batch.advantages.numel())
        sums.seconds["update"] = time.perf_counter() - t
        return sums

    def _targets(self, batch: TrainBatch | None, sums: UpdateSums) -> _Targets | None:
        """The loss mask; pi_old's log-probs (off-policy only) and the reference's (KL only), no grad."""
        if batch is None:
            return None
        rollout = batch.rollout
        algorithm = self.algorithm
        if algorithm.rollout_is_cap is not None and rollout.sampler_logp is None:
            raise ValueError(
                "algorithm.rollout_is_cap needs the rollout engine's log-probs: use rollout=vllm, "
                "or rollout.report_logprobs=true with the hf backend"
            )
        suppress, temperature = self.policy.suppress_ids, self.rollout.temperature
        loss_mask = loss_mask_for_truncation(rollout.completion_mask, rollout.truncated, algorithm.truncation)
        old_logp = ref_logp = None
        if not (algorithm.mini_batches == 1 and algorithm.ppo_epochs == 1):
            # The rollout policy's log-probs; with a single update they equal the current ones.
            with torch.no_grad():
                old_logp = chunked_token_logprobs(
                    self.model, rollout, suppress, temperature, self.budget, self.completion_pass
                )
        if algorithm.kl_coef > 0:
            with torch.no_grad(), self._reference() as ref:
                ref_logp = chunked_token_logprobs(
                    ref, rollout, suppress, temperature, self.budget, self.completion_pass
                )
        if old_logp is not None and rollout.sampler_logp is not None:
            sums.record_mismatch(old_logp, rollout.sampler_logp, rollout.completion_mask)
        return _Targets(batch, loss_mask, old_logp, ref_logp)

    def _mini_batch_rows(self, batch: TrainBatch | None) -> list[list[int]]:
        """Rows of each mini-batch; always ``mini_batches`` of them (some maybe empty), so every rank runs the same loop."""
        groups = list(range(batch.rollout.num_groups)) if batch is not None else []
        n, G = self.algorithm.mini_batches, self.algorithm.group_size
        chunks = [sorted(groups[i::n]) for i in range(n)]
        return [[g * G + k for g in chunk for k in range(G)] for chunk in chunks]

    def _mini_batch_step(
        self, module: LightningModule, targets: _Targets | None, rows: list[int], sums: UpdateSums
    ) -> None:
        """One optimiser step on ``rows`` (empty: this rank only keeps the collectives in step)."""
        sub = None
        if rows:
            rollout = targets.batch.rollout
            sub = rollout if len(rows) == rollout.completion_ids.shape[0] else rollout.select(rows)
        # The loss mask (truncated rows may be masked out) sets the aggregation units.
        mask = (
            targets.loss_mask[torch.as_tensor(rows)]
            if sub is not None
            else torch.zeros(0, 1, dtype=torch.bool)
        )
        local = torch.stack([aggregation_units(mask, self.algorithm.loss_agg), mask.sum().to(torch.float64)])
        units, tokens = all_reduce_sum(local.to(module.device)).tolist()
        if units == 0:
            return  # no rank has data for this mini-batch: skip it everywhere alike
        optimizer = module.optimizers()
        optimizer.zero_grad()
        pieces = micro_batches(sub, self.budget) if sub is not None else []
        if not pieces:
            # Zero gradients through every trainable parameter keep DDP's all-reduce aligned.
            module.manual_backward(sum((p * 0.0).sum() for p in self.model.parameters() if p.requires_grad))
        loss_finite = self._backward_pieces(module, targets, rows, pieces, (units, tokens), sums)
        grad_norm = float(_grad_norm(self.model))
        nonfinite = _nonfinite_quantity(loss_finite, grad_norm, module.device)
        sums.nonfinite.append(nonfinite)
        if nonfinite is None:
            sums.grad_norm += grad_norm
            module.clip_gradients(
                optimizer, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm"
            )
        else:
            # Not applied: without gradients the optimiser leaves every weight and its own state
            # as they were; the step is still counted (as Lightning's global step), so the
            # schedule, the checkpoint period and the data stay in line with an applied one.
            optimizer.zero_grad(set_to_none=True)
        optimizer.step()
        scheduler = module.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        sums.updates += 1

    def _backward_pieces(
        self,
        module: LightningModule,
        targets: _Targets,
        rows: list[int],
        pieces: list[tuple[list[int], Rollout]],
        totals: tuple[float, float],
        sums: UpdateSums,
    ) -> bool:
        """Backward of every micro-batch, each loss weighted by its share of the mini-batch's units
        (``totals``: units and tokens over every rank); False when a loss was not finite."""
        units, tokens = totals
        index = torch.as_tensor(rows, dtype=torch.long)
        additive = is_additive(self.algorithm.loss_agg)
        loss_finite = True
        for i, (piece_rows, piece) in enumerate(pieces):
            at = index[torch.as_tensor(piece_rows, dtype=torch.long)]
            piece_mask = targets.loss_mask[at][:, : piece.completion_ids.shape[1]].to(
                piece.completion_mask.device
            )
            out = self._loss(targets, at, piece, piece_mask, sums)
            loss_finite = loss_finite and bool(torch.isfinite(out.loss))
            piece_units = float(aggregation_units(piece_mask, self.algorithm.loss_agg))
            piece_tokens = float(piece_mask.sum())
            weight = partial_loss_weight(piece_units, units, world_size(), additive)
            # Only the last micro-batch all-reduces gradients; the others accumulate locally.
            with nullcontext() if i == len(pieces) - 1 else _no_backward_sync(module):
                module.manual_backward(out.loss * weight)
            figures = out.figures()
            for key in UPDATE_KEYS:
                share = (
                    (piece_tokens / tokens if tokens else 0.0)
                    if key in TOKEN_WEIGHTED
                    else (1.0 if additive else piece_units / units)
                )
                sums.weighted[key] += float(figures[key].detach()) * share
        return loss_finite

    def _loss(
        self, targets: _Targets, at: Tensor, piece: Rollout, piece_mask: Tensor, sums: UpdateSums
    ) -> LossOutput:
        """The loss of one micro-batch (rows ``at`` of the batch), with gradients."""
        suppress, temperature = self.policy.suppress_ids, self.rollout.temperature
        width = piece.completion_ids.shape[1]
        entropy = None
        route = {"completion_pass": self.completion_pass}
        if self.algorithm.entropy_coef != 0:
            logp, entropy = token_logprobs_with_entropy(self.model, piece, suppress, temperature, **route)
        else:
            logp = token_logprobs(self.model, piece, suppress, temperature, **route)
        old = logp.detach() if targets.old_logp is None else targets.old_logp[at][:, :width].to(logp.device)
        ref = None if targets.ref_logp is None else targets.ref_logp[at][:, :width].to(logp.device)
        advantages = targets.batch.advantages[at].to(device=logp.device, dtype=logp.dtype)
        weights = None
        if piece.sampler_logp is not None:
            engine = piece.sampler_logp[:, :width].to(logp.device)
            if targets.old_logp is None:  # on-policy: pi_old is this pass, each row seen once
                sums.record_mismatch(old, engine, piece.completion_mask.to(logp.device))
            if self.algorithm.rollout_is_cap is not None:
                weights = truncated_importance_weights(old, engine, self.algorithm.rollout_is_cap)
        out = group_relative_loss(
            self.algorithm,
            logp,
            old,
            advantages,
            piece_mask,
            ref,
            self.rollout.max_new_tokens,
            entropy,
            weights,
        )
        return out  # a non-finite loss is not applied (_mini_batch_step; runs.nonfinite)

    @contextmanager
    def _reference(self):
        if self._frozen_reference:
            yield self._frozen_reference[0]
        elif is_peft_model(self.model):
            with self.model.disable_adapter():
                yield self.model
        else:
            raise RuntimeError("kl_coef > 0 but there is no reference model")


def _no_backward_sync(module: LightningModule) -> AbstractContextManager:
    """DDP's no_sync for gradient accumulation over micro-batches (a no-op elsewhere)."""
    strategy = module.trainer.strategy
    return strategy.block_backward_sync() if isinstance(strategy, ParallelStrategy) else nullcontext()


def _nonfinite_quantity(loss_finite: bool, grad_norm: float, device: torch.device) -> str | None:
    """``"loss"`` or ``"grad_norm"`` when this optimiser step must be skipped on every rank, else None.

    The gradient norm is taken after DDP's all-reduce (the same on every rank); a rank's own loss
    is not, so the two flags are summed over ranks and all ranks skip alike.
    """
    flags = torch.tensor([float(not loss_finite), float(not math.isfinite(grad_norm))], dtype=torch.float64)
    if world_size() > 1:
        flags = all_reduce_sum(flags.to(device)).cpu()
    if flags[0] > 0:
        return "loss"
    return "grad_norm" if flags[1] > 0 else None


def _grad_norm(model: nn.Module) -> Tensor:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())
