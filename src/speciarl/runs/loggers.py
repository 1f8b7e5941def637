"""Experiment loggers: W&B (offline unless the user configured W&B) and a CSV beside it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import DictConfig, open_dict


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
    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        mode=mode,
        config=config,
        log_model=False,
    )
    # Lightning passes `anonymous=None` to wandb.init, which W&B 0.31 answers with a deprecation
    # warning on every run; leaving the key out is what both mean.
    logger._wandb_init.pop("anonymous", None)
    return logger


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


def config_choice(group: str, default: str | None = None) -> str | None:
    """The option chosen for a config group in this Hydra run (``data`` -> ``synthetic``), else ``default``."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return default
    return HydraConfig.get().runtime.choices.get(group) or default


def name_run(cfg: DictConfig, method: str) -> DictConfig:
    """Name and group the W&B run when the config leaves them unset (a sweep job has its own).

    Name: ``<algorithm>+<reward>-s<seed>`` (``dapo+speciarl-s0``); group: the experiment preset
    (``experiment=dapo_speciarl``), else the method, so seeds of one method group together.
    """
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is not None:
        with open_dict(cfg):
            if wandb_cfg.get("name") is None:
                wandb_cfg.name = f"{method}-s{cfg.get('seed', 0)}"
            if wandb_cfg.get("group") is None:
                wandb_cfg.group = config_choice("experiment") or method
    return cfg


def announce_wandb(loggers: Sequence[Any]) -> None:
    """The one W&B line of a run: where it is (offline: the folder to ``wandb sync``), or its URL."""
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # the other ranks hold a placeholder run
        return
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            if getattr(run, "offline", False) or run.settings.mode == "offline":
                folder = run.dir.rsplit("/files", 1)[0]
                print(f"wandb: offline run {folder} (upload it later with `wandb sync`)", flush=True)
            elif getattr(run, "url", None):
                print(f"wandb: {run.url}", flush=True)
