"""Stop a run whose judge keeps failing, instead of training on whatever it still manages to judge.

Groups with a judge error are dropped from the update (the module does that); this guard watches
the failure rate so that a judge that is down, or failing on a large share of answers, ends the
run with a clear error rather than letting it train on a biased remainder.

Rule: rate = judge errors / judged verdicts over the last ``window_steps`` steps (the current one
included; parse failures are not judged and do not count). The run stops when the rate is
strictly above ``max_failure_rate`` and the window holds at least ``min_verdicts`` verdicts.
A sliding window rather than a cumulative rate: a cumulative rate would take ever longer to
notice an outage late in a long run, and would never forget a blip early on. With the defaults
(5%, 20 steps), one step lost entirely in 20 is exactly 5% and does not stop the run; two do; a
judge that is down from the first step stops it at once. Until ``window_steps`` steps have run the
window is shorter, so the rule is stricter early on (one whole step lost among the first 19
stops the run): short outages are meant to be absorbed by the judge's own retries and backoff.
"""

from __future__ import annotations

from collections import deque


class JudgeFailureRateExceeded(RuntimeError):
    """The judge failed on too many verdicts; the message has the numbers and what to check."""


class JudgeFailureGuard:
    """Sliding-window failure rate of the judge; ``record`` raises once it passes the threshold."""

    def __init__(
        self, max_failure_rate: float = 0.05, window_steps: int = 20, min_verdicts: int = 100
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {max_failure_rate}")
        if window_steps < 1 or min_verdicts < 1:
            raise ValueError(
                f"window_steps and min_verdicts must be >= 1, got {window_steps}, {min_verdicts}"
            )
        self.max_failure_rate = max_failure_rate
        self.window_steps = window_steps
        self.min_verdicts = min_verdicts
        self._window: deque[tuple[int, int]] = deque(maxlen=window_steps)

    def rate(self) -> float:
        """failures / judged over the window (0 when nothing was judged)."""
        failed = sum(f for f, _ in self._window)
        judged = sum(j for _, j in self._window)
        return failed / judged if judged else 0.0

    def record(self, failed: int, judged: int) -> float:
        """Add one step's counts; return the window's rate, or raise when it is above the threshold."""
        if failed < 0 or judged < failed:
            raise ValueError(f"expected 0 <= failed <= judged, got failed={failed}, judged={judged}")
        self._window.append((failed, judged))
        window_failed = sum(f for f, _ in self._window)
        window_judged = sum(j for _, j in self._window)
        rate = window_failed / window_judged if window_judged else 0.0
        if window_judged >= self.min_verdicts and rate > self.max_failure_rate:
            raise JudgeFailureRateExceeded(
                f"the judge failed on {window_failed} of {window_judged} verdicts ({rate:.1%}) over the "
                f"last {len(self._window)} steps, above the allowed {self.max_failure_rate:.1%}: the "
                "groups it could not judge were dropped, but a judge failing this often would bias "
                "training. Check the judge (server up? see the train/judge_* counters and the log for "
                "timeouts and HTTP errors), or raise module.judge_max_failure_rate"
            )
        return rate


class UnreadableDataExceeded(RuntimeError):
    """Too many recent training batches had no readable image; the message says what to check."""


class EmptyBatchGuard:
    """Stop a run whose recent training batches had no readable image, like the judge guard.

    An all-unreadable batch trains nothing and does not advance the optimiser step, so a wrong
    data mount would otherwise loop over empty batches forever. Rule: over the last
    ``window_batches`` batches (once that many have been seen), the run stops when the share of
    batches without a readable image is strictly above ``max_empty_share``. Default (0.5 over 20):
    a set that is all unreadable stops after 20 batches; one with a bad image now and then never does.
    """

    def __init__(self, max_empty_share: float = 0.5, window_batches: int = 20) -> None:
        if not 0.0 <= max_empty_share <= 1.0:
            raise ValueError(f"max_empty_share must be in [0, 1], got {max_empty_share}")
        if window_batches < 1:
            raise ValueError(f"window_batches must be >= 1, got {window_batches}")
        self.max_empty_share = max_empty_share
        self.window_batches = window_batches
        self._window: deque[bool] = deque(maxlen=window_batches)

    def record(self, empty: bool, skipped_images: int) -> float:
        """Add one batch; return the window's empty share, or raise once it is above the threshold."""
        self._window.append(empty)
        share = sum(self._window) / len(self._window)
        if len(self._window) == self.window_batches and share > self.max_empty_share:
            raise UnreadableDataExceeded(
                f"{sum(self._window)} of the last {len(self._window)} training batches had no readable "
                f"image ({share:.0%}, above the allowed {self.max_empty_share:.0%}; the last one dropped "
                f"{skipped_images} unreadable images): check the training data path and the image files "
                "(the log names the unreadable ones), or raise module.max_empty_batch_share"
            )
        return share
