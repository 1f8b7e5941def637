"""CUB-200-2011, official layout: ``images.txt``, ``classes.txt``, ``image_class_labels.txt``,
``train_test_split.txt``, ``images/``. Splits ``train`` (5,994) and ``test`` (5,794).
"""

from __future__ import annotations

from pathlib import Path

from speciarl.data.image_sets import ImageEntry, readable_label
from speciarl.data.readers.layout import BenchmarkInfo, BenchmarkSplits, id_value_table, require

INFO = BenchmarkInfo(
    name="cub200",
    display="CUB-200-2011",
    folder_names=("CUB_200_2011", "CUB-200-2011", "cub200", "cub_200_2011", "CUB_200_2011/CUB_200_2011"),
    markers=("images.txt", "classes.txt"),
    expected="  CUB_200_2011/{images.txt, classes.txt, image_class_labels.txt, train_test_split.txt, images/}",
)


def read_cub200(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CUB-200-2011 official layout (the only one); split flag 1 = train, 0 = test."""
    files = ["images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt", "images"]
    require(folder, INFO, "official", files)
    classes_raw = id_value_table(folder / "classes.txt", "'<class id> <class folder>'")
    images = id_value_table(folder / "images.txt", "'<image id> <relative path>'")
    labels = id_value_table(folder / "image_class_labels.txt", "'<image id> <class id>'")
    flags = id_value_table(folder / "train_test_split.txt", "'<image id> <1 train | 0 test>'")
    class_ids = sorted(classes_raw, key=int)
    names = {cid: readable_label(classes_raw[cid]) for cid in class_ids}
    splits: dict[str, list[ImageEntry]] = {"train": [], "test": []}
    for image_id, rel in sorted(images.items(), key=lambda kv: int(kv[0])):
        if image_id not in labels or image_id not in flags:
            raise ValueError(
                f"{folder}: image {image_id} ({rel}) is missing from image_class_labels.txt or "
                "train_test_split.txt"
            )
        cid = labels[image_id]
        if cid not in names:
            raise ValueError(f"{folder}/image_class_labels.txt: image {image_id} has unknown class {cid}")
        split = "train" if flags[image_id].strip() == "1" else "test"
        splits[split].append(
            ImageEntry(
                str(folder / "images" / rel),
                names[cid],
                f"cub200-{image_id}",
                {"dataset": "cub200", "class_id": cid},
            )
        )
    return BenchmarkSplits("cub200", folder, "official", [names[c] for c in class_ids], splits, INFO.display)
