"""The CoOp split files (``split_zhou_*.json``) that four of the benchmarks ship with.

A split file is ``{"train"|"val"|"test": [[relative path, label, class name], ...]}``; the class
names inside are the ground truths, made readable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from speciarl.data.image_sets import ImageEntry, readable_label
from speciarl.data.readers.layout import BenchmarkInfo, BenchmarkSplits, require


def _split_entries(
    info: BenchmarkInfo, split_file: Path, image_dir: Path, split: str, rows: list, names: dict[int, str]
) -> list[ImageEntry]:
    """One split's entries; each class id's first name goes into ``names``."""
    entries = []
    for k, row in enumerate(rows):
        if not (isinstance(row, list | tuple) and len(row) == 3):
            raise ValueError(f"{split_file}: {split}[{k}] should be [relative path, label, class name]")
        rel, label, classname = row
        label_name = readable_label(str(classname))
        names.setdefault(int(label), label_name)
        stem = Path(str(rel)).with_suffix("").as_posix().replace("/", "-")
        entries.append(
            ImageEntry(
                str(image_dir / str(rel)),
                label_name,
                f"{info.name}-{stem}",
                {"dataset": info.name, "class_id": str(label)},
            )
        )
    return entries


def read_coop_split(
    info: BenchmarkInfo,
    folder: Path,
    split_file: Path,
    image_dir: Path,
    class_names: Sequence[str] | None = None,
) -> BenchmarkSplits:
    """Every split of a CoOp split file; class names sorted by label unless ``class_names`` is given."""
    try:
        raw = json.loads(split_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{split_file}: not valid JSON ({err.msg})") from err
    if not isinstance(raw, dict) or "test" not in raw:
        raise ValueError(f"{split_file}: expected an object with 'train', 'val' and 'test' lists")
    names: dict[int, str] = {}
    splits = {
        split: _split_entries(info, split_file, image_dir, split, rows, names) for split, rows in raw.items()
    }
    classes = [names[k] for k in sorted(names)]
    if class_names is not None:
        classes = list(class_names)
    return BenchmarkSplits(info.name, folder, "coop", classes, splits, info.display)


def coop_splits(info: BenchmarkInfo, folder: Path) -> BenchmarkSplits | None:
    """The benchmark's CoOp split when its split file is in ``folder``, else None."""
    assert info.coop is not None, f"{info.name} has no CoOp split"
    file_name, image_sub = info.coop
    split_file = folder / file_name
    if not split_file.is_file():
        return None
    image_dir = folder if image_sub == "." else folder / image_sub
    require(folder, info, "coop", [file_name] + ([] if image_sub == "." else [image_sub]))
    return read_coop_split(info, folder, split_file, image_dir)


def try_coop(info: BenchmarkInfo, folder: Path, layout: str) -> BenchmarkSplits | None:
    """For ``layout`` auto or coop: the CoOp split if present; with ``coop`` asked, its absence is an error.

    What the CoOp layout needs (the split file, and its image folder unless images sit beside it)
    comes from ``info.coop``.
    """
    if layout not in ("auto", "coop"):
        return None
    found = coop_splits(info, folder)
    if found is None and layout == "coop":
        assert info.coop is not None, f"{info.name} has no CoOp split"
        file_name, image_sub = info.coop
        require(folder, info, "coop", [file_name] if image_sub == "." else [file_name, image_sub])
    return found
