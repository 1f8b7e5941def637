"""Each official layout, built on the fly with a few tiny images: classes, splits, ground truths, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from speciarl.data.benchmark_datamodules import benchmark_datamodule, mixed_datamodule
from speciarl.data.benchmarks import ROOT_ENV, DatasetLayoutError, read_benchmark
from speciarl.data.image_sets import readable_label
from speciarl.data.readers.image_folder import read_image_folder
from speciarl.data.readers.parquet import read_parquet


def jpg(path: Path, colour=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------ layouts
def make_cub(root: Path) -> Path:
    folder = root / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "166.Golden_winged_Warbler"]
    images, labels, split = [], [], []
    for i in range(1, 7):
        cls = (i - 1) % 3
        rel = f"{classes[cls]}/img_{i}.jpg"
        jpg(folder / "images" / rel)
        images.append(f"{i} {rel}")
        labels.append(f"{i} {cls + 1}")
        split.append(f"{i} {1 if i <= 4 else 0}")
    write(folder / "classes.txt", "\n".join(f"{k + 1} {c}" for k, c in enumerate(classes)) + "\n")
    write(folder / "images.txt", "\n".join(images) + "\n")
    write(folder / "image_class_labels.txt", "\n".join(labels) + "\n")
    write(folder / "train_test_split.txt", "\n".join(split) + "\n")
    return folder


def make_aircraft(root: Path) -> Path:
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = {
        "737-800": ("Boeing 737", "Boeing"),
        "Boeing 717": ("Boeing 717", "Boeing"),
        "F-16A/B": ("F-16", "Lockheed Martin"),
    }
    write(data / "variants.txt", "\n".join(variants) + "\n")
    write(data / "families.txt", "\n".join(sorted({f for f, _ in variants.values()})) + "\n")
    write(data / "manufacturers.txt", "Boeing\nLockheed Martin\n")
    image_id = 1000000
    for split, count in (("train", 3), ("val", 3), ("test", 6)):
        rows = {"variant": [], "family": [], "manufacturer": []}
        for k in range(count):
            name = list(variants)[k % 3]
            image_id += 1
            jpg(data / "images" / f"{image_id}.jpg")
            rows["variant"].append(f"{image_id} {name}")
            rows["family"].append(f"{image_id} {variants[name][0]}")
            rows["manufacturer"].append(f"{image_id} {variants[name][1]}")
        for level, lines in rows.items():
            write(data / f"images_{level}_{split}.txt", "\n".join(lines) + "\n")
    return data.parent


FLOWER_NAMES = {1: "pink primrose", 2: "hard-leaved pocket orchid", 3: "pink-yellow dahlia?"}


def make_flowers_official(root: Path, names: bool = True) -> Path:
    folder = root / "flowers-102"
    labels = [1, 2, 3, 1, 2, 3, 1, 2, 3]
    for i in range(1, 10):
        jpg(folder / "jpg" / f"image_{i:05d}.jpg")
    savemat(str(folder / "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    savemat(
        str(folder / "setid.mat"),
        {"trnid": np.array([[1, 2, 3]]), "valid": np.array([[4, 5, 6]]), "tstid": np.array([[7, 8, 9]])},
    )
    if names:
        write(folder / "cat_to_name.json", json.dumps({str(k): v for k, v in FLOWER_NAMES.items()}))
    return folder


def make_coop(root: Path, folder_name: str, split_file: str, image_sub: str, classes: list[str], ext=".jpg"):
    folder = root / folder_name
    image_dir = folder if image_sub == "." else folder / image_sub
    split = {}
    for s, count in (("train", 3), ("val", 3), ("test", 3)):
        rows = []
        for k in range(count):
            rel = f"{s}_{k}{ext}" if image_sub != "." else f"cars_{s}/{k:05d}{ext}"
            jpg(image_dir / rel)
            rows.append([rel, k % len(classes), classes[k % len(classes)]])
        split[s] = rows
    write(folder / split_file, json.dumps(split))
    return folder


def make_food_official(root: Path) -> Path:
    folder = root / "food-101"
    write(folder / "meta" / "classes.txt", "apple_pie\nbaby_back_ribs\n")
    write(folder / "meta" / "labels.txt", "Apple pie\nBaby back ribs\n")
    train, test = [], []
    for cls in ("apple_pie", "baby_back_ribs"):
        for k in range(3):
            jpg(folder / "images" / cls / f"{100 + k}.jpg")
            (train if k < 2 else test).append(f"{cls}/{100 + k}")
    write(folder / "meta" / "train.txt", "\n".join(train) + "\n")
    write(folder / "meta" / "test.txt", "\n".join(test) + "\n")
    return folder


def make_pets_official(root: Path) -> Path:
    folder = root / "oxford-iiit-pet"
    rows = {"trainval": [], "test": []}
    for k, (name, cid, species) in enumerate(
        [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Abyssinian", 1, 1), ("american_bulldog", 2, 2)]
    ):
        image = f"{name}_{k + 1}"
        jpg(folder / "images" / f"{image}.jpg")
        rows["trainval" if k < 2 else "test"].append(f"{image} {cid} {species} 1")
    write(folder / "annotations" / "trainval.txt", "\n".join(rows["trainval"]) + "\n")
    write(
        folder / "annotations" / "test.txt",
        "#Image CLASS-ID SPECIES BREED ID\n" + "\n".join(rows["test"]) + "\n",
    )
    return folder


CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "smart fortwo Convertible 2012"]


def _annos(fnames, classes):
    table = np.zeros((len(fnames),), dtype=[("bbox_x1", "O"), ("fname", "O"), ("class", "O")])
    table["bbox_x1"] = [1] * len(fnames)
    table["fname"] = fnames
    table["class"] = classes
    return table


def make_cars_devkit(root: Path, test_labels: bool = True) -> Path:
    folder = root / "stanford_cars"
    (folder / "devkit").mkdir(parents=True)
    savemat(str(folder / "devkit" / "cars_meta.mat"), {"class_names": np.array([CAR_NAMES], dtype=object)})
    for split, n in (("train", 4), ("test", 2)):
        names = [f"{k + 1:05d}.jpg" for k in range(n)]
        for name in names:
            jpg(folder / f"cars_{split}" / name)
        classes = [k % 3 + 1 for k in range(n)]
        target = folder / (
            "devkit/cars_train_annos.mat" if split == "train" else "cars_test_annos_withlabels.mat"
        )
        if split == "train" or test_labels:
            savemat(str(target), {"annotations": _annos(names, classes)})
    return folder


# ------------------------------------------------------------------ tests
def test_readable_labels():
    assert readable_label("001.Black_footed_Albatross") == "Black footed Albatross"
    assert readable_label("apple_pie") == "apple pie"
    assert readable_label("american_pit_bull_terrier") == "american pit bull terrier"
    assert readable_label("737-800") == "737-800"


def test_cub_official(tmp_path):
    make_cub(tmp_path)
    cub = read_benchmark("cub200", tmp_path)
    assert cub.layout == "official" and len(cub.classes) == 3
    assert cub.classes[0] == "Black footed Albatross" and cub.classes[2] == "Golden winged Warbler"
    assert [len(cub.splits["train"]), len(cub.splits["test"])] == [4, 2]
    test = cub.dataset("test")
    sample = test[0]
    # image 5 is class (5 - 1) % 3 + 1 = 2
    assert sample.label == "Laysan Albatross" and sample.sample_id == "cub200-5"
    assert sample.image.size == (8, 8) and sample.tags["dataset"] == "cub200"


def test_cub_missing_file_lists_what_is_expected(tmp_path):
    folder = make_cub(tmp_path)
    (folder / "train_test_split.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"missing \['train_test_split.txt'\]") as err:
        read_benchmark("cub200", tmp_path)
    assert str(folder) in str(err.value) and "image_class_labels.txt" in str(err.value)


def test_aircraft_variants_with_family_and_manufacturer(tmp_path):
    make_aircraft(tmp_path)
    air = read_benchmark("fgvc_aircraft", tmp_path)
    assert air.classes == ["737-800", "Boeing 717", "F-16A/B"]
    assert {k: len(v) for k, v in air.splits.items()} == {"train": 3, "val": 3, "test": 6, "trainval": 6}
    entry = air.splits["test"][2]
    assert entry.label == "F-16A/B"
    assert entry.tags["family"] == "F-16" and entry.tags["manufacturer"] == "Lockheed Martin"
    from speciarl.data.taxonomies import benchmark_taxonomy
    from speciarl.verifier.taxonomy_judge import TaxonomyJudge

    judge = TaxonomyJudge(benchmark_taxonomy("fgvc_aircraft", str(tmp_path)))
    assert [
        judge.judge_one("737-800", p).value for p in ("Boeing 737", "Boeing 737-800", "Boeing", "Boeing 717")
    ] == [
        "less specific",
        "specific",
        "generic",
        "wrong",
    ]


def test_aircraft_missing_split_file(tmp_path):
    folder = make_aircraft(tmp_path)
    (folder / "data" / "images_variant_test.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="images_variant_test.txt"):
        read_benchmark("fgvc_aircraft", tmp_path)


def test_flowers_official_mat_with_cat_to_name(tmp_path):
    make_flowers_official(tmp_path)
    flowers = read_benchmark("flowers102", tmp_path)
    assert flowers.layout == "official" and len(flowers.classes) == 3
    assert [len(flowers.splits[s]) for s in ("train", "val", "test")] == [3, 3, 3]
    # test ids 7, 8, 9 have labels 1, 2, 3
    assert [e.label for e in flowers.splits["test"]] == [
        "pink primrose",
        "hard-leaved pocket orchid",
        "pink-yellow dahlia?",
    ]
    assert flowers.splits["test"][0].path.endswith("jpg/image_00007.jpg")


def test_flowers_official_without_names_says_where_to_put_them(tmp_path):
    make_flowers_official(tmp_path, names=False)
    with pytest.raises(DatasetLayoutError, match="cat_to_name.json"):
        read_benchmark("flowers102", tmp_path)


def test_flowers_coop_split_preferred(tmp_path):
    make_coop(
        tmp_path, "oxford_flowers", "split_zhou_OxfordFlowers.json", "jpg", ["pink primrose", "moon orchid"]
    )
    flowers = read_benchmark("flowers102", tmp_path)
    assert flowers.layout == "coop" and flowers.classes == ["pink primrose", "moon orchid"]
    assert [e.label for e in flowers.splits["test"]] == ["pink primrose", "moon orchid", "pink primrose"]
    assert flowers.dataset("test")[1].image is not None


def test_food_official_and_coop(tmp_path):
    make_food_official(tmp_path)
    food = read_benchmark("food101", tmp_path)
    assert food.layout == "official" and food.classes == ["apple pie", "baby back ribs"]
    assert [len(food.splits["train"]), len(food.splits["test"])] == [4, 2]
    assert food.splits["test"][1].label == "baby back ribs"
    make_coop(tmp_path, "food-101", "split_zhou_Food101.json", "images", ["apple_pie", "baby_back_ribs"])
    coop = read_benchmark("food101", tmp_path)
    assert coop.layout == "coop" and coop.splits["test"][1].label == "baby back ribs"
    official = read_benchmark("food101", tmp_path, layout="official")
    assert official.layout == "official"


def test_food_missing_meta(tmp_path):
    folder = make_food_official(tmp_path)
    (folder / "meta" / "test.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"meta/test.txt"):
        read_benchmark("food101", tmp_path)


def test_pets_official_species_and_names(tmp_path):
    make_pets_official(tmp_path)
    pets = read_benchmark("oxford_pets", tmp_path)
    assert pets.classes == ["Abyssinian", "american bulldog"]
    assert [(e.label, e.tags["species"]) for e in pets.splits["test"]] == [
        ("Abyssinian", "cat"),
        ("american bulldog", "dog"),
    ]
    make_coop(
        tmp_path, "oxford_pets", "split_zhou_OxfordPets.json", "images", ["abyssinian", "american_bulldog"]
    )
    coop = read_benchmark("oxford_pets", tmp_path)
    # CoOp lowercases the cat breeds; the ground truth is the class as the official release spells it
    assert [(e.label, e.tags["species"]) for e in coop.splits["test"][:2]] == [
        ("Abyssinian", "cat"),
        ("american bulldog", "dog"),
    ]
    assert coop.classes == pets.classes


def test_cars_devkit_coop_and_all_in_one(tmp_path):
    make_cars_devkit(tmp_path)
    cars = read_benchmark("stanford_cars", tmp_path)
    assert cars.layout == "devkit" and cars.classes == CAR_NAMES
    assert [len(cars.splits["train"]), len(cars.splits["test"])] == [4, 2]
    # train image 4 has class 4 % 3 ... (k=3) -> 3 % 3 + 1 = 1
    assert cars.splits["train"][3].label == "AM General Hummer SUV 2000"
    assert cars.dataset("test")[1].label == "Acura RL Sedan 2012"

    root2 = tmp_path / "other"
    folder = root2 / "stanford_cars"
    (folder / "car_ims").mkdir(parents=True)
    for k in range(3):
        jpg(folder / "car_ims" / f"{k + 1:06d}.jpg")
    annos = np.zeros((3,), dtype=[("relative_im_path", "O"), ("class", "O"), ("test", "O")])
    annos["relative_im_path"] = [f"car_ims/{k + 1:06d}.jpg" for k in range(3)]
    annos["class"] = [3, 2, 1]
    annos["test"] = [0, 1, 1]
    savemat(
        str(folder / "cars_annos.mat"),
        {"annotations": annos, "class_names": np.array([CAR_NAMES], dtype=object)},
    )
    allin = read_benchmark("stanford_cars", root2)
    assert allin.layout == "all-in-one"
    assert [e.label for e in allin.splits["test"]] == ["Acura RL Sedan 2012", "AM General Hummer SUV 2000"]

    root3 = tmp_path / "coop"
    make_coop(root3, "stanford_cars", "split_zhou_StanfordCars.json", ".", CAR_NAMES)
    coop = read_benchmark("stanford_cars", root3)
    assert coop.layout == "coop" and coop.dataset("test")[2].label == "smart fortwo Convertible 2012"

    # the same classes year first and in another case, as a class list may spell them
    root4 = tmp_path / "coop_year_first"
    year_first = ["2000 AM General Hummer SUV", "2012 acura rl sedan", "2012 Smart Fortwo Convertible"]
    make_coop(root4, "stanford_cars", "split_zhou_StanfordCars.json", ".", year_first)
    other = read_benchmark("stanford_cars", root4)
    assert [e.label for e in other.splits["test"]] == [e.label for e in coop.splits["test"]]
    assert other.classes == coop.classes == CAR_NAMES


def test_a_class_the_taxonomy_does_not_know_is_kept_as_read(caplog):
    from speciarl.data.benchmarks import canonical_labels

    labels = ["Abyssinian", "abyssinian", "ABYSSINIAN", "Saint_Bernard", "dodo"]
    with caplog.at_level("WARNING"):
        out = canonical_labels("oxford_pets", [readable_label(x) for x in labels])
    assert out == ["Abyssinian", "Abyssinian", "Abyssinian", "saint bernard", "dodo"]
    assert "1 class names are not in its taxonomy" in caplog.text and "dodo" in caplog.text


def test_cars_devkit_without_test_labels(tmp_path):
    make_cars_devkit(tmp_path, test_labels=False)
    with pytest.raises(DatasetLayoutError, match="cars_test_annos_withlabels.mat"):
        read_benchmark("stanford_cars", tmp_path)


def test_root_from_env_and_clear_errors(tmp_path, monkeypatch):
    make_cub(tmp_path)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert read_benchmark("cub200").folder == tmp_path / "CUB_200_2011"
    monkeypatch.delenv(ROOT_ENV)
    with pytest.raises(DatasetLayoutError, match=ROOT_ENV):
        read_benchmark("cub200")
    with pytest.raises(DatasetLayoutError, match=r"no Food-101 found: looked in .*food-101") as err:
        read_benchmark("food101", tmp_path)
    assert "meta/classes.txt" in str(err.value) and "nothing is downloaded" in str(err.value)


def test_image_folder_and_parquet(tmp_path):
    for split in ("train", "test"):
        jpg(tmp_path / "imgs" / split / "golden_winged_warbler" / "a.jpg")
        jpg(tmp_path / "imgs" / split / "bird" / "b.png")
    data = read_image_folder(tmp_path / "imgs", name="mine", split="test")
    assert sorted(data.labels()) == ["bird", "golden winged warbler"]

    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    def png(colour):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
        return buf.getvalue()

    table = pa.table(
        {
            "image": [{"bytes": png((255, 0, 0)), "path": None}, {"bytes": b"not an image", "path": None}],
            "label": [1, 0],
        }
    )
    meta = {
        "info": {
            "features": {
                "image": {"_type": "Image"},
                "label": {"names": ["apple_pie", "baby_back_ribs"], "_type": "ClassLabel"},
            }
        }
    }
    table = table.replace_schema_metadata({b"huggingface": json.dumps(meta).encode()})
    (tmp_path / "food" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "food" / "data" / "test-00000-of-00001.parquet")
    parquet = read_parquet(tmp_path / "food", "test", "food101")
    assert parquet.labels() == ["baby back ribs", "apple pie"]
    assert parquet[0].image.size == (8, 8)
    assert parquet[1] is None and parquet.skipped.count == 1
    with pytest.raises(DatasetLayoutError, match="train-\\*.parquet"):
        read_parquet(tmp_path / "food", "train", "food101")


def test_datamodules_subsets_are_seeded(tmp_path):
    make_cub(tmp_path)
    a = benchmark_datamodule("cub200", str(tmp_path), subset_size=3, seed=42, val_size=1)
    b = benchmark_datamodule("cub200", str(tmp_path), subset_size=3, seed=42, val_size=1)
    assert len(a.train_set) == 3 and len(a.test_set) == 2 and len(a.val_set) == 1
    assert a.train_set.labels() == b.train_set.labels()
    assert [a.train_set.meta(i)[0] for i in range(3)] == [b.train_set.meta(i)[0] for i in range(3)]

    make_food_official(tmp_path)
    mixed = mixed_datamodule(["cub200", "food101"], str(tmp_path), per_dataset=2, val_per_dataset=1)
    assert len(mixed.train_set) == 4 and len(mixed.test_set) == 2 + 2
    assert {mixed.test_set.meta(i)[2]["dataset"] for i in range(4)} == {"cub200", "food101"}


def test_data_config_composes(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from speciarl.train import CONF_DIR

    make_cub(tmp_path)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train", overrides=["data=cub200", "data.subset_size=3", "data.seed=42", f"data.root={tmp_path}"]
        )
    dm = instantiate(cfg.data)
    assert len(dm.train_set) == 3
    judge = instantiate(cfg.verifier)
    assert judge.judge_one("Golden winged Warbler", "warbler").value == "less specific"
