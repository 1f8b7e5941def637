"""Input files and config values (issue 22, items 8 to 10): real files, the real entry points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from PIL import Image

from conftest import compose_config
from speciarl.data.jsonl_lines import NotUtf8Error
from speciarl.data.manifest import ManifestDataset
from speciarl.evaluate import evaluate
from speciarl.runs.config_checks import ConfigValueError, check_context_length, check_run_values
from speciarl.train import CONF_DIR, train
from speciarl.verify import verify


def _verify_config(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="verify", overrides=list(overrides))


# ------------------------------------------------------------------ verify input
def test_a_raw_line_separator_inside_a_string_stays_in_its_line(tmp_path):
    rows = [
        {
            "ground_truth": "crimson circle",
            "prediction": "crimson circle",
            "note": "a\u2028b\u2029c\x85d\x0ce",
        },
        {"ground_truth": "crimson circle", "prediction": "circle"},
    ]
    source = tmp_path / "pairs.jsonl"
    # ensure_ascii=False writes U+2028 etc. raw, as many tools do (valid JSON, valid JSONL)
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert verify(_verify_config(f"input={source}")) == 0
    out = [json.loads(line) for line in (tmp_path / "pairs.verdicts.jsonl").read_text().split("\n") if line]
    assert len(out) == 2
    assert out[0]["note"] == rows[0]["note"] and out[0]["verdict"] == "specific"
    assert out[1]["verdict"] == "less specific"


def test_non_utf8_bytes_are_reported_with_file_and_line(tmp_path, caplog):
    source = tmp_path / "pairs.jsonl"
    good = json.dumps({"ground_truth": "crimson circle", "prediction": "circle"}).encode()
    source.write_bytes(good + b"\n" + b'{"ground_truth": "caf\xe9", "prediction": "x"}\n' + good + b"\n")
    with caplog.at_level("WARNING"):
        assert verify(_verify_config(f"input={source}")) == 1
    out = [json.loads(line) for line in (tmp_path / "pairs.verdicts.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in out] == ["less specific", None, "less specific"]  # every line, in order
    assert out[1]["error"] == f"{source}:2: not UTF-8 text (byte 0xe9 at column 22); save the file as UTF-8"
    assert f"{source}:2: not UTF-8" in caplog.text


def test_a_rows_own_error_field_is_data_and_the_row_is_judged(tmp_path):
    source = tmp_path / "pairs.jsonl"
    row = {"ground_truth": "crimson circle", "prediction": "circle", "error": "ignore this row"}
    source.write_text(json.dumps(row) + "\n")
    assert verify(_verify_config(f"input={source}")) == 0
    out = json.loads((tmp_path / "pairs.verdicts.jsonl").read_text())
    assert out == {**row, "verdict": "less specific"}


# ------------------------------------------------------------------ manifests
def _manifest(tmp_path: Path, rows: list) -> Path:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    path = tmp_path / "m.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("tags", ["x", None, [1, 2], {"kind": {"nested": 1}}, {"kind": None}])
def test_manifest_tags_must_be_an_object_and_are_checked_at_load(tmp_path, tags):
    good = {"image": "a.png", "label": "crimson circle", "tags": {"kind": "clean"}}
    path = _manifest(tmp_path, [good, {"image": "a.png", "label": "crimson circle", "tags": tags}])
    with pytest.raises(ValueError, match=rf"^{path}:2: tags .* must be an object of strings"):
        ManifestDataset(path)


def test_manifest_lines_split_on_newline_only_and_non_utf8_named(tmp_path):
    rows = [
        {"image": "a.png", "label": "crimson circle", "id": "p\u2028q"},
        {"image": "a.png", "label": "circle"},
    ]
    path = tmp_path / "m.jsonl"
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    data = ManifestDataset(path)
    assert len(data) == 2 and data[0].sample_id == "p\u2028q" and data[1].tags == {}
    path.write_bytes(path.read_bytes() + b'{"image": "a.png", "label": "\xff"}\n')
    with pytest.raises(NotUtf8Error, match=rf"^{path}:3: not UTF-8 text \(byte 0xff at column 30\)"):
        ManifestDataset(path)


# ------------------------------------------------------------------ config values
@pytest.mark.parametrize(
    ("rollout", "evaluation", "message"),
    [
        ({"top_p": 2}, {}, r"rollout.top_p must be in \(0, 1\]"),
        ({"top_p": 0}, {}, r"rollout.top_p must be in \(0, 1\]"),
        ({"max_new_tokens": 0}, {}, "rollout.max_new_tokens must be an integer >= 1, got 0"),
        ({"max_new_tokens": 1e8}, {}, "rollout.max_new_tokens must be an integer >= 1, got 100000000.0"),
        ({"temperature": 0}, {}, "rollout.temperature must be positive"),
        ({}, {"best_of_n": -3}, "eval.best_of_n must be an integer >= 0, got -3"),
        ({}, {"top_p": 1.5}, r"eval.top_p must be in \(0, 1\]"),
    ],
)
def test_out_of_range_values_are_named(rollout, evaluation, message):
    with pytest.raises(ConfigValueError, match=message):
        check_run_values({"max_new_tokens": 16, "top_p": 1.0, **rollout}, evaluation)


def test_in_range_values_pass():
    check_run_values(
        {"max_new_tokens": 16, "top_p": 1.0, "temperature": 0.7}, {"best_of_n": 0, "top_p": 0.95}
    )


def test_max_new_tokens_beyond_the_models_context_is_refused_before_any_generation(tmp_path):
    cfg = compose_config(
        ["rollout.max_new_tokens=100000000", "model.warm_start=false", "logger=none"], tmp_path
    )
    with pytest.raises(
        ConfigValueError, match=r"rollout.max_new_tokens=100000000 does not fit the model's context of 1024"
    ):
        train(cfg)


def test_train_refuses_top_p_2_at_start(tmp_path):
    cfg = compose_config(["rollout.top_p=2", "logger=none"], tmp_path)
    with pytest.raises(ConfigValueError, match=r"rollout.top_p must be in \(0, 1\] .*got 2"):
        train(cfg)


class _Model:
    class config:  # noqa: N801 - the shape of a transformers config
        class text_config:  # noqa: N801
            max_position_embeddings = 128


def test_context_check_reads_the_text_config():
    check_context_length(127, _Model())
    with pytest.raises(ConfigValueError, match="context of 128 tokens"):
        check_context_length(128, _Model())


# ------------------------------------------------------------------ evaluate on a test-only folder
def test_evaluate_image_folder_with_only_test(tmp_path):
    root = tmp_path / "imgs"
    for label, colour in (("crimson_circle", (220, 20, 60)), ("azure_square", (30, 110, 240))):
        (root / "test" / label).mkdir(parents=True)
        Image.new("RGB", (16, 16), colour).save(root / "test" / label / "a.png")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "evaluate",
            overrides=[
                "logger=none",
                "model.warm_start=false",
                "num_threads=1",
                "data=image_folder",
                "eval.dataset_name=images",
                f"data.train.folder={root}",
                "+data.taxonomy._target_=speciarl.data.synthetic.shapes_taxonomy",
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "out")
    figures = evaluate(cfg)["base"]["datasets"]["images"]
    assert figures["n"] == 2
