"""Oxford-IIIT Pet: the CoOp split (``split_zhou_OxfordPets.json`` + ``images/``), or the official
annotations (``annotations/{trainval,test}.txt``, ``images/``); test 3,669 either way. Every
image is tagged with its species (cat or dog).
"""

from __future__ import annotations

from pathlib import Path

from speciarl.data.image_sets import ImageEntry, readable_label
from speciarl.data.readers.coop import try_coop
from speciarl.data.readers.layout import BenchmarkInfo, BenchmarkSplits, bad_line, require, text_lines

COOP_FILE = "split_zhou_OxfordPets.json"
INFO = BenchmarkInfo(
    name="oxford_pets",
    display="Oxford-IIIT Pet",
    folder_names=("oxford_pets", "oxford-iiit-pet", "oxford_iiit_pet", "pets"),
    markers=(COOP_FILE, "annotations/trainval.txt"),
    expected=(
        "  CoOp: oxford_pets/{split_zhou_OxfordPets.json, images/}\n"
        "  official: oxford-iiit-pet/{annotations/trainval.txt, annotations/test.txt, images/}"
    ),
    coop=(COOP_FILE, "images"),
)
CAT_BREEDS = frozenset(
    {
        "abyssinian",
        "bengal",
        "birman",
        "bombay",
        "british shorthair",
        "egyptian mau",
        "maine coon",
        "persian",
        "ragdoll",
        "russian blue",
        "siamese",
        "sphynx",
    }
)


def read_oxford_pets(folder: Path, layout: str = "auto") -> BenchmarkSplits:
    """CoOp split, or the official annotations (``Abyssinian_100 1 1 1``: name, class, species, breed)."""
    found = try_coop(INFO, folder, layout)
    if found is not None:
        return _with_pet_species(found)
    require(folder, INFO, "official", ["annotations/trainval.txt", "annotations/test.txt", "images"])
    names: dict[int, str] = {}
    splits = {}
    for split, file in (("train", "trainval.txt"), ("test", "test.txt")):
        path = folder / "annotations" / file
        entries = []
        for number, text in text_lines(path):
            parts = text.split()
            if len(parts) < 3 or "_" not in parts[0]:
                raise bad_line(path, number, "'<Breed_name_N> <class id> <species 1 cat|2 dog> <breed id>'")
            image, class_id, species = parts[0], int(parts[1]), parts[2]
            label = readable_label(image.rsplit("_", 1)[0])
            names.setdefault(class_id, label)
            entries.append(
                ImageEntry(
                    str(folder / "images" / f"{image}.jpg"),
                    label,
                    f"oxford_pets-{image}",
                    {"dataset": "oxford_pets", "species": "cat" if species == "1" else "dog"},
                )
            )
        splits[split] = entries
    classes = [names[k] for k in sorted(names)]
    return BenchmarkSplits("oxford_pets", folder, "official", classes, splits, INFO.display)


def _with_pet_species(found: BenchmarkSplits) -> BenchmarkSplits:
    # Cat breeds are the capitalised file names in the official release; CoOp lowercases them,
    # so species comes from the breed list instead.
    for entries in found.splits.values():
        for k, e in enumerate(entries):
            species = "cat" if e.label.lower() in CAT_BREEDS else "dog"
            entries[k] = ImageEntry(e.path, e.label, e.sample_id, {**e.tags, "species": species})
    return found
