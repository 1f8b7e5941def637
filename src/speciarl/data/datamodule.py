"""LightningDataModule over any datasets of ``Sample`` (or ``None`` for an unreadable image)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from speciarl.data.samples import Sample

log = logging.getLogger(__name__)


class SampleBatch(list):
    """A list of samples that remembers how many unreadable ones were dropped from it."""

    skipped: int = 0


def collate_samples(items: Sequence[Sample | None]) -> SampleBatch:
    """Keep the readable samples; count the rest (datasets return None for a bad image)."""
    batch = SampleBatch(item for item in items if item is not None)
    batch.skipped = len(items) - len(batch)
    return batch


class SamplesDataModule(LightningDataModule):
    """Train and validation datasets of samples; batches are lists (PIL images do not stack).

    Args:
        train: the training dataset (prompts; each becomes G rollouts).
        val: held-out samples evaluated greedily every ``trainer.val_check_interval`` steps.
        test: the split ``python -m speciarl.evaluate`` reads (falls back to ``val`` when absent).
        batch_size: prompts per training step.
        val_batch_size: samples per validation generate call.
        num_workers: dataloader workers.
        seed: seed of the training order.
        taxonomy: the label hierarchy of the data (read by the judge through interpolation).
    """

    def __init__(
        self,
        train: Dataset,
        val: Dataset | None = None,
        batch_size: int = 32,
        val_batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        taxonomy: object | None = None,
        test: Dataset | None = None,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"data.batch_size must be positive, got {batch_size}")
        self.train_set = train
        self.val_set = val
        self.test_set = test
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.taxonomy = taxonomy

    def train_dataloader(self) -> DataLoader:
        import torch

        if self.train_set is None:
            raise ValueError("this data config has no training split (data.train is null)")

        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            generator=generator,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )

    def val_samples(self) -> list[Sample]:
        if self.val_set is None:
            return []
        items = (self.val_set[i] for i in range(len(self.val_set)))
        return [s for s in items if s is not None]
