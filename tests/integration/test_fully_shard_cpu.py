"""torch's ``fully_shard`` (FSDP2) on 2 CPU gloo processes against one process, and a sharded checkpoint resumed.

Lightning's FSDP strategy refuses CPU (tests/unit/test_fsdp_cpu.py), so sharding is tested with
torch's own API on the tiny policy (each decoder layer and vision block a shard unit, as the
``trainer=fsdp`` preset wraps them): 5 AdamW steps in float64 (tests/fully_shard_worker.py).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "fully_shard_worker.py"


def _run(cmd: list[str], out: Path) -> None:
    out.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run([*cmd, str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_sharded_processes_take_one_process_steps_and_resume(tmp_path):
    _run([sys.executable], tmp_path / "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    _run([*torchrun, "--master_port", str(_free_port())], tmp_path / "two")
    one = torch.load(tmp_path / "one" / "final.pt")
    two = torch.load(tmp_path / "two" / "final.pt")
    resumed = torch.load(tmp_path / "two" / "resumed.pt")
    assert one.keys() == two.keys() == resumed.keys()
    # Every weight tensor moved (a no-op update would pass the comparison trivially).
    start = torch.load(tmp_path / "two" / "initial.pt")
    assert all(v.dtype == torch.float64 for v in start.values())
    assert all(float((two[k] - start[k]).abs().max()) > 1e-4 for k in start)
    assert max(float((one[k] - two[k]).abs().max()) for k in one) <= 1e-6  # measured 3e-14
    assert max(float((two[k] - resumed[k]).abs().max()) for k in two) <= 1e-6  # measured 0
    counters = {name: json.loads((tmp_path / name / "steps.json").read_text()) for name in ("one", "two")}
    assert set(counters["one"]["final"]) == set(counters["two"]["final"]) == {5}
    assert set(counters["two"]["resumed"]) == {5}
