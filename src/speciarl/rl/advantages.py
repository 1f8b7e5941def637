"""Advantage estimators, registered by name (``algorithm.advantage_estimator``).

An estimator maps the [B, G] rewards of B groups of G rollouts to [B, G] advantages; it reads
its settings from the ``AlgorithmConfig``. Add one with::

    @register_advantage_estimator("my_estimator")
    def my_estimator(rewards: Tensor, config: AlgorithmConfig) -> Tensor: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from speciarl.core.registry import Registry

if TYPE_CHECKING:
    from speciarl.rl.config import AlgorithmConfig

AdvantageEstimator = Callable[[Tensor, "AlgorithmConfig"], Tensor]
ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry(
    "algorithm.advantage_estimator", "advantage estimator"
)


def register_advantage_estimator(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Decorator: make ``fn`` selectable as ``algorithm.advantage_estimator=<name>``."""

    def add(fn: AdvantageEstimator) -> AdvantageEstimator:
        return ADVANTAGE_ESTIMATORS.add(name, fn)

    return add


def compute_advantages(rewards: Tensor, config: AlgorithmConfig) -> Tensor:
    """The configured estimator's [B, G] advantages of [B, G] rewards."""
    return ADVANTAGE_ESTIMATORS.lookup(config.advantage_estimator)(rewards, config)


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


@register_advantage_estimator("grpo")
def grpo_advantages(rewards: Tensor, config: AlgorithmConfig) -> Tensor:
    """GRPO (Shao et al. 2024): group-relative rewards, divided by the group's std unless
    ``normalize_std`` is off (Dr.GRPO, Liu et al. 2025, drops the std)."""
    return group_advantages(rewards, config.normalize_std, config.eps)
