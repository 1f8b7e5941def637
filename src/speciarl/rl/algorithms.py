"""Group-relative advantages and the clipped policy loss (SPEC.md section 4), as pure functions.

Shapes: rewards are [B, G] (B prompts, G rollouts each); per-token tensors are [N, T] with
N = B * G rows ordered prompt by prompt, and ``mask`` marks real response tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
KL_ESTIMATORS = ("k1", "k2", "k3")
# What happens to a completion cut at the token budget (no EOS): kept as is, its tokens masked
# out of the loss (DAPO's "overlong filtering"), or penalised (scored as a parse failure: -1
# under every reward, and it never sets SpeciaRL's bar).
TRUNCATION_MODES = ("keep", "mask", "penalize")
# What dynamic sampling filters on: the verifier reward before overlong shaping (verl's "acc",
# what the paper's DAPO runs used) or the shaped reward the advantages are computed from.
FILTER_METRICS = ("reward", "shaped_reward")


@dataclass(frozen=True)
class OverlongShaping:
    """DAPO's soft overlong punishment, added to the reward: min(0, -(len - (L - B)) / B) * factor.

    Args:
        enabled: add the penalty to every rollout's reward.
        max_length: L; None means the rollout's token budget (``rollout.max_new_tokens``).
        buffer: B, the last B tokens of the budget in which the penalty ramps from 0 to -factor;
            None means a quarter of L (the paper: 512 of 2048; the embedded default: 4 of 16).
        penalty_factor: scale of the penalty (1 in DAPO and the paper).
    """

    enabled: bool = False
    max_length: int | None = None
    buffer: int | None = None
    penalty_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.max_length is not None and self.max_length <= 0:
            raise ValueError(f"overlong max_length must be positive, got {self.max_length}")
        if self.buffer is not None and self.buffer <= 0:
            raise ValueError(f"overlong buffer must be positive, got {self.buffer}")
        if self.max_length is not None and self.buffer is not None and self.buffer > self.max_length:
            raise ValueError(
                f"overlong buffer ({self.buffer}) must not exceed max_length ({self.max_length})"
            )
        if self.penalty_factor < 0:
            raise ValueError(f"overlong penalty_factor must be >= 0, got {self.penalty_factor}")

    def resolved(self, budget: int) -> tuple[int, int]:
        """(L, B) for a rollout whose token budget is ``budget``."""
        length = int(self.max_length or budget)
        return length, int(self.buffer or max(1, length // 4))


@dataclass(frozen=True)
class DynamicSampling:
    """DAPO's dynamic sampling: drop groups whose rewards are all equal, generate more until full.

    Args:
        enabled: filter and refill (off: every group is trained on, as GRPO does).
        generation_batch_multiple: prompts rolled out per round = this x the training batch
            (3 in the paper's DAPO runs: 768 generated for 256 trained).
        max_rounds: generation rounds per step at most (10 in the paper); at the limit the step
            trains on the informative groups collected so far and says so in the log.
        filter_on: ``reward`` (before overlong shaping, as the paper) or ``shaped_reward``.
        max_empty_steps: consecutive steps that found no informative group at all before the run
            stops with an error (the policy gets no signal from this data; training would spin).
    """

    enabled: bool = False
    generation_batch_multiple: int = 3
    max_rounds: int = 10
    filter_on: str = "reward"
    max_empty_steps: int = 10

    def __post_init__(self) -> None:
        if self.generation_batch_multiple < 1:
            raise ValueError(f"generation_batch_multiple must be >= 1, got {self.generation_batch_multiple}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        if self.filter_on not in FILTER_METRICS:
            raise ValueError(f"filter_on must be one of {FILTER_METRICS}, got {self.filter_on!r}")
        if self.max_empty_steps < 1:
            raise ValueError(f"max_empty_steps must be >= 1, got {self.max_empty_steps}")


@dataclass(frozen=True)
class AlgorithmConfig:
    """One group-relative optimiser; ``grpo``, ``dr_grpo`` and ``dapo`` are presets of it.

    Args:
        name: label for logs.
        group_size: G, rollouts per prompt (the group the advantages are relative to).
        mini_batches: optimiser steps per rollout batch (split by prompt groups); 1 = on-policy.
        ppo_epochs: passes over the rollout batch.
        normalize_std: divide advantages by the group's (unbiased) std.
        clip_low / clip_high: PPO clip range [1 - clip_low, 1 + clip_high] of the ratio.
        dual_clip: cap of the loss for negative advantages (-A * dual_clip); None disables it.
        loss_agg: one of ``LOSS_AGGREGATIONS``.
        kl_coef: weight of the KL penalty to the reference; 0 skips the reference pass entirely.
        kl_estimator: ``k1``, ``k2`` or ``k3`` (low-variance KL).
        entropy_coef: weight of the entropy bonus (loss -= coef * aggregate(entropy)); 0 skips it.
        eps: added to the std.
        truncation: one of ``TRUNCATION_MODES`` for completions cut at the token budget.
        overlong: DAPO's soft overlong reward shaping.
        dynamic_sampling: DAPO's group filter and refill.
    """

    name: str = "grpo"
    group_size: int = 4
    mini_batches: int = 1
    ppo_epochs: int = 1
    normalize_std: bool = True
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = 3.0
    loss_agg: str = "token_mean"
    kl_coef: float = 0.01
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0
    eps: float = 1e-6
    truncation: str = "keep"
    overlong: OverlongShaping = field(default_factory=OverlongShaping)
    dynamic_sampling: DynamicSampling = field(default_factory=DynamicSampling)

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.mini_batches < 1 or self.ppo_epochs < 1:
            raise ValueError("mini_batches and ppo_epochs must be >= 1")
        if self.dynamic_sampling.enabled and self.group_size < 2:
            raise ValueError(
                "dynamic sampling needs group_size >= 2: a group of one always has equal rewards"
            )
        if self.loss_agg not in LOSS_AGGREGATIONS:
            raise ValueError(f"loss_agg must be one of {LOSS_AGGREGATIONS}, got {self.loss_agg!r}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
        if self.clip_low < 0 or self.clip_high < 0:
            raise ValueError("clip_low and clip_high must be >= 0")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1 (or null), got {self.dual_clip}")
        if self.truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {self.truncation!r}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if not isinstance(self.overlong, OverlongShaping) or not isinstance(
            self.dynamic_sampling, DynamicSampling
        ):
            raise TypeError(
                "overlong and dynamic_sampling must be OverlongShaping / DynamicSampling objects "
                "(in YAML give them a _target_)"
            )


def group_advantages(rewards: Tensor, normalize_std: bool = True, eps: float = 1e-6) -> Tensor:
    """A_i = (r_i - mean(r)) / (std(r) + eps), std unbiased; without std when ``normalize_std`` is False.

    A group of one has mean 0 and std 1 (as in verl), so its advantage is its reward.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [groups, group_size], got shape {tuple(rewards.shape)}")
    rewards = rewards.float()
    if rewards.shape[1] == 1:
        mean = torch.zeros_like(rewards)
        std = torch.ones_like(rewards)
    else:
        mean = rewards.mean(dim=1, keepdim=True)
        std = rewards.std(dim=1, unbiased=True, keepdim=True)
    centred = rewards - mean
    return centred / (std + eps) if normalize_std else centred


def overlong_penalty(lengths: Tensor, max_length: int, buffer: int, factor: float = 1.0) -> Tensor:
    """DAPO soft overlong shaping: min(0, -(len - (L - B)) / B) * factor."""
    if not 0 < buffer <= max_length:
        raise ValueError(f"need 0 < buffer <= max_length, got buffer={buffer}, max_length={max_length}")
    return torch.clamp(-(lengths.float() - (max_length - buffer)) / buffer, max=0.0) * factor


def informative_groups(rewards: Tensor) -> Tensor:
    """keep_g = max_i r_gi != min_i r_gi (a group whose rewards are all equal has zero advantage).

    A group holding a NaN reward (a judge error) is never kept: it must not be trained on.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [groups, group_size], got shape {tuple(rewards.shape)}")
    finite = ~torch.isnan(rewards).any(dim=1)
    spread = rewards.amax(dim=1) != rewards.amin(dim=1)
    return finite & spread


def loss_mask_for_truncation(mask: Tensor, truncated: Tensor, mode: str) -> Tensor:
    """M'_it = M_it and not truncated_i under ``mask``; M' = M under ``keep`` and ``penalize``."""
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {mode!r}")
    if mode != "mask":
        return mask
    return mask & ~truncated.to(torch.bool).unsqueeze(-1)


def importance_ratio(logp: Tensor, old_logp: Tensor) -> Tensor:
    """r = exp(clamp(logp - logp_old, -20, 20))."""
    return torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))


def clipped_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-token max(-A r, -A clip(r, 1-lo, 1+hi)), for A < 0 capped at -A c; returns (loss, clipped flag).

    ``advantages`` is per sequence [N] (broadcast to every token) or per token [N, T].
    """
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    ratio = importance_ratio(logp, old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if dual_clip is not None:
        capped = torch.minimum(loss, -adv * dual_clip)
        loss = torch.where(adv < 0, capped, loss)
    return loss, was_clipped


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token KL(pi || ref) estimate: k1 = logp - ref; k2 = (logp - ref)^2 / 2; k3 = e^d - d - 1, d = ref - logp.

    k3 clamps d to [-20, 20] and the result to [-10, 10], as verl's low-var KL does.
    """
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k2":
        return 0.5 * (logp - ref_logp) ** 2
    if estimator == "k3":
        d = torch.clamp(ref_logp - logp, -20.0, 20.0)
        return torch.clamp(torch.exp(d) - d - 1.0, -10.0, 10.0)
    raise ValueError(f"unknown KL estimator {estimator!r}: expected one of {KL_ESTIMATORS}")


def aggregate_loss(per_token: Tensor, mask: Tensor, mode: str, max_length: int | None = None) -> Tensor:
    """Reduce [N, T] to a scalar over the mask M.

    token_mean: sum(L M) / sum(M).
    seq_mean_token_mean: mean_i [ sum_t(L M)_i / sum_t(M)_i ].
    seq_mean_token_sum_norm: sum_i sum_t (L M)_it / (N * max_length) (Dr.GRPO: the normaliser is a
    constant, N rows times the configured response budget, whatever the response lengths; as the
    Dr.GRPO paper and TRL, not verl, whose divisor is the padded width of the micro-batch).
    """
    maskf = mask.to(per_token.dtype)
    # where, not multiply: a masked position may hold inf/nan, and inf * 0 is nan.
    masked = torch.where(mask, per_token, torch.zeros_like(per_token))
    if mode == "token_mean":
        return masked.sum() / maskf.sum().clamp(min=1.0)
    if mode == "seq_mean_token_mean":
        return (masked.sum(-1) / maskf.sum(-1).clamp(min=1.0)).mean()
    if mode == "seq_mean_token_sum_norm":
        if not max_length:
            raise ValueError("seq_mean_token_sum_norm needs max_length (the configured response budget)")
        return masked.sum() / (per_token.shape[0] * max_length)
    raise ValueError(f"unknown loss aggregation {mode!r}: expected one of {LOSS_AGGREGATIONS}")


@dataclass
class LossOutput:
    loss: Tensor
    policy_loss: Tensor
    kl: Tensor
    entropy: Tensor
    clip_fraction: Tensor
    ratio_mean: Tensor


def group_relative_loss(
    config: AlgorithmConfig,
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    ref_logp: Tensor | None = None,
    max_length: int | None = None,
    entropy: Tensor | None = None,
) -> LossOutput:
    """policy + kl_coef * KL - entropy_coef * H, each term with the configured aggregation over ``mask``."""
    per_token, clipped = clipped_policy_loss(
        logp, old_logp, advantages, config.clip_low, config.clip_high, config.dual_clip
    )
    policy = aggregate_loss(per_token, mask, config.loss_agg, max_length)
    if config.kl_coef > 0:
        if ref_logp is None:
            raise ValueError("kl_coef > 0 needs reference log-probs")
        kl = aggregate_loss(
            kl_penalty(logp, ref_logp, config.kl_estimator), mask, config.loss_agg, max_length
        )
        loss = policy + config.kl_coef * kl
    else:
        kl = torch.zeros((), dtype=policy.dtype, device=policy.device)
        loss = policy
    if config.entropy_coef != 0:
        if entropy is None:
            raise ValueError("entropy_coef != 0 needs the per-token entropy of the policy")
        ent = aggregate_loss(entropy, mask, config.loss_agg, max_length)
        loss = loss - config.entropy_coef * ent
    elif entropy is not None:
        ent = aggregate_loss(entropy.detach(), mask, config.loss_agg, max_length)
    else:
        ent = torch.zeros((), dtype=policy.dtype, device=policy.device)
    with torch.no_grad():
        maskf = mask.float()
        denom = maskf.sum().clamp(min=1.0)
        clip_fraction = (clipped.float() * maskf).sum() / denom
        ratio_mean = torch.where(mask, importance_ratio(logp, old_logp), torch.zeros_like(logp)).sum() / denom
    return LossOutput(loss, policy.detach(), kl.detach(), ent.detach(), clip_fraction, ratio_mean)
