"""One way to try something again: capped exponential backoff with jitter, optionally under a deadline.

Used by the HTTP judge's transport and by the sqlite verdict cache, so both back off the same way.
The jitter matters because many callers fail together: 16 judge threads on every rank see the
same server outage at the same moment, and without jitter they would all come back at the same
moment too. Each pause is drawn from the upper half of its cap,
``cap * (0.5 + 0.5 * u)`` with ``cap = min(max_s, base_s * 2**k)`` for the k-th retry (k = 0 for
the first) and ``u`` uniform in [0, 1): never less than half the nominal pause (a struggling server
still gets room), never more than the cap. A server's ``Retry-After`` raises the pause to at
least that long, still capped at ``max_s``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How long to wait before each retry.

    Args:
        base_s: cap of the first pause (seconds); each later cap doubles.
        max_s: no pause is longer than this.
    """

    base_s: float
    max_s: float

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < 0:
            raise ValueError(f"backoff base_s and max_s must be >= 0, got {self.base_s}, {self.max_s}")

    def pause(self, retry: int, u: float, at_least_s: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first) given a uniform draw ``u``.

        Args:
            retry: how many retries came before this one.
            u: a number in [0, 1), the jitter.
            at_least_s: a lower bound the other side asked for (HTTP ``Retry-After``), or None.
        """
        cap = min(self.max_s, self.base_s * 2.0**retry)
        seconds = cap * (0.5 + 0.5 * u)
        if at_least_s is not None:
            seconds = max(seconds, at_least_s)
        return min(self.max_s, seconds)


def call_with_retries(
    attempt: Callable[[], T],
    *,
    backoff: Backoff,
    should_retry: Callable[[Exception], bool],
    max_retries: int | None = None,
    deadline: float | None = None,
    wait_at_least: Callable[[Exception], float | None] = lambda error: None,
    on_retry: Callable[[int, Exception], None] = lambda number, error: None,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``attempt()``'s result, trying again after each failure that ``should_retry`` accepts.

    Gives up by raising the last failure itself (not a wrapper) when ``should_retry`` refuses it,
    when ``max_retries`` retries have been made, or when the next pause would end past
    ``deadline`` (a ``time.monotonic()`` value). At least one of the two limits must be given.

    Args:
        attempt: the work; returns the result or raises.
        backoff: the pauses between attempts.
        should_retry: whether a failure may go away if tried again.
        max_retries: retries after the first attempt; None: only the deadline limits them.
        deadline: ``time.monotonic()`` after which no retry starts; None: no deadline.
        wait_at_least: a lower bound on the pause a failure asks for (a ``Retry-After``), or None.
        on_retry: called with the retry's number (1 for the first) and the failure, before its pause.
        sleep, draw, clock: the sleep, the jitter's uniform draw and the monotonic clock (a test
            passes its own).
    """
    if max_retries is None and deadline is None:
        raise ValueError("call_with_retries needs max_retries or a deadline, or it may never stop")
    retries = 0
    while True:
        try:
            return attempt()
        except Exception as error:
            if not should_retry(error) or (max_retries is not None and retries >= max_retries):
                raise
            pause = backoff.pause(retries, draw(), wait_at_least(error))
            if deadline is not None and clock() + pause > deadline:
                raise
            retries += 1
            on_retry(retries, error)
            sleep(pause)
