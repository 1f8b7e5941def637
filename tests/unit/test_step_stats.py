"""Summing judge counters over the calls of one step, by hand."""

import pytest

from speciarl.verifier.step_stats import sum_judge_stats


def test_counters_add_and_the_llm_share_is_recomputed():
    round_1 = {
        "verdicts": 40.0,
        "taxonomy": 30.0,
        "llm": 8.0,
        "llm_error": 2.0,
        "llm_share": 0.25,
        "seconds": 0.5,
    }
    round_2 = {
        "verdicts": 10.0,
        "taxonomy": 10.0,
        "llm": 0.0,
        "llm_error": 0.0,
        "llm_share": 0.0,
        "seconds": 0.1,
    }
    total = sum_judge_stats([round_1, round_2])
    # (8 + 2 + 0 + 0) / (40 + 10) = 0.2, not the mean of 0.25 and 0.0
    assert total["llm_share"] == pytest.approx(0.2)
    assert total["verdicts"] == 50.0 and total["taxonomy"] == 40.0 and total["llm_error"] == 2.0
    assert total["seconds"] == pytest.approx(0.6)


def test_judges_without_counters_give_nothing():
    assert sum_judge_stats([None, None]) == {}
    assert sum_judge_stats([]) == {}


def test_counters_present_in_only_some_calls_are_kept():
    assert sum_judge_stats([{"llm_requests": 3.0}, {"exact": 1.0}]) == {"llm_requests": 3.0, "exact": 1.0}


# ---------------------------------------------------------------- the step's torchmetrics figures
def _round():
    import torch

    from speciarl.core.categories import Category as C
    from speciarl.core.categories import Outcome as O
    from speciarl.rl.step_metrics import RoundRecord

    # Two prompts, G = 2. Group 1: specific (cut at the budget) and wrong; group 2: a judge error
    # (NaN reward) and generic. Overlong penalty -0.5 on the cut completion.
    return RoundRecord(
        judgements=[C.SPECIFIC, C.WRONG, O.JUDGE_ERROR, C.GENERIC],
        rewards=torch.tensor([[0.5, 0.0], [float("nan"), 0.0]]),
        overlong=torch.tensor([[-0.5, 0.0], [0.0, 0.0]]),
        truncated=torch.tensor([True, False, False, False]),
        lengths=torch.tensor([16, 6, 6, 5]),
    )


def test_step_figures_by_hand():
    from speciarl.rl.step_metrics import StepMetrics

    metrics = StepMetrics(["judge_errors", "dropped_groups", "parse_failures", "truncated"], overlong=True)
    metrics.update_rollouts([_round()], group_size=2)
    stats = metrics.compute_rollouts()
    # verdicts without the judge error: specific, wrong, generic -> C = 2/3, S = 1/2,
    # HM = 2 (2/3)(1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7 = 0.571429
    assert stats["correctness"] == pytest.approx(2 / 3, abs=1e-6)
    assert stats["specificity"] == pytest.approx(0.5)
    assert stats["hm"] == pytest.approx(4 / 7, abs=1e-6)
    assert stats["frac_specific"] == pytest.approx(1 / 3, abs=1e-6) and stats["frac_judge_error"] == 0.0
    # rewards of the groups without a judge error: (0.5 + 0.0) / 2 = 0.25; that group's two
    # rewards differ, so no zero-variance group of 1; 1 of 2 groups had a judge error
    assert stats["reward_mean"] == 0.25
    assert stats["zero_variance_groups"] == 0.0 and stats["judge_error_groups"] == 0.5
    # 1 of 4 completions cut; mean length (16 + 6 + 6 + 5) / 4 = 8.25
    assert stats["truncated"] == 1.0 and stats["truncated_fraction"] == 0.25
    assert stats["response_length"] == 8.25
    # overlong: -0.5 summed / 2 rewarded completions = -0.25; 1 of 4 completions penalised
    assert stats["overlong_penalty_mean"] == -0.25 and stats["overlong_penalized_fraction"] == 0.25
    assert stats["judge_errors"] == 1.0 and stats["dropped_groups"] == 1.0
    # judge failures: 1 error among 4 verdicts that are not parse failures
    assert metrics.judge_failures() == (1, 4)
    assert metrics.compute_totals() == {
        "judge_errors": 1,
        "dropped_groups": 1,
        "parse_failures": 0,
        "truncated": 1,
    }


def test_totals_run_on_and_step_figures_reset():
    from speciarl.rl.step_metrics import StepMetrics

    metrics = StepMetrics(
        ["judge_errors", "dropped_groups", "parse_failures", "truncated", "skipped_images"], False
    )
    metrics.totals.load({"skipped_images": 3})  # resumed from a checkpoint
    for _ in range(2):
        metrics.count(skipped_images=1)
        metrics.update_rollouts([_round()], group_size=2)
        stats = metrics.compute_rollouts()
        metrics.reset_step()
    assert stats["truncated"] == 1.0  # this step only
    assert "overlong_penalty_mean" not in stats
    assert metrics.compute_totals() == {
        "judge_errors": 2,
        "dropped_groups": 2,
        "parse_failures": 0,
        "truncated": 2,
        "skipped_images": 5,
    }
