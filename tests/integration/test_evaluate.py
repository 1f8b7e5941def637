"""The evaluation entry point on the real tiny model: base vs trained, resume, best-of-N, bad images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict
from PIL import Image

from speciarl.core.categories import BEST_OF_N_ORDER
from speciarl.evaluate import evaluate
from speciarl.train import CONF_DIR, train

ROOT = Path(__file__).resolve().parents[2]
FAST_MODEL = ["model.warm_start=false", "num_threads=1"]


def eval_config(out: Path, *overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "evaluate", overrides=["eval.dataset_name=synthetic", "logger=none", *FAST_MODEL, *overrides]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def train_config(out: Path, *overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*FAST_MODEL, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-step training run that saves its policy, and its evaluation against the base model."""
    root = tmp_path_factory.mktemp("tiny_run")
    train(
        train_config(
            root / "train",
            "experiment=dapo_speciarl",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "data.batch_size=4",
            "data.val.size=16",
            "eval.best_of_n=0",
            "eval.before=false",
            "logger=csv",
            "save_policy=true",
        )
    )
    results = evaluate(
        eval_config(root / "eval", f"ckpt={root / 'train' / 'policy'}", "eval.limit=16", "logger=default")
    )
    return root, results


def test_base_and_trained_side_by_side(tiny_run):
    root, results = tiny_run
    assert list(results) == ["base", "trained"]
    for method in results:
        saved = json.loads((root / "eval" / f"eval_{method}.json").read_text())
        figures = saved["datasets"]["synthetic"]
        assert figures["n"] == 16 and 0 <= figures["hm"] <= 1
        assert sum(figures["counts"].values()) == 16
        assert set(saved["breakdown"]["synthetic"]) <= {"kind=clean", "kind=ambiguous"}
    report = (root / "eval" / "report.md").read_text()
    assert "| synthetic | base |" in report and "| synthetic | trained |" in report
    assert "checkpoint" in report and "skipped images" in report
    assert (root / "eval" / "plots" / "tradeoff.png").stat().st_size > 1000
    assert (root / "eval" / "plots" / "categories.png").stat().st_size > 1000
    # logged to W&B (offline) as well: the figures and both plots
    (run,) = list((root / "eval" / "wandb").glob("offline-run-*"))
    assert len(list(run.rglob("media/images/**/*.png"))) == 2
    predictions = (root / "eval" / "predictions_trained.jsonl").read_text().splitlines()
    assert len(predictions) == 16


def test_report_cli_combines_jsons(tiny_run, tmp_path):
    from speciarl.evaluation.report import main

    root, _ = tiny_run
    assert (
        main(
            [
                str(root / "eval" / "eval_base.json"),
                str(root / "eval" / "eval_trained.json"),
                "-o",
                str(tmp_path),
                "--no-plots",
            ]
        )
        == 0
    )
    combined = json.loads((tmp_path / "report.json").read_text())
    assert [m["method"] for m in combined["methods"]] == ["base", "trained"]
    with pytest.raises(FileNotFoundError, match="no evaluation JSON"):
        main([str(tmp_path / "missing.json")])


def test_interrupted_evaluation_resumes(tmp_path):
    first = evaluate(eval_config(tmp_path, "eval.limit=6", "eval.batch_size=4"))["base"]
    assert first["predicted_now"] == 6
    second = evaluate(eval_config(tmp_path, "eval.limit=10", "eval.batch_size=4"))["base"]
    assert second["predicted_now"] == 4 and second["datasets"]["synthetic"]["n"] == 10
    with pytest.raises(ValueError, match="different evaluation"):
        evaluate(eval_config(tmp_path, "eval.limit=10", "eval.best_of_n=2"))


def test_best_of_n_keeps_the_best_sample(tmp_path):
    result = evaluate(eval_config(tmp_path, "eval.limit=8", "eval.best_of_n=3"))["base"]
    assert result["decoding"] == {"best_of": 3, "temperature": 0.6, "top_p": 0.95}
    order = [c.value for c in BEST_OF_N_ORDER] + ["parse failure"]
    for line in Path(result["predictions"]).read_text().splitlines():
        row = json.loads(line)
        assert sum(row["sample_categories"].values()) == 3
        best = min(row["sample_categories"], key=order.index)
        assert row["category"] == best


def _image_folder(root: Path) -> Path:
    for split in ("train", "val"):
        (root / "imgs" / split / "crimson_circle").mkdir(parents=True)
        Image.new("RGB", (16, 16), (220, 20, 60)).save(root / "imgs" / split / "crimson_circle" / "a.png")
    folder = root / "imgs" / "test"
    modes = {"L": "png", "RGBA": "png", "CMYK": "jpg", "P": "png", "RGB": "png"}
    for k, (mode, ext) in enumerate(modes.items()):
        path = folder / ("crimson_circle" if k % 2 else "azure_square") / f"{mode}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, (16, 16)).save(path)
    (folder / "crimson_circle" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    whole = folder / "azure_square" / "whole.jpg"
    Image.new("RGB", (64, 64), (30, 110, 240)).save(whole, quality=95)
    (folder / "azure_square" / "truncated.jpg").write_bytes(whole.read_bytes()[:300])
    whole.unlink()
    return root / "imgs"


def test_unreadable_images_are_skipped_warned_and_reported(tmp_path, caplog):
    images = _image_folder(tmp_path)
    cfg = eval_config(
        tmp_path / "out",
        "data=image_folder",
        f"data.train.folder={images}",
        "+data.taxonomy._target_=speciarl.data.synthetic.shapes_taxonomy",
    )
    with caplog.at_level("WARNING"):
        result = evaluate(cfg)["base"]
    figures = result["datasets"]["images"]
    # 5 readable images (greyscale, RGBA, CMYK, palette converted to RGB; one RGB), 2 skipped
    assert figures["n"] == 5 and figures["skipped_images"] == 2 and result["skipped_images"] == 2
    assert sum("skipping unreadable image" in r.message for r in caplog.records) == 2
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| images | base |" in report and "| 0 | 2 |" in report


def test_huge_image_is_resized_by_the_processor_limits(tmp_path):
    from speciarl.built_models.tiny_loading import tiny_policy
    from speciarl.data.image_sets import ImageEntry, ImageFiles

    path = tmp_path / "huge.png"
    Image.new("RGB", (6000, 4000), (220, 20, 60)).save(path)
    sample = ImageFiles([ImageEntry(str(path), "crimson circle", "huge")], "huge")[0]
    assert max(sample.image.size) <= 2048  # shrunk on load, not kept at 6000 x 4000
    policy = tiny_policy(warm_start=False)
    size = policy.processor.image_processor.size
    patch = policy.processor.image_processor.patch_size
    batch = policy.encode_prompts([sample])
    pixels = int(batch.image_grid_thw.prod()) * patch * patch
    # what reaches the model is bounded by the processor's max_pixels (4096 for the tiny model)
    assert pixels <= size["longest_edge"]
    assert batch.pixel_values.shape[0] == int(batch.image_grid_thw.prod())


def test_notebook_runs_on_the_tiny_run(tiny_run, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root, _ = tiny_run
    notebook = nbformat.read(ROOT / "notebooks" / "evaluation_report.ipynb", as_version=4)
    os.environ["SPECIARL_EVAL_JSONS"] = (
        f"{root / 'eval' / 'eval_base.json'},{root / 'eval' / 'eval_trained.json'}"
    )
    os.environ["SPECIARL_RUN_DIR"] = str(root / "train")
    os.environ["SPECIARL_FIGURE_DIR"] = str(tmp_path)
    try:
        nbclient.NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        for key in ("SPECIARL_EVAL_JSONS", "SPECIARL_RUN_DIR", "SPECIARL_FIGURE_DIR"):
            os.environ.pop(key, None)
    assert (tmp_path / "tradeoff.png").stat().st_size > 1000
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
