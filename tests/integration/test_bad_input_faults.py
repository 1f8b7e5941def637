"""Faults a hostile user found (issue 13), each reproduced with the real component.

Unreadable and sliver images on disk, manifests and class folders that would invent ground
truths, a missing taxonomy, settings that were silently replaced, URL credentials, and a real
process killed with SIGKILL while it exports a policy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from speciarl.data.manifest import ManifestDataset, load_image
from speciarl.data.readers.image_folder import read_image_folder
from speciarl.data.readers.layout import DatasetLayoutError
from speciarl.evaluation.checks import require_readable, rollout_overrides
from speciarl.train import train
from speciarl.verifier.failure_guard import EmptyBatchGuard, UnreadableDataExceeded
from speciarl.verifier.redaction import CredentialsInConfig, reject_url_credentials

ROOT = Path(__file__).resolve().parents[2]
TAXONOMY = "+data.taxonomy._target_=speciarl.data.synthetic.shapes_taxonomy"


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def manifest_run(make_config, manifest: Path, *extra: str):
    return make_config(
        "data=manifest",
        f"data.train.path={manifest}",
        f"data.val.path={manifest}",
        TAXONOMY,
        "model.warm_start=false",
        "logger=csv",
        "eval.best_of_n=0",
        "eval.before=false",
        "eval.after=false",
        *extra,
    )


# ---------------------------------------------------------------- 2: all images unreadable
def test_a_set_of_unreadable_images_stops_with_a_clear_error_not_a_spin(make_config, tmp_path):
    for i in range(4):
        (tmp_path / f"bad{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    manifest = write_manifest(
        tmp_path, [{"image": f"bad{i}.png", "label": "crimson circle"} for i in range(4)]
    )
    cfg = manifest_run(
        make_config, manifest, "data.batch_size=2", "trainer.max_steps=3", "module.empty_batch_window=5"
    )
    started = time.monotonic()
    with pytest.raises(
        UnreadableDataExceeded, match="5 of the last 5 training batches had no readable image"
    ):
        train(cfg)
    assert time.monotonic() - started < 120
    rows = [r for r in (tmp_path / "csv").glob("version_*/metrics.csv")]
    text = rows[0].read_text()
    header, *lines = text.splitlines()
    columns = header.split(",")
    last = dict(zip(columns, lines[-1].split(","), strict=True))
    # The empty batches reached the metrics: 4 empty batches x 2 images before the 5th raised.
    assert float(last["train/total_empty_batches"]) == 4
    assert float(last["train/total_skipped_images"]) == 8


def test_empty_batch_guard_rule():
    guard = EmptyBatchGuard(max_empty_share=0.5, window_batches=4)
    # Hand-worked: the share over the last <= 4 batches; no stop until the window is full.
    # E -> 1/1, E- -> 1/2, E-E -> 2/3 (window not full: no stop), E-E- -> 2/4, then -E-E and
    # E-E- stay 2/4 = 0.5, not above 0.5; -E-E then E-EE = 3/4 > 0.5 stops.
    shares = [guard.record(empty, 2) for empty in (True, False, True, False, True, False, True)]
    assert shares == pytest.approx([1.0, 0.5, 2 / 3, 0.5, 0.5, 0.5, 0.5])
    with pytest.raises(UnreadableDataExceeded, match="3 of the last 4"):
        guard.record(True, 2)


# ---------------------------------------------------------------- 3: extreme aspect ratios
@pytest.mark.parametrize("size", [(1, 1000), (3000, 2)])
def test_a_sliver_image_is_skipped_and_counted(tmp_path, size):
    path = tmp_path / "sliver.png"
    Image.new("RGB", size, (200, 30, 30)).save(path)
    from speciarl.data.manifest import SkipCounter

    skipped = SkipCounter()
    assert load_image(path, skipped) is None
    assert skipped.count == 1


def test_training_and_evaluation_survive_sliver_images(make_config, tmp_path):
    rows = []
    for i in range(3):
        Image.new("RGB", (32, 32), (220, 20, 60)).save(tmp_path / f"ok{i}.png")
        rows.append({"image": f"ok{i}.png", "label": "crimson circle"})
    Image.new("RGB", (1, 1000)).save(tmp_path / "tall.png")
    Image.new("RGB", (3000, 2)).save(tmp_path / "wide.png")
    rows[1:1] = [
        {"image": "tall.png", "label": "crimson circle"},
        {"image": "wide.png", "label": "amber star"},
    ]
    manifest = write_manifest(tmp_path, rows)
    cfg = manifest_run(make_config, manifest, "data.batch_size=5", "trainer.max_steps=1", "eval.after=true")
    results = train(cfg)
    assert results["steps"] == 1 and results["totals"]["skipped_images"] == 2
    assert "val/hm" in results["after"]  # the validation batch kept its three readable predictions

    from speciarl.built_models.tiny_loading import tiny_policy
    from speciarl.data.synthetic import shapes_taxonomy
    from speciarl.evaluation.loop import evaluate_policy
    from speciarl.rollout.hf import HFRollout
    from speciarl.verifier.taxonomy_judge import TaxonomyJudge

    data = ManifestDataset(manifest)
    samples = [s for s in (data[i] for i in range(len(data))) if s is not None]
    policy = tiny_policy(warm_start=False)
    records = evaluate_policy(policy, samples, TaxonomyJudge(shapes_taxonomy()), HFRollout(max_new_tokens=4))
    assert len(records) == 3 and data.skipped.count == 2


# ---------------------------------------------------------------- 5: missing taxonomy
@pytest.mark.parametrize("data", ["image_folder", "manifest"])
def test_a_missing_taxonomy_fails_before_the_model_is_built(make_config, tmp_path, data, monkeypatch):
    (tmp_path / "train" / "crimson_circle").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "train" / "crimson_circle" / "a.png")
    manifest = write_manifest(tmp_path, [{"image": "train/crimson_circle/a.png", "label": "crimson circle"}])
    overrides = (
        [f"data.train.folder={tmp_path}", "data.val=null", "data.test=null"]
        if data == "image_folder"
        else [f"data.train.path={manifest}", f"data.val.path={manifest}"]
    )
    cfg = make_config(f"data={data}", *overrides, "logger=csv")
    import speciarl.built_models.tiny_loading as loading

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the taxonomy was checked")

    monkeypatch.setattr(loading, "tiny_policy", no_model)
    with pytest.raises(Exception, match="the taxonomy judge needs a label taxonomy") as info:
        train(cfg)
    assert "data.taxonomy" in str(info.value)


# ---------------------------------------------------------------- 6, 10: evaluation settings and results
def test_max_new_tokens_zero_is_an_error_not_the_default():
    assert rollout_overrides({"max_new_tokens": None}) == {}
    assert rollout_overrides({"max_new_tokens": 7}) == {"max_new_tokens": 7}
    for bad in (0, -3, False):
        with pytest.raises(ValueError, match="eval.max_new_tokens must be a positive integer or null"):
            rollout_overrides({"max_new_tokens": bad})


def test_an_evaluation_of_zero_readable_samples_exits_nonzero(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    manifest = write_manifest(tmp_path, [{"image": "bad.png", "label": "crimson circle"}] * 2)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "speciarl.evaluate",
            "data=manifest",
            f"data.train.path={manifest}",
            f"data.val.path={manifest}",
            TAXONOMY,
            "model.warm_start=false",
            "logger=csv",
            f"hydra.run.dir={tmp_path / 'eval'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode != 0
    assert "no readable sample to evaluate" in done.stderr + done.stdout
    assert "0.000" not in done.stdout
    with pytest.raises(RuntimeError, match="2 items"):
        require_readable([{"skipped": True}, {"skipped": True}], "val")


def test_group_size_one_is_refused_for_the_speciarl_reward(make_config):
    cfg = make_config("algorithm.group_size=1", "model.warm_start=false", "logger=csv", "eval.before=false")
    with pytest.raises(ValueError, match="group_size=1 with reward=speciarl"):
        train(cfg)


# ---------------------------------------------------------------- 7, 8: invented ground truths
@pytest.mark.parametrize("label", [None, 5, "", "  "])
def test_a_manifest_label_that_is_not_a_name_is_an_error(tmp_path, label):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    manifest = write_manifest(
        tmp_path, [{"image": "a.png", "label": "crimson circle"}, {"image": "a.png", "label": label}]
    )
    with pytest.raises(
        ValueError, match=r"set.jsonl:2: label .* is not a class name: expected a non-empty string"
    ):
        ManifestDataset(manifest)


@pytest.mark.parametrize("name", ["001._", "___", "12. "])
def test_a_class_folder_with_no_name_left_is_an_error(tmp_path, name):
    for folder in (name, "002.Red_Circle"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "a.png")
    with pytest.raises(DatasetLayoutError, match="leaves no label"):
        read_image_folder(tmp_path)


# ---------------------------------------------------------------- 11: credentials
def test_url_credentials_are_refused_before_hydra_writes_anything(tmp_path):
    secret = "s3cr3t-pw"
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "speciarl.train",
            "verifier=llm_http",
            f"verifier.llm.base_url=http://user:{secret}@127.0.0.1:9/v1",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode != 0
    assert "credentials in a URL" in done.stderr
    assert secret not in done.stdout + done.stderr
    written = [p for p in run_dir.rglob("*") if p.is_file()] if run_dir.exists() else []
    assert not any(secret in p.read_text(errors="replace") for p in written), written


def test_url_credentials_are_refused_in_a_composed_config():
    with pytest.raises(CredentialsInConfig) as info:
        reject_url_credentials({"verifier": {"cache": {"url": "redis://:hunter2@cache:6379/0"}}})
    assert "hunter2" not in str(info.value) and "verifier.cache.url" in str(info.value)
    reject_url_credentials({"verifier": {"base_url": "http://127.0.0.1:8000/v1", "email": "a@b.c"}})


# ---------------------------------------------------------------- 9: atomic export, real SIGKILL
EXPORT_LOOP = """
import sys, torch
from pathlib import Path
from speciarl.built_models.tiny_loading import tiny_policy
from speciarl.policy.saved import save_checkpoint_export
from speciarl.runs.checkpointing import export_policy_atomically
torch.manual_seed(0)
policy = tiny_policy(warm_start=False)
target = Path(sys.argv[1])
print("ready", flush=True)
while True:
    export_policy_atomically(policy, target, save_checkpoint_export)
    print("exported", flush=True)
"""


def test_a_policy_export_killed_midway_leaves_a_whole_folder_or_none(tmp_path):
    from transformers import AutoConfig

    target = tmp_path / "step-000010-policy"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    for delay in (0.0, 0.05, 0.13, 0.31):
        child = subprocess.Popen(
            [sys.executable, "-c", EXPORT_LOOP, str(target)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout.readline().strip() == "ready"
        if target.exists():
            assert child.stdout.readline().strip() == "exported"  # an export finished: kill in the next
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if target.exists():  # whatever the moment of the kill, the visible folder is complete
            assert (target / "config.json").stat().st_size > 0
            AutoConfig.from_pretrained(target)
    # The next export (a resumed run) cleans what the killed ones left and leaves a whole folder.
    resumed = subprocess.run(
        [sys.executable, "-c", EXPORT_LOOP.replace("while True:", "for _ in range(1):"), str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert AutoConfig.from_pretrained(target).model_type
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000010-policy"]
