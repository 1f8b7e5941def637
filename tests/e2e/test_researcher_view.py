"""What a researcher sees: the terminal of a run, its W&B run folder, its model card, each --help.

The run is a real ``python -m speciarl.train`` subprocess with stdout piped (as under SLURM);
everything W&B holds is read back from the offline run folder (its ``.wandb`` transaction log and
``files/``), not from the code that wrote it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import wandb_offline

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def five_step_run(tmp_path_factory):
    """A 5-step run of the default with W&B offline, a checkpoint and the policy saved; output piped."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = subprocess.run(
        [sys.executable, "-m", "speciarl.train", "trainer.max_steps=5", "save_policy=true",
         "checkpoint=periodic", "checkpoint.every_n_train_steps=5", f"hydra.run.dir={run_dir}"],
        cwd=run_dir, env=_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (
        run_dir,
        (proc.stdout + proc.stderr).splitlines(),
        json.loads((run_dir / "results.json").read_text()),
    )


@pytest.mark.slow
def test_five_step_run_is_quiet_and_ends_with_the_results_table(five_step_run):
    _, lines, results = five_step_run
    assert len(lines) <= 25, "\n".join(lines)
    assert sum(line.startswith("wandb:") for line in lines) == 1
    assert not any("Tip" in line or "GPU available" in line or "Epoch" in line for line in lines)
    # The output ends with the table (its figures those of results.json), then where things are.
    header = next(i for i, line in enumerate(lines) if line.split() == ["correctness", "specificity", "HM"])
    for line, row in zip(
        lines[header + 1 : header + 4], ("before", "before_best_of_8", "after"), strict=True
    ):
        name, c, s, hm = line.split()
        assert name == row
        assert float(hm) == pytest.approx(results[row]["val/hm"], abs=5e-4)
    ending = lines[header + 4 :]
    assert [line for line in ending if line.strip()][0] == "where things are:"
    named = {line.split()[0]: line.split()[-1] for line in ending if line.startswith("  ") and line.split()}
    for key in ("results", "policy", "checkpoint", "log"):
        assert Path(named[key]).exists(), (key, named[key])
    assert any(re.match(r"train: step 5/5  reward [\d.]+  hm [\d.]+", line) for line in lines)


@pytest.mark.slow
def test_wandb_run_folder_holds_table_charts_plots_and_media(five_step_run):
    run_dir, _, results = five_step_run
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    files = wandb_run / "files"
    history, summary = wandb_offline.history_and_summary(wandb_run)
    logged = {k for row in history for k in row}
    for key in (
        "results/table/path",
        "results/category_shares/path",
        "results/tradeoff/path",
        "results/categories/path",
        "results/hm_chart_table/path",
    ):
        assert key in logged, key
    # Charts: W&B records a bar chart as a visualisation of its table in the run config.
    config = wandb_offline.config(wandb_run)
    assert "_wandb/visualize/results/hm_chart" in config
    assert "_wandb/visualize/results/categories_chart" in config
    # The table's rows (method, dataset, C, S, HM) are results.json's figures.
    table = json.loads((files / summary["results/table/path"]).read_text())
    assert table["columns"] == ["method", "dataset", "correctness", "specificity", "hm"]
    rows = {r[0]: r for r in table["data"]}
    assert set(rows) == {"base", "base best-of-8", "grpo+speciarl"}
    assert rows["grpo+speciarl"][4] == pytest.approx(results["after"]["val/hm"])
    assert rows["base best-of-8"][3] == pytest.approx(results["before_best_of_8"]["val/specificity"])
    assert rows["base"][1] == "synthetic"
    assert summary["results/grpo+speciarl/hm"] == pytest.approx(results["after"]["val/hm"])
    # Every medium is a file inside the run folder (nothing staged elsewhere).
    for key in ("results/tradeoff/path", "results/categories/path"):
        assert (files / summary[key]).stat().st_size > 1000
    assert list((files / "media" / "images" / "val").glob("completion_images_*.png"))
    run = wandb_offline.run_record(wandb_run)
    assert run.display_name == "grpo+speciarl-s0" and run.run_group == "grpo+speciarl"


@pytest.mark.slow
def test_saved_policy_has_a_model_card_with_the_results_figures(five_step_run):
    run_dir, _, results = five_step_run
    card = (run_dir / "policy" / "README.md").read_text()
    assert "license: apache-2.0" in card and "tiny-qwen2.5-vl" in card
    assert "python -m speciarl.train trainer.max_steps=5 save_policy=true" in card
    rows = dict(
        (m, (float(c), float(s), float(h)))
        for m, c, s, h in re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", card, re.M)
    )
    for method, row in (
        ("base", "before"),
        ("base best-of-8", "before_best_of_8"),
        ("grpo+speciarl", "after"),
    ):
        want = [results[row][f"val/{m}"] for m in ("correctness", "specificity", "hm")]
        assert rows[method] == pytest.approx(want, abs=5e-5)


@pytest.mark.slow
def test_export_writes_a_folder_ready_for_the_hub(five_step_run, tmp_path):
    run_dir, _, results = five_step_run
    out = tmp_path / "export"
    proc = subprocess.run(
        [sys.executable, "-m", "speciarl.export", f"ckpt_path={run_dir}/checkpoints/last.ckpt",
         f"out_dir={out}", f"run_dir={run_dir}", f"hydra.run.dir={tmp_path}/hydra"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # What push_to_hub / upload_folder sends: a transformers model folder with its card.
    for name in ("config.json", "model.safetensors", "README.md", "processor_config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "transformers"
    assert "grpo+speciarl" in meta["tags"]
    assert f"| grpo+speciarl | {results['after']['val/correctness']:.4f} |" in card
    assert "python -m speciarl.train trainer.max_steps=5" in card
    # The exported weights are the trained policy's: equal to the saved policy's.
    from safetensors.torch import load_file

    exported, saved = (
        load_file(out / "model.safetensors"),
        load_file(run_dir / "policy" / "model.safetensors"),
    )
    assert exported.keys() == saved.keys()
    assert all(bool((exported[k] == saved[k]).all()) for k in saved)


def test_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_piped_run_prints_progress_while_it_is_still_going(tmp_path):
    """Under SLURM stdout is a file: progress lines must come during fit, not at its end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "speciarl.train", "trainer.max_steps=200", "eval.before=false",
         "eval.best_of_n=0", "logger=none", f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path, env=_env(SPECIARL_PROGRESS_EVERY="0"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        seen, deadline = [], time.monotonic() + 600
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("train: step 2/200"):
                break
        assert seen[-1].startswith("train: step 2/200"), "".join(seen)
        assert proc.poll() is None  # the run is still going
        assert not (tmp_path / "results.json").exists()
    finally:
        proc.kill()
        proc.wait()


HELPS = {
    "train": (["Trains a vision-language policy", "hparams_search", "debug", "hydra/launcher"], []),
    "evaluate": (["Evaluates a model", "verifier"], ["algorithm", "reward"]),
    "verify": (["Audits a judge", "verifier"], ["algorithm", "reward", "optimizer"]),
    "export": (["Exports a trained policy", "push_to_hub"], ["algorithm", "verifier"]),
}


@pytest.mark.slow  # each imports torch and Lightning (~10 s)
@pytest.mark.parametrize("name", sorted(HELPS))
def test_hydra_entry_point_help_lists_only_its_groups_and_runs_nothing(name, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", f"speciarl.{name}", "--help"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    present, absent = HELPS[name]
    for word in present:
        assert word in proc.stdout, word
    groups_part = proc.stdout.split("Config groups")[1].split("Hydra flags")[0]
    for word in absent:
        assert word not in groups_part, word
    assert list(tmp_path.iterdir()) == []  # nothing ran: no outputs/


@pytest.mark.slow
@pytest.mark.parametrize("name", ["memory", "reproduce"])
def test_argparse_entry_point_help(name, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", f"speciarl.{name}", "--help"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m speciarl."), proc.stderr
    assert "Qwen2.5-VL-7B:" not in proc.stdout and list(tmp_path.iterdir()) == []
