"""The interface every rollout backend implements (Hugging Face generate, seeded, vLLM, your own).

``generate(policy, samples, group_size, ...) -> Rollout`` with its token budget
``max_new_tokens`` and sampling ``temperature``; ``policy_updated()`` is called after every
optimiser step (backends holding their own copy of the weights reload them) and
``state_dict()`` / ``load_state_dict()`` travel in checkpoints. An abstract base class with no-op
defaults for what is optional, so the training step calls every method unconditionally.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speciarl.core.rollouts import PromptBatch, Rollout
    from speciarl.core.samples import Sample
    from speciarl.policy.policy import Policy


class RolloutBackend(ABC):
    """Samples G completions per prompt from the current policy, without gradients."""

    max_new_tokens: int
    temperature: float

    @abstractmethod
    def generate(
        self,
        policy: Policy,
        samples: Sequence[Sample] | PromptBatch,
        group_size: int,
        greedy: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> Rollout:
        """B prompts x G completions, rows ordered prompt by prompt."""

    def policy_updated(self) -> None:
        """The policy's weights changed (nothing to do for backends that read the live model)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for the backend to resume its sampling exactly (nothing by default)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned (nothing to restore by default)."""
        return None
