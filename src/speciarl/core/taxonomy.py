"""Label hierarchies: nodes with names and synonyms, and how far apart two nodes are.

A taxonomy is what the deterministic judge reads to place a prediction relative to the ground
truth. Each node may say how it counts when it is the ancestor answered for one of its
descendants ("less specific" for a close parent, "generic" for a broad category); without that,
one level up is less specific and further up is generic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from speciarl.core.categories import normalize_label

ANCESTOR_KINDS = ("less specific", "generic")


@dataclass(frozen=True)
class TaxonomyNode:
    """A concept: its canonical name, its synonyms, its parent, and how it counts as an ancestor."""

    name: str
    parent: str | None = None
    synonyms: tuple[str, ...] = ()
    ancestor_kind: str | None = None

    def __post_init__(self) -> None:
        if self.ancestor_kind is not None and self.ancestor_kind not in ANCESTOR_KINDS:
            raise ValueError(
                f"node {self.name!r}: ancestor_kind must be one of {ANCESTOR_KINDS} or None, "
                f"got {self.ancestor_kind!r}"
            )


@dataclass
class Taxonomy:
    """A forest of named concepts, looked up by any normalised name or synonym."""

    nodes: dict[str, TaxonomyNode] = field(default_factory=dict)
    _by_surface: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_nodes(cls, nodes: Iterable[TaxonomyNode]) -> Taxonomy:
        taxonomy = cls()
        for node in nodes:
            taxonomy.add(node)
        taxonomy.validate()
        return taxonomy

    def add(self, node: TaxonomyNode) -> None:
        key = normalize_label(node.name)
        if key in self.nodes:
            raise ValueError(f"duplicate taxonomy node {node.name!r}")
        self.nodes[key] = node
        for surface in (node.name, *node.synonyms):
            norm = normalize_label(surface)
            owner = self._by_surface.get(norm)
            if owner is not None and owner != key:
                raise ValueError(
                    f"name {surface!r} refers to both {owner!r} and {key!r}: names and synonyms "
                    "must be unique across the taxonomy"
                )
            self._by_surface[norm] = key

    def validate(self) -> None:
        for key, node in self.nodes.items():
            if node.parent is not None and normalize_label(node.parent) not in self.nodes:
                raise ValueError(f"node {node.name!r} has unknown parent {node.parent!r}")
            seen = {key}
            parent = node.parent
            while parent is not None:
                pkey = normalize_label(parent)
                if pkey in seen:
                    raise ValueError(f"cycle in taxonomy through {node.name!r}")
                seen.add(pkey)
                parent = self.nodes[pkey].parent

    def resolve(self, text: str) -> str | None:
        """The key of the node named (or synonymous with) ``text``, or None when unknown."""
        return self._by_surface.get(normalize_label(text))

    def node(self, key: str) -> TaxonomyNode:
        return self.nodes[normalize_label(key)]

    def ancestors(self, key: str) -> Iterator[str]:
        """Keys of the ancestors of ``key``, nearest first."""
        parent = self.nodes[normalize_label(key)].parent
        while parent is not None:
            pkey = normalize_label(parent)
            yield pkey
            parent = self.nodes[pkey].parent

    def depth(self, key: str) -> int:
        return sum(1 for _ in self.ancestors(key))

    def children(self, key: str) -> list[str]:
        norm = normalize_label(key)
        return [k for k, n in self.nodes.items() if n.parent and normalize_label(n.parent) == norm]

    def leaves(self) -> list[str]:
        parents = {normalize_label(n.parent) for n in self.nodes.values() if n.parent}
        return [k for k in self.nodes if k not in parents]

    def names(self, key: str) -> tuple[str, ...]:
        node = self.node(key)
        return (node.name, *node.synonyms)

    def to_json(self, path: str | Path) -> None:
        rows = [
            {
                "name": n.name,
                "parent": n.parent,
                "synonyms": list(n.synonyms),
                "ancestor_kind": n.ancestor_kind,
            }
            for n in self.nodes.values()
        ]
        Path(path).write_text(json.dumps(rows, indent=1))

    @classmethod
    def from_json(cls, path: str | Path) -> Taxonomy:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no taxonomy file at {path}: expected a JSON list of nodes")
        rows = json.loads(path.read_text())
        return cls.from_nodes(
            TaxonomyNode(
                name=r["name"],
                parent=r.get("parent"),
                synonyms=tuple(r.get("synonyms", ())),
                ancestor_kind=r.get("ancestor_kind"),
            )
            for r in rows
        )
