#!/usr/bin/env bash
# Run the tests that need the real vLLM (engine and `vllm serve`) in the vLLM CPU environment
# built by scripts/setup_vllm_cpu.sh; they skip in the normal suite. Takes ~15-30 minutes on
# 2 cores (each engine start is minutes there). Also runs the stock-processor test, whose
# AutoProcessor branch needs the torchvision only this environment has.
#
#   VENV=.venv-vllm-cpu bash scripts/vllm_cpu_check.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-vllm-cpu}
if [ ! -x "$VENV/bin/python" ]; then
    echo "no vLLM CPU environment at $VENV: run bash scripts/setup_vllm_cpu.sh first" >&2
    exit 2
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 WANDB_MODE=offline
# An explicit KV cache (GiB) for every engine and server the tests start. Without it vLLM's CPU
# backend reserves gpu_memory_utilization x the memory of one NUMA node minus the worker's own
# RSS (~0.8 GiB), which is negative on a VM with a small node 0 (docs/vllm-cpu.md).
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
exec "$VENV/bin/python" -m pytest -ra -p no:cacheprovider \
    tests/integration/test_stock_processor.py tests/vllm_cpu "$@"
