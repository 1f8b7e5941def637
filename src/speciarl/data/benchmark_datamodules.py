"""DataModules over the benchmarks: one dataset (``data=cub200``...) or the six mixed (``data=mixed``).

Each has a training split (optionally a seeded subset: ``data.subset_size=3000 data.seed=42`` is
the paper's CUB recipe), a validation split drawn from the test split (``val_size`` images, so
validation during training tracks the evaluation), and the full test split for
``python -m speciarl.evaluate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from speciarl.data.benchmarks import DATASETS, TRAIN_SPLIT, benchmark_split, read_benchmark
from speciarl.data.datamodule import SamplesDataModule
from speciarl.data.image_sets import ConcatImages, LabelledImages


def benchmark_splits(
    dataset: str,
    root: str | None = None,
    layout: str = "auto",
    train_split: str | None = None,
    test_split: str = "test",
) -> tuple[LabelledImages, LabelledImages]:
    """(train, test) of one benchmark, read once."""
    train_split = train_split or TRAIN_SPLIT.get(dataset, "train")
    if layout == "parquet":
        return (
            benchmark_split(dataset, train_split, root, layout),
            benchmark_split(dataset, test_split, root, layout),
        )
    splits = read_benchmark(dataset, root, layout)
    return splits.dataset(train_split), splits.dataset(test_split)


def benchmark_datamodule(
    dataset: str,
    root: str | None = None,
    layout: str = "auto",
    subset_size: int | None = None,
    seed: int = 0,
    val_size: int | None = 256,
    train_split: str | None = None,
    test_split: str = "test",
    batch_size: int = 32,
    val_batch_size: int = 64,
    num_workers: int = 0,
    taxonomy: object | None = None,
) -> SamplesDataModule:
    """One benchmark: ``subset_size`` training images drawn with ``seed`` (all when None)."""
    train, test = benchmark_splits(dataset, root, layout, train_split, test_split)
    return SamplesDataModule(
        train=train.subset(subset_size, seed),
        val=test.subset(val_size, seed + 1),
        test=test,
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        seed=seed,
        taxonomy=taxonomy,
    )


def mixed_datamodule(
    datasets: Sequence[str] = DATASETS,
    root: str | None = None,
    layouts: Mapping[str, str] | None = None,
    per_dataset: int | None = 500,
    val_per_dataset: int | None = 64,
    seed: int = 0,
    batch_size: int = 32,
    val_batch_size: int = 64,
    num_workers: int = 0,
    taxonomy: object | None = None,
) -> SamplesDataModule:
    """``per_dataset`` training images from each dataset; the test split is all their test splits."""
    unknown = set(datasets) - set(DATASETS)
    if unknown:
        raise ValueError(f"data.datasets: unknown {sorted(unknown)}; expected a subset of {list(DATASETS)}")
    trains, vals, tests = [], [], []
    for k, name in enumerate(datasets):
        train, test = benchmark_splits(name, root, (layouts or {}).get(name, "auto"))
        trains.append(train.subset(per_dataset, seed + 10 * k))
        vals.append(test.subset(val_per_dataset, seed + 10 * k + 1))
        tests.append(test)
    return SamplesDataModule(
        train=ConcatImages(trains, "mixed"),
        val=ConcatImages(vals, "mixed"),
        test=ConcatImages(tests, "mixed"),
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        seed=seed,
        taxonomy=taxonomy,
    )
