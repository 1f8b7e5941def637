"""The judge failure guard: sliding-window rate, threshold, minimum sample, by hand."""

import pytest

from speciarl.verifier.failure_guard import JudgeFailureGuard, JudgeFailureRateExceeded


def test_rate_over_the_window():
    guard = JudgeFailureGuard(max_failure_rate=0.5, window_steps=3, min_verdicts=1)
    # steps (failed, judged): (1, 10), (0, 10), (2, 10) -> 3 / 30 = 0.1
    assert guard.record(1, 10) == pytest.approx(0.1)
    assert guard.record(0, 10) == pytest.approx(1 / 20)
    assert guard.record(2, 10) == pytest.approx(3 / 30)
    # the fourth step pushes (1, 10) out: (0 + 2 + 4) / 30 = 0.2
    assert guard.record(4, 10) == pytest.approx(6 / 30)


def test_one_lost_step_in_twenty_is_exactly_the_threshold_and_does_not_stop():
    guard = JudgeFailureGuard(max_failure_rate=0.05, window_steps=20, min_verdicts=100)
    for _ in range(19):
        guard.record(0, 100)
    # 100 failed of 20 * 100 = 2000 -> 5.0%, not above 5%
    assert guard.record(100, 100) == pytest.approx(0.05)


def test_second_lost_step_stops_with_the_numbers():
    guard = JudgeFailureGuard(max_failure_rate=0.05, window_steps=20, min_verdicts=100)
    for _ in range(19):
        guard.record(0, 100)
    guard.record(100, 100)  # 100 / 2000 = 5%
    # the window is now 18 clean steps and 2 lost ones: 200 of 2000 = 10% > 5%
    with pytest.raises(
        JudgeFailureRateExceeded, match=r"200 of 2000 verdicts \(10\.0%\).*above the allowed 5\.0%"
    ):
        guard.record(100, 100)


def test_the_rule_is_stricter_before_the_window_fills():
    guard = JudgeFailureGuard(max_failure_rate=0.05, window_steps=20, min_verdicts=100)
    for _ in range(5):
        guard.record(0, 100)
    # six steps in the window: 100 of 600 = 16.7%
    with pytest.raises(
        JudgeFailureRateExceeded, match=r"100 of 600 verdicts \(16\.7%\) over the last 6 steps"
    ):
        guard.record(100, 100)


def test_judge_down_from_the_start_stops_at_once():
    guard = JudgeFailureGuard(max_failure_rate=0.05, window_steps=20, min_verdicts=100)
    with pytest.raises(JudgeFailureRateExceeded, match="judge_max_failure_rate"):
        guard.record(128, 128)


def test_too_few_verdicts_do_not_decide():
    guard = JudgeFailureGuard(max_failure_rate=0.05, window_steps=20, min_verdicts=100)
    # 3 of 16 = 19% but only 16 verdicts; then 3 of 32 = 9.4% with 32: still below the minimum
    assert guard.record(3, 16) == pytest.approx(3 / 16)
    assert guard.record(0, 16) == pytest.approx(3 / 32)
    # at 112 verdicts 3/112 = 2.7%: fine
    assert guard.record(0, 80) == pytest.approx(3 / 112)


def test_steps_without_judged_verdicts_count_nothing():
    guard = JudgeFailureGuard(max_failure_rate=0.05, window_steps=2, min_verdicts=1)
    assert guard.record(0, 0) == 0.0


@pytest.mark.parametrize(("failed", "judged"), [(-1, 3), (4, 3)])
def test_bad_counts_are_rejected(failed, judged):
    with pytest.raises(ValueError, match="0 <= failed <= judged"):
        JudgeFailureGuard().record(failed, judged)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="max_failure_rate"):
        JudgeFailureGuard(max_failure_rate=1.5)
    with pytest.raises(ValueError, match="window_steps"):
        JudgeFailureGuard(window_steps=0)
