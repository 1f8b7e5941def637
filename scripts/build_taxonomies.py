"""Write the benchmark taxonomies (src/speciarl/data/taxonomies/*.json) from the facts in scripts/taxonomy_facts/.

    python scripts/build_taxonomies.py            # rewrite the JSON files
    python scripts/build_taxonomies.py --check    # fail if the shipped files differ

The facts are data, one YAML file per benchmark: the benchmarks' public class names and the public
taxonomy above them (bird families and orders after the AOS/IOC checklists, aircraft families and
manufacturers as FGVC-Aircraft 2013b defines them, car make and model read off the class name).
This script holds only the rules that turn them into a taxonomy; tests/unit/test_taxonomy_facts.py
checks that the shipped JSON files are exactly what it writes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from speciarl.data.image_sets import readable_label
from speciarl.data.taxonomies import (
    GENERIC,
    LESS_SPECIFIC,
    TaxonomyBuilder,
    aircraft_taxonomy_from_mapping,
    car_taxonomy_from_names,
    grouped_taxonomy,
    write_taxonomy,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "speciarl" / "data" / "taxonomies"
FACTS = Path(__file__).resolve().parent / "taxonomy_facts"


def facts(name: str, folder: Path = FACTS) -> dict[str, Any]:
    """The fact file ``<folder>/<name>.yaml`` as a mapping."""
    data = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{folder / name}.yaml: expected a mapping of facts, got {type(data).__name__}")
    return data


def expect_count(what: str, items: Any, count: int) -> None:
    """Fail with a message naming ``what`` unless ``items`` holds ``count`` distinct entries."""
    if len(items) != count or len(set(items)) != count:
        raise ValueError(
            f"{what}: expected {count} distinct entries, got {len(items)} ({len(set(items))} distinct)"
        )


# ----------------------------------------------------------------------------------- CUB-200-2011
def bird_synonyms(name: str, cub: dict[str, Any]) -> list[str]:
    """A species' synonyms: the listed ones, the hyphenated spelling ("Black footed" -> "Black-footed"),
    and the possessive one ("Brewer Blackbird" -> "Brewer's Blackbird")."""
    words = name.split()
    out = list(cub["synonyms"].get(name, []))
    joined: list[str] = []
    for word in words:
        if joined and word.lower() in cub["hyphenated_words"]:
            joined[-1] = f"{joined[-1]}-{word}"
        else:
            joined.append(word)
    hyphenated = " ".join(joined)
    if name == "Black and white Warbler":
        hyphenated = "Black-and-white Warbler"
    if hyphenated != name:
        out.append(hyphenated)
    if words[0] in cub["possessive_names"]:
        for base in {name, hyphenated}:
            first, _, rest = base.partition(" ")
            out.append(f"{first}'s {rest}")
    return out


def cub_taxonomy(cub: dict[str, Any]) -> tuple[Any, Any]:
    """The bird taxonomy and the synonyms dropped as ambiguous."""
    expect_count("cub200 classes", list(cub["classes"]), 200)
    b = TaxonomyBuilder()
    b.add("bird", None, GENERIC, ["birds", "avian", "wild bird"])
    for order, synonyms in cub["orders"].items():
        b.add(order, "bird", GENERIC, synonyms)
    b.add("sparrow", "Passeriformes", LESS_SPECIFIC, cub["groups"]["sparrow"]["synonyms"])
    for family, fact in cub["families"].items():
        b.add(family, fact["order"], LESS_SPECIFIC, fact["synonyms"])
    for group, fact in cub["groups"].items():
        b.add(group, fact["parent"], LESS_SPECIFIC, fact["synonyms"])
    for folder, parent in cub["classes"].items():
        name = readable_label(folder)
        b.add(name, parent.replace("_", " "), None, bird_synonyms(name, cub))
        for child in cub["children"].get(name, []):
            b.add(child, name, None, [])
    return b.build(), b.dropped


# ----------------------------------------------------------------------------------- the others
def aircraft_taxonomy(aircraft: dict[str, Any]) -> Any:
    families = aircraft["families"]
    mapping = {v: (family, f["manufacturer"]) for family, f in families.items() for v in f["variants"]}
    expect_count("fgvc_aircraft variants", list(mapping), 100)
    expect_count("fgvc_aircraft families", list(families), 70)
    if len({f["manufacturer"] for f in families.values()}) != 30:
        raise ValueError("fgvc_aircraft: expected 30 manufacturers")
    return aircraft_taxonomy_from_mapping(mapping, aircraft["synonyms"])


def flowers_taxonomy(flowers: dict[str, Any]) -> Any:
    expect_count("flowers102 classes", flowers["classes"], 102)
    groups = {g: ("flower", LESS_SPECIFIC, [g + "s"]) for g in flowers["groups"]}
    groups.update({g: ("flower", None, []) for g in flowers["class_groups"]})
    groups["flower"] = ("plant", GENERIC, ["flowers", "flowering plant", "blossom", "bloom", "wildflower"])
    both = {**flowers["groups"], **flowers["class_groups"]}
    leaf_groups = {leaf: g for g, leaves in both.items() for leaf in leaves}
    leaves = {n: flowers["synonyms"].get(n, []) for n in flowers["classes"]}
    leaf_groups.update({n: "flower" for n in leaves if n not in leaf_groups})
    return grouped_taxonomy("plant", ["plants"], leaves, groups, leaf_groups)


def food_taxonomy(food: dict[str, Any]) -> Any:
    names = [readable_label(n) for n in food["classes"]]
    expect_count("food101 classes", names, 101)
    food_groups, synonyms = food["groups"], food["synonyms"]
    groups = {
        g: (
            fact["parent"],
            food["group_kind"].get(g, LESS_SPECIFIC),
            food["group_synonyms"].get(g, [g + "s"] if not g.endswith("s") else []),
        )
        for g, fact in food_groups.items()
    }
    leaf_groups = {leaf: g for g, fact in food_groups.items() for leaf in fact["members"]}
    leaves = {n: synonyms.get(n, []) for n in names if n not in food_groups}
    # "dumplings" and "steak" are classes *and* parents (gyoza is a dumpling): they stay classes.
    for group in ("dumplings", "steak"):
        groups[group] = (food_groups[group]["parent"], None, synonyms.get(group, []))
    everything = {**{n: "food" for n in leaves}, **leaf_groups}
    return grouped_taxonomy("food", ["dish", "meal", "cuisine", "foods"], leaves, groups, everything)


def pets_taxonomy(pets: dict[str, Any]) -> Any:
    cats, dogs, dog_groups, synonyms = pets["cats"], pets["dogs"], pets["dog_groups"], pets["synonyms"]
    expect_count("oxford_pets breeds", cats + dogs, 37)
    groups = {
        "cat": ("animal", GENERIC, ["domestic cat", "kitten", "cats", "house cat"]),
        "dog": ("animal", GENERIC, ["domestic dog", "puppy", "dogs", "canine"]),
        "terrier": ("dog", LESS_SPECIFIC, ["terriers"]),
        **{g: ("dog", LESS_SPECIFIC, fact["synonyms"]) for g, fact in dog_groups.items()},
    }
    leaves = {cat: [f"{cat} cat", *synonyms.get(cat, [])] for cat in cats}
    leaves.update({dog: synonyms.get(dog, []) for dog in dogs})
    leaf_groups = {
        **{c: "cat" for c in cats},
        **{d: "terrier" if d.endswith("terrier") else "dog" for d in dogs},
        **{d: g for g, fact in dog_groups.items() for d in fact["members"]},
    }
    return grouped_taxonomy("animal", ["pet", "animals"], leaves, groups, leaf_groups)


def build_all(folder: Path = FACTS) -> dict[str, Any]:
    """Every benchmark taxonomy, by name, from the fact files in ``folder``."""
    cub, dropped = cub_taxonomy(facts("cub200", folder))
    if dropped:
        print("CUB: dropped ambiguous synonyms:", dropped, file=sys.stderr)
    cars = facts("stanford_cars", folder)["classes"]
    expect_count("stanford_cars classes", cars, 196)
    return {
        "cub200": cub,
        "fgvc_aircraft": aircraft_taxonomy(facts("fgvc_aircraft", folder)),
        "stanford_cars": car_taxonomy_from_names(cars),
        "flowers102": flowers_taxonomy(facts("flowers102", folder)),
        "food101": food_taxonomy(facts("food101", folder)),
        "oxford_pets": pets_taxonomy(facts("oxford_pets", folder)),
    }


def stale_taxonomies(taxonomies: dict[str, Any], out: Path = OUT) -> list[str]:
    """The names whose shipped JSON differs, byte for byte, from what ``write_taxonomy`` writes."""
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, taxonomy in taxonomies.items():
            fresh = Path(tmp) / f"{name}.json"
            write_taxonomy(taxonomy, fresh)
            target = out / f"{name}.json"
            if not target.is_file() or fresh.read_bytes() != target.read_bytes():
                stale.append(name)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files, write nothing")
    args = parser.parse_args()
    taxonomies = build_all()
    for name, taxonomy in taxonomies.items():
        if not args.check:
            write_taxonomy(taxonomy, OUT / f"{name}.json")
        print(f"{name}: {len(taxonomy.nodes)} nodes, {len(taxonomy.leaves())} leaves")
    stale = stale_taxonomies(taxonomies) if args.check else []
    if stale:
        print(f"stale taxonomies: {stale}; run python scripts/build_taxonomies.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
