"""FGVC-Aircraft 2013b, official layout (also torchvision's): ``data/variants.txt``,
``data/images_variant_{train,val,test}.txt``, ``data/images/``. The family and manufacturer files
(``data/images_{family,manufacturer}_*.txt``) become tags and the taxonomy. Splits ``train``,
``val``, ``trainval``, ``test`` (3,333) at variant level.
"""

from __future__ import annotations

from pathlib import Path

from speciarl.data.image_sets import ImageEntry
from speciarl.data.readers.layout import BenchmarkInfo, BenchmarkSplits, id_value_table, require, text_lines

INFO = BenchmarkInfo(
    name="fgvc_aircraft",
    display="FGVC-Aircraft 2013b",
    folder_names=(
        "fgvc-aircraft-2013b",
        "fgvc_aircraft",
        "FGVC-Aircraft",
        "fgvc-aircraft-2013b/fgvc-aircraft-2013b",
    ),
    markers=("data/variants.txt", "data/images_variant_test.txt"),
    expected=(
        "  fgvc-aircraft-2013b/data/{variants.txt, images_variant_train.txt, images_variant_val.txt, "
        "images_variant_test.txt, images/} (+ families.txt, manufacturers.txt, images_family_*.txt, "
        "images_manufacturer_*.txt for the hierarchy)"
    ),
    train_split="trainval",
)


def aircraft_hierarchy(data_dir: Path) -> dict[str, tuple[str, str]]:
    """variant -> (family, manufacturer) from the dataset's own per-image files (empty if absent)."""
    mapping: dict[str, tuple[str, str]] = {}
    for split in ("train", "val", "test"):
        files = [data_dir / f"images_{level}_{split}.txt" for level in ("variant", "family", "manufacturer")]
        if not all(f.is_file() for f in files):
            continue
        variant, family, maker = (id_value_table(f) for f in files)
        for image_id, name in variant.items():
            if image_id in family and image_id in maker:
                pair = (family[image_id], maker[image_id])
                if mapping.setdefault(name, pair) != pair:
                    raise ValueError(
                        f"{data_dir}: variant {name!r} has two parents, {mapping[name]} and {pair}"
                    )
    return mapping


def read_fgvc_aircraft(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """FGVC-Aircraft 2013b at variant level; family and manufacturer as tags when their files exist."""
    data = folder / "data"
    files = ["variants.txt", "images", *(f"images_variant_{s}.txt" for s in ("train", "val", "test"))]
    require(data, INFO, "official", files)
    classes = [text for _, text in text_lines(data / "variants.txt")]
    known = set(classes)
    parents = aircraft_hierarchy(data)
    splits: dict[str, list[ImageEntry]] = {}
    for split in ("train", "val", "test"):
        path = data / f"images_variant_{split}.txt"
        entries = []
        for image_id, variant in id_value_table(path).items():
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
    return BenchmarkSplits("fgvc_aircraft", folder, "official", classes, splits, INFO.display)
