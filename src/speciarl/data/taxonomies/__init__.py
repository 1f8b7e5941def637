"""Label hierarchies of the six benchmarks, shipped as JSON package data, and their builders.

The JSON files beside this module are written by ``scripts/build_taxonomies.py`` from class lists
typed from public facts. Every ancestor level says how it counts when it is the answer for one of
its descendants (``ancestor_kind``): a close parent ("warbler", a bird family, an aircraft family,
a car model without its year) is *less specific*; a broad category ("bird", "dog", "food", a car
make, an aircraft manufacturer) is *generic*.

Builders are here, not in the script, because the aircraft hierarchy is rebuilt from the dataset's
own family and manufacturer files when they are on disk.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from speciarl.core.categories import normalize_label
from speciarl.core.taxonomy import Taxonomy, TaxonomyNode

log = logging.getLogger(__name__)

LESS_SPECIFIC = "less specific"
GENERIC = "generic"
SHIPPED = ("cub200", "fgvc_aircraft", "flowers102", "food101", "oxford_pets", "stanford_cars")


@dataclass
class _Draft:
    parent: str | None
    kind: str | None
    synonyms: list[str] = field(default_factory=list)


class TaxonomyBuilder:
    """Collects nodes and wished-for synonyms; ``build`` keeps only unambiguous synonyms.

    A synonym is dropped when it equals another node's name or is wished for by two nodes: a
    surface that names two concepts identifies neither.
    """

    def __init__(self) -> None:
        self.drafts: dict[str, _Draft] = {}
        self.names: dict[str, str] = {}
        self.dropped: list[str] = []

    def add(
        self, name: str, parent: str | None, kind: str | None = None, synonyms: Iterable[str] = ()
    ) -> None:
        key = normalize_label(name)
        if key in self.names:
            old = self.drafts[self.names[key]]
            if (old.parent and normalize_label(old.parent)) != (parent and normalize_label(parent)):
                raise ValueError(f"{name!r} added under {parent!r} and under {old.parent!r}")
            old.synonyms.extend(synonyms)
            return
        self.names[key] = name
        self.drafts[name] = _Draft(parent, kind, list(synonyms))

    def build(self) -> Taxonomy:
        wanted: dict[str, set[str]] = defaultdict(set)
        for name, draft in self.drafts.items():
            for synonym in draft.synonyms:
                surface = normalize_label(synonym)
                if surface and surface != normalize_label(name):
                    wanted[surface].add(name)
        nodes = []
        for name, draft in self.drafts.items():
            keep: dict[str, str] = {}
            for synonym in draft.synonyms:
                surface = normalize_label(synonym)
                if not surface or surface == normalize_label(name) or surface in keep:
                    continue
                if surface in self.names or len(wanted[surface]) > 1:
                    self.dropped.append(f"{synonym} ({name})")
                    continue
                keep[surface] = synonym
            nodes.append(TaxonomyNode(name, draft.parent, tuple(keep.values()), draft.kind))
        return Taxonomy.from_nodes(nodes)


# ---------------------------------------------------------------------------- aircraft
MAKER_SHORT = {
    "British Aerospace": "BAE",
    "Bombardier Aerospace": "Bombardier",
    "Cirrus Aircraft": "Cirrus",
    "Dassault Aviation": "Dassault",
    "Douglas Aircraft Company": "Douglas",
    "Gulfstream Aerospace": "Gulfstream",
    "Lockheed Corporation": "Lockheed",
}


def aircraft_taxonomy_from_mapping(
    variants: Mapping[str, tuple[str, str]], extra_synonyms: Mapping[str, Sequence[str]] | None = None
) -> Taxonomy:
    """variant -> family (less specific) -> manufacturer (generic) -> aircraft (generic).

    A family named like its only variant is the same concept and is left out; a family named
    like one of several variants (``A320``) becomes ``A320 family``. Names get their maker's
    name as a synonym (``Boeing 737-800``).
    """
    extra = extra_synonyms or {}
    members: dict[str, list[str]] = defaultdict(list)
    for variant, (family, _) in variants.items():
        members[family].append(variant)
    b = TaxonomyBuilder()
    b.add(
        "aircraft", None, GENERIC, ["airplane", "aeroplane", "plane", "aircraft", *extra.get("aircraft", ())]
    )
    family_node: dict[str, str | None] = {}
    for family, names in members.items():
        maker = variants[names[0]][1]
        short = MAKER_SHORT.get(maker, maker)
        b.add(maker, "aircraft", GENERIC, [short, *extra.get(maker, ())])
        same = [v for v in names if normalize_label(v) == normalize_label(family)]
        if same and len(names) == 1:
            family_node[family] = None
            continue
        node = f"{family} family" if same else family
        family_node[family] = node
        synonyms = [] if family.startswith(short) else [f"{short} {family}"]
        if node != family:
            synonyms += [f"{short} {node}"] if not family.startswith(short) else []
        b.add(node, maker, LESS_SPECIFIC, [*synonyms, *extra.get(family, ())])
    for variant, (family, maker) in variants.items():
        short = MAKER_SHORT.get(maker, maker)
        synonyms = [] if variant.startswith(short) else [f"{short} {variant}"]
        b.add(variant, family_node[family] or maker, None, [*synonyms, *extra.get(variant, ())])
    return b.build()


# ---------------------------------------------------------------------------- cars
CAR_MAKES_MULTIWORD = ("AM General", "Aston Martin", "Land Rover")
CAR_BODY_WORDS = frozenset(
    {
        "sedan",
        "suv",
        "coupe",
        "convertible",
        "hatchback",
        "wagon",
        "minivan",
        "van",
        "cab",
        "crew",
        "extended",
        "regular",
        "club",
        "quad",
        "cargo",
        "passenger",
        "supercab",
    }
)
_YEAR = re.compile(r"^(19|20)\d\d$")


def split_car_name(name: str) -> tuple[str, str, str]:
    """``Acura RL Sedan 2012`` -> (make ``Acura``, model ``Acura RL Sedan``, year ``2012``)."""
    words = name.split()
    if len(words) < 2 or not _YEAR.match(words[-1]):
        raise ValueError(f"car class {name!r} does not end with a model year")
    model = " ".join(words[:-1])
    make = next((m for m in CAR_MAKES_MULTIWORD if model.startswith(m + " ")), words[0])
    return make, model, words[-1]


def _without_body(model: str) -> str:
    words = model.split()
    while len(words) > 2 and words[-1].lower().rstrip(".") in CAR_BODY_WORDS:
        words.pop()
    return " ".join(words)


def car_lines(models: Iterable[str]) -> dict[str, str]:
    """model -> its model line, for lines shared by several models (``Chevrolet Corvette``).

    Models of one make whose first word after the make agrees (the first two for ``3 Series``)
    form a line, named by the words their body-less names share: ``Aston Martin V8 Vantage`` for
    its coupe and convertible, ``Chevrolet Silverado`` for five Silverado models.
    """
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for model in dict.fromkeys(models):
        make = split_car_name(model + " 2000")[0]
        rest = model[len(make) :].split()
        key = " ".join(rest[:2]) if len(rest) > 1 and rest[1] == "Series" else rest[0]
        by_key[(make, key)].append(model)
    lines = {}
    for members in by_key.values():
        if len(members) < 2:
            continue
        words = [_without_body(m).split() for m in members]
        shared = []
        for column in zip(*words, strict=False):
            if len(set(column)) > 1:
                break
            shared.append(column[0])
        line = " ".join(shared)
        lines.update({m: line for m in members})
    return lines


def car_taxonomy_from_names(class_names: Iterable[str]) -> Taxonomy:
    """model-year -> model (less specific) -> [model line (less specific)] -> make (generic) -> car."""
    b = TaxonomyBuilder()
    b.add("car", None, GENERIC, ["automobile", "motor car", "motor vehicle"])
    class_names = list(class_names)
    lines = car_lines(split_car_name(n)[1] for n in class_names)
    for name in class_names:
        make, model, year = split_car_name(name)
        bare = _without_body(model)
        b.add(make, "car", GENERIC)
        if model in lines:
            # the make and the line's first word ("Dodge Ram", "Bugatti Veyron") says the same
            short = " ".join(lines[model].split()[: len(make.split()) + 1])
            b.add(lines[model], make, LESS_SPECIFIC, [short] if short != lines[model] else [])
        b.add(model, lines.get(model, make), LESS_SPECIFIC, [bare] if bare != model else [])
        b.add(name, model, None, [f"{year} {model}", f"{bare} {year}", f"{year} {bare}"])
    return b.build()


# ---------------------------------------------------------------------------- simple hierarchies
def grouped_taxonomy(
    root: str,
    root_synonyms: Sequence[str],
    leaves: Mapping[str, Sequence[str]],
    groups: Mapping[str, tuple[str, str, Sequence[str]]] | None = None,
    leaf_groups: Mapping[str, str] | None = None,
) -> Taxonomy:
    """leaf -> [group ...] -> root: ``groups`` maps a group to (parent, kind, synonyms)."""
    b = TaxonomyBuilder()
    b.add(root, None, GENERIC, root_synonyms)
    for group, (parent, kind, synonyms) in (groups or {}).items():
        b.add(group, parent, kind, synonyms)
    for leaf, synonyms in leaves.items():
        b.add(leaf, (leaf_groups or {}).get(leaf, root), None, synonyms)
    return b.build()


# ---------------------------------------------------------------------------- loading
def taxonomy_path(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(f"{name}.json")))


def load_taxonomy(name: str) -> Taxonomy:
    """A shipped taxonomy by dataset name; ``mixed`` (or ``all``) is the union of the six."""
    if name in ("mixed", "all"):
        return merge_taxonomies(load_taxonomy(n) for n in SHIPPED)
    if name not in SHIPPED:
        raise ValueError(f"no shipped taxonomy {name!r}: expected one of {list(SHIPPED)} or 'mixed'")
    return Taxonomy.from_json(taxonomy_path(name))


def benchmark_taxonomy(name: str, root: str | None = None) -> Taxonomy:
    """The taxonomy of a benchmark; FGVC-Aircraft's is rebuilt from its own files when present."""
    if name == "fgvc_aircraft":
        from_files = aircraft_taxonomy_from_files(root)
        if from_files is not None:
            return from_files
    if name in ("mixed", "all"):
        return merge_taxonomies(benchmark_taxonomy(n, root) for n in SHIPPED)
    return load_taxonomy(name)


def aircraft_taxonomy_from_files(root: str | None) -> Taxonomy | None:
    """Built from ``data/images_{variant,family,manufacturer}_*.txt`` when they are on disk."""
    from speciarl.data.readers.fgvc_aircraft import INFO, aircraft_hierarchy
    from speciarl.data.readers.layout import DatasetLayoutError, locate

    try:
        folder = locate(INFO, root)
    except DatasetLayoutError:
        return None
    mapping = aircraft_hierarchy(folder / "data")
    if not mapping:
        return None
    shipped = load_taxonomy("fgvc_aircraft")
    extra = {n.name: list(n.synonyms) for n in shipped.nodes.values()}
    log.info(
        "FGVC-Aircraft taxonomy built from the dataset's files at %s (%d variants)", folder, len(mapping)
    )
    return aircraft_taxonomy_from_mapping(mapping, extra)


def merge_taxonomies(taxonomies: Iterable[Taxonomy]) -> Taxonomy:
    """The union of several forests; a name in two of them must have the same parent."""
    b = TaxonomyBuilder()
    for taxonomy in taxonomies:
        for node in taxonomy.nodes.values():
            b.add(node.name, node.parent, node.ancestor_kind, node.synonyms)
    return b.build()


def write_taxonomy(taxonomy: Taxonomy, path: str | Path) -> None:
    """JSON as ``Taxonomy.from_json`` reads it, sorted for stable diffs."""
    rows = [
        {"name": n.name, "parent": n.parent, "synonyms": list(n.synonyms), "ancestor_kind": n.ancestor_kind}
        for n in taxonomy.nodes.values()
    ]
    Path(path).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
