"""Two of the components the RL step talks to: the judge and the reward.

Each is a small abstract base class with no-op defaults for what is optional, so the training
step calls every method unconditionally (no probing of what an implementation supports) and a
new implementation states what it is by inheriting one of them:

* ``Judge``: ``judge(ground_truths, predictions) -> list[Judgement]``, one verdict per pair
  (the six categories of the SpeciaRL paper, arXiv 2603.03197, Sec. 3.2, or an ``Outcome``);
  ``last_stats`` holds the counters of the last call (empty for judges that keep none).
* ``Reward``: groups of G judgements -> a [B, G] float tensor (Sec. 3); ``stats()`` gives
  running figures for the logs (empty by default).

The third, the rollout backend, samples from the policy and so lives above it
(``speciarl.rollout.backend``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from speciarl.core.categories import Judgement

if TYPE_CHECKING:
    import torch


class Judge(ABC):
    """Sorts predicted labels against ground truths into categories."""

    # Counters of the last ``judge`` call (verdicts per tier, requests, seconds, ...); judges that
    # count set their own dict in ``judge``. Read-only here: judges without counters share it.
    last_stats: Mapping[str, float] = MappingProxyType({})

    @abstractmethod
    def judge(self, ground_truths: Sequence[str], predictions: Sequence[str | None]) -> list[Judgement]:
        """One judgement per (ground truth, prediction) pair, in order; a None prediction is a parse failure."""


class Reward(ABC):
    """Maps B groups of G judgements to rewards."""

    name: str = "reward"

    @abstractmethod
    def __call__(self, groups: Sequence[Sequence[Judgement]]) -> torch.Tensor:
        """A [B, G] float tensor; NaN where the judge failed (the group must not be trained on)."""

    def stats(self) -> dict[str, float]:
        """Running figures for the training log (none by default)."""
        return {}
