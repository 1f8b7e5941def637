"""Group-relative advantages and the clipped policy loss (SPEC.md section 4), as pure functions.

Shapes: rewards are [B, G] (B prompts, G rollouts each); per-token tensors are [N, T] with
N = B * G rows ordered prompt by prompt, and ``mask`` marks real response tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
KL_ESTIMATORS = ("k1", "k2", "k3")


@dataclass(frozen=True)
class AlgorithmConfig:
    """One group-relative optimiser; ``grpo``, ``dr_grpo`` and ``dapo`` are presets of it.

    Args:
        name: label for logs.
        normalize_std: divide advantages by the group's (unbiased) std.
        clip_low / clip_high: PPO clip range [1 - clip_low, 1 + clip_high] of the ratio.
        dual_clip: cap of the loss for negative advantages (-A * dual_clip); None disables it.
        loss_agg: one of ``LOSS_AGGREGATIONS``.
        kl_coef: weight of the KL penalty to the reference; 0 skips the reference pass entirely.
        kl_estimator: ``k1``, ``k2`` or ``k3`` (low-variance KL).
        eps: added to the std.
    """

    name: str = "grpo"
    normalize_std: bool = True
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = 3.0
    loss_agg: str = "token_mean"
    kl_coef: float = 0.01
    kl_estimator: str = "k3"
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.loss_agg not in LOSS_AGGREGATIONS:
            raise ValueError(f"loss_agg must be one of {LOSS_AGGREGATIONS}, got {self.loss_agg!r}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
        if self.clip_low < 0 or self.clip_high < 0:
            raise ValueError("clip_low and clip_high must be >= 0")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1 (or null), got {self.dual_clip}")


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


def overlong_penalty(lengths: Tensor, max_length: int, buffer: int) -> Tensor:
    """DAPO soft overlong shaping: min(0, -(len - (L - B)) / B)."""
    if not 0 < buffer <= max_length:
        raise ValueError(f"need 0 < buffer <= max_length, got buffer={buffer}, max_length={max_length}")
    return torch.clamp(-(lengths.float() - (max_length - buffer)) / buffer, max=0.0)


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
    seq_mean_token_sum_norm: mean_i [ sum_t(L M)_i ] / max_length (Dr.GRPO; a constant normaliser).
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
        return masked.sum(-1).mean() / max_length
    raise ValueError(f"unknown loss aggregation {mode!r}: expected one of {LOSS_AGGREGATIONS}")


@dataclass
class LossOutput:
    loss: Tensor
    policy_loss: Tensor
    kl: Tensor
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
) -> LossOutput:
    """Policy loss plus ``kl_coef`` times the KL, both with the configured aggregation."""
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
    with torch.no_grad():
        maskf = mask.float()
        denom = maskf.sum().clamp(min=1.0)
        clip_fraction = (clipped.float() * maskf).sum() / denom
        ratio_mean = torch.where(mask, importance_ratio(logp, old_logp), torch.zeros_like(logp)).sum() / denom
    return LossOutput(loss, policy.detach(), kl.detach(), clip_fraction, ratio_mean)
