"""The reduced soak (``benchmarks/judge_soak.py``): 20 steps against a judge that fails 14% of
requests in eight ways, uninterrupted and killed with SIGKILL at step 10 then resumed.

The script itself asserts the invariants (per step: judged + judge errors + parse failures =
rollouts; dropped groups = groups with a judge error = groups not trained; equal totals and
per-step errors of the two runs) and exits non-zero otherwise; this test also reads its figures.
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
def test_reduced_soak_holds(tmp_path):
    out = tmp_path / "soak"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "judge_soak.py"),
            "--steps",
            "20",
            "--kill-after",
            "10",
            "--kill-delay",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads((out / "soak.json").read_text())
    for run in ("a", "b"):
        server = figures[run]["server"]
        assert server["failed"] / server["requests"] >= 0.10
        assert figures[run]["checks"]["verdicts"] == 20 * 16
        assert figures[run]["checks"]["judge_errors"] > 0  # the permanent faults reached training
    assert figures["a"]["totals"] == figures["b"]["totals"]
    assert len(list((out / "b" / "csv").glob("version_*"))) == 2  # killed, then resumed
