"""Start-up and end-of-prediction checks of ``python -m speciarl.evaluate``: nothing reported from nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def rollout_overrides(eval_cfg: Mapping[str, Any]) -> dict[str, int]:
    """``eval.max_new_tokens`` for the rollout: null keeps the rollout's own; 0 or less is an error
    (a falsy check once turned 0 into the rollout's default of 16)."""
    value = eval_cfg.get("max_new_tokens")
    if value is None:
        return {}
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"eval.max_new_tokens must be a positive integer or null, got {value!r}")
    return {"max_new_tokens": value}


def require_readable(rows: Sequence[Mapping[str, Any]], split: str) -> Sequence[Mapping[str, Any]]:
    """``rows`` when at least one was predicted; a clear error when every image was unreadable
    (figures over zero samples would print as 0.000, which reads like a measured result)."""
    if not any(not row.get("skipped") for row in rows):
        raise RuntimeError(
            f"no readable sample to evaluate in split {split!r}: {len(rows)} items, every image "
            "unreadable (see the warnings above), so there are no figures to report; check the data path"
        )
    return rows
