"""Settings of the group-relative optimisers: GRPO, Dr.GRPO, DAPO and GSPO are presets of one config.

Which advantage estimator, policy loss and loss aggregation a run uses are plain names, looked up
(and checked, with the registered names in the error) in the registries of
``speciarl.rl.advantages`` and ``speciarl.rl.losses`` when the update is built: the config
depends on no implementation, and a new algorithm is one registered function there plus one YAML
file in ``conf/algorithm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What dynamic sampling filters on: the verifier reward before overlong shaping (verl's "acc",
# what the paper's DAPO runs used) or the shaped reward the advantages are computed from.
FILTER_METRICS = ("reward", "shaped_reward")
KL_ESTIMATORS = ("k1", "k2", "k3")
# What happens to a completion cut at the token budget (no EOS): kept as is, its tokens masked
# out of the loss (DAPO's "overlong filtering"), or penalised (scored as a parse failure: -1
# under every reward, and it never sets SpeciaRL's bar).
TRUNCATION_MODES = ("keep", "mask", "penalize")


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
    """One group-relative optimiser; ``grpo``, ``dr_grpo``, ``dapo`` and ``gspo`` are presets of it.

    Args:
        name: label for logs.
        group_size: G, rollouts per prompt (the group the advantages are relative to).
        mini_batches: optimiser steps per rollout batch (split by prompt groups); 1 = on-policy.
        ppo_epochs: passes over the rollout batch.
        advantage_estimator: name in ``rl.advantages.ADVANTAGE_ESTIMATORS`` (``grpo``).
        normalize_std: divide advantages by the group's (unbiased) std.
        policy_loss: name in ``rl.losses.POLICY_LOSSES`` (``ppo_clip`` per token, ``gspo`` per sequence).
        clip_low / clip_high: clip range [1 - clip_low, 1 + clip_high] of the importance ratio.
        dual_clip: cap of the loss for negative advantages (-A * dual_clip); None disables it.
        loss_agg: name in ``rl.losses.LOSS_AGGREGATIONS``.
        kl_coef: weight of the KL penalty to the reference; 0 skips the reference pass entirely.
        kl_estimator: ``k1``, ``k2`` or ``k3`` (low-variance KL).
        entropy_coef: weight of the entropy bonus (loss -= coef * aggregate(entropy)); 0 skips it.
        eps: added to the std.
        truncation: one of ``TRUNCATION_MODES`` for completions cut at the token budget.
        overlong: DAPO's soft overlong reward shaping.
        dynamic_sampling: DAPO's group filter and refill.
        rollout_is_cap: C of the truncated importance-sampling correction for the rollout
            engine's mismatch (``rl.losses.truncated_importance_weights``); None: off. Needs a
            rollout backend that reports its log-probs (vLLM; ``rollout.report_logprobs=true``).
    """

    name: str = "grpo"
    group_size: int = 4
    mini_batches: int = 1
    ppo_epochs: int = 1
    advantage_estimator: str = "grpo"
    normalize_std: bool = True
    policy_loss: str = "ppo_clip"
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
    rollout_is_cap: float | None = None

    def __post_init__(self) -> None:
        if self.rollout_is_cap is not None and self.rollout_is_cap < 1.0:
            raise ValueError(f"rollout_is_cap must be >= 1 (TRL and verl use 2), got {self.rollout_is_cap}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.mini_batches < 1 or self.ppo_epochs < 1:
            raise ValueError("mini_batches and ppo_epochs must be >= 1")
        if self.dynamic_sampling.enabled and self.group_size < 2:
            raise ValueError(
                "dynamic sampling needs group_size >= 2: a group of one always has equal rewards"
            )
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
