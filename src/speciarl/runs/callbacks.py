"""Sample completion tables: a JSONL file per split in the run folder, a W&B table and its images.

The module builds the rows (it knows the samples, completions, verdicts and rewards) and hands
them to ``CompletionTable.add``; the callback writes them at the end of the batch, on the
global-zero rank only (each rank's rows are its own prompts; rank 0's stand for the step).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from speciarl.core.completions import CompletionRow

WANDB_COLUMNS = ["step", "sample_id", "ground_truth", "answer", "category", "reward", "completion"]


class CompletionTable(Callback):
    """Writes the rows handed to ``add`` when the current training or validation batch ends."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, list[CompletionRow]]] = []

    def add(self, split: str, rows: Sequence[CompletionRow]) -> None:
        if rows:
            self.pending.append((split, list(rows)))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self.write(trainer)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self.write(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # A step that stops the run (e.g. the judge failure guard) still leaves its table behind.
        self.write(trainer)

    def write(self, trainer: Trainer) -> None:
        pending, self.pending = self.pending, []
        if not trainer.is_global_zero:
            return
        for split, rows in pending:
            path = Path(trainer.default_root_dir) / f"completions_{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                for row in rows:
                    fh.write(json.dumps(row.record()) + "\n")
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    _log_wandb_table(logger, split, rows)


def _log_wandb_table(logger: WandbLogger, split: str, rows: Sequence[CompletionRow]) -> None:
    """The rows as a W&B table, and their images as W&B images (captioned with the row).

    The images are logged apart from the table: images inside a table are staged as a W&B
    artifact outside the run folder, so a run folder copied elsewhere before ``wandb sync``
    would lose them; logged images are written to the run folder's ``files/media``.
    """
    import wandb

    data = [[r.step, r.sample_id, r.ground_truth, r.answer, r.category, r.reward, r.completion] for r in rows]
    images = [
        wandb.Image(r.image, caption=f"{r.sample_id}: {r.ground_truth} -> {r.answer} ({r.category})")
        for r in rows
        if r.image is not None
    ]
    logger.log_table(key=f"{split}/completions", columns=WANDB_COLUMNS, data=data)
    if images:
        logger.experiment.log({f"{split}/completion_images": images})
