"""What a run prints: a quiet terminal and progress that reads on a terminal and in a log file.

On a terminal a run shows one live bar per phase (training steps, validation, best-of-N,
evaluation); when stdout is not a terminal (piped to a file, a SLURM job) it prints a plain line
now and then instead, so a log shows how far a run is while it is still going. Library chatter
(Lightning's start-up notices and tips, transformers' weight-loading bar, W&B's banner and
shutdown summary) is switched off by :func:`quiet_console`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar

# Seconds between two plain progress lines when stdout is not a terminal.
PLAIN_EVERY_SECONDS = float(os.environ.get("SPECIARL_PROGRESS_EVERY", "30"))


def quiet_console() -> None:
    """Silence the libraries' start-up and shutdown chatter; warnings and errors still show."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("LITLOGGER_DISABLE_TIP", "1")
    # "GPU available", the litlogger tip, "`Trainer.fit` stopped", callback-override notices.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the per-load "Loading weights" bar
    except ImportError:
        pass


def interactive(stream: TextIO | None = None) -> bool:
    """True when progress goes to a terminal (a live bar), False for a file or a pipe (plain lines)."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Progress of one phase of ``total`` units: a tqdm bar on a terminal, plain lines elsewhere.

    Plain lines come at the first update, then at most every ``every`` seconds, and at the end;
    each says the phase, done / total, the fields given, the rate and the time left.
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "it",
        stream: TextIO | None = None,
        every: float | None = None,
        initial: int = 0,
    ) -> None:
        self.label, self.total, self.unit = label, int(total), unit
        self.stream = stream or sys.stdout
        self.every = PLAIN_EVERY_SECONDS if every is None else every
        self.started = time.perf_counter()
        self.initial = self.done = int(initial)
        self.last_line: float | None = None
        self.bar = None
        if interactive(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total, initial=initial, desc=label, unit=unit, leave=False, file=self.stream
            )

    def update(self, done: int, fields: Mapping[str, float] | None = None) -> None:
        """Report ``done`` units finished so far, with the current ``fields`` (reward, hm...)."""
        self.done = int(done)
        text = "  ".join(f"{k} {v:.3f}" for k, v in (fields or {}).items())
        if self.bar is not None:
            self.bar.n = self.done
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()
            return
        now = time.perf_counter()
        finished = self.done >= self.total > 0
        if self.last_line is None or finished or now - self.last_line >= self.every:
            self.last_line = now
            print(self.line(text, now), file=self.stream, flush=True)

    def line(self, text: str, now: float) -> str:
        """One plain progress line: ``train: step 12/60  reward 0.352  hm 0.275  (2.1 s/step, 1m40s left)``."""
        elapsed, moved = now - self.started, self.done - self.initial
        parts = [f"{self.label}: {self.unit} {self.done}/{self.total}"] + ([text] if text else [])
        if moved:
            left = _duration(elapsed / moved * max(0, self.total - self.done))
            parts.append(f"({elapsed / moved:.2f} s/{self.unit}, {left} left)")
        return "  ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def step_fields(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The progress fields of a training step: reward, HM, and the LLM's share of verdicts when one judges."""
    fields = {}
    for key, name in (("reward", "reward"), ("hm", "hm"), ("train/judge_llm_share", "llm")):
        if key in metrics:
            fields[name] = float(metrics[key])
    return fields


class StepProgress(ProgressBar):
    """Lightning progress: optimiser step of ``max_steps`` with reward, HM and the judge LLM share.

    Replaces Lightning's epoch bar (whose epoch count is meaningless in a step-budgeted run and
    whose ``v_num`` is the W&B run id); validation gets its own bar on a terminal only.
    """

    def __init__(self, stream: TextIO | None = None, every: float | None = None) -> None:
        super().__init__()
        self.stream, self.every = stream, every
        self._enabled = True
        self.train: Progress | None = None
        self.val: Progress | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._enabled and trainer.is_global_zero:
            total = trainer.max_steps if trainer.max_steps > 0 else int(trainer.estimated_stepping_batches)
            self.train = Progress("train", total, "step", self.stream, self.every, trainer.global_step)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self.train is not None:
            self.train.update(trainer.global_step, step_fields(trainer.progress_bar_metrics))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.train is not None:
            self.train.close()
            self.train = None

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Plain lines for validation would only repeat the step lines: a bar on a terminal only.
        if self._enabled and trainer.is_global_zero and interactive(self.stream):
            total = int(sum(trainer.num_val_batches)) if trainer.num_val_batches else 0
            self.val = Progress("validation", total, "batch", self.stream, self.every)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self.val is not None:
            self.val.update(self.val.done + 1)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.val is not None:
            self.val.close()
            self.val = None
