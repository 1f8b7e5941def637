"""Read an offline W&B run back from its folder: the records of its ``.wandb`` file.

The ``.wandb`` file is a LevelDB-style log (wandb's transaction log): a 7-byte header
(``:W&B``, key, version), then 32 KiB blocks of chunks, each with a 7-byte header (crc32,
length, type: 1 full, 2 first, 3 middle, 4 last); a chunk never straddles a block and the tail
of a block too short for a header is padding. Each assembled payload is one
``wandb_internal_pb2.Record``, decoded with wandb's own protobuf classes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7


def records(path: str | Path) -> Iterator[Any]:
    """Every Record of the run's ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, parts = HEADER, []
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:  # padding
            pos += room
            continue
        parts.append(data[pos + HEADER : pos + HEADER + length])
        pos += HEADER + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def history_and_summary(run_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(history rows, final summary) of the offline run in ``run_dir``, values JSON-decoded."""
    (path,) = Path(run_dir).glob("*.wandb")
    history, summary = [], {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return history, summary


def config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config as recorded (the last value of each key)."""
    (path,) = Path(run_dir).glob("*.wandb")
    out: dict[str, Any] = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def run_record(run_dir: str | Path) -> Any:
    """The run's ``RunRecord`` (name, group, tags...)."""
    (path,) = Path(run_dir).glob("*.wandb")
    found = None
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            found = record.run
    return found
