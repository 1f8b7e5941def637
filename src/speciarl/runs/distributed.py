"""What each rank keeps and shards: its random states (saved in checkpoints) and FSDP's block classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def rng_state() -> dict[str, Any]:
    """The process's random states: torch (CPU and every CUDA device), numpy and python."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # Plain types only: checkpoints load with torch.load(weights_only=True), which refuses arrays.
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def layer_classes(
    names: Sequence[str], module: str = "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl"
) -> set[type]:
    """The block classes FSDP shards one by one (its ``auto_wrap_policy``), looked up by name."""
    import importlib

    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise ValueError(f"{module} has no class {missing[0]!r}: set trainer.strategy.auto_wrap_policy.names")
    return {getattr(mod, n) for n in names}
