"""The six fine-grained benchmarks, read from the layouts their releases ship; no download, ever.

One module per benchmark under ``speciarl.data.readers`` knows its layouts (its docstring lists
them); ``layout=auto`` picks the first that is present. Any of them may also be read as
``parquet`` (a Hugging Face export, ``readers.parquet``), and ``readers.image_folder`` reads
``[<split>/]<class name>/<image>`` for anything else. Ground truths are the class names made
readable, the labels the SpeciaRL paper (arXiv 2603.03197) evaluates against. The folder of a
dataset is ``root/<one of its usual folder names>`` or ``root`` itself; ``root`` defaults to the
environment variable ``SPECIARL_DATA_ROOT``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from speciarl.data.image_sets import LabelledImages
from speciarl.data.readers import cub200, fgvc_aircraft, flowers102, food101, oxford_pets, stanford_cars
from speciarl.data.readers.layout import (
    ROOT_ENV,
    BenchmarkInfo,
    BenchmarkSplits,
    DatasetLayoutError,
    candidate_folders,
    data_root,
    locate,
)
from speciarl.data.readers.parquet import parquet_files, read_parquet

__all__ = ["ROOT_ENV", "DatasetLayoutError", "benchmark_split", "read_benchmark"]

log = logging.getLogger(__name__)

# Each benchmark's description and reader, by name.
READERS: dict[str, tuple[BenchmarkInfo, Callable[[Path, str], BenchmarkSplits]]] = {
    cub200.INFO.name: (cub200.INFO, cub200.read_cub200),
    fgvc_aircraft.INFO.name: (fgvc_aircraft.INFO, fgvc_aircraft.read_fgvc_aircraft),
    flowers102.INFO.name: (flowers102.INFO, flowers102.read_flowers102),
    food101.INFO.name: (food101.INFO, food101.read_food101),
    oxford_pets.INFO.name: (oxford_pets.INFO, oxford_pets.read_oxford_pets),
    stanford_cars.INFO.name: (stanford_cars.INFO, stanford_cars.read_stanford_cars),
}
DATASETS = tuple(READERS)
DISPLAY = {name: info.display for name, (info, _) in READERS.items()}
# Training split of each dataset when the paper's recipe does not say otherwise.
TRAIN_SPLIT = {name: info.train_split for name, (info, _) in READERS.items()}
LAYOUTS = ("auto", "official", "coop", "devkit", "all_in_one")


def read_benchmark(name: str, root: str | Path | None = None, layout: str = "auto") -> BenchmarkSplits:
    """Every split of benchmark ``name`` found under ``root`` (or ``$SPECIARL_DATA_ROOT``)."""
    if name not in READERS:
        raise ValueError(f"unknown benchmark {name!r}: expected one of {list(DATASETS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: expected auto, official, coop, devkit or all_in_one")
    info, read = READERS[name]
    folder = locate(info, root)
    splits = canonical_splits(read(folder, layout))
    log.info(
        "%s: %s layout at %s, %s",
        info.display,
        splits.layout,
        folder,
        {k: len(v) for k, v in splits.splits.items()},
    )
    return splits


def canonical_labels(name: str, labels: Sequence[str]) -> list[str]:
    """Each ground truth spelt as the shipped taxonomy names its class, whatever the layout said.

    Layouts spell one class differently: CoOp lowercases the Pets cat breeds (``abyssinian``,
    officially ``Abyssinian``) and puts the Stanford Cars year first (``2012 Acura RL Sedan``,
    the devkit's ``Acura RL Sedan 2012``). A label is looked up among the taxonomy's names and
    synonyms (case and punctuation folded); one the taxonomy does not know is kept as read, and
    the count is logged.
    """
    from speciarl.data.taxonomies import load_taxonomy

    taxonomy = load_taxonomy(name)
    cache: dict[str, str] = {}
    unknown = set()
    for label in dict.fromkeys(labels):
        key = taxonomy.resolve(label)
        if key is None:
            unknown.add(label)
        cache[label] = taxonomy.node(key).name if key is not None else label
    if unknown:
        log.warning(
            "%s: %d class names are not in its taxonomy and are kept as read, e.g. %s",
            DISPLAY.get(name, name),
            len(unknown),
            sorted(unknown)[:3],
        )
    return [cache[label] for label in labels]


def canonical_splits(splits: BenchmarkSplits) -> BenchmarkSplits:
    """``splits`` with every entry's label and the class list spelt as ``canonical_labels`` says."""
    every = [e.label for entries in splits.splits.values() for e in entries]
    mapping = dict(zip(every, canonical_labels(splits.name, every), strict=True))
    classes = canonical_labels(splits.name, splits.classes)
    return BenchmarkSplits(
        splits.name,
        splits.folder,
        splits.layout,
        classes,
        {k: [replace(e, label=mapping[e.label]) for e in v] for k, v in splits.splits.items()},
        splits.display,
    )


def benchmark_split(
    name: str,
    split: str,
    root: str | Path | None = None,
    layout: str = "auto",
    subset_size: int | None = None,
    seed: int = 0,
) -> LabelledImages:
    """One split of a benchmark (``layout=parquet`` reads a Hugging Face export), optionally subsampled."""
    if layout == "parquet":
        base = data_root(root)
        folder_names = READERS[name][0].folder_names if name in READERS else ()
        candidates = candidate_folders(base, folder_names)
        folder = next((f for f in candidates if parquet_files(f, split)), None)
        if folder is None:
            looked = ", ".join(str(p) for p in candidates)
            raise DatasetLayoutError(
                f"no parquet export of {DISPLAY.get(name, name)} split {split!r}: looked in {looked} "
                f"(and their data/ folders) for {split}-*.parquet, {split}.parquet or {split}/*.parquet"
            )
        parquet = read_parquet(folder, split, name)
        data: LabelledImages = (
            parquet.relabelled(canonical_labels(name, parquet.labels())) if name in READERS else parquet
        )
    else:
        data = read_benchmark(name, root, layout).dataset(split)
    return data.subset(subset_size, seed)
