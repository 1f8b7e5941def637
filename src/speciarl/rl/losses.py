"""Policy losses and loss aggregations, each registered by name, and the composed RL loss.

Shapes: per-token tensors are [N, T] with N = B * G rows ordered prompt by prompt; ``mask``
marks the response tokens that enter the loss; advantages are per sequence, [N].

* A policy loss (``algorithm.policy_loss``) gives the per-token surrogate loss, which tokens
  were clipped and the importance ratio (for the logs)::

      @register_policy_loss("my_loss")
      def my_loss(logp, old_logp, advantages, mask, config) -> PolicyLoss: ...

* A loss aggregation (``algorithm.loss_agg``) reduces [N, T] to a scalar over the mask, and
  names the units it averages over (``tokens`` or ``sequences``, or ``none`` for a plain sum over
  rows), which the multi-rank and micro-batched update needs to weight partial losses
  (``speciarl.rl.partial_losses``)::

      @register_loss_aggregation("my_agg", units="sequences")
      def my_agg(per_token, mask, max_length) -> Tensor: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from speciarl.core.registry import Registry
from speciarl.rl.config import KL_ESTIMATORS, TRUNCATION_MODES

if TYPE_CHECKING:
    from speciarl.rl.config import AlgorithmConfig


@dataclass
class PolicyLoss:
    """What a policy loss gives: the per-token loss [N, T], clipped flags [N, T] and ratios [N, T] (no grad)."""

    per_token: Tensor
    clipped: Tensor
    ratio: Tensor


@dataclass(frozen=True)
class LossAggregation:
    """A registered aggregation: ``reduce(per_token, mask, max_length)`` and what it averages over."""

    reduce: Callable[[Tensor, Tensor, int | None], Tensor]
    units: str


PolicyLossFn = Callable[[Tensor, Tensor, Tensor, Tensor, "AlgorithmConfig"], PolicyLoss]
POLICY_LOSSES: Registry[PolicyLossFn] = Registry("algorithm.policy_loss", "policy loss")
LOSS_AGGREGATIONS: Registry[LossAggregation] = Registry("algorithm.loss_agg", "loss aggregation")
# "none": the aggregation is a sum over rows, not a mean, so the parts of a batch simply add up.
AGGREGATION_UNITS = ("tokens", "sequences", "none")


def register_policy_loss(name: str) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator: make ``fn`` selectable as ``algorithm.policy_loss=<name>``."""

    def add(fn: PolicyLossFn) -> PolicyLossFn:
        return POLICY_LOSSES.add(name, fn)

    return add


def register_loss_aggregation(name: str, units: str) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn`` selectable as ``algorithm.loss_agg=<name>``; ``units``: tokens, sequences or none."""
    if units not in AGGREGATION_UNITS:
        raise ValueError(f"units must be one of {AGGREGATION_UNITS}, got {units!r}")

    def add(fn: Callable[[Tensor, Tensor, int | None], Tensor]) -> Callable:
        LOSS_AGGREGATIONS.add(name, LossAggregation(fn, units))
        return fn

    return add


# ---------------------------------------------------------------- policy losses
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


@register_policy_loss("ppo_clip")
def ppo_clip_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: AlgorithmConfig
) -> PolicyLoss:
    """PPO's clipped surrogate per token (Schulman et al. 2017), with the dual clip of Ye et al. 2020
    and DAPO's asymmetric range (Yu et al. 2025): r_t = pi(y_t) / pi_old(y_t),
    L_t = max(-A r_t, -A clip(r_t, 1 - clip_low, 1 + clip_high)), capped at -A dual_clip for A < 0."""
    per_token, clipped = clipped_policy_loss(
        logp, old_logp, advantages, config.clip_low, config.clip_high, config.dual_clip
    )
    with torch.no_grad():
        ratio = importance_ratio(logp, old_logp)
    return PolicyLoss(per_token, clipped, ratio)


@register_policy_loss("gspo")
def gspo_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, config: AlgorithmConfig
) -> PolicyLoss:
    """GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization"): one ratio per sequence.

    s_i = exp((1 / |y_i|) sum_t (log pi(y_it) - log pi_old(y_it)))   (length-normalised, over the mask)
    L_i = max(-A_i s_i, -A_i clip(s_i, 1 - clip_low, 1 + clip_high))

    L_i is put on every token of y_i, so ``seq_mean_token_mean`` (GSPO's preset) averages the
    L_i over sequences; its gradient is s_i A_i (1 / |y_i|) sum_t grad log pi(y_it), as in the
    paper. The log-ratio is clamped to [-20, 20] as the token ratio is; there is no dual clip.
    """
    if advantages.dim() != 1:
        raise ValueError(f"gspo needs one advantage per sequence, got shape {tuple(advantages.shape)}")
    log_ratio = torch.where(mask, logp - old_logp, torch.zeros_like(logp))
    length = mask.sum(-1).clamp(min=1).to(logp.dtype)
    seq_ratio = torch.exp(torch.clamp(log_ratio.sum(-1) / length, -20.0, 20.0))
    unclipped = -advantages * seq_ratio
    clipped = -advantages * torch.clamp(seq_ratio, 1.0 - config.clip_low, 1.0 + config.clip_high)
    per_sequence = torch.maximum(unclipped, clipped)
    return PolicyLoss(
        per_token=per_sequence.unsqueeze(-1).expand_as(logp),
        clipped=(clipped > unclipped).unsqueeze(-1).expand_as(logp),
        ratio=seq_ratio.detach().unsqueeze(-1).expand_as(logp),
    )


# ---------------------------------------------------------------- aggregations
def _masked(per_token: Tensor, mask: Tensor) -> Tensor:
    # where, not multiply: a masked position may hold inf/nan, and inf * 0 is nan.
    return torch.where(mask, per_token, torch.zeros_like(per_token))


@register_loss_aggregation("token_mean", units="tokens")
def token_mean(per_token: Tensor, mask: Tensor, max_length: int | None = None) -> Tensor:
    """sum(L M) / sum(M): every token weighs the same (DAPO)."""
    return _masked(per_token, mask).sum() / mask.to(per_token.dtype).sum().clamp(min=1.0)


@register_loss_aggregation("seq_mean_token_mean", units="sequences")
def seq_mean_token_mean(per_token: Tensor, mask: Tensor, max_length: int | None = None) -> Tensor:
    """mean_i [ sum_t (L M)_i / sum_t M_i ]: every sequence weighs the same (the original GRPO)."""
    maskf = mask.to(per_token.dtype)
    return (_masked(per_token, mask).sum(-1) / maskf.sum(-1).clamp(min=1.0)).mean()


@register_loss_aggregation("seq_mean_token_sum", units="sequences")
def seq_mean_token_sum(per_token: Tensor, mask: Tensor, max_length: int | None = None) -> Tensor:
    """mean_i [ sum_t (L M)_it ]: each sequence's token sum, averaged over the N rows (verl's ``seq-mean-token-sum``).

    As verl's ``agg_loss``, the mean runs over every row, a row without response tokens included
    (it adds 0); nothing is normalised by length, so a long response weighs more than a short one.
    """
    return _masked(per_token, mask).sum(-1).mean()


@register_loss_aggregation("seq_mean_token_sum_norm", units="sequences")
def seq_mean_token_sum_norm(per_token: Tensor, mask: Tensor, max_length: int | None = None) -> Tensor:
    """sum_i sum_t (L M)_it / (N * max_length) (Dr.GRPO, Liu et al. 2025).

    The normaliser is a constant, N rows times the configured response budget, whatever the
    response lengths; as the Dr.GRPO paper and TRL, not verl, whose divisor is the padded width
    of the micro-batch.
    """
    if not max_length:
        raise ValueError("seq_mean_token_sum_norm needs max_length (the configured response budget)")
    return _masked(per_token, mask).sum() / (per_token.shape[0] * max_length)


@register_loss_aggregation("token_sum_over_max_length", units="none")
def token_sum_over_max_length(per_token: Tensor, mask: Tensor, max_length: int | None = None) -> Tensor:
    """sum_i sum_t (L M)_it / max_length: verl's ``seq-mean-token-sum-norm``, which the authors ran.

    verl divides the token sum by ``loss_mask.shape[-1]``, the padded response width, which its
    rollout pads to the response budget; so, with one micro-batch per mini-batch, this is the
    batch's token sum over the budget. It is ``seq_mean_token_sum_norm`` times N (the rows of
    the batch): the same direction, a gradient N times larger, which matters once it is clipped.
    A sum over rows, not a mean: the parts of a micro-batched or multi-rank batch simply add up.
    """
    if not max_length:
        raise ValueError("token_sum_over_max_length needs max_length (the configured response budget)")
    return _masked(per_token, mask).sum() / max_length


def aggregate_loss(per_token: Tensor, mask: Tensor, mode: str, max_length: int | None = None) -> Tensor:
    """Reduce [N, T] to a scalar over the mask M with the aggregation registered as ``mode``."""
    return LOSS_AGGREGATIONS.lookup(mode).reduce(per_token, mask, max_length)


# ---------------------------------------------------------------- rollout-engine mismatch
def truncated_importance_weights(old_logp: Tensor, sampler_logp: Tensor, cap: float) -> Tensor:
    """Truncated importance sampling (TIS) against the rollout engine, per token, no gradient:

        w_t = min(exp(logp_old(y_t) - logp_engine(y_t)), C)

    The engine (vLLM, or generate's own numerics) samples from a distribution slightly off the
    policy's; w_t reweights each token's policy-gradient term towards pi_old, truncated at C to
    bound the variance (TRL's ``vllm_importance_sampling_correction`` with its cap, verl's
    ``tis_imp_ratio_cap``). The log-ratio is clamped to [-20, 20] as the PPO ratio is.
    """
    if cap <= 0:
        raise ValueError(f"the importance-sampling cap must be > 0, got {cap}")
    with torch.no_grad():
        return torch.clamp(torch.exp(torch.clamp(old_logp - sampler_logp, -20.0, 20.0)), max=cap)


# ---------------------------------------------------------------- KL, masks, the composed loss
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


def loss_mask_for_truncation(mask: Tensor, truncated: Tensor, mode: str) -> Tensor:
    """M'_it = M_it and not truncated_i under ``mask``; M' = M under ``keep`` and ``penalize``."""
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {mode!r}")
    if mode != "mask":
        return mask
    return mask & ~truncated.to(torch.bool).unsqueeze(-1)


@dataclass
class LossOutput:
    loss: Tensor
    policy_loss: Tensor
    kl: Tensor
    entropy: Tensor
    clip_fraction: Tensor
    ratio_mean: Tensor

    def figures(self) -> dict[str, Tensor]:
        """The logged figures by name."""
        return {
            "loss": self.loss,
            "policy_loss": self.policy_loss,
            "kl": self.kl,
            "entropy": self.entropy,
            "clip_fraction": self.clip_fraction,
            "ratio_mean": self.ratio_mean,
        }


def group_relative_loss(
    config: AlgorithmConfig,
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    ref_logp: Tensor | None = None,
    max_length: int | None = None,
    entropy: Tensor | None = None,
    rollout_is_weights: Tensor | None = None,
) -> LossOutput:
    """loss = agg(w * policy loss) + kl_coef * agg(KL) - entropy_coef * agg(H), every term aggregated alike over ``mask``.

    ``rollout_is_weights`` (w, [N, T], ``truncated_importance_weights``) multiply the policy
    loss per token; None: w = 1.
    """
    terms = POLICY_LOSSES.lookup(config.policy_loss)(logp, old_logp, advantages, mask, config)
    per_token = terms.per_token if rollout_is_weights is None else terms.per_token * rollout_is_weights
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
        clip_fraction = (terms.clipped.float() * maskf).sum() / denom
        ratio_mean = torch.where(mask, terms.ratio, torch.zeros_like(logp)).sum() / denom
    return LossOutput(loss, policy.detach(), kl.detach(), ent.detach(), clip_fraction, ratio_mean)
