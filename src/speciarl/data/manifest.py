"""Images on disk: a robust image loader and a JSONL manifest dataset.

A manifest line is ``{"image": "relative/or/absolute.jpg", "label": "golden-winged warbler"}``
with optional ``"id"`` and ``"tags"``. Relative paths are relative to the manifest's folder.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from speciarl.core.samples import Sample
from speciarl.data.jsonl_lines import decode_line, jsonl_lines

log = logging.getLogger(__name__)

# Larger images are shrunk on load (the processor's max_pixels bounds what the model sees anyway).
MAX_LOAD_SIDE = 2048
# Qwen2.5-VL's image processor refuses images whose long side is more than 200 times the short one.
# Such a sliver (a 1x1000 strip) carries no picture to classify: it is skipped and counted like an
# unreadable file rather than padded into a mostly blank canvas the model would be scored on.
MAX_ASPECT_RATIO = 200


class SkipCounter:
    """Thread-safe count of images that could not be read, with their paths (first 100)."""

    def __init__(self) -> None:
        self.count = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def add(self, path: str) -> None:
        with self._lock:
            self.count += 1
            if len(self.paths) < 100:
                self.paths.append(path)


def load_image(path: str | Path, skipped: SkipCounter | None = None) -> Image.Image | None:
    """An RGB image, or None (with a warning, counted) when the file is missing or unreadable."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (MAX_LOAD_SIDE, MAX_LOAD_SIDE))
            img.load()
            if max(img.size) > MAX_LOAD_SIDE:
                img.thumbnail((MAX_LOAD_SIDE, MAX_LOAD_SIDE))
            if max(img.size) > MAX_ASPECT_RATIO * min(img.size):
                raise ValueError(
                    f"aspect ratio {img.size[0]}x{img.size[1]} is beyond {MAX_ASPECT_RATIO}:1, "
                    "which the vision processor cannot take"
                )
            if img.mode in ("P", "PA", "RGBA", "LA"):
                img = img.convert("RGBA")
                canvas = Image.new("RGB", img.size, (255, 255, 255))
                canvas.paste(img, mask=img.getchannel("A"))
                return canvas
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        log.warning("skipping unreadable image %s: %s", path, err)
        if skipped is not None:
            skipped.add(str(path))
        return None


class ManifestDataset(Dataset):
    """Samples listed in a JSONL manifest; an unreadable image yields None (skipped and counted)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no manifest at {self.path}: expected a JSONL file with one "
                '{"image": ..., "label": ...} object per line (set data.train.path / data.val.path)'
            )
        self.rows: list[dict] = []
        for number, raw in jsonl_lines(self.path):
            line = decode_line(self.path, number, raw)
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{self.path}:{number}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict) or "image" not in row or "label" not in row:
                raise ValueError(f'{self.path}:{number}: expected an object with "image" and "label" keys')
            label = row["label"]
            if not isinstance(label, str) or not label.strip():
                # null or 5 would otherwise become the ground truths "None" and "5".
                raise ValueError(
                    f"{self.path}:{number}: label {json.dumps(label)} is not a class name: expected a "
                    'non-empty string such as "golden-winged warbler"'
                )
            _check_tags(self.path, number, row.get("tags", {}))
            self.rows.append(row)
        if not self.rows:
            raise ValueError(f"manifest {self.path} lists no samples")
        self.skipped = SkipCounter()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Sample | None:
        row = self.rows[index]
        image_path = Path(row["image"])
        if not image_path.is_absolute():
            image_path = self.path.parent / image_path
        image = load_image(image_path, self.skipped)
        if image is None:
            return None
        return Sample(
            image=image,
            label=str(row["label"]),
            sample_id=str(row.get("id", f"{self.path.stem}-{index}")),
            tags={str(k): str(v) for k, v in row.get("tags", {}).items()},
        )


def _check_tags(path: Path, number: int, tags: object) -> None:
    """Tags are an object of scalar values (``{"kind": "clean"}``); checked when the manifest is read,
    not when a training step first touches the sample."""
    scalar = (str, int, float, bool)
    if not isinstance(tags, dict) or not all(isinstance(v, scalar) for v in tags.values()):
        raise ValueError(
            f"{path}:{number}: tags {json.dumps(tags)[:80]} must be an object of strings, "
            'e.g. "tags": {"kind": "clean"} (or no tags key)'
        )
