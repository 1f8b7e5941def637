"""Datasets of labelled images on disk (or in parquet files), loaded lazily and robustly.

Readers of the benchmark layouts (``speciarl.data.readers``) produce ``ImageEntry`` lists;
these datasets turn them into ``Sample`` objects one at a time. An unreadable image yields
``None`` with a warning and is counted in ``skipped`` (the collate function and the
evaluation drop it and report the count); nothing is loaded before it is asked for.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from speciarl.core.samples import Sample
from speciarl.data.manifest import SkipCounter, load_image

log = logging.getLogger(__name__)
_LEADING_INDEX = re.compile(r"^\d+\.")
_SPACES = re.compile(r"\s+")


def readable_label(name: str) -> str:
    """A class folder name made readable: ``001.Black_footed_Albatross`` -> ``Black footed Albatross``."""
    text = _LEADING_INDEX.sub("", name.strip())
    label = _SPACES.sub(" ", text.replace("_", " ")).strip()
    if not label:
        # An empty label would merge every such class into one ground truth "".
        raise ValueError(
            f"class folder {name!r} leaves no label once its index and underscores are removed: "
            "expected a class name such as '001.Black_footed_Albatross' or 'golden-winged warbler'"
        )
    return label


@dataclass(frozen=True)
class ImageEntry:
    """One image of a split: where it is, its readable ground truth, an id and tags."""

    path: str
    label: str
    sample_id: str
    tags: Mapping[str, str] = field(default_factory=dict)


class LabelledImages(Dataset):
    """Base of the on-disk datasets: entries known up front, images loaded on access."""

    name: str
    skipped: SkipCounter

    def __len__(self) -> int:
        raise NotImplementedError

    def meta(self, index: int) -> tuple[str, str, dict[str, str]]:
        """(sample_id, label, tags) of item ``index`` without loading its image."""
        raise NotImplementedError

    def labels(self) -> list[str]:
        return [self.meta(i)[1] for i in range(len(self))]

    def subset(self, size: int | None, seed: int) -> LabelledImages:
        """``size`` items drawn without replacement with ``seed`` (all of them when None or larger)."""
        if size is None or size >= len(self):
            return self
        if size <= 0:
            raise ValueError(f"subset size must be positive, got {size}")
        order = np.random.default_rng(seed).permutation(len(self))[:size]
        return IndexedSubset(self, sorted(int(i) for i in order))


class ImageFiles(LabelledImages):
    """Images listed as files (every official layout, CoOp splits, image folders)."""

    def __init__(self, entries: Sequence[ImageEntry], name: str) -> None:
        if not entries:
            raise ValueError(f"{name}: the split lists no images")
        self.entries = list(entries)
        self.name = name
        self.skipped = SkipCounter()

    def __len__(self) -> int:
        return len(self.entries)

    def meta(self, index: int) -> tuple[str, str, dict[str, str]]:
        entry = self.entries[index]
        return entry.sample_id, entry.label, dict(entry.tags)

    def __getitem__(self, index: int) -> Sample | None:
        entry = self.entries[index]
        image = load_image(entry.path, self.skipped)
        if image is None:
            return None
        return Sample(image=image, label=entry.label, sample_id=entry.sample_id, tags=dict(entry.tags))


class ParquetImages(LabelledImages):
    """Rows of parquet files with an encoded image column (the Hugging Face export format).

    The table is memory-mapped: image bytes stay on disk until a row is read.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        name: str,
        labels: Sequence[str],
        table: Any,
        image_column: str,
        id_prefix: str,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.files = [str(f) for f in files]
        self.name = name
        self._labels = list(labels)
        self._table = table
        self._image_column = image_column
        self._id_prefix = id_prefix
        self._tags = dict(tags or {})
        self.skipped = SkipCounter()
        if not self._labels:
            raise ValueError(f"{name}: the parquet files {self.files} hold no rows")

    def __len__(self) -> int:
        return len(self._labels)

    def relabelled(self, labels: Sequence[str]) -> ParquetImages:
        """The same rows with these ground truths (one per row, in order)."""
        if len(labels) != len(self._labels):
            raise ValueError(f"{self.name}: {len(labels)} labels for {len(self._labels)} rows")
        return ParquetImages(
            self.files, self.name, labels, self._table, self._image_column, self._id_prefix, self._tags
        )

    def meta(self, index: int) -> tuple[str, str, dict[str, str]]:
        return f"{self._id_prefix}-{index}", self._labels[index], dict(self._tags)

    def __getitem__(self, index: int) -> Sample | None:
        sample_id, label, tags = self.meta(index)
        cell = self._table.column(self._image_column)[index].as_py()
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        where = f"{self.files[0] if len(self.files) == 1 else self.files}[row {index}]"
        if not isinstance(data, bytes | bytearray):
            self.skipped.add(where)
            log.warning("skipping %s: no image bytes in column %r", where, self._image_column)
            return None
        image = load_image(_NamedBytes(data, where), self.skipped)
        if image is None:
            return None
        return Sample(image=image, label=label, sample_id=sample_id, tags=tags)


class _NamedBytes(io.BytesIO):
    """Image bytes that print as their origin in warnings."""

    def __init__(self, data: bytes, where: str) -> None:
        super().__init__(data)
        self.where = where

    def __str__(self) -> str:
        return self.where

    __repr__ = __str__


class IndexedSubset(LabelledImages):
    """Some items of another labelled dataset, in the given order."""

    def __init__(self, base: LabelledImages, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(indices)
        self.name = base.name
        self.skipped = base.skipped

    def __len__(self) -> int:
        return len(self.indices)

    def meta(self, index: int) -> tuple[str, str, dict[str, str]]:
        return self.base.meta(self.indices[index])

    def __getitem__(self, index: int) -> Sample | None:
        return self.base[self.indices[index]]


class ConcatImages(LabelledImages):
    """Several labelled datasets one after another (the mixed training set, all six test sets)."""

    def __init__(self, parts: Iterable[LabelledImages], name: str = "mixed") -> None:
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("ConcatImages needs at least one dataset")
        self.name = name
        self._offsets = np.cumsum([0] + [len(p) for p in self.parts])

    @property
    def skipped(self) -> SkipCounter:  # type: ignore[override]
        total = SkipCounter()
        for part in self.parts:
            total.count += part.skipped.count
            total.paths.extend(part.skipped.paths[: max(0, 100 - len(total.paths))])
        return total

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[LabelledImages, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        part = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return self.parts[part], index - int(self._offsets[part])

    def meta(self, index: int) -> tuple[str, str, dict[str, str]]:
        part, local = self._locate(index)
        return part.meta(local)

    def __getitem__(self, index: int) -> Sample | None:
        part, local = self._locate(index)
        return part[local]
