"""Checkpoint files that are whole, finite and recognisable, or absent.

:class:`SafeCheckpointIO` replaces Lightning's ``TorchCheckpointIO`` on the trainer's strategy:
it refuses a checkpoint holding a non-finite tensor (``runs.nonfinite``) and writes through a
temporary file, fsync and rename (``runs.atomic_files``), so a full disk or a kill mid-write
leaves the previous checkpoint under its name. :func:`inspect_checkpoint` reads a checkpoint's
header without loading its tensors (memory-mapped), so a corrupt, truncated or foreign file is
rejected in one line before the model is built.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from speciarl.runs.atomic_files import save_with
from speciarl.runs.nonfinite import refuse_nonfinite

# Keys every checkpoint written by Lightning's trainer holds.
LIGHTNING_KEYS = ("pytorch-lightning_version", "state_dict", "loops")


class CorruptCheckpointError(ValueError):
    """``ckpt_path`` is not a readable training checkpoint (empty, truncated, foreign)."""


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, with a finiteness check and an atomic write."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("SafeCheckpointIO takes no storage_options")
        target = Path(path)
        refuse_nonfinite(checkpoint.get("state_dict", {}), str(target), "state_dict")
        refuse_nonfinite(checkpoint.get("optimizer_states", []), str(target), "optimizer_states")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_with(target, lambda fh: torch.save(checkpoint, fh))


def inspect_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Open a checkpoint without reading its tensors and check that it is a training checkpoint.

    Args:
        path (path): the ``ckpt_path`` of a run.

    Returns:
        dict: the checkpoint, its tensors memory-mapped (cheap: nothing is read until used).

    Raises:
        CorruptCheckpointError: one line naming the file and what is wrong with it.
    """
    path = Path(path)

    def bad(what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"ckpt_path={path}: {what}; expected a .ckpt written by speciarl.train")

    if not path.is_file():
        raise bad("no such file" if not path.exists() else "not a file")
    size = path.stat().st_size
    if size == 0:
        raise bad("the file is empty (0 bytes): a write that never finished")
    if not zipfile.is_zipfile(path):
        raise bad(f"not a torch checkpoint archive ({size} bytes; truncated or another format)")
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise bad(
            f"unreadable archive ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    if not isinstance(checkpoint, dict):
        raise bad(f"holds a {type(checkpoint).__name__}, not a checkpoint dict")
    missing = [key for key in LIGHTNING_KEYS if key not in checkpoint]
    if missing:
        raise bad(f"a torch file, but not a Lightning training checkpoint (no {', '.join(missing)})")
    return checkpoint
