"""The real vLLM engine and ``vllm serve`` on this machine's CPU (``bash scripts/vllm_cpu_check.sh``).

Every test here skips when vllm cannot be imported (the normal suite's environment); in the
vLLM CPU environment built by ``scripts/setup_vllm_cpu.sh`` they run against the real thing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # judge_support, chat_server

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm not importable: run scripts/vllm_cpu_check.sh")
# Share of RAM vLLM's CPU backend reserves for its KV cache (its "gpu_memory_utilization").
CPU_MEMORY_SHARE = os.environ.get("SPECIARL_VLLM_MEMORY_SHARE", "0.08")
STARTUP_TIMEOUT_S = float(os.environ.get("SPECIARL_VLLM_STARTUP_TIMEOUT_S", "900"))


class VLLMServer:
    """vLLM's OpenAI-compatible server (what ``vllm serve`` runs) on a free loopback port; waits for /v1/models."""

    def __init__(self, model: Path, name: str, log_path: Path, extra: list[str] = ()) -> None:
        from judge_support import free_port

        self.port = free_port()
        self.name = name
        self.log_path = log_path
        self.command = [
            # vllm-cpu's `vllm` CLI dies looking up the version of a distribution named "vllm"
            # (it is "vllm-cpu"); this module is the same OpenAI server `vllm serve` starts.
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(self.port), "--served-model-name", name,
            "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048",
            "--gpu-memory-utilization", CPU_MEMORY_SHARE, *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.startup_s = float("nan")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> VLLMServer:
        started = time.monotonic()
        log = self.log_path.open("w")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < STARTUP_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.process.returncode}: see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        self.startup_s = time.monotonic() - started
                        return self
            except OSError:
                time.sleep(2)
        self.__exit__(None, None, None)
        raise TimeoutError(f"vllm serve not up after {STARTUP_TIMEOUT_S:.0f} s: see {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
