"""Resumable, rank-sharded batch sampling."""

import pytest
import torch
from torch.utils.data import DataLoader

from speciarl.data.sampling import ResumableBatchSampler, ShardSampler, epoch_permutation


def _loader_batches(size: int, batch: int, seed: int, epochs: int) -> list[list[int]]:
    """What the foundation's shuffled DataLoader produced, epoch after epoch."""
    loader = DataLoader(
        list(range(size)),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=list,
    )
    return [b for _ in range(epochs) for b in loader]


def test_single_rank_order_equals_the_shuffled_dataloader_over_epochs():
    sampler = ResumableBatchSampler(size=10, batch_size=3, seed=7)
    ours = [b for _ in range(3) for b in sampler]
    assert ours == _loader_batches(10, 3, 7, 3)
    assert len(sampler) == 3  # 10 // 3, last partial batch dropped


def test_ranks_split_each_global_batch_into_contiguous_slices():
    order = epoch_permutation(8, seed=3, epoch=0)
    rank0 = list(ResumableBatchSampler(8, 4, seed=3, rank=0, world_size=2))
    rank1 = list(ResumableBatchSampler(8, 4, seed=3, rank=1, world_size=2))
    # global batch 0 = order[0:4]: rank 0 takes order[0:2], rank 1 order[2:4]
    assert rank0 == [order[0:2], order[4:6]]
    assert rank1 == [order[2:4], order[6:8]]


def test_resume_position_continues_mid_epoch_and_into_the_next_epoch():
    uninterrupted = ResumableBatchSampler(9, 2, seed=1)  # 4 batches an epoch
    full = [b for _ in range(2) for b in uninterrupted]
    for consumed in (0, 1, 3, 4, 6):
        resumed = ResumableBatchSampler(9, 2, seed=1, start_batch=consumed)
        rest = [b for _ in range(2) for b in resumed][: len(full) - consumed]
        assert rest == full[consumed:], consumed


def test_batch_size_must_divide_over_ranks():
    with pytest.raises(ValueError, match="multiple of the number of ranks"):
        ResumableBatchSampler(10, 3, world_size=2)


def test_shard_sampler_covers_every_item_once():
    shards = [list(ShardSampler(7, r, 3)) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(i for s in shards for i in s) == list(range(7))


def test_train_subset_is_a_seeded_draw_of_distinct_items():
    from speciarl.data.datamodule import SamplesDataModule
    from speciarl.data.sampling import subset_indices

    picked = subset_indices(100, 30, seed=42)
    assert len(set(picked)) == 30 and picked == sorted(picked) and max(picked) < 100
    assert picked == subset_indices(100, 30, seed=42)
    assert picked != subset_indices(100, 30, seed=43)
    dm = SamplesDataModule(train=list(range(100, 200)), batch_size=4, seed=42, train_subset=30)
    assert [dm.train_set[i] for i in range(30)] == [100 + i for i in picked]
    with pytest.raises(ValueError, match="train_subset"):
        subset_indices(10, 11, seed=0)
