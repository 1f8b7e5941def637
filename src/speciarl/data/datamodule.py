"""LightningDataModule over any datasets of ``Sample`` (or ``None`` for an unreadable image)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset

from speciarl.core.samples import Sample
from speciarl.data.sampling import ResumableBatchSampler, ShardSampler, subset_indices

log = logging.getLogger(__name__)
# Lightning warns that a mid-epoch resume cannot restore a plain DataLoader's position; this data
# module restores it itself (state_dict / load_state_dict below), so the warning does not apply.
warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")


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
        batch_size: prompts per training step, all ranks together (each of W ranks takes
            batch_size / W of them, so the global batch does not depend on the GPU count).
        val_batch_size: samples per validation generate call.
        num_workers: dataloader workers.
        seed: seed of the training order.
        taxonomy: the label hierarchy of the data (read by the judge through interpolation).
        train_subset: train on this many items of ``train``, drawn once with ``seed`` (the paper
            trains on 3,000 CUB images; its ablations on 128 to 2,048). None: all of them.
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
        train_subset: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"data.batch_size must be positive, got {batch_size}")
        if train_subset is not None:
            train = Subset(train, subset_indices(len(train), train_subset, seed))
        self.train_set = train
        self.val_set = val
        self.test_set = test
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.taxonomy = taxonomy
        # Global training batches consumed so far (checkpointed; a resumed run starts there).
        self.batches_consumed = 0

    def train_dataloader(self) -> DataLoader:
        import torch

        if self.train_set is None:
            raise ValueError("this data config has no training split (data.train is null)")

        rank, world = self._rank_and_world()
        sampler = ResumableBatchSampler(
            len(self.train_set),
            self.batch_size,
            seed=self.seed,
            rank=rank,
            world_size=world,
            start_batch=self.batches_consumed,
        )
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            # Its own generator, so creating the iterator never draws from the global RNG
            # (a resumed run must sample exactly what the uninterrupted one did).
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )

    def val_dataloader(self) -> DataLoader | list:
        import torch

        if self.val_set is None:
            return []
        rank, world = self._rank_and_world()
        return DataLoader(
            self.val_set,
            batch_size=self.val_batch_size,
            sampler=ShardSampler(len(self.val_set), rank, world),
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )

    # -------------------------------------------------------------- ranks and resumption
    def _rank_and_world(self) -> tuple[int, int]:
        """This process's data-parallel rank and the number of ranks (0, 1 without a trainer)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.world_size == 1:
            return 0, 1
        connector = getattr(trainer, "_accelerator_connector", None)
        if getattr(connector, "use_distributed_sampler", False):
            raise ValueError(
                "the data module shards batches over ranks itself: set trainer.use_distributed_sampler=false "
                "(conf/trainer/ddp.yaml does)"
            )
        return trainer.global_rank, trainer.world_size

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Called once per batch actually consumed (not per prefetched one): the resume position.
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            self.batches_consumed += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"batches_consumed": self.batches_consumed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches_consumed = int(state_dict.get("batches_consumed", 0))

    def val_samples(self) -> list[Sample]:
        if self.val_set is None:
            return []
        items = (self.val_set[i] for i in range(len(self.val_set)))
        return [s for s in items if s is not None]
