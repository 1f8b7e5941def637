"""A run as a newcomer meets it: what it measured, where it all went, a quick exit, and evaluate agreeing.

One ``debug=default`` run through the real entry point (W&B offline, the policy saved), then
``speciarl.evaluate`` of its policy on the run's own split with the run's settings.
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

ROOT = Path(__file__).resolve().parents[2]
# Seconds from the figures table to the prompt: the terminal must not hang after the result.
EXIT_AFTER_TABLE_S = 5.0


def _run(args: list[str]) -> tuple[list[tuple[float, str]], float]:
    """Run ``python -m <args>``; every output line with the time it came, and the time of the exit."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    lines = [(time.monotonic(), line) for line in process.stdout]
    process.wait(timeout=900)
    ended = time.monotonic()
    assert process.returncode == 0, "".join(text for _, text in lines)[-4000:]
    return lines, ended


def _path_after(block: str, label: str) -> Path:
    match = re.search(rf"^  {re.escape(label)}\s+(\S+)$", block, re.M)
    assert match, f"no {label!r} line in:\n{block}"
    return Path(match.group(1))


def test_debug_run_says_what_it_measured_and_where_everything_went_and_evaluate_agrees(tmp_path):
    run = tmp_path / "run"
    lines, ended = _run(
        ["speciarl.train", "debug=default", "logger=default", "save_policy=true", f"hydra.run.dir={run}"]
    )
    text = "".join(line for _, line in lines)
    table_at = next(at for at, line in lines if line.startswith("held-out split:"))
    print(f"prompt back {ended - table_at:.2f} s after the table")
    assert ended - table_at < EXIT_AFTER_TABLE_S

    # debug=default measures one batch of 16 images, and says so; results.json holds both rows.
    assert "held-out split: 16 samples;" in text
    results = json.loads((run / "results.json").read_text())
    assert results["before"]["val/n"] == results["after"]["val/n"] == 16
    assert all(0 <= results["after"][f"val/{m}"] <= 1 for m in ("correctness", "specificity", "hm"))

    block = text.split("where things are:\n", 1)[1]
    assert _path_after(block, "run folder") == run
    assert _path_after(block, "results") == run / "results.json"
    assert _path_after(block, "policy") == run / "policy" and (run / "policy" / "README.md").is_file()
    assert "checkpoint=periodic keeps them" in block  # none kept: it says how to keep them
    wandb = _path_after(block, "W&B")
    assert wandb.parent == run / "wandb" and wandb.name.startswith("offline-run-") and wandb.is_dir()
    assert f"upload: wandb sync {wandb}" in block
    log = _path_after(block, "log")
    assert log == run / "train.log"
    logged = log.read_text()
    assert "held-out split: 16 samples;" in logged and "where things are:" in logged
    assert logged.count("OpenMP wait policy: ") == 1  # chosen at start, said once (speciarl.wait_policy)
    empty = [p for p in run.rglob("*.log") if p.stat().st_size == 0]
    assert not empty, f"empty log files: {empty}"

    # evaluate on the run's split (val) with its settings (greedy, batches of 16, its 16 images)
    out = tmp_path / "eval"
    _run([
        "speciarl.evaluate", f"ckpt={run / 'policy'}", "compare_base=false", "eval.split=val",
        "eval.best_of_n=1", "eval.batch_size=16", "eval.limit=16", "logger=none", f"hydra.run.dir={out}",
    ])  # fmt: skip
    figures = json.loads((out / "eval_trained.json").read_text())["datasets"]["synthetic"]
    assert figures["n"] == 16
    for metric in ("correctness", "specificity", "hm"):
        # the same 16 verdicts: equal up to the float32 the training metric is logged in
        assert figures[metric] == pytest.approx(results["after"][f"val/{metric}"], abs=1e-6)
