"""Experiment loggers: W&B (offline unless the user configured W&B) and a CSV beside it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, WandbLogger


def wandb_configured() -> bool:
    """True when the user has set up W&B (an API key, or a mode chosen in the environment)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_logger(
    save_dir: str,
    project: str = "speciarl",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    mode: str = "auto",
    config: dict[str, Any] | None = None,
) -> WandbLogger:
    """A WandbLogger; ``mode=auto`` is offline unless W&B is configured (sync later with ``wandb sync``)."""
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"logger.wandb.mode must be auto, online, offline or disabled, got {mode!r}")
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_configured() else "offline")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        mode=mode,
        config=config,
        log_model=False,
    )


def csv_logger(save_dir: str, name: str = "csv") -> CSVLogger:
    """Metrics as ``<save_dir>/<name>/version_0/metrics.csv``."""
    return CSVLogger(save_dir=save_dir, name=name)


def finish_wandb() -> None:
    """Close the current W&B run, so the next Hydra multirun job starts its own."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
