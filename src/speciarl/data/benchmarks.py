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
from collections.abc import Callable
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
    splits = read(folder, layout)
    log.info(
        "%s: %s layout at %s, %s",
        info.display,
        splits.layout,
        folder,
        {k: len(v) for k, v in splits.splits.items()},
    )
    return splits


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
        data: LabelledImages = read_parquet(folder, split, name)
    else:
        data = read_benchmark(name, root, layout).dataset(split)
    return data.subset(subset_size, seed)
