"""Ablation grids as real Hydra multiruns (2 algorithms x 2 seeds; 2 optimisers), one job after another."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from speciarl.train import CONF_DIR

SRC = str(Path(CONF_DIR).parents[1])
# A tiny job: untrained model, 2 steps of 2 prompts, 8 held-out images, CSV logs only.
TINY = [
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
]


def multirun(sweep: Path, *grid: str) -> subprocess.CompletedProcess:
    """``python -m speciarl.train -m <grid> <tiny job>`` into ``sweep``; fails the test if it fails."""
    command = [sys.executable, "-m", "speciarl.train", "-m", *grid, *TINY, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.setdefault("WANDB_MODE", "offline")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_by_two_grid_runs_and_writes_its_summary(tmp_path):
    sweep = tmp_path / "grid"
    done = multirun(sweep, "algorithm=grpo,dr_grpo", "seed=0,1")

    # One folder per job, each with its own results and logs.
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1", "2", "3"]
    results = {j: json.loads((sweep / j / "results.json").read_text()) for j in jobs}
    assert all(r["steps"] == 2 for r in results.values())

    # The summary: one row per job, its grid values, and the figures of its results.json.
    with (sweep / "summary.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [(r["job"], r["algorithm"], r["seed"], r["status"]) for r in table] == [
        ("0", "grpo", "0", "ok"),
        ("1", "grpo", "1", "ok"),
        ("2", "dr_grpo", "0", "ok"),
        ("3", "dr_grpo", "1", "ok"),
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
    for job, (algorithm, seed) in zip(
        jobs, [("grpo", "0"), ("grpo", "1"), ("dr_grpo", "0"), ("dr_grpo", "1")]
    ):
        hparams = OmegaConf.load(next((sweep / job / "csv").glob("version_*/hparams.yaml")))
        assert hparams.sweep.grid == {"algorithm": algorithm, "seed": seed}
        # the run's own tags (algorithm, reward), then its grid values
        assert list(hparams.tags) == [algorithm, "speciarl", f"algorithm={algorithm}", f"seed={seed}"]
        assert hparams.seed == int(seed)
    # the two algorithms really differ between the jobs
    assert (
        OmegaConf.load(next((sweep / "2" / "csv").glob("version_*/hparams.yaml"))).algorithm.name == "dr_grpo"
    )


def test_optimiser_sweep_summary_has_the_optimiser_column(tmp_path):
    sweep = tmp_path / "optimisers"
    done = multirun(sweep, "optimizer=adamw,sgd")
    with (sweep / "summary.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [(r["job"], r["optimizer"], r["status"], r["steps"]) for r in table] == [
        ("0", "adamw", "ok", "2"),
        ("1", "sgd", "ok", "2"),
    ]
    for row in table:
        results = json.loads((sweep / row["job"] / "results.json").read_text())
        for metric in ("correctness", "specificity", "hm"):
            assert row[metric] == f"{results['after'][f'val/{metric}']:.3f}"
        hparams = OmegaConf.load(next((sweep / row["job"] / "csv").glob("version_*/hparams.yaml")))
        assert (
            hparams.optimizer._target_
            == {"adamw": "torch.optim.AdamW", "sgd": "torch.optim.SGD"}[row["optimizer"]]
        )
    # summary.md holds the same rows, with the optimiser as a column; it is printed at the end
    lines = (sweep / "summary.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| job |"))
    assert header.split(" | ")[1] == "optimizer"
    for row in table:
        assert f"| {row['job']} | {row['optimizer']} | ok | 2 | {row['correctness']} |" in "\n".join(lines)
    assert "| 1 | sgd | ok | 2 |" in done.stdout + done.stderr
