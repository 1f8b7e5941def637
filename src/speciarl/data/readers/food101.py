"""Food-101: the CoOp split (``split_zhou_Food101.json`` + ``images/``; test 30,300), or the
official release (``meta/classes.txt``, ``meta/{train,test}.txt``, ``images/``; test 25,250).
"""

from __future__ import annotations

from pathlib import Path

from speciarl.data.image_sets import ImageEntry, readable_label
from speciarl.data.readers.coop import try_coop
from speciarl.data.readers.layout import BenchmarkInfo, BenchmarkSplits, bad_line, require, text_lines

COOP_FILE = "split_zhou_Food101.json"
INFO = BenchmarkInfo(
    name="food101",
    display="Food-101",
    folder_names=("food-101", "food101", "food-101/food-101"),
    markers=(COOP_FILE, "meta/classes.txt"),
    expected=(
        "  CoOp: food-101/{split_zhou_Food101.json, images/}\n"
        "  official: food-101/{meta/classes.txt, meta/train.txt, meta/test.txt, images/}"
    ),
    coop=(COOP_FILE, "images"),
)


def read_food101(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split, or the official ``meta/`` lists (entries ``apple_pie/1005649``)."""
    found = try_coop(INFO, folder, layout)
    if found is not None:
        return found
    require(folder, INFO, "official", ["meta/classes.txt", "meta/train.txt", "meta/test.txt", "images"])
    classes = [text for _, text in text_lines(folder / "meta" / "classes.txt")]
    known = set(classes)
    splits = {}
    for split in ("train", "test"):
        path = folder / "meta" / f"{split}.txt"
        entries = []
        for number, text in text_lines(path):
            cls, _, stem = text.partition("/")
            if not stem or cls not in known:
                raise bad_line(path, number, "'<class from classes.txt>/<image id>'")
            entries.append(
                ImageEntry(
                    str(folder / "images" / f"{text}.jpg"),
                    readable_label(cls),
                    f"food101-{cls}-{stem}",
                    {"dataset": "food101"},
                )
            )
        splits[split] = entries
    classes = [readable_label(c) for c in classes]
    return BenchmarkSplits("food101", folder, "official", classes, splits, INFO.display)
