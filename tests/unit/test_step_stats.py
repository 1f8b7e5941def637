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
