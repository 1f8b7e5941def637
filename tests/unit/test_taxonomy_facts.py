"""scripts/build_taxonomies.py: the taxonomy facts are data (scripts/taxonomy_facts/*.yaml) and the
shipped JSON taxonomies are, byte for byte, what the builder writes from them."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def builder():
    spec = importlib.util.spec_from_file_location(
        "build_taxonomies", ROOT / "scripts" / "build_taxonomies.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_taxonomies_are_byte_identical_to_the_built_ones():
    build = builder()
    taxonomies = build.build_all()
    assert sorted(taxonomies) == sorted(p.stem for p in build.OUT.glob("*.json"))
    assert build.stale_taxonomies(taxonomies) == []


def test_a_changed_fact_makes_the_check_fail(tmp_path):
    build = builder()
    facts = tmp_path / "facts"
    shutil.copytree(build.FACTS, facts)
    pets = facts / "oxford_pets.yaml"
    pets.write_text(pets.read_text().replace("[pit bull, pitbull", "[pitt bull, pitbull", 1))
    assert build.stale_taxonomies(build.build_all(facts)) == ["oxford_pets"]


def test_a_missing_class_is_a_clear_error(tmp_path):
    build = builder()
    facts = tmp_path / "facts"
    shutil.copytree(build.FACTS, facts)
    flowers = facts / "flowers102.yaml"
    flowers.write_text(flowers.read_text().replace("  - pink primrose\n", "", 1))
    with pytest.raises(ValueError, match="flowers102 classes: expected 102 distinct entries, got 101"):
        build.build_all(facts)


def test_hyphenated_and_possessive_bird_names_by_hand():
    build = builder()
    cub = build.facts("cub200")
    assert "Black-footed Albatross" in build.bird_synonyms("Black footed Albatross", cub)
    assert "Brewer's Blackbird" in build.bird_synonyms("Brewer Blackbird", cub)
