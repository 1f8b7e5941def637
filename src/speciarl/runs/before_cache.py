"""The "before" figures of a sweep, measured once per base model and setting, reused by every job.

Every job of a sweep measures the held-out split before training (greedy, and best-of-N): on the
same base model, split, judge and sampling that is the same work each time (512 images, best-of-8
on top). The first job stores its figures in the sweep folder; a later job with the same inputs
reads them back instead.

"The same inputs" is a hash of the config parts the measurement reads (model, data, judge, rollout,
``eval`` sampling, validation limits) **and of the random state before it**: the measurement
draws from the global generators (best-of-N samples; every DataLoader iterator draws a seed), and
the training that follows starts from whatever state it left. The store keeps that state too
and a reuse restores it, so a job that reuses the figures trains exactly as one that measured them.
Jobs with different seeds therefore measure once per seed. Cached figures are logged to the
run's loggers like measured ones; the completions table of the "before" pass is not re-made.

Only single-process runs reuse (ranks of a DDP run must all measure, or none); a store is one
pickle per key written whole (temporary file, then rename), so parallel jobs at worst measure twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

# The config parts the "before" measurement reads (``eval.after`` and the training settings do not).
KEY_PARTS = (
    "model",
    "data",
    "verifier",
    "rollout",
    "eval",
    "module.val_breakdown_tag",
    "trainer.limit_val_batches",
)
FOLDER_NAME = ".before_cache"


def random_state() -> dict[str, Any]:
    """The global generators a measurement draws from: Python's, NumPy's and torch's (CPU, CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: Mapping[str, Any]) -> None:
    """Put back a state from :func:`random_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def measurement_key(cfg: DictConfig, name: str, state: Mapping[str, Any]) -> str:
    """The hash of what measurement ``name`` reads: its config parts and the random state before it."""
    parts = {part: _plain(OmegaConf.select(cfg, part)) for part in KEY_PARTS}
    # neither changes what "before" measures
    parts["eval"] = {k: v for k, v in (parts["eval"] or {}).items() if k not in ("after", "before_cache")}
    digest = hashlib.sha256(json.dumps({"name": name, "config": parts}, sort_keys=True, default=str).encode())
    digest.update(state_fingerprint(state))
    return digest.hexdigest()[:32]


def _plain(value: Any) -> Any:
    """A config node as plain data, interpolations resolved against the whole config (``${seed}``)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def state_fingerprint(state: Mapping[str, Any]) -> bytes:
    """Bytes equal exactly when two :func:`random_state` results are (pickle's bytes can differ)."""
    name, keys, position, has_gauss, gauss = state["numpy"]
    parts = [repr(state["python"]).encode(), name.encode(), np.asarray(keys).tobytes()]
    parts.append(repr((position, has_gauss, gauss)).encode())
    parts += [t.cpu().numpy().tobytes() for t in [state["torch"], *state.get("cuda", [])]]
    return b"|".join(parts)


def cache_folder(cfg: DictConfig, world_size: int) -> Path | None:
    """Where this run's "before" figures are stored and read, or None (no reuse).

    ``eval.before_cache``: ``auto`` is the sweep folder in a multirun and no reuse in a single run
    (its folder is new); a path uses that folder; null turns reuse off.
    """
    setting = OmegaConf.select(cfg, "eval.before_cache", default="auto")
    if setting is None or world_size > 1:
        return None
    if setting != "auto":
        return Path(str(setting))
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or HydraConfig.get().mode.name != "MULTIRUN":
        return None
    return Path(HydraConfig.get().sweep.dir) / FOLDER_NAME


def measure_once(
    folder: Path | None, cfg: DictConfig, name: str, compute: Callable[[], dict[str, float]]
) -> tuple[dict[str, float], bool]:
    """``compute()``'s figures, read back from ``folder`` when stored there; returns (figures, reused).

    A reuse leaves the random state as ``compute()`` would have left it.
    """
    if folder is None:
        return compute(), False
    before = random_state()
    path = folder / f"{name}-{measurement_key(cfg, name, before)}.pkl"
    if path.is_file():
        stored = pickle.loads(path.read_bytes())
        set_random_state(stored["state_after"])
        return dict(stored["figures"]), True
    figures = compute()
    folder.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps({"figures": figures, "state_after": random_state()})
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(payload)
    os.replace(temporary, path)
    return figures, False
