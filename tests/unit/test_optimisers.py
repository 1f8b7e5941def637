"""GRPO, Dr.GRPO and DAPO settings: hand-worked losses per aggregation and advantage mode, properties.

The per-mode examples use one group of G = 2 with rewards [1, 0], response lengths 3 and 1, and
ratio 1 (logp = old logp), so the per-token surrogate is -A on every valid token.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speciarl.policy.vocab_chunks import entropy_from_logits
from speciarl.rl.advantages import group_advantages
from speciarl.rl.config import AlgorithmConfig, DynamicSampling, OverlongShaping
from speciarl.rl.dynamic_sampling import informative_groups
from speciarl.rl.losses import aggregate_loss, group_relative_loss, loss_mask_for_truncation
from speciarl.rl.scoring import overlong_penalty

MASK = torch.tensor([[True, True, True], [True, False, False]])
LOGP = torch.full((2, 3), -1.0)
REWARDS = torch.tensor([[1.0, 0.0]])

# GRPO / DAPO advantage: mean 0.5, unbiased std sqrt((0.25 + 0.25) / 1) = 0.707107,
# A = +-0.5 / (0.707107 + 1e-6) = +-0.707106. Dr.GRPO: A = r - mean = +-0.5.
A_STD = 0.5 / (math.sqrt(0.5) + 1e-6)
CASES = [
    # token_mean = (3 * -A + 1 * A) / 4 tokens = -A / 2
    (True, "token_mean", -A_STD / 2),  # -0.353553
    (False, "token_mean", -0.25),  # (3 * -0.5 + 0.5) / 4
    # seq_mean_token_mean = mean(-A over sequence 1, +A over sequence 2) = 0
    (True, "seq_mean_token_mean", 0.0),
    (False, "seq_mean_token_mean", 0.0),
    # seq_mean_token_sum_norm with budget L = 4: (3 * -A + A) / (2 sequences * 4) = -A / 4
    (True, "seq_mean_token_sum_norm", -A_STD / 4),  # -0.176777
    (False, "seq_mean_token_sum_norm", -0.125),  # (-1.5 + 0.5) / 8
]


@pytest.mark.parametrize(("normalize_std", "loss_agg", "expected"), CASES)
def test_hand_worked_loss_per_aggregation_and_advantage_mode(normalize_std, loss_agg, expected):
    cfg = AlgorithmConfig(normalize_std=normalize_std, loss_agg=loss_agg, kl_coef=0.0)
    adv = group_advantages(REWARDS, cfg.normalize_std, cfg.eps).flatten()
    out = group_relative_loss(cfg, LOGP, LOGP.detach(), adv, MASK, max_length=4)
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)


def test_dr_grpo_preset_matches_spec(make_config):
    # conf/algorithm/dr_grpo.yaml (grpo.yaml plus its deltas): no std, constant normaliser, no KL.
    from hydra.utils import instantiate

    cfg = instantiate(make_config("algorithm=dr_grpo").algorithm)
    assert (cfg.normalize_std, cfg.loss_agg, cfg.kl_coef) == (False, "seq_mean_token_sum_norm", 0.0)
    assert (cfg.clip_low, cfg.clip_high, cfg.entropy_coef) == (0.2, 0.2, 0.0)
    assert not cfg.overlong.enabled and not cfg.dynamic_sampling.enabled


# ---------------------------------------------------------------- properties
REWARD_VALUES = st.sampled_from([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, -0.5, -1.25])


@st.composite
def reward_groups(draw):
    groups = draw(st.integers(1, 5))
    size = draw(st.integers(2, 10))
    values = draw(st.lists(REWARD_VALUES, min_size=groups * size, max_size=groups * size))
    return torch.tensor(values).reshape(groups, size)


@settings(max_examples=200, deadline=None)
@given(rewards=reward_groups(), normalize_std=st.booleans())
def test_advantages_sum_to_zero_per_group(rewards, normalize_std):
    adv = group_advantages(rewards, normalize_std=normalize_std)
    assert torch.allclose(adv.sum(dim=1), torch.zeros(rewards.shape[0]), atol=1e-4)


@settings(max_examples=100, deadline=None)
@given(value=REWARD_VALUES, size=st.integers(1, 12), normalize_std=st.booleans())
def test_all_equal_group_has_zero_advantage(value, size, normalize_std):
    adv = group_advantages(torch.full((1, size), value), normalize_std=normalize_std)
    if size == 1:
        # verl's convention for a group of one: mean 0, std 1, so A = r / (1 + eps) (not a real group)
        assert adv.item() == pytest.approx(value / (1 + 1e-6))
    else:
        assert adv.abs().max().item() == 0.0


@st.composite
def losses_and_masks(draw):
    rows = draw(st.integers(1, 6))
    width = draw(st.integers(1, 8))
    values = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=rows * width, max_size=rows * width))
    lengths = draw(st.lists(st.integers(1, width), min_size=rows, max_size=rows))
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return torch.tensor(values).reshape(rows, width), mask


@settings(max_examples=200, deadline=None)
@given(data=losses_and_masks(), extra=st.integers(1, 6), fill=st.sampled_from([0.0, 7.0, math.inf, math.nan]))
def test_mean_aggregations_are_invariant_to_padding(data, extra, fill):
    per_token, mask = data
    padded = torch.cat([per_token, torch.full((per_token.shape[0], extra), fill)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], dim=1)
    for mode in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):
        a = aggregate_loss(per_token, mask, mode, max_length=16)
        b = aggregate_loss(padded, padded_mask, mode, max_length=16)
        assert torch.allclose(a, b, atol=1e-5), mode


@settings(max_examples=200, deadline=None)
@given(data=losses_and_masks(), budget=st.integers(8, 64))
def test_dr_grpo_normaliser_does_not_depend_on_response_lengths(data, budget):
    per_token, mask = data
    # loss * (N * budget) must be the plain masked token sum, whatever the lengths are ...
    loss = aggregate_loss(per_token, mask, "seq_mean_token_sum_norm", max_length=budget)
    token_sum = torch.where(mask, per_token, torch.zeros_like(per_token)).sum()
    assert loss.item() * per_token.shape[0] * budget == pytest.approx(token_sum.item(), abs=1e-3)
    # ... so a unit loss on every token scales linearly with the number of tokens.
    ones = aggregate_loss(torch.ones_like(per_token), mask, "seq_mean_token_sum_norm", max_length=budget)
    assert ones.item() == pytest.approx(mask.sum().item() / (per_token.shape[0] * budget), rel=1e-6)


# ---------------------------------------------------------------- entropy bonus
def test_entropy_from_logits_hand_examples():
    # uniform over 4: ln 4 = 1.386294
    assert entropy_from_logits(torch.zeros(4)).item() == pytest.approx(1.386294, abs=1e-6)
    # p = [0.25, 0.75] (logits 0, ln 3): -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.346574 + 0.215762 = 0.562335
    assert entropy_from_logits(torch.tensor([0.0, math.log(3.0)])).item() == pytest.approx(0.562335, abs=1e-6)
    # a suppressed token (-inf) contributes nothing: uniform over the other two = ln 2
    assert entropy_from_logits(torch.tensor([0.0, 0.0, -math.inf])).item() == pytest.approx(
        0.693147, abs=1e-6
    )


def test_entropy_bonus_is_subtracted_with_the_same_aggregation():
    cfg = AlgorithmConfig(kl_coef=0.0, entropy_coef=0.1, loss_agg="token_mean")
    logp = torch.zeros(1, 2)
    entropy = torch.tensor([[1.0, 3.0]])
    out = group_relative_loss(cfg, logp, logp.detach(), torch.tensor([2.0]), MASK[:1, :2], entropy=entropy)
    # ratio 1: policy = -2 per token, token mean -2; entropy token mean (1 + 3) / 2 = 2;
    # loss = -2 - 0.1 * 2 = -2.2.
    assert out.policy_loss.item() == pytest.approx(-2.0)
    assert out.entropy.item() == pytest.approx(2.0)
    assert out.loss.item() == pytest.approx(-2.2)


def test_entropy_bonus_needs_the_entropy():
    with pytest.raises(ValueError, match="entropy"):
        group_relative_loss(
            AlgorithmConfig(kl_coef=0.0, entropy_coef=0.01),
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            torch.ones(1),
            torch.ones(1, 1, dtype=torch.bool),
        )


def test_entropy_gradient_pushes_towards_higher_entropy():
    logits = torch.tensor([2.0, 0.0, -1.0], requires_grad=True)
    (-entropy_from_logits(logits)).backward()  # the bonus term of the loss, coef 1
    with torch.no_grad():
        stepped = logits - 0.1 * logits.grad
    assert entropy_from_logits(stepped) > entropy_from_logits(logits.detach())


# ---------------------------------------------------------------- DAPO pieces
def test_overlong_penalty_factor_and_defaults():
    # L 16, B 4: free up to 12; 14 -> -(14 - 12) / 4 = -0.5; 16 -> -1; factor 0.5 halves it.
    assert overlong_penalty(torch.tensor([7, 12, 14, 16]), 16, 4).tolist() == [0.0, 0.0, -0.5, -1.0]
    assert overlong_penalty(torch.tensor([14, 16]), 16, 4, factor=0.5).tolist() == [-0.25, -0.5]
    # buffer null = a quarter of L: the paper's 512 of 2048, the embedded default's 4 of 16.
    assert OverlongShaping(enabled=True).resolved(2048) == (2048, 512)
    assert OverlongShaping(enabled=True).resolved(16) == (16, 4)
    assert OverlongShaping(max_length=20, buffer=5).resolved(16) == (20, 5)


def test_informative_groups_hand_example():
    rewards = torch.tensor(
        [
            [1.0, 1.0, 1.0],  # all equal: no signal
            [1.0, 0.0, 0.0],  # informative
            [math.nan, 1.0, 0.0],  # a judge error: never trained on
            [-1.0, -1.0, -1.0],  # all parse failures
            [0.0, -0.25, 0.0],  # equal verdicts, unequal overlong penalties: informative
        ]
    )
    assert informative_groups(rewards).tolist() == [False, True, False, False, True]


def test_truncation_loss_mask():
    mask = torch.tensor([[True, True], [True, False]])
    truncated = torch.tensor([True, False])
    assert loss_mask_for_truncation(mask, truncated, "keep").tolist() == mask.tolist()
    assert loss_mask_for_truncation(mask, truncated, "penalize").tolist() == mask.tolist()
    assert loss_mask_for_truncation(mask, truncated, "mask").tolist() == [[False, False], [True, False]]


def test_masked_truncated_rows_do_not_enter_the_loss():
    # Row 0 truncated and masked: token mean over row 1 only, -A = -(-1) = 1.
    cfg = AlgorithmConfig(kl_coef=0.0, truncation="mask")
    logp = torch.zeros(2, 2)
    loss_mask = loss_mask_for_truncation(
        torch.ones(2, 2, dtype=torch.bool), torch.tensor([True, False]), "mask"
    )
    out = group_relative_loss(cfg, logp, logp.detach(), torch.tensor([5.0, -1.0]), loss_mask)
    assert out.loss.item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"truncation": "drop"}, "truncation"),
        ({"kl_coef": -0.1}, "kl_coef"),
        ({"overlong": {"enabled": True}}, "OverlongShaping"),
    ],
)
def test_bad_algorithm_settings(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AlgorithmConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"generation_batch_multiple": 0}, "generation_batch_multiple"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"filter_on": "acc"}, "filter_on"),
    ],
)
def test_bad_dynamic_sampling_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DynamicSampling(**kwargs)


def test_bad_overlong_settings():
    with pytest.raises(ValueError, match="buffer"):
        OverlongShaping(max_length=4, buffer=8)
    with pytest.raises(ValueError, match="positive"):
        OverlongShaping(buffer=0)
