"""The reproduction benchmark: kinds, domains, seeds, the k-vs-G condition, warm-start options."""

from __future__ import annotations

import json

import pytest

from speciarl.data.shapes_benchmark import (
    DOMAIN_OUT,
    HARD_TYPES,
    HELD_OUT_FAMILIES,
    IN_DOMAIN_FAMILIES,
    UNKNOWABLE_WIDTH,
    ConcatSamples,
    ShapesBenchmark,
    family_types,
    parent_answer_is_stable,
)
from speciarl.policy.loading import warm_start_spec
from speciarl.policy.tiny import TinyQwenSpec
from speciarl.policy.warm_start import Phase, WarmStartSpec, _normalised, ensure_warm_started


def test_parent_answer_stability_hand_worked():
    # k=4, G=4: (3/4)^3 = 27/64 = 0.4219 > 1/4 -> a correct parent beats a blind leaf guess
    assert parent_answer_is_stable(4, 4)
    # k=4, G=8: (3/4)^7 = 2187/16384 = 0.1335 < 0.25 -> guessing can win (bistable)
    assert not parent_answer_is_stable(4, 8)
    # k=6, G=8: (5/6)^7 = 78125/279936 = 0.2791 > 1/6 = 0.1667
    assert parent_answer_is_stable(6, 8)
    # k=4, G=5: (3/4)^4 = 0.3164 > 0.25; G=6: (3/4)^5 = 0.2373 < 0.25
    assert parent_answer_is_stable(4, 5)
    assert not parent_answer_is_stable(4, 6)
    with pytest.raises(ValueError, match="positive"):
        parent_answer_is_stable(0, 4)


def test_default_group_size_satisfies_the_width_condition(make_config):
    group_size = make_config().algorithm.group_size
    assert UNKNOWABLE_WIDTH == 4
    assert parent_answer_is_stable(UNKNOWABLE_WIDTH, group_size)


def test_kinds_and_domains_are_tagged_from_the_image():
    data = ShapesBenchmark(300, seed=5)
    kinds = set()
    for i in range(len(data)):
        s = data[i]
        assert s.tags["family"] in IN_DOMAIN_FAMILIES
        assert s.tags["domain"] == "in_domain"
        assert s.tags["slice"] == f"in_domain/{s.tags['kind']}"
        if s.tags["kind"] == "hard":
            assert s.tags["type"] in HARD_TYPES
        elif s.tags["kind"] == "easy":
            assert s.tags["type"] not in HARD_TYPES
        else:
            # grey: every pixel channel nearly equal where the shape is
            assert s.tags["kind"] == "unknowable"
        kinds.add(s.tags["kind"])
    assert kinds == {"easy", "hard", "unknowable"}


def test_held_out_family_split_and_own_seeds():
    held = ShapesBenchmark(100, seed=7, families=HELD_OUT_FAMILIES, domain=DOMAIN_OUT)
    assert {held[i].tags["family"] for i in range(100)} == set(HELD_OUT_FAMILIES)
    both = ConcatSamples([ShapesBenchmark(10, seed=1), held])
    assert len(both) == 110
    assert both[10].sample_id == held[0].sample_id
    assert both[3].sample_id != both[13].sample_id
    with pytest.raises(IndexError):
        both[110]
    # deterministic per (seed, index); another seed gives other images
    a, b = ShapesBenchmark(5, seed=3)[2], ShapesBenchmark(5, seed=3)[2]
    assert a.label == b.label and a.image.tobytes() == b.image.tobytes()
    assert ShapesBenchmark(5, seed=4)[2].image.tobytes() != a.image.tobytes()


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="unknown families"):
        family_types(["blobby"])
    with pytest.raises(ValueError, match="domain must be"):
        ShapesBenchmark(5, seed=0, domain="elsewhere")


def test_benchmark_config_splits_have_distinct_seeds():
    from omegaconf import OmegaConf

    from speciarl.train import CONF_DIR

    cfg = OmegaConf.load(f"{CONF_DIR}/data/shapes_benchmark.yaml")
    seeds = [cfg.train.seed] + [p.seed for split in ("val", "test") for p in cfg[split].parts]
    assert len(set(seeds)) == len(seeds) == 5
    assert set(cfg.val.parts[1].families) == set(HELD_OUT_FAMILIES)
    assert set(cfg.train.families) == set(IN_DOMAIN_FAMILIES)
    model = OmegaConf.load(f"{CONF_DIR}/model/tiny_benchmark.yaml")
    assert tuple(model.hard_types) == HARD_TYPES


def test_warm_start_options_keep_the_default_cache_key():
    base = TinyQwenSpec()
    default = WarmStartSpec().fingerprint(base)
    assert WarmStartSpec(hard_types=(), types=()).fingerprint(base) == default
    assert warm_start_spec(None, ()).fingerprint(base) == default
    phases = [
        {"steps": 1200, "lr": 4e-3, "leaf": 0.8, "type": 0.1, "family": 0.1},
        {"steps": 250, "lr": 2e-3, "leaf": 0.2, "type": 0.3, "family": 0.5},
    ]
    assert warm_start_spec(phases, ()).fingerprint(base) == default
    hard = [phases[0], {**phases[1], "hard": [0.03, 0.7, 0.27]}]
    spec = warm_start_spec(hard, HARD_TYPES)
    assert spec.phases[1].hard == (0.03, 0.7, 0.27)
    assert spec.fingerprint(base) != default
    assert WarmStartSpec(phases=(Phase(10, 1e-3, 1, 0, 0),), types=("ring",)).fingerprint(base) != default


def test_label_weights_are_normalised_or_refused():
    # (1, 1, 2) / 4 = (0.25, 0.25, 0.5)
    assert _normalised((1, 1, 2)).tolist() == [0.25, 0.25, 0.5]
    with pytest.raises(ValueError, match="three non-negative"):
        _normalised((1, -1, 1))
    with pytest.raises(ValueError, match="three non-negative"):
        _normalised((0, 0, 0))


def test_the_shipped_benchmark_base_is_the_configured_recipe():
    from omegaconf import OmegaConf

    from speciarl.policy.warm_start import SHIPPED_DIR
    from speciarl.train import CONF_DIR

    model = OmegaConf.load(f"{CONF_DIR}/model/tiny_benchmark.yaml")
    spec = warm_start_spec(OmegaConf.to_container(model.phases), list(model.hard_types))
    folder = SHIPPED_DIR / f"warm-{spec.fingerprint(TinyQwenSpec())}"
    # A recipe change without a re-shipped base would silently train a different base.
    assert (folder / "model.safetensors").is_file(), f"no shipped base for the configured recipe: {folder}"
    info = json.loads((folder / "speciarl_warm_start.json").read_text())
    assert [p["steps"] for p in info["spec"]["phases"]] == [p["steps"] for p in model.phases]
    assert info["spec"]["hard_types"] == list(model.hard_types)


def test_the_default_base_is_shipped_too():
    from speciarl.policy.warm_start import SHIPPED_DIR

    # The README's default-run figures were measured on this base.
    assert (
        SHIPPED_DIR / f"warm-{WarmStartSpec().fingerprint(TinyQwenSpec())}" / "model.safetensors"
    ).is_file()


def test_a_shipped_warm_start_is_copied_not_built(tmp_path, monkeypatch):
    from speciarl.policy import warm_start

    spec = WarmStartSpec(phases=(Phase(1, 1e-3, 1, 0, 0),), seed=99)
    base = TinyQwenSpec()
    shipped = tmp_path / "shipped"
    name = f"warm-{spec.fingerprint(base)}"
    (shipped / name).mkdir(parents=True)
    (shipped / name / "config.json").write_text("{}")
    (shipped / name / "marker.txt").write_text("shipped copy")
    monkeypatch.setattr(warm_start, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(warm_start, "supervised_warm_start", _must_not_train)
    folder = ensure_warm_started(base, spec, tmp_path / "cache")
    assert folder.name == name and (folder / "marker.txt").read_text() == "shipped copy"


def _must_not_train(*args, **kwargs):
    raise AssertionError("a shipped warm start must not be trained again")
