"""Preemption: SIGTERM / SIGUSR1 end the run within seconds, with a checkpoint to resume from.

SLURM preemption and ``scancel`` send SIGTERM (SIGUSR1 is Lightning's SLURM requeue signal, sent
ahead of the end with ``#SBATCH --signal=USR1@<seconds>``). :class:`PreemptionWatch` records the
signal. While the step is only collecting (rollouts, judge requests: nothing trained yet) the
signal abandons it at once, also while judge requests are in flight: the handler raises
:class:`Preempted` in the main thread, and the state the step had drawn on (RNG streams, the
rollout backend's counters) is put back as it was when the step began. While the step updates the
weights, the signal is only recorded and the step ends first. Either way
:class:`PreemptionCheckpoint` writes ``<checkpoints>/last.ckpt`` as of the last finished step,
prints its path, and the process exits with 128 + the signal number (143 for SIGTERM): non-zero,
so a scheduler does not take the run for finished. Resuming from it
(``ckpt_path=<printed path>``) repeats the uninterrupted run's steps exactly.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(BaseException):
    """The run was asked to stop by a signal (a BaseException: no ``except Exception`` swallows it).

    Attributes:
        signum (int): the signal.
        abandoned (bool): True when a step was abandoned mid-collection (its state rolled back).
        checkpoint (str or None): the checkpoint written at the signal.
    """

    def __init__(self, signum: int, abandoned: bool = False) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.abandoned = abandoned
        self.checkpoint: str | None = None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


def _rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


class PreemptionWatch:
    """Records SIGTERM / SIGUSR1; raises :class:`Preempted` at once inside :meth:`abandonable`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._abandonable = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take SIGTERM and SIGUSR1 (main thread only; elsewhere signals cannot be handled)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        print(
            f"\nreceived {signal.Signals(signum).name}: stopping after a checkpoint",
            file=sys.stderr,
            flush=True,
        )
        self.signum = signum
        if self._abandonable:
            self._abandonable = False  # raised once; the roll-back must not be interrupted
            raise Preempted(signum, abandoned=True)

    @contextlib.contextmanager
    def abandonable(self, *stateful: Any) -> Iterator[None]:
        """A stretch (the step's collection) that a signal abandons at once.

        Args:
            *stateful: objects with ``state_dict`` / ``load_state_dict`` (the rollout backend)
                whose state is put back, with the RNG streams, when the stretch is abandoned.
        """
        if self.signum is not None:
            raise Preempted(self.signum, abandoned=True)  # signalled between steps: nothing to undo
        rng = _rng_states()
        saved = [copy.deepcopy(item.state_dict()) for item in stateful]
        self._abandonable = True
        try:
            yield
        except Preempted:
            self._abandonable = False
            _set_rng_states(rng)
            for item, state in zip(stateful, saved, strict=True):
                item.load_state_dict(state)
            raise
        finally:
            self._abandonable = False


def _undo_started_batch(checkpoint: dict[str, Any]) -> None:
    """Make the loop state of an abandoned step that of the last finished one: the abandoned batch
    was fetched and started, never processed (Lightning then restarts at it)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress")
    if not progress:
        return
    for part in ("total", "current"):
        counts = progress[part]
        counts["ready"] = counts["started"] = counts["processed"]


class PreemptionCheckpoint(Callback):
    """Writes ``last.ckpt`` when the run is preempted and stops it (see the module docstring).

    Args:
        watch (PreemptionWatch): the installed signal watch.
        dirpath (path): the checkpoint folder (the periodic checkpoints' one when configured).
    """

    def __init__(self, watch: PreemptionWatch, dirpath: str | Path) -> None:
        self.watch = watch
        self.dirpath = Path(dirpath)
        self._boundary_data: dict[str, Any] | None = None
        self._rolling_back = False
        self.checkpoint: str | None = None  # written on Lightning's own SIGTERM exit

    def _remember_data_position(self, trainer: Any) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "state_dict"):
            self._boundary_data = copy.deepcopy(datamodule.state_dict())

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._remember_data_position(trainer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self._remember_data_position(trainer)
        if self.watch.signum is not None:
            preempted = Preempted(self.watch.signum)
            preempted.checkpoint = self._save(trainer)
            raise preempted

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if isinstance(exception, SystemExit) and self.watch.signum is not None:
            # Lightning's own SIGTERMException (a SystemExit, exit status 0), raised at the end of
            # an epoch or inside validation when the signal came between steps: save here too.
            self.checkpoint = self._save_rolled_back(trainer)
            return
        if not isinstance(exception, Preempted) or exception.checkpoint is not None:
            return
        exception.checkpoint = self._save_rolled_back(trainer)

    def _save_rolled_back(self, trainer: Any) -> str:
        # Abandoned mid-step: the data module has handed out the abandoned batch; take it back.
        datamodule = getattr(trainer, "datamodule", None)
        if self._boundary_data is not None and datamodule is not None:
            datamodule.load_state_dict(copy.deepcopy(self._boundary_data))
        self._rolling_back = True
        try:
            return self._save(trainer)
        finally:
            self._rolling_back = False

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self._rolling_back:
            _undo_started_batch(checkpoint)

    def _save(self, trainer: Any) -> str:
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(str(path))
        if trainer.is_global_zero:
            print(
                f"preempted at step {trainer.global_step}: checkpoint written to {path}\n"
                f"resume with: ckpt_path={path}",
                file=sys.stderr,
                flush=True,
            )
        return str(path)
