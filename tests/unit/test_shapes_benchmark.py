"""The reproduction benchmark: kinds, domains, seeds, the k-vs-G condition, warm-start options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speciarl.built_models.tiny import TinyQwenSpec
from speciarl.built_models.tiny_loading import warm_start_spec
from speciarl.built_models.warm_start import Phase, WarmStartSpec, _normalised, ensure_warm_started
from speciarl.data.shapes_benchmark import (
    CONFUSABLE_TYPES,
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
from speciarl.data.synthetic import COLOURS, type_family

BENCHMARK_KINDS = {"easy", "hard", "confusable", "unknowable"}


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
    data = ShapesBenchmark(300, seed=5, confusable_types=CONFUSABLE_TYPES)
    kinds = set()
    for i in range(len(data)):
        s = data[i]
        assert s.tags["family"] in IN_DOMAIN_FAMILIES
        assert s.tags["domain"] == "in_domain"
        assert s.tags["slice"] == f"in_domain/{s.tags['kind']}"
        if s.tags["kind"] == "hard":
            assert s.tags["type"] in HARD_TYPES
        elif s.tags["kind"] == "confusable":
            # a clean image: nothing on it says its colour is unknown to the model
            assert s.tags["type"] in CONFUSABLE_TYPES
            assert len(set(s.image.getpixel((x, y)) for x in range(32) for y in range(32))) > 50
        elif s.tags["kind"] == "easy":
            assert s.tags["type"] not in HARD_TYPES + CONFUSABLE_TYPES
        else:
            # grey: every pixel channel nearly equal where the shape is
            assert s.tags["kind"] == "unknowable"
        kinds.add(s.tags["kind"])
    assert kinds == BENCHMARK_KINDS
    # one confusable type per family, none of them hard
    assert {type_family(t) for t in CONFUSABLE_TYPES} == set(IN_DOMAIN_FAMILIES + HELD_OUT_FAMILIES)
    with pytest.raises(ValueError, match="both hard and confusable"):
        ShapesBenchmark(5, seed=0, confusable_types=("ring",))
    # without confusable types the benchmark is the three-kind one
    plain = ShapesBenchmark(300, seed=5)
    assert {plain[i].tags["kind"] for i in range(300)} == {"easy", "hard", "unknowable"}


def test_random_confusable_colour_is_independent_of_the_leaf():
    shown = ShapesBenchmark(400, seed=5, confusable_types=CONFUSABLE_TYPES)
    random = ShapesBenchmark(400, seed=5, confusable_types=CONFUSABLE_TYPES, confusable_colour="random")
    pairs = []
    for i in range(400):
        a, b = shown[i], random[i]
        # same labels, kinds and ids: only the confusable images are repainted
        assert (a.label, a.tags["kind"], a.sample_id) == (b.label, b.tags["kind"], b.sample_id)
        if b.tags["kind"] != "confusable":
            assert "shown_colour" not in b.tags and a.image.tobytes() == b.image.tobytes()
            continue
        pairs.append((b.tags["colour"], b.tags["shown_colour"]))
        # the painted colour is the one tagged: the shape's mean pixel is nearest that colour
        pixels = np.asarray(b.image, dtype=float).reshape(-1, 3)
        shape = pixels[np.abs(pixels - pixels[0]).sum(1) > 60].mean(0)
        nearest = min(COLOURS, key=lambda c: np.abs(shape - np.array(COLOURS[c])).sum())
        assert nearest == b.tags["shown_colour"]
    # leaf colour and painted colour agree about 1 time in 4 (as chance), not always
    agree = sum(leaf == painted for leaf, painted in pairs) / len(pairs)
    assert len(pairs) > 60 and 0.1 < agree < 0.45
    assert (
        random[7].image.tobytes()
        == ShapesBenchmark(400, 5, confusable_types=CONFUSABLE_TYPES, confusable_colour="random")[
            7
        ].image.tobytes()
    )
    with pytest.raises(ValueError, match="confusable_colour must be one of"):
        ShapesBenchmark(5, seed=0, confusable_colour="painted")


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
    # the four-kind variant: the same splits, and the confusable types on both sides
    confusable = OmegaConf.load(f"{CONF_DIR}/data/shapes_benchmark_confusable.yaml")
    parts = [confusable.train] + [p for split in ("val", "test") for p in confusable[split].parts]
    assert [p.seed for p in parts] == seeds
    assert all(tuple(p.confusable_types) == CONFUSABLE_TYPES for p in parts)
    # the held-out parts paint confusable images as the training split does (random by default)
    resolved = OmegaConf.create({"data": confusable})
    assert {p.confusable_colour for p in [resolved.data.train] + list(resolved.data.val.parts)} == {"random"}
    model = OmegaConf.load(f"{CONF_DIR}/model/tiny_benchmark_confusable.yaml")
    assert tuple(model.confusable_types) == CONFUSABLE_TYPES and tuple(model.hard_types) == HARD_TYPES


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
    # the confusable and instruction options are left out of the key when unset
    assert warm_start_spec(None, (), (), None).fingerprint(base) == default
    assert warm_start_spec(None, (), ("oval",), None).fingerprint(base) != default
    assert warm_start_spec(None, (), (), 0.2).fingerprint(base) != default
    # the benchmark's previous recipe (lr 4e-3, no confusable types) keeps its key too
    old = [{**phases[0], "steps": 1500, "leaf": 0.7, "type": 0.15, "family": 0.15}, {**hard[1], "steps": 400}]
    old[1]["lr"] = 1.5e-3
    assert warm_start_spec(old, HARD_TYPES).fingerprint(base) == "5f5ec620347b"


def test_label_weights_are_normalised_or_refused():
    # (1, 1, 2) / 4 = (0.25, 0.25, 0.5)
    assert _normalised((1, 1, 2)).tolist() == [0.25, 0.25, 0.5]
    with pytest.raises(ValueError, match="three non-negative"):
        _normalised((1, -1, 1))
    with pytest.raises(ValueError, match="three non-negative"):
        _normalised((0, 0, 0))


@pytest.mark.parametrize("config", ["tiny_benchmark", "tiny_benchmark_confusable"])
def test_the_shipped_benchmark_base_is_the_configured_recipe(config):
    from omegaconf import OmegaConf

    from speciarl.built_models.warm_start import SHIPPED_DIR
    from speciarl.train import CONF_DIR

    model = OmegaConf.load(f"{CONF_DIR}/model/{config}.yaml")
    spec = warm_start_spec(
        OmegaConf.to_container(model.phases),
        list(model.hard_types),
        list(model.get("confusable_types", ())),
        model.get("instruction_share"),
    )
    folder = SHIPPED_DIR / f"warm-{spec.fingerprint(TinyQwenSpec())}"
    # A recipe change without a re-shipped base would silently train a different base.
    assert (folder / "model.safetensors").is_file(), f"no shipped base for the configured recipe: {folder}"
    info = json.loads((folder / "speciarl_warm_start.json").read_text())
    assert [p["steps"] for p in info["spec"]["phases"]] == [p["steps"] for p in model.phases]
    assert info["spec"]["hard_types"] == list(model.hard_types)
    assert info["spec"].get("confusable_types", []) == list(model.get("confusable_types", ()))
    assert info["spec"].get("instruction_share") == model.get("instruction_share")


def test_the_default_base_is_shipped_too():
    from speciarl.built_models.warm_start import SHIPPED_DIR

    # The README's default-run figures were measured on this base.
    assert (
        SHIPPED_DIR / f"warm-{WarmStartSpec().fingerprint(TinyQwenSpec())}" / "model.safetensors"
    ).is_file()


def test_a_shipped_warm_start_is_copied_not_built(tmp_path, monkeypatch):
    from speciarl.built_models import warm_start

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


def test_warm_start_labels_confusable_colours_and_the_instruction(tiny_policy_fresh):
    """A confusable image's leaf label carries a uniformly drawn colour; the instruction steps
    use the "be specific" prompt with leaf labels; everything else is labelled as before."""
    import numpy as np

    from speciarl.built_models.warm_start import _Bank, _draw

    spec = WarmStartSpec(
        phases=(Phase(1, 1e-3, 1, 0, 0),),
        bank_size=200,
        batch_size=16,
        confusable_types=("oval",),
        instruction_share=0.5,
        ambiguous_fraction=0.0,
    )
    bank = _Bank(tiny_policy_fresh, spec)
    ovals = np.array([r for r, s in enumerate(bank.samples) if s.tags["type"] == "oval"])
    others = np.array([r for r, s in enumerate(bank.samples) if s.tags["type"] != "oval"])
    rng = np.random.default_rng(0)
    leaf = np.zeros(4000, dtype=int)
    drawn = bank.labels(np.resize(ovals, 4000), leaf, rng)
    colours = [label.split()[0] for label in drawn]
    # 4 colours, 4000 draws: each about 1000 (binomial sd 27); the true colour is no more likely
    assert all(900 < colours.count(c) < 1100 for c in ("crimson", "amber", "azure", "lime"))
    assert all(label.endswith(" oval") for label in drawn)
    # type and family labels, and every other type's leaf, are the image's own
    assert bank.labels(ovals[:5], np.ones(5, dtype=int), rng) == ["oval"] * 5
    assert bank.labels(others[:20], np.zeros(20, dtype=int), rng) == [
        bank.samples[r].label for r in others[:20]
    ]
    prompts = []
    for _ in range(40):
        rows, labels, prompt = _draw(bank, spec, rng, np.array([0.0, 0.5, 0.5]), np.array([0.0, 0.5, 0.5]))
        prompts.append(prompt)
        if prompt == "be_specific":
            # leaf labels only, though the phase asks for none
            assert all(len(label.split()) == 2 for label in labels)
        else:
            assert all(len(label.split()) == 1 for label in labels)
    assert 10 < prompts.count("be_specific") < 30
    batch = bank.batch(rows, labels, tiny_policy_fresh, "be_specific")
    # the tiny tokenizer has one token for each prompt's sentence: the prompts differ in it alone
    base_ids, specific_ids = bank.prompts["base"].input_ids[0], batch.prompts.input_ids[0]
    assert base_ids.shape == specific_ids.shape and int((base_ids != specific_ids).sum()) == 1


def _must_not_train(*args, **kwargs):
    raise AssertionError("a shipped warm start must not be trained again")
