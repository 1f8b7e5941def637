"""Stanford Cars: the CoOp split (``split_zhou_StanfordCars.json`` beside ``cars_train/``,
``cars_test/``), the devkit layout of the official release and torchvision (``devkit/cars_meta.mat``,
``devkit/cars_train_annos.mat``, ``cars_test_annos_withlabels.mat``, ``cars_train/``,
``cars_test/``), or the all-in-one release (``cars_annos.mat`` + ``car_ims/``); test 8,041.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from speciarl.data.image_sets import ImageEntry, readable_label
from speciarl.data.readers.coop import try_coop
from speciarl.data.readers.layout import (
    BenchmarkInfo,
    BenchmarkSplits,
    load_mat,
    mat_records,
    mat_strings,
    require,
)

COOP_FILE = "split_zhou_StanfordCars.json"
INFO = BenchmarkInfo(
    name="stanford_cars",
    display="Stanford Cars",
    folder_names=("stanford_cars", "StanfordCars", "stanford-cars", "cars"),
    markers=(COOP_FILE, "devkit/cars_meta.mat", "cars_annos.mat"),
    expected=(
        "  CoOp: stanford_cars/{split_zhou_StanfordCars.json, cars_train/, cars_test/}\n"
        "  devkit/torchvision: stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, "
        "cars_test_annos_withlabels.mat, cars_train/, cars_test/}\n"
        "  all-in-one: stanford_cars/{cars_annos.mat, car_ims/}"
    ),
    coop=(COOP_FILE, "."),
)


def read_stanford_cars(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split, devkit .mat files (official / torchvision), or the all-in-one cars_annos.mat."""
    found = try_coop(INFO, folder, layout)
    if found is not None:
        return found
    if layout in ("auto", "all_in_one") and (folder / "cars_annos.mat").is_file():
        return _read_all_in_one(folder)
    return _read_devkit(folder)


def _read_all_in_one(folder: Path) -> BenchmarkSplits:
    require(folder, INFO, "all-in-one", ["cars_annos.mat", "car_ims"])
    mat = load_mat(folder / "cars_annos.mat")
    names = [readable_label(n) for n in mat_strings(mat["class_names"])]
    splits: dict[str, list[ImageEntry]] = {"train": [], "test": []}
    for row in mat_records(folder / "cars_annos.mat"):
        rel = str(row["relative_im_path"])
        split = "test" if int(row["test"]) else "train"
        splits[split].append(_car_entry(folder / rel, names, int(row["class"]), Path(rel).stem))
    return BenchmarkSplits("stanford_cars", folder, "all-in-one", names, splits, INFO.display)


def _read_devkit(folder: Path) -> BenchmarkSplits:
    test_annos = next(
        (
            p
            for p in ("cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat")
            if (folder / p).is_file()
        ),
        "cars_test_annos_withlabels.mat",
    )
    require(
        folder,
        INFO,
        "devkit",
        ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat", test_annos, "cars_train", "cars_test"],
    )
    names = [
        readable_label(n) for n in mat_strings(load_mat(folder / "devkit" / "cars_meta.mat")["class_names"])
    ]
    splits = {}
    for split, annos, images in (
        ("train", folder / "devkit" / "cars_train_annos.mat", "cars_train"),
        ("test", folder / test_annos, "cars_test"),
    ):
        entries = []
        for row in mat_records(annos):
            if "class" not in row:
                raise ValueError(f"{annos}: annotations have no 'class' field (the unlabelled test file?)")
            fname = str(row["fname"])
            entries.append(
                _car_entry(folder / images / fname, names, int(row["class"]), f"{split}-{Path(fname).stem}")
            )
        splits[split] = entries
    return BenchmarkSplits("stanford_cars", folder, "devkit", names, splits, INFO.display)


def _car_entry(path: Path, names: Sequence[str], label: int, stem: str) -> ImageEntry:
    if not 1 <= label <= len(names):
        raise ValueError(f"Stanford Cars: class {label} of {path.name} is outside 1..{len(names)}")
    return ImageEntry(
        str(path),
        names[label - 1],
        f"stanford_cars-{stem}",
        {"dataset": "stanford_cars", "class_id": str(label)},
    )
