"""What every benchmark reader shares: locating a dataset's folder, checking a layout, reading lists.

A benchmark describes itself with a ``BenchmarkInfo`` (display name, usual folder names, marker
files, the expected layouts for error messages); its folder is ``root/<one of its usual folder
names>`` or ``root`` itself, and ``root`` defaults to the environment variable
``SPECIARL_DATA_ROOT``. Nothing is ever downloaded: a missing or incomplete folder is a
``DatasetLayoutError`` that lists what was expected and where.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speciarl.data.image_sets import ImageEntry, ImageFiles

ROOT_ENV = "SPECIARL_DATA_ROOT"
README_HINT = "see docs/datasets.md#the-six-benchmarks"


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder is missing or incomplete; the message lists what was expected and where."""


@dataclass(frozen=True)
class BenchmarkInfo:
    """One benchmark's identity and on-disk conventions.

    ``markers``: files whose presence marks the dataset's folder; ``expected``: the layouts, as
    shown in error messages; ``coop``: (split file, image folder) of its CoOp split, if it has one.
    """

    name: str
    display: str
    folder_names: tuple[str, ...]
    markers: tuple[str, ...]
    expected: str
    train_split: str = "train"
    coop: tuple[str, str] | None = None


@dataclass
class BenchmarkSplits:
    """Every split of one dataset as entry lists, with the class names and the layout read."""

    name: str
    folder: Path
    layout: str
    classes: list[str]
    splits: dict[str, list[ImageEntry]]
    display: str | None = None

    def dataset(self, split: str) -> ImageFiles:
        if split not in self.splits:
            raise KeyError(
                f"{self.display or self.name} ({self.layout} layout at {self.folder}) has no "
                f"split {split!r}: expected one of {sorted(self.splits)}"
            )
        return ImageFiles(self.splits[split], name=self.name)


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


def candidate_folders(root: Path, folder_names: Sequence[str]) -> list[Path]:
    """Where a dataset may be: ``root`` itself, then each usual folder name under it."""
    return [root] + [root / sub for sub in folder_names]


def locate(info: BenchmarkInfo, root: str | Path | None) -> Path:
    """The folder of the benchmark under ``root`` (or ``root`` itself) holding any of its markers."""
    base = data_root(root)
    for folder in candidate_folders(base, info.folder_names):
        if any((folder / m).exists() for m in info.markers):
            return folder
    looked = ", ".join(str(p) for p in candidate_folders(base, info.folder_names))
    raise DatasetLayoutError(
        f"no {info.display} found: looked in {looked} for any of {list(info.markers)}. "
        f"Expected layouts:\n{info.expected}\n({README_HINT}; nothing is downloaded)"
    )


def require(folder: Path, info: BenchmarkInfo, layout: str, paths: Iterable[str]) -> None:
    """Raise listing every expected file or folder of ``layout`` missing under ``folder``."""
    missing = [p for p in paths if not (folder / p).exists()]
    if missing:
        raise DatasetLayoutError(
            f"incomplete {info.display} folder {folder} ({layout} layout): missing "
            f"{missing}. Expected:\n{info.expected}\n({README_HINT})"
        )


# ---------------------------------------------------------------------------- list files
def text_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines with their 1-based numbers."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#"):
            out.append((number, text))
    return out


def bad_line(path: Path, number: int, expected: str) -> ValueError:
    return ValueError(f"{path}:{number}: expected {expected}")


def id_value_table(path: Path, expected: str = "'<image id> <name>'") -> dict[str, str]:
    """Lines ``<id> <value with spaces>`` as {id: value}."""
    out = {}
    for number, text in text_lines(path):
        parts = text.split(maxsplit=1)
        if len(parts) != 2:
            raise bad_line(path, number, expected)
        out[parts[0]] = parts[1].strip()
    return out


# ---------------------------------------------------------------------------- MATLAB files
def load_mat(path: Path) -> dict[str, Any]:
    try:
        from scipy.io import loadmat
    except ImportError as err:  # scipy is a dependency; this only fires on a broken install
        raise ImportError(f"reading {path} needs scipy (pip install scipy)") from err
    return loadmat(str(path), squeeze_me=True, struct_as_record=True)


def mat_strings(values: Any) -> list[str]:
    return [str(v) for v in np.atleast_1d(values).tolist()]


def mat_records(path: Path, key: str = "annotations") -> list[dict[str, Any]]:
    """The rows of a MATLAB struct array as dicts."""
    mat = load_mat(path)
    if key not in mat:
        raise ValueError(f"{path}: expected a struct array {key!r}, found keys {sorted(mat)}")
    table = mat[key]
    rows = table.reshape(-1) if hasattr(table, "reshape") else table
    fields = rows.dtype.names or ()
    return [{f: row[f] for f in fields} for row in rows]
