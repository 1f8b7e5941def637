"""The shipped taxonomies: complete class lists, the paper's ancestor kinds, in sync with the generator."""

import subprocess
import sys
from pathlib import Path

import pytest

from speciarl.data.taxonomies import load_taxonomy, split_car_name
from speciarl.verifier.taxonomy_judge import TaxonomyJudge

ROOT = Path(__file__).resolve().parents[2]
# Classes per benchmark: CUB 200, FGVC-Aircraft 100 variants, Cars 196, Flowers 102, Food 101, Pets 37.
CLASS_COUNTS = {
    "cub200": 200,
    "fgvc_aircraft": 100,
    "stanford_cars": 196,
    "flowers102": 102,
    "food101": 101,
    "oxford_pets": 37,
}


def test_every_class_is_in_its_taxonomy():
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_taxonomies as spec

    pets = spec.facts("oxford_pets")
    classes = {
        "cub200": list(spec.facts("cub200")["classes"]),
        "fgvc_aircraft": [v for f in spec.facts("fgvc_aircraft")["families"].values() for v in f["variants"]],
        "stanford_cars": spec.facts("stanford_cars")["classes"],
        "flowers102": spec.facts("flowers102")["classes"],
        "food101": spec.facts("food101")["classes"],
        "oxford_pets": pets["cats"] + pets["dogs"],
    }
    from speciarl.data.image_sets import readable_label

    for name, names in classes.items():
        taxonomy = load_taxonomy(name)
        assert len(names) == CLASS_COUNTS[name]
        missing = [n for n in names if taxonomy.resolve(readable_label(n)) is None]
        assert not missing, (name, missing[:5])


@pytest.mark.parametrize(
    ("dataset", "truth", "answer", "category"),
    [
        ("cub200", "166.Golden_winged_Warbler", "warbler", "less specific"),
        ("cub200", "166.Golden_winged_Warbler", "Golden-winged Warbler", "specific"),
        ("cub200", "166.Golden_winged_Warbler", "Parulidae", "less specific"),
        ("cub200", "166.Golden_winged_Warbler", "passerine", "generic"),
        ("cub200", "166.Golden_winged_Warbler", "bird", "generic"),
        ("cub200", "059.California_Gull", "gull", "less specific"),
        ("cub200", "009.Brewer_Blackbird", "Brewer's Blackbird", "specific"),
        ("cub200", "118.House_Sparrow", "sparrow", "less specific"),
        ("cub200", "110.Geococcyx", "Greater Roadrunner", "more specific"),
        ("cub200", "059.California_Gull", "Herring Gull", "wrong"),
        ("oxford_pets", "samoyed", "dog", "generic"),
        ("oxford_pets", "Abyssinian", "cat", "generic"),
        ("oxford_pets", "yorkshire terrier", "terrier", "less specific"),
        ("oxford_pets", "samoyed", "cat", "wrong"),
        ("fgvc_aircraft", "737-800", "Boeing 737", "less specific"),
        ("fgvc_aircraft", "737-800", "Boeing", "generic"),
        ("fgvc_aircraft", "A319", "A320 family", "less specific"),
        ("fgvc_aircraft", "A319", "A320", "wrong"),
        ("fgvc_aircraft", "Spitfire", "Supermarine Spitfire", "specific"),
        ("stanford_cars", "Acura RL Sedan 2012", "Acura RL Sedan", "less specific"),
        ("stanford_cars", "Acura RL Sedan 2012", "Acura", "generic"),
        ("stanford_cars", "Acura RL Sedan 2012", "2012 Acura RL Sedan", "specific"),
        ("stanford_cars", "Audi S4 Sedan 2012", "Audi S4 Sedan 2007", "wrong"),
        ("flowers102", "tiger lily", "flower", "generic"),
        ("flowers102", "bearded iris", "iris", "less specific"),
        ("food101", "apple_pie", "food", "generic"),
        ("food101", "chocolate_cake", "cake", "less specific"),
        ("food101", "dumplings", "gyoza", "more specific"),
        # coarse words a model says for these classes (dish families, flower groups, breed
        # groups, car model lines)
        ("food101", "tiramisu", "dessert", "generic"),
        ("food101", "chocolate_cake", "dessert", "generic"),
        ("food101", "cannoli", "pastry", "less specific"),
        ("food101", "apple_pie", "pie", "less specific"),
        ("food101", "ramen", "noodle soup", "less specific"),
        ("food101", "ramen", "soup", "less specific"),
        ("food101", "fried_rice", "rice", "less specific"),
        ("food101", "oysters", "seafood", "generic"),
        ("food101", "filet_mignon", "meat", "generic"),
        ("food101", "omelette", "eggs", "less specific"),
        ("food101", "pad_thai", "noodles", "less specific"),
        ("food101", "tiramisu", "seafood", "wrong"),
        ("flowers102", "water lily", "lily", "less specific"),
        ("flowers102", "english marigold", "marigold", "less specific"),
        ("flowers102", "marigold", "english marigold", "more specific"),
        ("flowers102", "osteospermum", "daisy", "less specific"),
        ("flowers102", "black-eyed susan", "coneflower", "less specific"),
        ("flowers102", "rose", "lily", "wrong"),
        ("oxford_pets", "english cocker spaniel", "spaniel", "less specific"),
        ("oxford_pets", "beagle", "hound", "less specific"),
        ("oxford_pets", "samoyed", "spitz", "less specific"),
        ("oxford_pets", "beagle", "spaniel", "wrong"),
        ("stanford_cars", "Chevrolet Corvette ZR1 2012", "Chevrolet Corvette", "less specific"),
        ("stanford_cars", "Aston Martin V8 Vantage Coupe 2012", "Aston Martin V8 Vantage", "less specific"),
        ("stanford_cars", "Dodge Ram Pickup 3500 Crew Cab 2010", "Dodge Ram", "less specific"),
        ("stanford_cars", "Hyundai Sonata Sedan 2012", "Hyundai Sonata", "less specific"),
        ("stanford_cars", "Chevrolet Corvette ZR1 2012", "Chevrolet Silverado", "wrong"),
    ],
)
def test_ancestor_kinds_as_the_paper_reads_them(dataset, truth, answer, category):
    from speciarl.data.image_sets import readable_label

    judge = TaxonomyJudge(load_taxonomy(dataset))
    assert judge.judge_one(readable_label(truth), answer).value == category


def test_mixed_taxonomy_merges_all_six():
    mixed = load_taxonomy("mixed")
    assert sum(len(load_taxonomy(n).nodes) for n in CLASS_COUNTS) == len(mixed.nodes)
    judge = TaxonomyJudge(mixed)
    assert judge.judge_one("hot dog", "dog").value == "wrong"


def test_car_names_split_into_make_model_year():
    assert split_car_name("Aston Martin V8 Vantage Coupe 2012") == (
        "Aston Martin",
        "Aston Martin V8 Vantage Coupe",
        "2012",
    )
    with pytest.raises(ValueError, match="model year"):
        split_car_name("Acura RL Sedan")


def test_shipped_files_match_the_generator():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_taxonomies.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
