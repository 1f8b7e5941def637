"""docs/extending.md's examples run as written: its Python blocks, in order, in one fresh process.

A fresh process, because the examples register names (``rloo``, ``vanilla_pg``) that a second
registration in the same process would refuse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def test_the_guide_has_its_six_examples():
    text = DOC.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == [
        "A reward",
        "An advantage estimator",
        "A policy loss",
        "A judge",
        "A dataset reader",
        "A rollout backend",
    ]
    assert len(BLOCK.findall(text)) == 6


def test_every_example_runs_as_written(tmp_path):
    code = "\n\n".join(BLOCK.findall(DOC.read_text(encoding="utf-8"))) + '\nprint("all examples ran")\n'
    script = tmp_path / "extending_examples.py"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("all examples ran")
