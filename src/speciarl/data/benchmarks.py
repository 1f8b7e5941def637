"""Readers of the six fine-grained benchmarks in the layouts their releases ship; no download, ever.

Supported layouts (``layout=auto`` picks the first that is present, in this order):

* ``cub200``: CUB-200-2011 official: ``images.txt``, ``classes.txt``, ``image_class_labels.txt``,
  ``train_test_split.txt``, ``images/``. Splits ``train`` (5,994), ``test`` (5,794).
* ``fgvc_aircraft``: FGVC-Aircraft 2013b official (also torchvision's): ``data/variants.txt``,
  ``data/images_variant_{train,val,test}.txt``, ``data/images/``; the family and manufacturer
  files (``data/images_{family,manufacturer}_*.txt``) become tags and the taxonomy. Splits
  ``train``, ``val``, ``trainval``, ``test`` (3,333) at variant level.
* ``flowers102``: CoOp (``split_zhou_OxfordFlowers.json`` + ``jpg/``; test 2,463), or the official
  release (``jpg/``, ``imagelabels.mat``, ``setid.mat``, read with scipy) with class names from
  ``cat_to_name.json`` or the CoOp split file (the official release has none).
* ``food101``: CoOp (``split_zhou_Food101.json`` + ``images/``; test 30,300), or official
  (``meta/classes.txt``, ``meta/{train,test}.txt``, ``images/``; test 25,250).
* ``oxford_pets``: CoOp (``split_zhou_OxfordPets.json`` + ``images/``), or official
  (``annotations/{trainval,test}.txt``, ``images/``); test 3,669 either way.
* ``stanford_cars``: CoOp (``split_zhou_StanfordCars.json`` beside ``cars_train/``, ``cars_test/``),
  the devkit layout of the official release and torchvision (``devkit/cars_meta.mat``,
  ``devkit/cars_train_annos.mat``, ``cars_test_annos_withlabels.mat``, ``cars_train/``,
  ``cars_test/``), or the all-in-one release (``cars_annos.mat`` + ``car_ims/``); test 8,041.
* any of them as ``parquet`` (a Hugging Face export: ``<split>-*.parquet`` files, under ``data/``
  or not, with an encoded image column and a label column), and ``image_folder``
  (``[<split>/]<class name>/<image>``) for anything else.

Ground truths are the class names made readable (SPEC.md section 5). The folder of a dataset is
``root/<one of its usual folder names>`` or ``root`` itself; ``root`` defaults to the environment
variable ``SPECIARL_DATA_ROOT``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speciarl.data.image_sets import ImageEntry, ImageFiles, LabelledImages, ParquetImages, readable_label

log = logging.getLogger(__name__)

ROOT_ENV = "SPECIARL_DATA_ROOT"
DATASETS = ("cub200", "fgvc_aircraft", "flowers102", "food101", "oxford_pets", "stanford_cars")
DISPLAY = {
    "cub200": "CUB-200-2011",
    "fgvc_aircraft": "FGVC-Aircraft 2013b",
    "flowers102": "Oxford 102 Flowers",
    "food101": "Food-101",
    "oxford_pets": "Oxford-IIIT Pet",
    "stanford_cars": "Stanford Cars",
}
FOLDER_NAMES = {
    "cub200": ("CUB_200_2011", "CUB-200-2011", "cub200", "cub_200_2011", "CUB_200_2011/CUB_200_2011"),
    "fgvc_aircraft": (
        "fgvc-aircraft-2013b",
        "fgvc_aircraft",
        "FGVC-Aircraft",
        "fgvc-aircraft-2013b/fgvc-aircraft-2013b",
    ),
    "flowers102": ("oxford_flowers", "flowers-102", "flowers102", "102flowers", "flowers"),
    "food101": ("food-101", "food101", "food-101/food-101"),
    "oxford_pets": ("oxford_pets", "oxford-iiit-pet", "oxford_iiit_pet", "pets"),
    "stanford_cars": ("stanford_cars", "StanfordCars", "stanford-cars", "cars"),
}
# Training split of each dataset when the paper's recipe does not say otherwise.
TRAIN_SPLIT = {
    "cub200": "train",
    "fgvc_aircraft": "trainval",
    "flowers102": "train",
    "food101": "train",
    "oxford_pets": "train",
    "stanford_cars": "train",
}
COOP_SPLIT_FILES = {
    "flowers102": ("split_zhou_OxfordFlowers.json", "jpg"),
    "food101": ("split_zhou_Food101.json", "images"),
    "oxford_pets": ("split_zhou_OxfordPets.json", "images"),
    "stanford_cars": ("split_zhou_StanfordCars.json", "."),
}
README_HINT = "see README.md#datasets-and-evaluation"


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder is missing or incomplete; the message lists what was expected and where."""


@dataclass
class BenchmarkSplits:
    """Every split of one dataset as entry lists, with the class names and the layout read."""

    name: str
    folder: Path
    layout: str
    classes: list[str]
    splits: dict[str, list[ImageEntry]]

    def dataset(self, split: str) -> ImageFiles:
        if split not in self.splits:
            raise KeyError(
                f"{DISPLAY.get(self.name, self.name)} ({self.layout} layout at {self.folder}) has no "
                f"split {split!r}: expected one of {sorted(self.splits)}"
            )
        return ImageFiles(self.splits[split], name=self.name)


# ---------------------------------------------------------------------------- locating folders
def data_root(root: str | Path | None) -> Path:
    """``root`` or ``$SPECIARL_DATA_ROOT``; an error naming both when neither is set."""
    value = root if root not in (None, "") else os.environ.get(ROOT_ENV)
    if not value:
        raise DatasetLayoutError(
            f"no data root: set data.root=/path/to/datasets or the environment variable {ROOT_ENV} "
            f"({README_HINT})"
        )
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        raise DatasetLayoutError(f"data root {path} is not a folder ({README_HINT})")
    return path


def _candidates(name: str, root: Path) -> list[Path]:
    return [root] + [root / sub for sub in FOLDER_NAMES.get(name, ())]


def locate(name: str, root: str | Path | None, markers: Sequence[str]) -> Path:
    """The folder of ``name`` under ``root`` (or ``root`` itself) holding any of ``markers``."""
    base = data_root(root)
    for folder in _candidates(name, base):
        if any((folder / m).exists() for m in markers):
            return folder
    looked = ", ".join(str(p) for p in _candidates(name, base))
    raise DatasetLayoutError(
        f"no {DISPLAY.get(name, name)} found: looked in {looked} for any of {list(markers)}. "
        f"Expected layouts:\n{EXPECTED[name]}\n({README_HINT}; nothing is downloaded)"
    )


def require(folder: Path, name: str, layout: str, paths: Iterable[str]) -> None:
    """Raise listing every expected file or folder of ``layout`` missing under ``folder``."""
    missing = [p for p in paths if not (folder / p).exists()]
    if missing:
        raise DatasetLayoutError(
            f"incomplete {DISPLAY.get(name, name)} folder {folder} ({layout} layout): missing "
            f"{missing}. Expected:\n{EXPECTED[name]}\n({README_HINT})"
        )


EXPECTED = {
    "cub200": "  CUB_200_2011/{images.txt, classes.txt, image_class_labels.txt, train_test_split.txt, images/}",
    "fgvc_aircraft": (
        "  fgvc-aircraft-2013b/data/{variants.txt, images_variant_train.txt, images_variant_val.txt, "
        "images_variant_test.txt, images/} (+ families.txt, manufacturers.txt, images_family_*.txt, "
        "images_manufacturer_*.txt for the hierarchy)"
    ),
    "flowers102": (
        "  CoOp: oxford_flowers/{split_zhou_OxfordFlowers.json, jpg/}\n"
        "  official: flowers-102/{jpg/, imagelabels.mat, setid.mat} + cat_to_name.json or the CoOp split file"
    ),
    "food101": (
        "  CoOp: food-101/{split_zhou_Food101.json, images/}\n"
        "  official: food-101/{meta/classes.txt, meta/train.txt, meta/test.txt, images/}"
    ),
    "oxford_pets": (
        "  CoOp: oxford_pets/{split_zhou_OxfordPets.json, images/}\n"
        "  official: oxford-iiit-pet/{annotations/trainval.txt, annotations/test.txt, images/}"
    ),
    "stanford_cars": (
        "  CoOp: stanford_cars/{split_zhou_StanfordCars.json, cars_train/, cars_test/}\n"
        "  devkit/torchvision: stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, "
        "cars_test_annos_withlabels.mat, cars_train/, cars_test/}\n"
        "  all-in-one: stanford_cars/{cars_annos.mat, car_ims/}"
    ),
}


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines with their 1-based numbers."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#"):
            out.append((number, text))
    return out


def _bad_line(path: Path, number: int, expected: str) -> ValueError:
    return ValueError(f"{path}:{number}: expected {expected}")


# ---------------------------------------------------------------------------- CUB-200-2011
def read_cub200(folder: Path) -> BenchmarkSplits:
    """CUB-200-2011 official layout; split flag 1 = train, 0 = test."""
    files = ["images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt", "images"]
    require(folder, "cub200", "official", files)

    def table(file: str, expected: str) -> dict[str, str]:
        path = folder / file
        out = {}
        for number, text in _lines(path):
            parts = text.split(maxsplit=1)
            if len(parts) != 2:
                raise _bad_line(path, number, expected)
            out[parts[0]] = parts[1]
        return out

    classes_raw = table("classes.txt", "'<class id> <class folder>'")
    images = table("images.txt", "'<image id> <relative path>'")
    labels = table("image_class_labels.txt", "'<image id> <class id>'")
    flags = table("train_test_split.txt", "'<image id> <1 train | 0 test>'")
    class_ids = sorted(classes_raw, key=int)
    names = {cid: readable_label(classes_raw[cid]) for cid in class_ids}
    splits: dict[str, list[ImageEntry]] = {"train": [], "test": []}
    for image_id, rel in sorted(images.items(), key=lambda kv: int(kv[0])):
        if image_id not in labels or image_id not in flags:
            raise ValueError(
                f"{folder}: image {image_id} ({rel}) is missing from image_class_labels.txt or "
                "train_test_split.txt"
            )
        cid = labels[image_id]
        if cid not in names:
            raise ValueError(f"{folder}/image_class_labels.txt: image {image_id} has unknown class {cid}")
        split = "train" if flags[image_id].strip() == "1" else "test"
        splits[split].append(
            ImageEntry(
                str(folder / "images" / rel),
                names[cid],
                f"cub200-{image_id}",
                {"dataset": "cub200", "class_id": cid},
            )
        )
    return BenchmarkSplits("cub200", folder, "official", [names[c] for c in class_ids], splits)


# ---------------------------------------------------------------------------- FGVC-Aircraft
def _id_value_file(path: Path) -> dict[str, str]:
    """Lines ``<image id> <value with spaces>``."""
    out = {}
    for number, text in _lines(path):
        parts = text.split(maxsplit=1)
        if len(parts) != 2:
            raise _bad_line(path, number, "'<image id> <name>'")
        out[parts[0]] = parts[1].strip()
    return out


def aircraft_hierarchy(data_dir: Path) -> dict[str, tuple[str, str]]:
    """variant -> (family, manufacturer) from the dataset's own per-image files (empty if absent)."""
    mapping: dict[str, tuple[str, str]] = {}
    for split in ("train", "val", "test"):
        files = [data_dir / f"images_{level}_{split}.txt" for level in ("variant", "family", "manufacturer")]
        if not all(f.is_file() for f in files):
            continue
        variant, family, maker = (_id_value_file(f) for f in files)
        for image_id, name in variant.items():
            if image_id in family and image_id in maker:
                pair = (family[image_id], maker[image_id])
                if mapping.setdefault(name, pair) != pair:
                    raise ValueError(
                        f"{data_dir}: variant {name!r} has two parents, {mapping[name]} and {pair}"
                    )
    return mapping


def read_fgvc_aircraft(folder: Path) -> BenchmarkSplits:
    """FGVC-Aircraft 2013b at variant level; family and manufacturer as tags when their files exist."""
    data = folder / "data"
    files = ["variants.txt", "images", *(f"images_variant_{s}.txt" for s in ("train", "val", "test"))]
    require(data, "fgvc_aircraft", "official", files)
    classes = [text for _, text in _lines(data / "variants.txt")]
    known = set(classes)
    parents = aircraft_hierarchy(data)
    splits: dict[str, list[ImageEntry]] = {}
    for split in ("train", "val", "test"):
        path = data / f"images_variant_{split}.txt"
        entries = []
        for image_id, variant in _id_value_file(path).items():
            if variant not in known:
                raise ValueError(f"{path}: image {image_id} has variant {variant!r}, not in variants.txt")
            tags = {"dataset": "fgvc_aircraft"}
            if variant in parents:
                tags["family"], tags["manufacturer"] = parents[variant]
            entries.append(
                ImageEntry(
                    str(data / "images" / f"{image_id}.jpg"), variant, f"fgvc_aircraft-{image_id}", tags
                )
            )
        splits[split] = entries
    splits["trainval"] = splits["train"] + splits["val"]
    return BenchmarkSplits("fgvc_aircraft", folder, "official", classes, splits)


# ---------------------------------------------------------------------------- CoOp split files
def read_coop_split(
    name: str, folder: Path, split_file: Path, image_dir: Path, class_names: Sequence[str] | None = None
) -> BenchmarkSplits:
    """A CoOp ``split_zhou_*.json``: ``{"train"|"val"|"test": [[relative path, label, class name], ...]}``."""
    try:
        raw = json.loads(split_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{split_file}: not valid JSON ({err.msg})") from err
    if not isinstance(raw, dict) or "test" not in raw:
        raise ValueError(f"{split_file}: expected an object with 'train', 'val' and 'test' lists")
    names: dict[int, str] = {}
    splits: dict[str, list[ImageEntry]] = {}
    for split, rows in raw.items():
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
                    f"{name}-{stem}",
                    {"dataset": name, "class_id": str(label)},
                )
            )
        splits[split] = entries
    classes = [names[k] for k in sorted(names)]
    if class_names is not None:
        classes = list(class_names)
    return BenchmarkSplits(name, folder, "coop", classes, splits)


def _coop(name: str, folder: Path) -> BenchmarkSplits | None:
    file_name, image_sub = COOP_SPLIT_FILES[name]
    split_file = folder / file_name
    if not split_file.is_file():
        return None
    image_dir = folder if image_sub == "." else folder / image_sub
    require(folder, name, "coop", [file_name] + ([] if image_sub == "." else [image_sub]))
    return read_coop_split(name, folder, split_file, image_dir)


# ---------------------------------------------------------------------------- Flowers102
def _loadmat(path: Path) -> dict[str, Any]:
    try:
        from scipy.io import loadmat
    except ImportError as err:  # scipy is a dependency; this only fires on a broken install
        raise ImportError(f"reading {path} needs scipy (pip install scipy)") from err
    return loadmat(str(path), squeeze_me=True, struct_as_record=True)


def read_flowers102(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split (names inside) or the official .mat files with names from cat_to_name.json."""
    if layout in ("auto", "coop"):
        found = _coop("flowers102", folder)
        if found is not None:
            return found
        if layout == "coop":
            require(folder, "flowers102", "coop", [COOP_SPLIT_FILES["flowers102"][0], "jpg"])
    require(folder, "flowers102", "official", ["jpg", "imagelabels.mat", "setid.mat"])
    names = _flower_names(folder)
    labels = [int(v) for v in np.atleast_1d(_loadmat(folder / "imagelabels.mat")["labels"])]
    setid = _loadmat(folder / "setid.mat")
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
    return BenchmarkSplits("flowers102", folder, "official", [names[k] for k in sorted(names)], splits)


def _flower_names(folder: Path) -> dict[int, str]:
    """Official labels (1-based) -> readable names, from cat_to_name.json or a CoOp split file."""
    for where in (folder, folder.parent):
        path = where / "cat_to_name.json"
        if path.is_file():
            return {int(k): readable_label(v) for k, v in json.loads(path.read_text()).items()}
    coop = folder / COOP_SPLIT_FILES["flowers102"][0]
    if coop.is_file():
        raw = json.loads(coop.read_text())
        return {int(label) + 1: readable_label(name) for rows in raw.values() for _, label, name in rows}
    raise DatasetLayoutError(
        f"the official Flowers102 release at {folder} has no class names: put cat_to_name.json "
        f'({{"1": "pink primrose", ...}}) or split_zhou_OxfordFlowers.json in {folder} ({README_HINT})'
    )


# ---------------------------------------------------------------------------- Food-101
def read_food101(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split, or the official ``meta/`` lists (entries ``apple_pie/1005649``)."""
    if layout in ("auto", "coop"):
        found = _coop("food101", folder)
        if found is not None:
            return found
        if layout == "coop":
            require(folder, "food101", "coop", [COOP_SPLIT_FILES["food101"][0], "images"])
    require(folder, "food101", "official", ["meta/classes.txt", "meta/train.txt", "meta/test.txt", "images"])
    classes = [text for _, text in _lines(folder / "meta" / "classes.txt")]
    known = set(classes)
    splits = {}
    for split in ("train", "test"):
        path = folder / "meta" / f"{split}.txt"
        entries = []
        for number, text in _lines(path):
            cls, _, stem = text.partition("/")
            if not stem or cls not in known:
                raise _bad_line(path, number, "'<class from classes.txt>/<image id>'")
            entries.append(
                ImageEntry(
                    str(folder / "images" / f"{text}.jpg"),
                    readable_label(cls),
                    f"food101-{cls}-{stem}",
                    {"dataset": "food101"},
                )
            )
        splits[split] = entries
    return BenchmarkSplits("food101", folder, "official", [readable_label(c) for c in classes], splits)


# ---------------------------------------------------------------------------- Oxford-IIIT Pet
def read_oxford_pets(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split, or the official annotations (``Abyssinian_100 1 1 1``: name, class, species, breed)."""
    if layout in ("auto", "coop"):
        found = _coop("oxford_pets", folder)
        if found is not None:
            return _with_pet_species(found)
        if layout == "coop":
            require(folder, "oxford_pets", "coop", [COOP_SPLIT_FILES["oxford_pets"][0], "images"])
    require(folder, "oxford_pets", "official", ["annotations/trainval.txt", "annotations/test.txt", "images"])
    names: dict[int, str] = {}
    splits = {}
    for split, file in (("train", "trainval.txt"), ("test", "test.txt")):
        path = folder / "annotations" / file
        entries = []
        for number, text in _lines(path):
            parts = text.split()
            if len(parts) < 3 or "_" not in parts[0]:
                raise _bad_line(path, number, "'<Breed_name_N> <class id> <species 1 cat|2 dog> <breed id>'")
            image, class_id, species = parts[0], int(parts[1]), parts[2]
            label = readable_label(image.rsplit("_", 1)[0])
            names.setdefault(class_id, label)
            entries.append(
                ImageEntry(
                    str(folder / "images" / f"{image}.jpg"),
                    label,
                    f"oxford_pets-{image}",
                    {"dataset": "oxford_pets", "species": "cat" if species == "1" else "dog"},
                )
            )
        splits[split] = entries
    return BenchmarkSplits("oxford_pets", folder, "official", [names[k] for k in sorted(names)], splits)


def _with_pet_species(found: BenchmarkSplits) -> BenchmarkSplits:
    # Cat breeds are the capitalised file names in the official release; CoOp lowercases them,
    # so species comes from the breed list instead.
    for entries in found.splits.values():
        for k, e in enumerate(entries):
            species = "cat" if e.label.lower() in CAT_BREEDS else "dog"
            entries[k] = ImageEntry(e.path, e.label, e.sample_id, {**e.tags, "species": species})
    return found


CAT_BREEDS = frozenset(
    {
        "abyssinian",
        "bengal",
        "birman",
        "bombay",
        "british shorthair",
        "egyptian mau",
        "maine coon",
        "persian",
        "ragdoll",
        "russian blue",
        "siamese",
        "sphynx",
    }
)


# ---------------------------------------------------------------------------- Stanford Cars
def _mat_strings(values: Any) -> list[str]:
    return [str(v) for v in np.atleast_1d(values).tolist()]


def _mat_records(path: Path, key: str = "annotations") -> list[dict[str, Any]]:
    mat = _loadmat(path)
    if key not in mat:
        raise ValueError(f"{path}: expected a struct array {key!r}, found keys {sorted(mat)}")
    table = mat[key]
    rows = table.reshape(-1) if hasattr(table, "reshape") else table
    fields = rows.dtype.names or ()
    return [{f: row[f] for f in fields} for row in rows]


def read_stanford_cars(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split, devkit .mat files (official / torchvision), or the all-in-one cars_annos.mat."""
    if layout in ("auto", "coop"):
        found = _coop("stanford_cars", folder)
        if found is not None:
            return found
        if layout == "coop":
            require(folder, "stanford_cars", "coop", [COOP_SPLIT_FILES["stanford_cars"][0]])
    if layout in ("auto", "all_in_one") and (folder / "cars_annos.mat").is_file():
        require(folder, "stanford_cars", "all-in-one", ["cars_annos.mat", "car_ims"])
        mat = _loadmat(folder / "cars_annos.mat")
        names = [readable_label(n) for n in _mat_strings(mat["class_names"])]
        splits: dict[str, list[ImageEntry]] = {"train": [], "test": []}
        for row in _mat_records(folder / "cars_annos.mat"):
            rel = str(row["relative_im_path"])
            split = "test" if int(row["test"]) else "train"
            splits[split].append(_car_entry(folder / rel, names, int(row["class"]), Path(rel).stem))
        return BenchmarkSplits("stanford_cars", folder, "all-in-one", names, splits)
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
        "stanford_cars",
        "devkit",
        ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat", test_annos, "cars_train", "cars_test"],
    )
    names = [
        readable_label(n) for n in _mat_strings(_loadmat(folder / "devkit" / "cars_meta.mat")["class_names"])
    ]
    splits = {}
    for split, annos, images in (
        ("train", folder / "devkit" / "cars_train_annos.mat", "cars_train"),
        ("test", folder / test_annos, "cars_test"),
    ):
        entries = []
        for row in _mat_records(annos):
            if "class" not in row:
                raise ValueError(f"{annos}: annotations have no 'class' field (the unlabelled test file?)")
            fname = str(row["fname"])
            entries.append(
                _car_entry(folder / images / fname, names, int(row["class"]), f"{split}-{Path(fname).stem}")
            )
        splits[split] = entries
    return BenchmarkSplits("stanford_cars", folder, "devkit", names, splits)


def _car_entry(path: Path, names: Sequence[str], label: int, stem: str) -> ImageEntry:
    if not 1 <= label <= len(names):
        raise ValueError(f"Stanford Cars: class {label} of {path.name} is outside 1..{len(names)}")
    return ImageEntry(
        str(path),
        names[label - 1],
        f"stanford_cars-{stem}",
        {"dataset": "stanford_cars", "class_id": str(label)},
    )


# ---------------------------------------------------------------------------- generic readers
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def read_image_folder(folder: str | Path, name: str = "images", split: str | None = None) -> ImageFiles:
    """``[<split>/]<class name>/<image>``: one sub-folder per class; the folder name is the label."""
    base = Path(folder).expanduser()
    if split and (base / split).is_dir():
        base = base / split
    if not base.is_dir():
        raise DatasetLayoutError(f"no image folder at {base}: expected <class name>/<image> sub-folders")
    entries = []
    for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        label = readable_label(class_dir.name)
        for image in sorted(class_dir.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                entries.append(
                    ImageEntry(str(image), label, f"{name}-{class_dir.name}-{image.stem}", {"dataset": name})
                )
    if not entries:
        raise DatasetLayoutError(
            f"image folder {base} holds no images in class sub-folders (expected <class>/<image>.jpg, "
            f"suffixes {sorted(IMAGE_SUFFIXES)})"
        )
    return ImageFiles(entries, name=name)


def parquet_files(folder: Path, split: str) -> list[Path]:
    """``<split>-*.parquet`` (or ``<split>/*.parquet``) under ``folder`` or ``folder/data``."""
    found: list[Path] = []
    for where in (folder, folder / "data"):
        found += sorted(where.glob(f"{split}-*.parquet")) + sorted(where.glob(f"{split}.parquet"))
        found += sorted((where / split).glob("*.parquet")) if (where / split).is_dir() else []
    return found


def read_parquet(
    folder: str | Path,
    split: str,
    name: str,
    image_column: str = "image",
    label_column: str = "label",
    class_names: Sequence[str] | None = None,
) -> ParquetImages:
    """A split of a Hugging Face parquet export; integer labels are named from the file's metadata."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError("reading parquet needs pyarrow: pip install 'speciarl[parquet]'") from err
    base = Path(folder).expanduser()
    files = parquet_files(base, split)
    if not files:
        raise DatasetLayoutError(
            f"no parquet files for split {split!r} of {name} under {base}: expected {split}-*.parquet, "
            f"{split}.parquet or {split}/*.parquet, in {base} or {base / 'data'}"
        )
    table = pa.concat_tables([pq.read_table(str(f), memory_map=True) for f in files])
    for column in (image_column, label_column):
        if column not in table.column_names:
            raise ValueError(f"{files[0]}: no column {column!r}; columns are {table.column_names}")
    raw = table.column(label_column).to_pylist()
    if raw and isinstance(raw[0], int | bool):
        names = list(class_names) if class_names is not None else _hf_class_names(table.schema, label_column)
        if names is None:
            raise ValueError(
                f"{files[0]}: integer labels but no class names: pass class_names, or use a file "
                "whose 'huggingface' metadata describes the label as a ClassLabel"
            )
        labels = [readable_label(names[int(v)]) for v in raw]
    else:
        labels = [readable_label(str(v)) for v in raw]
    return ParquetImages(files, name, labels, table, image_column, f"{name}-{split}", {"dataset": name})


def _hf_class_names(schema: Any, label_column: str) -> list[str] | None:
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    try:
        features = json.loads(meta)["info"]["features"]
        return list(features[label_column]["names"])
    except (KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------- one entry point
MARKERS = {
    "cub200": ("images.txt", "classes.txt"),
    "fgvc_aircraft": ("data/variants.txt", "data/images_variant_test.txt"),
    "flowers102": (COOP_SPLIT_FILES["flowers102"][0], "imagelabels.mat", "setid.mat"),
    "food101": (COOP_SPLIT_FILES["food101"][0], "meta/classes.txt"),
    "oxford_pets": (COOP_SPLIT_FILES["oxford_pets"][0], "annotations/trainval.txt"),
    "stanford_cars": (COOP_SPLIT_FILES["stanford_cars"][0], "devkit/cars_meta.mat", "cars_annos.mat"),
}
_READERS: dict[str, Callable[..., BenchmarkSplits]] = {
    "cub200": lambda folder, layout: read_cub200(folder),
    "fgvc_aircraft": lambda folder, layout: read_fgvc_aircraft(folder),
    "flowers102": read_flowers102,
    "food101": read_food101,
    "oxford_pets": read_oxford_pets,
    "stanford_cars": read_stanford_cars,
}


def read_benchmark(name: str, root: str | Path | None = None, layout: str = "auto") -> BenchmarkSplits:
    """Every split of benchmark ``name`` found under ``root`` (or ``$SPECIARL_DATA_ROOT``)."""
    if name not in _READERS:
        raise ValueError(f"unknown benchmark {name!r}: expected one of {list(DATASETS)}")
    if layout not in ("auto", "official", "coop", "devkit", "all_in_one"):
        raise ValueError(f"unknown layout {layout!r}: expected auto, official, coop, devkit or all_in_one")
    folder = locate(name, root, MARKERS[name])
    splits = _READERS[name](folder, layout)
    log.info(
        "%s: %s layout at %s, %s",
        DISPLAY[name],
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
        folder = next((f for f in _candidates(name, base) if parquet_files(f, split)), None)
        if folder is None:
            looked = ", ".join(str(p) for p in _candidates(name, base))
            raise DatasetLayoutError(
                f"no parquet export of {DISPLAY.get(name, name)} split {split!r}: looked in {looked} "
                f"(and their data/ folders) for {split}-*.parquet, {split}.parquet or {split}/*.parquet"
            )
        data: LabelledImages = read_parquet(folder, split, name)
    else:
        data = read_benchmark(name, root, layout).dataset(split)
    return data.subset(subset_size, seed)
