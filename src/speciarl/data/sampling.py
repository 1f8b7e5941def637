"""Samplers that shard batches over ranks and resume at any batch.

A training step sees one *global* batch of ``data.batch_size`` prompts whatever the number of
ranks: rank r of W takes the r-th contiguous slice of it. So one process and W processes train on
the same prompts in the same steps, and a resumed run continues with the batch the interrupted
one would have taken next (the position is a count of consumed global batches).

The shuffle reproduces ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed))``
exactly (per epoch the loader draws its workers' base seed, then the permutation, then one spare
permutation at exhaustion), so single-process runs keep the order they always had.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_permutation(size: int, seed: int, epoch: int) -> list[int]:
    """The order in which a shuffled DataLoader seeded with ``seed`` visits ``size`` items in ``epoch``."""
    generator = torch.Generator().manual_seed(seed)
    order = None
    for _ in range(epoch + 1):
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader's base seed
        order = torch.randperm(size, generator=generator)
        # RandomSampler draws one more (empty-sliced) permutation when an epoch is exhausted.
        torch.randperm(size, generator=generator)
    return order.tolist()


def subset_indices(size: int, count: int, seed: int) -> list[int]:
    """``count`` distinct indices of ``range(size)``, drawn with ``seed``, in increasing order."""
    if not 0 < count <= size:
        raise ValueError(f"data.train_subset must be in 1..{size} (the training set's size), got {count}")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:count].tolist())


class ResumableBatchSampler(Sampler[list[int]]):
    """This rank's slice of each global batch of a per-epoch shuffle (last partial batch dropped).

    Args:
        size: dataset length.
        batch_size: prompts per global batch (all ranks together); must divide by ``world_size``.
        seed: shuffle seed.
        shuffle: False keeps dataset order.
        rank, world_size: this process among the data-parallel ranks.
        start_batch: global batches already consumed (resume position); each ``iter`` then runs
            to the end of its epoch, and the next ``iter`` starts the following epoch.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"data.batch_size={batch_size} (prompts per step, all ranks together) must be a multiple "
                f"of the number of ranks ({world_size})"
            )
        if size < batch_size:
            raise ValueError(f"the training set has {size} items, fewer than one batch of {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.local_batch = batch_size // world_size
        self._cursor = start_batch

    def __len__(self) -> int:
        return self.size // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = len(self)
        epoch, first = divmod(self._cursor, per_epoch)
        # The next iter() starts the next epoch, however far this one is consumed (as a
        # shuffled DataLoader draws a new permutation on every iter()).
        self._cursor = (epoch + 1) * per_epoch
        order = epoch_permutation(self.size, self.seed, epoch) if self.shuffle else list(range(self.size))
        lo = self.rank * self.local_batch
        for b in range(first, per_epoch):
            start = b * self.batch_size + lo
            yield order[start : start + self.local_batch]


class ShardSampler(Sampler[int]):
    """Indices rank, rank + W, rank + 2W ... in order: every item evaluated once over all ranks."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.size = size
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))
