"""The debug preset, the Optuna search preset and the SLURM launcher preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from speciarl.train import CONF_DIR, train

ROOT = Path(__file__).resolve().parents[2]


def _hydra_config(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_debug_preset_runs_a_few_steps_with_a_tiny_validation_and_no_wandb(make_config, tmp_path):
    cfg = make_config("debug=default")
    assert list(cfg.logger) == ["csv"]
    results = train(cfg)
    assert results["steps"] == 3
    assert "before_best_of_2" not in results and not any(k.startswith("before_best_of") for k in results)
    # One validation batch of 16 images: the greedy figures are multiples of 1/16.
    assert (results["after"]["val/correctness"] * 16) % 1 == pytest.approx(0, abs=1e-6)
    assert not (tmp_path / "wandb").exists()
    assert (tmp_path / "csv" / "version_0" / "metrics.csv").is_file()


def test_optuna_preset_composes_a_search_of_val_hm():
    hydra_cfg = _hydra_config("hparams_search=speciarl_optuna").hydra
    sweeper = hydra_cfg.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.n_trials == 4 and set(sweeper.params) == {"optimizer.lr", "algorithm.clip_high"}
    assert hydra_cfg.mode.name == "MULTIRUN"


def test_slurm_launcher_preset_composes():
    launcher = _hydra_config("hydra/launcher=slurm", "hparams=reward_grid").hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.gpus_per_node == 1 and launcher.timeout_min == 720
    assert str(launcher.submitit_folder).endswith(".submitit/%j")


@pytest.mark.slow
def test_optuna_search_runs_and_reports_the_best_trial(tmp_path):
    """A real 2-trial search (1 step each): the best value is the best job's results.json val/hm."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "speciarl.train", "-m", "hparams_search=speciarl_optuna",
         "hydra.sweeper.n_trials=2", "trainer.max_steps=1", "trainer.val_check_interval=1",
         "eval.before=false", "logger=none", "data.val.size=32", f"hydra.sweep.dir={tmp_path}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    hms = [json.loads((tmp_path / str(j) / "results.json").read_text())["after"]["val/hm"] for j in (0, 1)]
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(hms))
    assert set(best["best_params"]) == {"optimizer.lr", "algorithm.clip_high"}
    assert "| optimizer.lr | algorithm.clip_high |" in (tmp_path / "summary.md").read_text()
