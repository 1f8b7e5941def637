"""The embedded default dataset: coloured shapes with a real three-level label hierarchy.

Taxonomy (48 leaves): ``shape`` -> family (``round``...) -> type (``circle``...) ->
colour + type (``crimson circle``). Answering the type is *less specific*, the family or ``shape``
*generic*. Colour words have synonyms (``red circle`` = ``crimson circle``), as do some types.

Every image is a deterministic function of (seed, index). A share of images is *ambiguous*:
the shape is repainted grey, so its type is visible but its colour, hence its leaf, is not;
there the honest answer is the type. Leaves that share a type differ only in colour, and
leaves that share a family differ in a shape detail, so guessing the leaf is risky.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from speciarl.core.samples import Sample
from speciarl.core.taxonomy import Taxonomy, TaxonomyNode

ROOT = "shape"
FAMILIES: dict[str, tuple[str, ...]] = {
    "round": ("circle", "ring", "oval"),
    "angular": ("triangle", "square", "diamond"),
    "linear": ("bar", "pillar", "slash"),
    "spiky": ("plus", "saltire", "star"),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "crimson": (220, 20, 60),
    "amber": (250, 190, 0),
    "azure": (30, 110, 240),
    "lime": (90, 210, 40),
}
COLOUR_SYNONYMS = {"crimson": "red", "amber": "yellow", "azure": "blue", "lime": "green"}
TYPE_SYNONYMS = {"circle": "disc", "pillar": "column", "saltire": "cross"}
FAMILY_SYNONYMS = {"round": "rounded"}
KIND_CLEAN = "clean"
KIND_AMBIGUOUS = "ambiguous"


def leaf_name(colour: str, shape_type: str) -> str:
    return f"{colour} {shape_type}"


def shapes_taxonomy(families: dict[str, tuple[str, ...]] | None = None) -> Taxonomy:
    """The four-level shapes taxonomy (root, family, type, colour leaf) with synonyms."""
    families = FAMILIES if families is None else families
    nodes = [TaxonomyNode(ROOT, None, ("object",), ancestor_kind="generic")]
    for family, types in families.items():
        nodes.append(TaxonomyNode(family, ROOT, _opt(FAMILY_SYNONYMS.get(family)), ancestor_kind="generic"))
        for shape_type in types:
            nodes.append(TaxonomyNode(shape_type, family, _opt(TYPE_SYNONYMS.get(shape_type))))
            for colour in COLOURS:
                synonyms = {
                    leaf_name(c, t)
                    for c in (colour, COLOUR_SYNONYMS[colour])
                    for t in (shape_type, TYPE_SYNONYMS.get(shape_type, shape_type))
                } - {leaf_name(colour, shape_type)}
                nodes.append(TaxonomyNode(leaf_name(colour, shape_type), shape_type, tuple(sorted(synonyms))))
    return Taxonomy.from_nodes(nodes)


def _opt(value: str | None) -> tuple[str, ...]:
    return () if value is None else (value,)


def type_family(shape_type: str) -> str:
    for family, types in FAMILIES.items():
        if shape_type in types:
            return family
    raise KeyError(f"unknown shape type {shape_type!r}; expected one of {list(_all_types())}")


def _all_types() -> list[str]:
    return [t for types in FAMILIES.values() for t in types]


def render_shape(
    shape_type: str, rgb: tuple[int, int, int], rng: np.random.Generator, size: int = 32
) -> Image.Image:
    """Draw one shape on white at a random scale and position, with colour jitter and noise."""
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    r = rng.uniform(0.30, 0.42) * size
    margin = r + 1
    cx = rng.uniform(margin, size - margin) if size - 2 * margin > 0 else size / 2
    cy = rng.uniform(margin, size - margin) if size - 2 * margin > 0 else size / 2
    jitter = rng.integers(-15, 16, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(rgb, jitter, strict=True))
    thick = max(2.0, 0.45 * r)
    if shape_type == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape_type == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(0.35 * r)))
    elif shape_type == "oval":
        draw.ellipse([cx - r, cy - 0.55 * r, cx + r, cy + 0.55 * r], fill=fill)
    elif shape_type == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + 0.8 * r), (cx + r, cy + 0.8 * r)], fill=fill)
    elif shape_type == "square":
        h = 0.75 * r
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif shape_type == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape_type == "bar":
        draw.rectangle([cx - r, cy - thick / 2, cx + r, cy + thick / 2], fill=fill)
    elif shape_type == "pillar":
        draw.rectangle([cx - thick / 2, cy - r, cx + thick / 2, cy + r], fill=fill)
    elif shape_type == "slash":
        draw.line([(cx - r, cy + r), (cx + r, cy - r)], fill=fill, width=int(thick))
    elif shape_type == "plus":
        draw.rectangle([cx - r, cy - thick / 2, cx + r, cy + thick / 2], fill=fill)
        draw.rectangle([cx - thick / 2, cy - r, cx + thick / 2, cy + r], fill=fill)
    elif shape_type == "saltire":
        w = int(0.8 * thick)
        draw.line([(cx - r, cy - r), (cx + r, cy + r)], fill=fill, width=w)
        draw.line([(cx - r, cy + r), (cx + r, cy - r)], fill=fill, width=w)
    elif shape_type == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else 0.42 * r
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape type {shape_type!r}; expected one of {_all_types()}")
    pixels = np.asarray(canvas, dtype=np.float32)
    pixels = pixels + rng.normal(0.0, 8.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


class SyntheticShapes(Dataset):
    """``size`` deterministic samples; sample i depends only on (seed, i).

    Args:
        size: number of samples.
        seed: the split's seed; use different seeds for train, validation and test.
        ambiguous_fraction: share of images whose colour is erased (leaf unknowable).
        image_size: side of the square image in pixels.
        types: restrict to these shape types (default: all 12).
    """

    def __init__(
        self,
        size: int,
        seed: int,
        ambiguous_fraction: float = 0.3,
        image_size: int = 32,
        types: Sequence[str] | None = None,
    ) -> None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        if not 0.0 <= ambiguous_fraction <= 1.0:
            raise ValueError(f"ambiguous_fraction must be in [0, 1], got {ambiguous_fraction}")
        self.size = size
        self.seed = seed
        self.ambiguous_fraction = ambiguous_fraction
        self.image_size = image_size
        self.types = list(types) if types is not None else _all_types()
        unknown = set(self.types) - set(_all_types())
        if unknown:
            raise ValueError(f"unknown shape types {sorted(unknown)}; expected {_all_types()}")
        self.colours = list(COLOURS)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} samples")
        rng = np.random.default_rng([self.seed, index])
        shape_type = self.types[int(rng.integers(len(self.types)))]
        colour = self.colours[int(rng.integers(len(self.colours)))]
        ambiguous = bool(rng.random() < self.ambiguous_fraction)
        rgb = COLOURS[colour]
        if ambiguous:
            grey = int(rng.integers(60, 171))
            rgb = (grey, grey, grey)
        image = render_shape(shape_type, rgb, rng, self.image_size)
        return Sample(
            image=image,
            label=leaf_name(colour, shape_type),
            sample_id=f"shapes-{self.seed}-{index}",
            tags={
                "kind": KIND_AMBIGUOUS if ambiguous else KIND_CLEAN,
                "family": type_family(shape_type),
                "type": shape_type,
                "colour": colour,
            },
        )
