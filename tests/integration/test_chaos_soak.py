"""The reduced chaos soak (``benchmarks/chaos_soak.py``): 20 steps against the faulty loopback
judge, disturbed by a SIGTERM, a full disk (a real tmpfs when run as root) and a SIGKILL, resumed
after each, ending bitwise equal to the undisturbed run.

The script asserts the outcome itself (exit non-zero otherwise); this test also reads its figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_reduced_chaos_soak_ends_bitwise_equal(tmp_path):
    out = tmp_path / "chaos"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "benchmarks" / "chaos_soak.py"), "--steps", "20"]
    command += ["--checkpoint-every", "2", "--disk-mb", "200", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads((out / "chaos.json").read_text())
    b = figures["b"]
    episodes = {e["kind"]: e for e in b["episodes"]}
    assert episodes["sigterm"]["exit"] == 143 and episodes["sigterm"]["seconds_to_exit"] < 10
    assert episodes["sigkill"]["exit"] == -9
    if os.geteuid() == 0:
        assert episodes["disk"]["exit"] not in (0, None)
    assert b["bad_checkpoints"] == [] and b["checkpoint_loads"] >= 5
    assert figures["different_tensors"] == []
    assert figures["a"]["totals"] == b["totals"]
    assert figures["a"]["checks"]["verdicts"] == 20 * 16
    assert b["checks"]["verdicts"] == 16 * (20 - len(b["unlogged_steps"]))
    assert len(list((out / "b" / "csv").glob("version_*"))) == 4  # started, then resumed three times
