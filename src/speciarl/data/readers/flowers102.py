"""Oxford 102 Flowers: the CoOp split (``split_zhou_OxfordFlowers.json`` + ``jpg/``; test 2,463), or
the official release (``jpg/``, ``imagelabels.mat``, ``setid.mat``, read with scipy) with class
names from ``cat_to_name.json`` or the CoOp split file (the official release has none).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speciarl.data.image_sets import ImageEntry, readable_label
from speciarl.data.readers.coop import try_coop
from speciarl.data.readers.layout import (
    README_HINT,
    BenchmarkInfo,
    BenchmarkSplits,
    DatasetLayoutError,
    load_mat,
    require,
)

COOP_FILE = "split_zhou_OxfordFlowers.json"
INFO = BenchmarkInfo(
    name="flowers102",
    display="Oxford 102 Flowers",
    folder_names=("oxford_flowers", "flowers-102", "flowers102", "102flowers", "flowers"),
    markers=(COOP_FILE, "imagelabels.mat", "setid.mat"),
    expected=(
        "  CoOp: oxford_flowers/{split_zhou_OxfordFlowers.json, jpg/}\n"
        "  official: flowers-102/{jpg/, imagelabels.mat, setid.mat} + cat_to_name.json or the CoOp split file"
    ),
    coop=(COOP_FILE, "jpg"),
)


def read_flowers102(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split (names inside) or the official .mat files with names from cat_to_name.json."""
    found = try_coop(INFO, folder, layout)
    if found is not None:
        return found
    require(folder, INFO, "official", ["jpg", "imagelabels.mat", "setid.mat"])
    names = _flower_names(folder)
    labels = [int(v) for v in np.atleast_1d(load_mat(folder / "imagelabels.mat")["labels"])]
    setid = load_mat(folder / "setid.mat")
    splits = {}
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        entries = []
        for image_index in (int(v) for v in np.atleast_1d(setid[key])):
            label = labels[image_index - 1]
            if label not in names:
                raise ValueError(f"{folder}: class {label} has no name in cat_to_name.json")
            entries.append(
                ImageEntry(
                    str(folder / "jpg" / f"image_{image_index:05d}.jpg"),
                    names[label],
                    f"flowers102-{image_index:05d}",
                    {"dataset": "flowers102", "class_id": str(label)},
                )
            )
        splits[split] = entries
    classes = [names[k] for k in sorted(names)]
    return BenchmarkSplits("flowers102", folder, "official", classes, splits, INFO.display)


def _flower_names(folder: Path) -> dict[int, str]:
    """Official labels (1-based) -> readable names, from cat_to_name.json or a CoOp split file."""
    for where in (folder, folder.parent):
        path = where / "cat_to_name.json"
        if path.is_file():
            return {int(k): readable_label(v) for k, v in json.loads(path.read_text()).items()}
    coop = folder / COOP_FILE
    if coop.is_file():
        raw = json.loads(coop.read_text())
        return {int(label) + 1: readable_label(name) for rows in raw.values() for _, label, name in rows}
    raise DatasetLayoutError(
        f"the official Flowers102 release at {folder} has no class names: put cat_to_name.json "
        f'({{"1": "pink primrose", ...}}) or split_zhou_OxfordFlowers.json in {folder} ({README_HINT})'
    )
