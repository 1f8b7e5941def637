"""SpeciaRL (all / single) and reward3 against hand-worked groups."""

import math

import pytest
import torch

from speciarl.core.categories import Category as C
from speciarl.core.categories import Outcome as O
from speciarl.rl.rewards import SpeciaRLReward, StaticReward, speciarl_reward, static_reward


class TestSpeciaRL:
    def test_specific_and_more_specific_tie_at_rank_one(self):
        assert speciarl_reward([C.SPECIFIC, C.GENERIC, C.WRONG, C.MORE_SPECIFIC]) == [1, 0, 0, 1]

    def test_bar_is_the_best_category_reached(self):
        # No rollout is specific: the best reached (less specific) is rewarded, nothing else.
        assert speciarl_reward([C.GENERIC, C.LESS_SPECIFIC, C.WRONG, C.LESS_SPECIFIC]) == [0, 1, 0, 1]
        # Even abstaining beats a wrong guess when nothing better was reached.
        assert speciarl_reward([C.ABSTAIN, C.WRONG]) == [1, 0]

    def test_all_wrong_group_gets_zero(self):
        assert speciarl_reward([C.WRONG, C.WRONG, C.WRONG]) == [0, 0, 0]

    def test_parse_failures_get_minus_one_and_never_set_the_bar(self):
        assert speciarl_reward([C.GENERIC, O.PARSE_FAILURE, C.WRONG]) == [1, -1, 0]
        assert speciarl_reward([C.WRONG, O.PARSE_FAILURE]) == [0, -1]
        assert speciarl_reward([O.PARSE_FAILURE, O.PARSE_FAILURE]) == [-1, -1]

    def test_single_mode_rewards_only_the_first_best(self):
        assert speciarl_reward([C.GENERIC, C.SPECIFIC, C.MORE_SPECIFIC], mode="single") == [0, 1, 0]
        assert speciarl_reward([C.WRONG, C.WRONG], mode="single") == [0, 0]

    def test_judge_error_is_nan_never_a_score(self):
        out = speciarl_reward([C.SPECIFIC, O.JUDGE_ERROR])
        assert out[0] == 1 and math.isnan(out[1])

    def test_unresolved_must_not_reach_the_reward(self):
        with pytest.raises(ValueError, match="unresolved"):
            speciarl_reward([O.UNRESOLVED])

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="'all' or 'single'"):
            SpeciaRLReward(mode="best")

    def test_batch_is_float_tensor(self):
        out = SpeciaRLReward()([[C.SPECIFIC, C.WRONG], [C.GENERIC, C.GENERIC]])
        assert out.dtype == torch.float32
        assert out.tolist() == [[1.0, 0.0], [1.0, 1.0]]


class TestReward3:
    def test_table(self):
        group = [C.MORE_SPECIFIC, C.SPECIFIC, C.LESS_SPECIFIC, C.GENERIC, C.ABSTAIN, C.WRONG, O.PARSE_FAILURE]
        assert static_reward(group, StaticReward("reward3").table) == [1, 1, 0, 0, 0, 0, -1]

    def test_differs_from_speciarl_only_without_a_specific_rollout(self):
        with_specific = [C.SPECIFIC, C.GENERIC, C.WRONG]
        without = [C.LESS_SPECIFIC, C.GENERIC, C.WRONG]
        r3 = StaticReward("reward3")
        assert r3([with_specific]).tolist() == SpeciaRLReward()([with_specific]).tolist()
        assert r3([without]).tolist() == [[0, 0, 0]]
        assert SpeciaRLReward()([without]).tolist() == [[1, 0, 0]]

    def test_unknown_name(self):
        with pytest.raises(ValueError, match="unknown static reward"):
            StaticReward("reward9")
