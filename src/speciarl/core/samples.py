"""The unit of data every part of the framework passes around."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass
class Sample:
    """One image with its ground-truth label and free-form tags (kind, domain, split...)."""

    image: Image.Image
    label: str
    sample_id: str
    tags: dict[str, str] = field(default_factory=dict)
