"""Bad input gets a clear error and loses nothing."""

import json

import pytest
from PIL import Image

from speciarl.core.categories import Outcome, extract_answer
from speciarl.core.model_paths import resolve_model_path
from speciarl.data.manifest import ManifestDataset, load_image
from speciarl.data.synthetic import shapes_taxonomy
from speciarl.rl.rewards import SpeciaRLReward
from speciarl.train import train
from speciarl.verifier.taxonomy_judge import TaxonomyJudge


def _manifest(tmp_path, n_good: int = 6):
    rows = []
    for i in range(n_good):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (32, 32), (220, 20, 60)).save(path)
        rows.append({"image": path.name, "label": "crimson circle", "tags": {"kind": "clean"}})
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    rows.insert(1, {"image": "corrupt.png", "label": "crimson circle"})
    rows.insert(3, {"image": "missing.png", "label": "crimson circle"})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    return manifest


def test_corrupt_and_missing_images_are_skipped_and_counted(tmp_path):
    data = ManifestDataset(_manifest(tmp_path))
    items = [data[i] for i in range(len(data))]
    assert sum(item is None for item in items) == 2
    assert data.skipped.count == 2
    assert any("corrupt.png" in p for p in data.skipped.paths)


def test_training_survives_a_corrupt_image(make_config, tmp_path):
    manifest = _manifest(tmp_path)
    cfg = make_config(
        "data=manifest",
        f"data.train.path={manifest}",
        f"data.val.path={manifest}",
        "data.batch_size=8",
        "+data.taxonomy._target_=speciarl.data.synthetic.shapes_taxonomy",
        "model.warm_start=false",
        "logger=csv",
        "trainer.max_steps=1",
        "eval.best_of_n=0",
        "eval.before=false",
    )
    results = train(cfg)
    assert results["steps"] == 1
    assert results["totals"]["skipped_images"] == 2


def test_image_modes_are_converted(tmp_path):
    for mode in ("L", "RGBA", "CMYK", "P"):
        path = tmp_path / f"x_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        Image.new(mode, (8, 8)).save(path)
        assert load_image(path).mode == "RGB"


def test_manifest_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png"}\n')
    with pytest.raises(ValueError, match='bad.jsonl:1: expected an object with "image" and "label"'):
        ManifestDataset(bad)


def test_empty_answer_is_parse_failure_with_reward_minus_one():
    judge = TaxonomyJudge(shapes_taxonomy())
    answers = [extract_answer(t) for t in ["<answer></answer>", "<answer>red disc</answer>", "no tags"]]
    verdicts = judge.judge(["crimson circle"] * 3, answers)
    assert verdicts[0] is Outcome.PARSE_FAILURE and verdicts[2] is Outcome.PARSE_FAILURE
    assert SpeciaRLReward()([verdicts]).tolist() == [[-1.0, 1.0, -1.0]]


def test_hub_id_without_network_names_the_option():
    with pytest.raises(FileNotFoundError, match="model.path"):
        resolve_model_path("Qwen/Qwen2.5-VL-7B-Instruct-not-cached")
