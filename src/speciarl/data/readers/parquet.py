"""A Hugging Face parquet export of any benchmark: ``<split>-*.parquet`` files, under ``data/`` or
not, with an encoded image column and a label column (a string, or an integer named by the file's
``ClassLabel`` metadata).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speciarl.data.image_sets import ParquetImages, readable_label
from speciarl.data.readers.layout import DatasetLayoutError


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
