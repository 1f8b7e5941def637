#!/usr/bin/env bash
# GPU check: the tiny model on CUDA in bf16 through real training steps, then the test suite's
# GPU marks, then (when installed: pip install -e '.[vllm]') vLLM rollouts with full fine-tuning
# and LoRA, (with 2+ GPUs) FSDP, then the 3B scale rehearsal (scripts/scale_rehearsal.sh); prints step
# times and the vLLM log-prob mismatch. Estimated under 12 minutes on one H100; downloads nothing (the tiny model
# and a 40-step warm start are built locally, about a minute). Needs the dev/test install.
#   bash scripts/gpu_check.sh            (PYTHON=... to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export SPECIARL_CACHE="${SPECIARL_CACHE:-$PWD/.cache/speciarl}" WANDB_MODE=offline HF_HUB_OFFLINE=1
OUT="${OUT_DIR:-outputs/gpu_check}"
rm -rf "$OUT"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'bf16', torch.cuda.is_bf16_supported())"

step_times() {  # mean step time and its phases from the run's metrics.csv
  "$PY" - "$1" "$2" <<'PY'
import csv, glob, json, statistics, sys
out, label = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(glob.glob(f"{out}/csv/version_*/metrics.csv")[0])) if r.get("train/loss")]
res = json.load(open(f"{out}/results.json"))
phases = [k for k in rows[0] if k.startswith("train/time_") and rows[0][k]]
steps = rows[1:] or rows  # the first step pays CUDA warm-up
print(f"[{label}] {res['steps']} optimiser steps, {len(rows)} rollout batches in {res['fit_seconds']:.1f} s of fit "
      f"({res['fit_seconds'] / len(rows):.3f} s a batch, validation included; {res['wall_seconds']:.1f} s wall)")
for k in phases:
    vals = [float(r[k]) for r in steps if r.get(k)]
    print(f"[{label}]   {k[len('train/time_'):]:<18} median {statistics.median(vals):.3f} s  (steps 2..{len(rows)})")
print(f"[{label}] after: correctness {res['after']['val/correctness']:.3f}  loss finite: "
      f"{all(float(r['train/loss']) == float(r['train/loss']) for r in rows)}")
PY
}

COMMON=(
  "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]"
  trainer=gpu trainer.max_steps=20 trainer.val_check_interval=10
  data.batch_size=32 data.val.size=256 eval.best_of_n=0 logger=csv
)
echo "== 1. DAPO + SpeciaRL, full fine-tuning, bf16-mixed, 20 steps of 32 prompts x 4"
"$PY" -m speciarl.train experiment=dapo_speciarl "${COMMON[@]}" hydra.run.dir="$OUT/full" > "$OUT.full.log" 2>&1 \
  || { tail -40 "$OUT.full.log"; exit 1; }
step_times "$OUT/full" full

echo "== 2. GRPO + SpeciaRL, LoRA r 16, gradient checkpointing, 512-token micro-batches, 2 mini-batches"
"$PY" -m speciarl.train algorithm=grpo reward=speciarl "${COMMON[@]}" "model.lora={r:16,alpha:32}" \
  model.gradient_checkpointing=true module.logprob_token_budget=512 algorithm.mini_batches=2 \
  trainer.max_steps=20 hydra.run.dir="$OUT/lora" > "$OUT.lora.log" 2>&1 || { tail -40 "$OUT.lora.log"; exit 1; }
step_times "$OUT/lora" lora

echo "== 3. test suite, GPU marks"
"$PY" -m pytest -m gpu -rs -q -p no:cacheprovider

mismatch() {  # the engine-vs-policy log-prob gap logged each step (must stay ~1e-3 or less in bf16)
  "$PY" - "$1" "$2" <<'PY'
import csv, glob, sys
out, label = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(glob.glob(f"{out}/csv/version_*/metrics.csv")[0])) if r.get("train/loss")]
for i, r in enumerate(rows):
    print(f"[{label}] step {i}: |logp_vllm - logp_policy| mean {r.get('train/rollout_logp_diff_mean')} max {r.get('train/rollout_logp_diff_max')}")
PY
}
if "$PY" -c "import vllm" 2>/dev/null; then
  for variant in full lora; do
    extra=(); [ "$variant" = lora ] && extra=("model.lora={r:16,alpha:32}")
    echo "== 4. vLLM rollouts ($variant), DAPO + SpeciaRL, 5 steps, weights synced after every step"
    "$PY" -m speciarl.train experiment=dapo_speciarl "${COMMON[@]}" "${extra[@]}" rollout=vllm \
      rollout.max_new_tokens=64 rollout.max_model_len=512 trainer.max_steps=5 trainer.val_check_interval=5 \
      hydra.run.dir="$OUT/vllm_$variant" > "$OUT.vllm_$variant.log" 2>&1 || { tail -40 "$OUT.vllm_$variant.log"; exit 1; }
    step_times "$OUT/vllm_$variant" "vllm_$variant"
    mismatch "$OUT/vllm_$variant" "vllm_$variant"
  done
else
  echo "== 4. vLLM not installed (pip install -e '.[vllm]'): vLLM rollouts skipped"
fi

if [ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  echo "== 5. FSDP over every GPU, full fine-tuning, 10 steps"
  "$PY" -m speciarl.train experiment=dapo_speciarl "${COMMON[@]/trainer=gpu/trainer=fsdp}" trainer.max_steps=10 \
    hydra.run.dir="$OUT/fsdp" > "$OUT.fsdp.log" 2>&1 || { tail -40 "$OUT.fsdp.log"; exit 1; }
  step_times "$OUT/fsdp" fsdp
else
  echo "== 5. one GPU: FSDP skipped (needs 2 or more)"
fi

echo "== 6. scale rehearsal: Qwen2.5-VL-3B at its real widths (random bf16 weights built by code), 3 RL steps"
# The full depth on the GPU (the CPU rehearsal ran a cut-down depth in float32: docs/scaling.md).
OUT_DIR="$OUT/scale_rehearsal" TRAINER=gpu DTYPE=bfloat16 SKIP_TESTS=1 PYTHON="$PY" \
  bash scripts/scale_rehearsal.sh > "$OUT.scale.log" 2>&1 || { tail -40 "$OUT.scale.log"; exit 1; }
tail -8 "$OUT.scale.log"
