"""The step-time benchmark's quick mode runs end to end and reports its ratios (no timing asserts).

It needs TRL (the ``bench`` extra, which CI installs); without it the test skips and says why.
"""

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "step_time.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("trl") is None or importlib.util.find_spec("datasets") is None,
        reason="trl/datasets not installed: pip install -e '.[bench]' to run the step-time benchmark smoke test",
    ),
]


def test_quick_benchmark_prints_ratios(tmp_path):
    out = tmp_path / "summary.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a fresh SPECIARL_CACHE pays the ~3.5 min warm start here
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    for name in ("ours", "trl", "floor"):
        assert re.search(rf"^{name}\s+\d+\.\d+", text, re.MULTILINE), text
    for ratio in ("ours/trl", "ours/floor"):
        assert re.search(rf"^{ratio}\s+\d+\.\d+", text, re.MULTILINE), text
    assert "ours, median per phase: rollout" in text

    summary = json.loads(out.read_text())
    spec = summary["spec"]
    assert (spec["prompts"], spec["rollouts"], spec["new_tokens"]) == (4, 2, 8)
    for name, c in summary["contenders"].items():
        assert c["steps"] == spec["steps"], name
        assert c["median_s"] > 0 and c["peak_rss_mb"] > 0, name
        # Every contender generated real completions of at most the budget.
        assert 1 <= c["response_length"] <= spec["new_tokens"], name
    for ratio in ("ours/trl", "ours/floor"):
        assert math.isfinite(summary[ratio]) and summary[ratio] > 0
    phases = summary["ours_breakdown_s"]
    assert set(phases) == {"rollout", "judge", "old_ref_logprobs", "update", "other"}
    assert phases["rollout"] > 0 and phases["update"] > 0
