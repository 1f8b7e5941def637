"""Rollouts that depend only on (seed, sample id, call number), not on batch or rank.

With the plain HF backend a prompt's samples depend on the global RNG stream, hence on which
other prompts share its batch and on how many ranks split the batch. Here each prompt is
generated alone under its own seed, so one process and W processes (or a batch of 4 and two of
2) sample exactly the same completions: what the DDP-equivalence test needs, and a way to
reproduce a run on a different GPU count. It costs one ``generate`` call per prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from speciarl.core.rollouts import PromptBatch, Rollout, concat_rollouts
from speciarl.core.samples import Sample
from speciarl.policy.policy import Policy
from speciarl.rollout.hf import HFRollout


def sample_seed(seed: int, sample_id: str, call: int) -> int:
    """A 63-bit seed from sha256("seed:sample_id:call"): stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}:{sample_id}:{call}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


class SeededHFRollout(HFRollout):
    """``HFRollout`` with every prompt sampled under ``sample_seed(seed, sample_id, call)``.

    ``call`` counts sampled (non-greedy) generate calls; it is saved in checkpoints, so a resumed
    run continues the same seeds. Greedy decoding needs no seed and runs batched as usual.
    """

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.calls = 0

    def generate(
        self,
        policy: Policy,
        samples: Sequence[Sample] | PromptBatch,
        group_size: int,
        greedy: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> Rollout:
        if greedy:
            return super().generate(policy, samples, group_size, greedy=True)
        if isinstance(samples, PromptBatch):
            raise TypeError("SeededHFRollout seeds by sample id: pass samples, not an encoded PromptBatch")
        self.calls += 1
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        parts = []
        for sample in samples:
            # fork_rng: the global stream is left as it was, whatever the batch composition.
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(sample_seed(self.seed, sample.sample_id, self.calls))
                parts.append(super().generate(policy, [sample], group_size, False, temperature, top_p))
        return concat_rollouts(parts, policy.pad_id, policy.eos_id)

    def state_dict(self) -> dict[str, int]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.calls = int(state["calls"])
