"""Truncated importance sampling against the rollout engine, and the logged mismatch, by hand."""

import math

import pytest
import torch

from speciarl.rl.config import AlgorithmConfig
from speciarl.rl.losses import group_relative_loss, truncated_importance_weights
from speciarl.rl.step_metrics import UpdateSums

OLD = torch.tensor([[-1.0, -2.0, -0.5]], dtype=torch.float64)
ENGINE = torch.tensor([[-1.2, -1.0, -0.5]], dtype=torch.float64)


def test_weights_by_hand():
    # w = min(exp(old - engine), C): exp(0.2) = 1.2214028, exp(-1) = 0.3678794, exp(0) = 1
    w = truncated_importance_weights(OLD, ENGINE, cap=2.0)
    assert w[0].tolist() == pytest.approx([1.2214028, 0.3678794, 1.0], abs=1e-7)
    capped = truncated_importance_weights(OLD, ENGINE, cap=1.1)
    assert capped[0].tolist() == pytest.approx([1.1, 0.3678794, 1.0], abs=1e-7)
    assert not capped.requires_grad


def test_weights_multiply_the_policy_gradient_loss():
    config = AlgorithmConfig(kl_coef=0.0, dual_clip=None, rollout_is_cap=1.1)
    logp = OLD.clone().requires_grad_(True)
    mask = torch.ones(1, 3, dtype=torch.bool)
    weights = truncated_importance_weights(OLD, ENGINE, config.rollout_is_cap)
    out = group_relative_loss(
        config, logp, OLD, torch.tensor([2.0], dtype=torch.float64), mask, rollout_is_weights=weights
    )
    # ratio 1 (pi = pi_old), A = 2: per token -A r w; token mean over 3 tokens
    expected = -2.0 * (1.1 + math.exp(-1.0) + 1.0) / 3
    assert float(out.loss) == pytest.approx(expected, abs=1e-9)
    out.loss.backward()
    # d/dlogp (-A r w / 3) = -A r w / 3 at r = 1
    assert logp.grad[0].tolist() == pytest.approx([-2 * 1.1 / 3, -2 * math.exp(-1.0) / 3, -2 / 3], abs=1e-9)
    plain = group_relative_loss(config, OLD, OLD, torch.tensor([2.0], dtype=torch.float64), mask)
    assert float(plain.loss) == pytest.approx(-2.0, abs=1e-12)


def test_cap_is_validated():
    with pytest.raises(ValueError, match="rollout_is_cap"):
        AlgorithmConfig(rollout_is_cap=0.5)
    with pytest.raises(ValueError, match="cap"):
        truncated_importance_weights(OLD, ENGINE, cap=0.0)


def test_mismatch_sums_over_the_mask_only():
    sums = UpdateSums()
    mask = torch.tensor([[True, True, False]])
    sums.record_mismatch(OLD, ENGINE, mask)  # |0.2|, |1.0|; the third token is masked out
    sums.record_mismatch(torch.tensor([[-3.0]]), torch.tensor([[-3.5]]), torch.tensor([[True]]))
    assert sums.mismatch_tokens == 3
    assert sums.mismatch_abs_sum == pytest.approx(1.7)
    assert sums.mismatch_max == pytest.approx(1.0)
