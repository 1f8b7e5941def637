"""Any labelled image folder: ``[<split>/]<class name>/<image>``, the class folder's name made readable."""

from __future__ import annotations

from pathlib import Path

from speciarl.data.image_sets import ImageEntry, ImageFiles, readable_label
from speciarl.data.readers.layout import DatasetLayoutError

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
        try:
            label = readable_label(class_dir.name)
        except ValueError as err:
            raise DatasetLayoutError(f"{class_dir}: {err}") from None
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
