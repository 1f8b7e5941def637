"""The ablation grid as a real Hydra multirun: 2 experiments x 2 seeds, one job after another."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from speciarl.train import CONF_DIR

SRC = str(Path(CONF_DIR).parent / "src")


def test_two_by_two_grid_runs_and_writes_its_summary(tmp_path):
    sweep = tmp_path / "grid"
    command = [
        sys.executable,
        "-m",
        "speciarl.train",
        "-m",
        "experiment=grpo_speciarl,dr_grpo_reward3",
        "seed=0,1",
        "model.warm_start=false",
        "trainer.max_steps=2",
        "trainer.val_check_interval=100",
        "data.batch_size=2",
        "data.val.size=8",
        "data.val_batch_size=8",
        "eval.best_of_n=0",
        "eval.before=false",
        "module.log_completions_every=0",
        "logger=csv",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.setdefault("WANDB_MODE", "offline")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    # One folder per job, each with its own results and logs.
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1", "2", "3"]
    results = {j: json.loads((sweep / j / "results.json").read_text()) for j in jobs}
    assert all(r["steps"] == 2 for r in results.values())

    # The summary: one row per job, its grid values, and the figures of its results.json.
    with (sweep / "summary.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [(r["job"], r["experiment"], r["seed"], r["status"]) for r in table] == [
        ("0", "grpo_speciarl", "0", "ok"),
        ("1", "grpo_speciarl", "1", "ok"),
        ("2", "dr_grpo_reward3", "0", "ok"),
        ("3", "dr_grpo_reward3", "1", "ok"),
    ]
    for row in table:
        after = results[row["job"]]["after"]
        for metric in ("correctness", "specificity", "hm"):
            assert row[metric] == f"{after[f'val/{metric}']:.3f}"
        assert row["steps"] == "2"
    text = (sweep / "summary.md").read_text()
    assert "4 jobs, 4 finished" in text and "## Over seeds" in text
    assert "grid summary written to" in done.stdout + done.stderr

    # Each job logged its grid values as config and tags (the same dict goes to W&B).
    for job, (experiment, seed) in zip(
        jobs,
        [("grpo_speciarl", "0"), ("grpo_speciarl", "1"), ("dr_grpo_reward3", "0"), ("dr_grpo_reward3", "1")],
    ):
        hparams = OmegaConf.load(next((sweep / job / "csv").glob("version_*/hparams.yaml")))
        assert hparams.sweep.grid == {"experiment": experiment, "seed": seed}
        assert f"experiment={experiment}" in hparams.tags and f"seed={seed}" in hparams.tags
        assert hparams.seed == int(seed)
    # the two algorithms really differ between the jobs
    assert (
        OmegaConf.load(next((sweep / "2" / "csv").glob("version_*/hparams.yaml"))).algorithm.name == "dr_grpo"
    )
