"""The long-run protections of one training run, wired in by ``speciarl.train`` in four calls.

``start`` locks the run folder (``runs.run_lock``) and, when resuming, rejects a corrupt
checkpoint and a changed config before anything is built (``runs.checkpoint_io``,
``runs.fingerprint``); ``callbacks`` are the preemption and fingerprint callbacks; ``attach``
gives the trainer the atomic, finiteness-checking checkpoint IO; ``fitting`` holds the signal
watch around ``trainer.fit`` (``runs.preemption``); ``stop`` releases the folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from speciarl.runs.checkpoint_io import SafeCheckpointIO, inspect_checkpoint
from speciarl.runs.config_checks import check_context_length, check_run_values
from speciarl.runs.fingerprint import (
    CHECKPOINT_KEY,
    SECTIONS,
    FingerprintCallback,
    check_resume,
    run_fingerprint,
)
from speciarl.runs.preemption import Preempted, PreemptionCheckpoint, PreemptionWatch
from speciarl.runs.run_lock import RunFolderLock

log = logging.getLogger(__name__)


def launch_rank() -> int:
    """This process's global rank as the launcher set it (torchrun, SLURM, Lightning's own
    launcher), read from the environment: the process group does not exist yet at start."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 0


def _plain(value: Any) -> Any:
    """A config node resolved to plain containers (other values as they are)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _plain_sections(cfg: DictConfig) -> dict[str, Any]:
    """The fingerprinted sections of the config, resolved to plain containers."""
    return {section: _plain(cfg.get(section)) for section in SECTIONS}


class RunSafety:
    """Lock, resume checks, preemption and safe checkpoint writes of one run.

    Args:
        cfg (DictConfig): the composed run config (``ckpt_path``, ``resume_accept_changes``,
            ``checkpoint.dirpath`` are read).
        out_dir (path): the run folder.
    """

    def __init__(self, cfg: DictConfig, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.ckpt_path = cfg.get("ckpt_path")
        self.accepted = [str(k) for k in (cfg.get("resume_accept_changes") or [])]
        self.fingerprint = run_fingerprint(_plain_sections(cfg))
        dirpath = OmegaConf.select(cfg, "checkpoint.dirpath") if cfg.get("checkpoint") else None
        self.checkpoint_dir = Path(dirpath) if dirpath else self.out_dir / "checkpoints"
        self.lock = RunFolderLock(self.out_dir)
        self.rollout = _plain(cfg.get("rollout")) or {}
        self.evaluation = _plain(cfg.get("eval"))

    def start(self) -> None:
        """Check the config's values; lock the run folder; check ``ckpt_path`` (readable, same
        settings), all before anything is built."""
        check_run_values(self.rollout, self.evaluation)
        if launch_rank() == 0:  # the ranks of one multi-process run share its folder
            self.lock.acquire()
        try:
            if self.ckpt_path:
                saved = inspect_checkpoint(self.ckpt_path).get(CHECKPOINT_KEY)
                for line in check_resume(saved, self.fingerprint, self.accepted, str(self.ckpt_path)):
                    log.warning("resuming with a changed setting (accepted):%s", line)
        except BaseException:
            self.lock.release()
            raise

    def stop(self) -> None:
        self.lock.release()

    def check_model(self, model: Any) -> None:
        """``rollout.max_new_tokens`` within the loaded model's context (before any generation)."""
        if self.rollout.get("max_new_tokens") is not None:
            check_context_length(int(self.rollout["max_new_tokens"]), model)

    def callbacks(self, watch: PreemptionWatch) -> list[Any]:
        return [PreemptionCheckpoint(watch, self.checkpoint_dir), FingerprintCallback(self.fingerprint)]

    def attach(self, trainer: Any) -> None:
        """Checkpoints through tmp + fsync + rename, never with a non-finite tensor."""
        trainer.strategy.checkpoint_io = SafeCheckpointIO()

    @contextlib.contextmanager
    def fitting(self, trainer: Any, watch: PreemptionWatch) -> Iterator[None]:
        """SIGTERM / SIGUSR1 handled while the block (``trainer.fit``) runs; a signal after the
        last step still stops the run, with a checkpoint of its end."""
        watch.install()
        try:
            try:
                yield
            except SystemExit as lightning_exit:  # Lightning's SIGTERMException: exit status 0
                if watch.signum is None:
                    raise
                preempted = Preempted(watch.signum)
                preempted.checkpoint = str(self.checkpoint_dir / "last.ckpt")
                raise preempted from lightning_exit
            if watch.signum is not None:
                preempted = Preempted(watch.signum)
                preempted.checkpoint = str(self.checkpoint_dir / "last.ckpt")
                trainer.save_checkpoint(preempted.checkpoint)
                raise preempted
        finally:
            watch.uninstall()
