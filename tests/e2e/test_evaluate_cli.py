"""The evaluation CLI on the warm-started tiny model: the full synthetic test split, base vs trained, timed."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd):
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out, time.perf_counter() - started


@pytest.mark.slow
def test_evaluate_cli_base_vs_trained_under_two_minutes(tmp_path):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    _run(
        [
            "speciarl.train",
            "experiment=dapo_speciarl",
            "trainer.max_steps=20",
            "trainer.val_check_interval=20",
            "eval.best_of_n=0",
            "eval.before=false",
            "logger=csv",
            "save_policy=true",
            f"hydra.run.dir={train_dir}",
        ],
        ROOT,
    )
    out, seconds = _run(
        ["speciarl.evaluate", f"ckpt={train_dir / 'policy'}", f"hydra.run.dir={eval_dir}"], ROOT
    )
    print(out.stdout)
    print(f"evaluate CLI wall time: {seconds:.1f} s")
    assert seconds < 120
    report = (eval_dir / "report.md").read_text()
    assert "| synthetic | base |" in report and "| synthetic | trained |" in report
    for method in ("base", "trained"):
        result = json.loads((eval_dir / f"eval_{method}.json").read_text())
        assert result["datasets"]["synthetic"]["n"] == 512
