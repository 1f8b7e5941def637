"""One training step's judge counters, from the ``last_stats`` of each judge call it made.

A step may call the judge several times (DAPO dynamic sampling judges every generation round);
its counters are the sums over those calls, and its shares are recomputed from the sums, never
averaged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Ratios that are recomputed from summed counts: name -> (numerator keys, denominator key).
_SHARES = {"llm_share": (("llm", "llm_error"), "verdicts")}


def sum_judge_stats(calls: Iterable[Mapping[str, float] | None]) -> dict[str, float]:
    """Sum each counter over the calls (``None``: a judge without counters); shares = summed num / summed den."""
    total: dict[str, float] = {}
    for stats in calls:
        for key, value in (stats or {}).items():
            if key not in _SHARES:
                total[key] = total.get(key, 0.0) + float(value)
    for share, (numerators, denominator) in _SHARES.items():
        if denominator in total and all(k in total for k in numerators):
            den = total[denominator]
            total[share] = sum(total[k] for k in numerators) / den if den else 0.0
    return total
