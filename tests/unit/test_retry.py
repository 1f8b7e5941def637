"""``core.retry``: the jittered backoff's pauses, worked by hand, and when ``call_with_retries`` gives up."""

from __future__ import annotations

import sqlite3

import pytest

from speciarl.core.retry import Backoff, call_with_retries


def test_pauses_by_hand():
    backoff = Backoff(base_s=0.5, max_s=8.0)
    # retry k: cap = min(8, 0.5 * 2**k); pause = cap * (0.5 + 0.5 * u)
    assert backoff.pause(0, 0.0) == 0.25  # cap 0.5, u = 0: half of it
    assert backoff.pause(0, 0.5) == 0.375  # 0.5 * 0.75
    assert backoff.pause(2, 0.5) == 1.5  # cap 2.0 * 0.75
    assert backoff.pause(3, 0.999) == pytest.approx(3.998)  # cap 4.0 * 0.9995
    assert backoff.pause(5, 0.0) == 4.0  # cap min(8, 16) = 8, half of it
    assert backoff.pause(9, 0.5) == 6.0  # cap 8 * 0.75


def test_retry_after_raises_the_pause_up_to_the_cap():
    backoff = Backoff(base_s=0.5, max_s=8.0)
    assert backoff.pause(0, 0.0, at_least_s=3.0) == 3.0  # 0.25 raised to 3
    assert backoff.pause(0, 0.0, at_least_s=60.0) == 8.0  # capped
    assert backoff.pause(4, 0.5, at_least_s=1.0) == 6.0  # 8 * 0.75 is already longer


def test_retries_until_success_with_the_drawn_pauses():
    failures = iter([OSError("a"), OSError("b")])
    slept: list[float] = []
    numbers: list[int] = []

    def attempt():
        error = next(failures, None)
        if error:
            raise error
        return "done"

    result = call_with_retries(
        attempt,
        backoff=Backoff(1.0, 10.0),
        should_retry=lambda e: isinstance(e, OSError),
        max_retries=3,
        on_retry=lambda n, e: numbers.append(n),
        sleep=slept.append,
        draw=lambda: 0.5,
    )
    assert result == "done" and numbers == [1, 2] and slept == [0.75, 1.5]


def test_gives_up_with_the_last_failure_itself():
    calls = []

    def attempt():
        calls.append(1)
        raise TimeoutError(f"attempt {len(calls)}")

    with pytest.raises(TimeoutError, match="attempt 3"):
        call_with_retries(
            attempt, backoff=Backoff(0, 0), should_retry=lambda e: True, max_retries=2, sleep=lambda s: None
        )
    assert len(calls) == 3


def test_a_failure_not_worth_retrying_is_raised_at_once():
    calls = []

    def attempt():
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        call_with_retries(attempt, backoff=Backoff(0, 0), should_retry=lambda e: False, max_retries=5)
    assert calls == [1]


def test_a_deadline_stops_retrying_before_a_pause_that_would_pass_it():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    def attempt():
        now[0] += 0.01  # each attempt takes 10 ms
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        call_with_retries(
            attempt,
            backoff=Backoff(0.2, 0.2),
            should_retry=lambda e: True,
            deadline=100.5,
            sleep=sleep,
            draw=lambda: 0.5,
            clock=lambda: now[0],
        )
    # Pauses of 0.2 * 0.75 = 0.15 s: after attempts ending at 100.01, 100.17, 100.33 each pause fits
    # (ends 100.16, 100.32, 100.48 <= 100.5); after the fourth attempt (100.49) 100.64 would not.
    assert slept == pytest.approx([0.15, 0.15, 0.15])
    assert now[0] == pytest.approx(100.49)


def test_no_limit_is_refused():
    with pytest.raises(ValueError, match="max_retries or a deadline"):
        call_with_retries(lambda: 1, backoff=Backoff(0, 0), should_retry=lambda e: True)
