"""Predictions written as they are made (JSONL), so an interrupted evaluation resumes where it stopped.

Each line is one evaluated item, keyed by its index in the evaluated split. A sidecar
``<name>.meta.json`` holds the fingerprint of the evaluation (model, checkpoint, decoding,
prompt, data); resuming with a different fingerprint is refused rather than mixing two runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class PredictionLog:
    """Append-only JSONL of evaluated items; ``done`` holds the indices already written."""

    def __init__(self, path: str | Path, fingerprint: Mapping[str, Any], resume: bool = True) -> None:
        self.path = Path(path)
        self.meta_path = self.path.with_suffix(".meta.json")
        self.fingerprint = json.loads(json.dumps(dict(fingerprint), default=str))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not resume and self.path.exists():
            self.path.unlink()
        if self.path.exists() and self.meta_path.exists():
            old = json.loads(self.meta_path.read_text())
            if old != self.fingerprint:
                changed = sorted(
                    k for k in set(old) | set(self.fingerprint) if old.get(k) != self.fingerprint.get(k)
                )
                raise ValueError(
                    f"{self.path} was written by a different evaluation (differs in {changed}): use "
                    "another output folder, or eval.resume=false to start over"
                )
        self.meta_path.write_text(json.dumps(self.fingerprint, indent=1))
        self._rows: list[dict[str, Any]] = self._read()
        self.done = {int(r["index"]) for r in self._rows}
        if self._rows:
            log.info("resuming %s: %d items already evaluated", self.path, len(self.done))

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows, good_bytes = [], 0
        with self.path.open("rb") as fh:
            for raw in fh:
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    break  # a line cut by an interruption: everything from here is rewritten
                if not raw.endswith(b"\n"):
                    break
                rows.append(row)
                good_bytes += len(raw)
        if good_bytes != self.path.stat().st_size:
            log.warning("%s: dropping a partly written last line", self.path)
            with self.path.open("r+b") as fh:
                fh.truncate(good_bytes)
        return rows

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = [dict(r) for r in rows]
        if not rows:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._rows.extend(rows)
        self.done.update(int(r["index"]) for r in rows)

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    @staticmethod
    def read_rows(path: str | Path) -> list[dict[str, Any]]:
        """The complete lines of a prediction log, read without opening it for writing."""
        rows = []
        with Path(path).open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return rows
