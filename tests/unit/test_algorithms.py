"""Advantages, clipped surrogate, KL and aggregation against hand-worked numbers."""

import math

import pytest
import torch

from speciarl.rl.advantages import group_advantages
from speciarl.rl.config import AlgorithmConfig
from speciarl.rl.losses import aggregate_loss, clipped_policy_loss, group_relative_loss, kl_penalty
from speciarl.rl.scoring import overlong_penalty


class TestAdvantages:
    def test_grpo_hand_example(self):
        # r = [1, 0, 0, 1]: mean 0.5; unbiased var = 4 * 0.25 / 3 = 1/3; std = 0.57735.
        # A = +-0.5 / 0.57735 = +-0.866025.
        adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
        assert adv.tolist()[0] == pytest.approx([0.866025, -0.866025, -0.866025, 0.866025], abs=1e-5)

    def test_grpo_with_parse_failure(self):
        # r = [1, -1, 0, 0]: mean 0; var = (1 + 1) / 3; std = 0.816497; A = [1.224745, -1.224745, 0, 0].
        adv = group_advantages(torch.tensor([[1.0, -1.0, 0.0, 0.0]]))
        assert adv.tolist()[0] == pytest.approx([1.224745, -1.224745, 0.0, 0.0], abs=1e-5)

    def test_dr_grpo_drops_the_std(self):
        adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), normalize_std=False)
        assert adv.tolist()[0] == [0.5, -0.5, -0.5, 0.5]

    def test_equal_group_has_zero_advantage(self):
        assert group_advantages(torch.tensor([[1.0, 1.0, 1.0]])).abs().max() == 0

    def test_group_of_one(self):
        # verl: mean 0 and std 1 for a single rollout, so A = r / (1 + eps).
        assert group_advantages(torch.tensor([[0.7]])).item() == pytest.approx(0.7, abs=1e-6)

    def test_groups_are_independent(self):
        adv = group_advantages(torch.tensor([[1.0, 0.0], [5.0, 5.0]]))
        assert adv[1].abs().max() == 0
        # [1, 0]: mean 0.5, unbiased std = sqrt(0.5) = 0.707107; A = +-0.707107.
        assert adv[0].tolist() == pytest.approx([0.707107, -0.707107], abs=1e-5)


class TestClippedLoss:
    def _loss(self, ratio, adv, lo=0.2, hi=0.2, dual=None):
        logp = torch.tensor([[math.log(ratio)]])
        loss, _ = clipped_policy_loss(logp, torch.zeros(1, 1), torch.tensor([adv]), lo, hi, dual)
        return loss.item()

    def test_positive_advantage(self):
        # r 1.5, A 1: max(-1.5, -1.2) = -1.2 (clipped); r 0.5: max(-0.5, -0.8) = -0.5.
        assert self._loss(1.5, 1.0) == pytest.approx(-1.2)
        assert self._loss(0.5, 1.0) == pytest.approx(-0.5)

    def test_clip_higher(self):
        # DAPO: upper bound 1.28, so max(-1.5, -1.28) = -1.28.
        assert self._loss(1.5, 1.0, hi=0.28) == pytest.approx(-1.28)

    def test_negative_advantage(self):
        # r 1.5, A -1: max(1.5, 1.2) = 1.5; r 0.5: max(0.5, 0.8) = 0.8.
        assert self._loss(1.5, -1.0) == pytest.approx(1.5)
        assert self._loss(0.5, -1.0) == pytest.approx(0.8)

    def test_dual_clip_caps_negative_advantages(self):
        # r 5, A -1: max(5, 1.2) = 5, dual clip c = 3 caps it at -A c = 3.
        assert self._loss(5.0, -1.0, dual=3.0) == pytest.approx(3.0)
        # ... and leaves positive advantages alone: r 5, A 1: max(-5, -1.2) = -1.2.
        assert self._loss(5.0, 1.0, dual=3.0) == pytest.approx(-1.2)

    def test_ratio_is_clamped(self):
        loss, _ = clipped_policy_loss(
            torch.tensor([[100.0]]), torch.zeros(1, 1), torch.tensor([-1.0]), 0.2, 0.2
        )
        assert loss.item() == pytest.approx(math.exp(20.0), rel=1e-5)


class TestKL:
    def test_k3_hand_example(self):
        # p = 0.5, ref = 0.25: d = ln(0.25 / 0.5) = -0.693147; e^d - d - 1 = 0.5 + 0.693147 - 1.
        kl = kl_penalty(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]), "k3")
        assert kl.item() == pytest.approx(0.193147, abs=1e-6)

    def test_k1_k2(self):
        logp, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
        assert kl_penalty(logp, ref, "k1").item() == pytest.approx(0.5)
        assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.125)

    def test_k3_zero_when_equal_and_clamped(self):
        assert kl_penalty(torch.tensor([-2.0]), torch.tensor([-2.0])).item() == 0
        assert kl_penalty(torch.tensor([-30.0]), torch.tensor([0.0])).item() == 10.0


class TestAggregation:
    L = torch.tensor([[1.0, 2.0, 3.0], [4.0, float("inf"), float("nan")]])
    M = torch.tensor([[True, True, True], [True, False, False]])

    def test_token_mean(self):
        # (1 + 2 + 3 + 4) / 4 tokens; masked inf / nan must not leak.
        assert aggregate_loss(self.L, self.M, "token_mean").item() == pytest.approx(2.5)

    def test_seq_mean_token_mean(self):
        # (6 / 3 + 4 / 1) / 2 = 3.
        assert aggregate_loss(self.L, self.M, "seq_mean_token_mean").item() == pytest.approx(3.0)

    def test_seq_mean_token_sum_is_verls(self):
        # verl's agg_loss "seq-mean-token-sum": each row's token sum, then the mean over rows:
        # (1 + 2 + 3 = 6, and 4) / 2 rows = 5; the masked inf / nan never enter.
        assert aggregate_loss(self.L, self.M, "seq_mean_token_sum").item() == pytest.approx(5.0)
        # A row without response tokens still counts in the mean (verl's torch.mean over rows):
        # (1 + 2 = 3, and 0) / 2 = 1.5.
        half = torch.tensor([[True, True, False], [False, False, False]])
        assert aggregate_loss(self.L, half, "seq_mean_token_sum").item() == pytest.approx(1.5)

    def test_seq_mean_token_sum_gradient_and_micro_batches(self):
        from speciarl.rl.partial_losses import aggregation_units, partial_loss_weight

        x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, 0.0]], requires_grad=True)
        aggregate_loss(x, self.M, "seq_mean_token_sum").backward()
        # d/dx of (sum of row sums) / 2 rows: 1/2 on every unmasked token, 0 elsewhere.
        assert torch.equal(x.grad, torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.0, 0.0]]))
        # Two micro-batches of one row each, weighted by their share of rows, give the whole loss:
        # row 0: 6 x 1/2, row 1: 4 x 1/2 -> 5.
        total = aggregation_units(self.M, "seq_mean_token_sum")
        parts = [
            partial_loss_weight(
                float(aggregation_units(self.M[i : i + 1], "seq_mean_token_sum")), float(total), 1
            )
            * aggregate_loss(self.L[i : i + 1], self.M[i : i + 1], "seq_mean_token_sum")
            for i in range(2)
        ]
        assert float(sum(parts)) == pytest.approx(5.0)

    def test_seq_mean_token_sum_norm(self):
        # (6 + 4) / 2 sequences / max length 4 = 1.25.
        assert aggregate_loss(self.L, self.M, "seq_mean_token_sum_norm", 4).item() == pytest.approx(1.25)

    def test_token_sum_over_max_length_is_verls_seq_mean_token_sum_norm(self):
        # verl: sum over rows of the row token sums / the padded width (= the budget, 4):
        # (6 + 4) / 4 = 2.5, that is seq_mean_token_sum_norm (1.25) x N (2 rows).
        assert aggregate_loss(self.L, self.M, "token_sum_over_max_length", 4).item() == pytest.approx(2.5)
        with pytest.raises(ValueError, match="needs max_length"):
            aggregate_loss(self.L, self.M, "token_sum_over_max_length")

    def test_token_sum_over_max_length_gradient_is_n_times_dr_grpos(self):
        logits = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, 0.0]], requires_grad=True)
        for mode, factor in (("seq_mean_token_sum_norm", 1.0), ("token_sum_over_max_length", 2.0)):
            logits.grad = None
            aggregate_loss(logits * 3.0, self.M, mode, 4).backward()
            # d/dx of 3 x / (2 rows x 4) on every unmasked token, x 2 rows for verl's; 0 when masked.
            expected = torch.tensor([[3 / 8, 3 / 8, 3 / 8], [3 / 8, 0.0, 0.0]]) * factor
            assert torch.allclose(logits.grad, expected)


class TestComposedLoss:
    def test_grpo_loss_with_kl(self):
        cfg = AlgorithmConfig(kl_coef=0.01)
        logp = torch.tensor([[math.log(0.5), math.log(0.5)]])
        ref = torch.tensor([[math.log(0.25), math.log(0.5)]])
        mask = torch.tensor([[True, True]])
        out = group_relative_loss(cfg, logp, logp.detach(), torch.tensor([2.0]), mask, ref)
        # ratio 1: policy loss -A = -2 on each token, token mean -2; KL mean (0.193147 + 0) / 2.
        assert out.policy_loss.item() == pytest.approx(-2.0)
        assert out.kl.item() == pytest.approx(0.0965736, abs=1e-6)
        assert out.loss.item() == pytest.approx(-2.0 + 0.01 * 0.0965736, abs=1e-6)

    def test_kl_needs_reference(self):
        with pytest.raises(ValueError, match="reference"):
            group_relative_loss(
                AlgorithmConfig(),
                torch.zeros(1, 1),
                torch.zeros(1, 1),
                torch.ones(1),
                torch.ones(1, 1, dtype=torch.bool),
            )

    def test_unknown_aggregation_is_named_where_it_is_looked_up(self):
        with pytest.raises(ValueError, match=r"algorithm.loss_agg='sum'.*'seq_mean_token_mean'"):
            aggregate_loss(torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool), "sum")


def test_overlong_penalty():
    # L 2048, B 512: no penalty up to 1536; len 1792 -> -(1792 - 1536) / 512 = -0.5; len 2048 -> -1.
    out = overlong_penalty(torch.tensor([100, 1536, 1792, 2048]), 2048, 512)
    assert out.tolist() == [0.0, 0.0, -0.5, -1.0]


class TestGSPO:
    """GSPO (Zheng et al. 2025): one length-normalised importance ratio per sequence, clipped per sequence."""

    # Two sequences, old log-probs 0. Sequence 1 has two tokens with log-ratios 0.1 and 0.3;
    # sequence 2 one token with log-ratio -0.5 (its second position is padding: 9.0 must not count).
    LOGP = torch.tensor([[0.1, 0.3], [-0.5, 9.0]])
    MASK = torch.tensor([[True, True], [True, False]])
    ADV = torch.tensor([1.0, -1.0])

    def _out(self, clip_low, clip_high, logp=LOGP, adv=ADV):
        cfg = AlgorithmConfig(
            policy_loss="gspo",
            clip_low=clip_low,
            clip_high=clip_high,
            dual_clip=None,
            loss_agg="seq_mean_token_mean",
            kl_coef=0.0,
        )
        return group_relative_loss(cfg, logp, torch.zeros(2, 2), adv, self.MASK)

    def test_hand_example_with_a_wide_range(self):
        # s_1 = exp((0.1 + 0.3) / 2) = exp(0.2) = 1.221403; s_2 = exp(-0.5 / 1) = 0.606531.
        # clip range [0.8, 1.2]:
        #   seq 1, A = 1:  max(-1.221403, -1.2) = -1.2            (clipped)
        #   seq 2, A = -1: max(0.606531, clip(0.606531) = 0.8) = 0.8 (clipped)
        # loss = mean over sequences = (-1.2 + 0.8) / 2 = -0.2
        out = self._out(0.2, 0.2)
        assert out.loss.item() == pytest.approx(-0.2, abs=1e-6)
        # every (real) token belongs to a clipped sequence; ratio mean over the 3 real tokens:
        # (1.221403 * 2 + 0.606531) / 3 = 1.016446
        assert out.clip_fraction.item() == pytest.approx(1.0)
        assert out.ratio_mean.item() == pytest.approx(1.016446, abs=1e-6)

    def test_hand_example_with_the_papers_range(self):
        # clip range [1 - 3e-4, 1 + 4e-4] = [0.9997, 1.0004]:
        #   seq 1, A = 1:  max(-1.221403, -1.0004) = -1.0004
        #   seq 2, A = -1: max(0.606531, 0.9997) = 0.9997
        # loss = (-1.0004 + 0.9997) / 2 = -0.00035
        assert self._out(3e-4, 4e-4).loss.item() == pytest.approx(-0.00035, abs=1e-6)

    def test_gradient_is_the_sequence_ratio_spread_over_the_tokens(self):
        # On-policy (logp = old, s = 1, inside the clip range), A = [2, -1]:
        # loss = mean_i(-A_i s_i) = (-2 + 1) / 2 = -0.5, and
        # d loss / d logp_it = -A_i s_i / |y_i| / N:
        #   seq 1 (2 tokens): -2 * 1 / 2 / 2 = -0.5 on each token
        #   seq 2 (1 token):  1 * 1 / 1 / 2 = 0.5; its padding position gets 0
        logp = torch.zeros(2, 2, requires_grad=True)
        out = self._out(0.2, 0.2, logp=logp, adv=torch.tensor([2.0, -1.0]))
        assert out.loss.item() == pytest.approx(-0.5)
        out.loss.backward()
        assert logp.grad.flatten().tolist() == pytest.approx([-0.5, -0.5, 0.5, 0.0])

    def test_gspo_needs_sequence_advantages(self):
        with pytest.raises(ValueError, match="one advantage per sequence"):
            self._out(0.2, 0.2, adv=torch.ones(2, 2))


def test_config_is_plain_data_and_names_are_checked_at_lookup():
    from speciarl.rl.advantages import ADVANTAGE_ESTIMATORS, compute_advantages
    from speciarl.rl.losses import POLICY_LOSSES, register_policy_loss
    from speciarl.rl.update import check_registered_names

    # Building the config checks no name: a user's loss may be registered afterwards.
    config = AlgorithmConfig(policy_loss="reinforce_for_this_test")
    with pytest.raises(
        ValueError, match=r"algorithm.policy_loss='reinforce_for_this_test'.*'gspo'.*'ppo_clip'"
    ):
        check_registered_names(config)

    @register_policy_loss("reinforce_for_this_test")
    def reinforce(logp, old_logp, advantages, mask, config):  # pragma: no cover - only looked up
        raise AssertionError

    try:
        check_registered_names(config)  # now found
        with pytest.raises(ValueError, match="registered twice"):
            register_policy_loss("reinforce_for_this_test")(reinforce)
    finally:
        del POLICY_LOSSES["reinforce_for_this_test"]

    gae = AlgorithmConfig(advantage_estimator="gae")
    with pytest.raises(ValueError, match=r"algorithm.advantage_estimator='gae'.*\['grpo'"):
        compute_advantages(torch.zeros(1, 2), gae)
    assert "gae" not in ADVANTAGE_ESTIMATORS


def test_gspo_preset(make_config):
    # conf/algorithm/gspo.yaml: grpo.yaml plus GSPO's deltas.
    from hydra.utils import instantiate

    cfg = instantiate(make_config("algorithm=gspo").algorithm)
    assert (cfg.name, cfg.policy_loss, cfg.advantage_estimator) == ("gspo", "gspo", "grpo")
    assert (cfg.clip_low, cfg.clip_high, cfg.dual_clip) == (3e-4, 4e-4, None)
    assert (cfg.loss_agg, cfg.kl_coef, cfg.normalize_std) == ("seq_mean_token_mean", 0.0, True)
