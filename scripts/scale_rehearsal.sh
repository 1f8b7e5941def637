#!/usr/bin/env bash
# The scale rehearsal (docs/scaling.md): Qwen2.5-VL-3B / -7B at their real widths with random weights
# built by code, on whatever device this runs on. Not in CI (minutes to hours on a CPU); CI keeps
# tests/integration/test_real_width_rehearsal.py (2 layers, 2 vision blocks, 2 RL steps).
#   bash scripts/scale_rehearsal.sh                 (PYTHON=... to pick the interpreter)
# Settings (env): LAYERS / VISION_BLOCKS (3B RL depth; empty: the real 36 / 32), DTYPE (bfloat16 |
# float32), PROMPTS (2), STEPS (3), TRAINER (cpu | gpu), BUDGET (module.logprob_token_budget, 8192),
# RETAIN (module.retain_host_memory, true), SKIP_7B=1, SKIP_TESTS=1, VLLM_PYTHON (the vLLM CPU venv's
# python: adds benchmarks/vllm_full_width.py: the engine on the whole 3B, then 2 RL steps of the whole
# 3B in bf16 through vLLM, about an hour on 2 cores). On this project's 2-core AVX2 CPU the measured
# full-depth run used DTYPE=float32 BUDGET=1548 RETAIN=false (measured before bf16 layers multiplied
# in float32 on such CPUs, model.cpu_float32_matmuls; float32 fits 24 GiB with one prompt's rows per
# micro-batch and freed memory handed back at once: docs/scaling.md); a GPU runs the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=offline HF_HUB_OFFLINE=1
OUT="${OUT_DIR:-outputs/scale_rehearsal}"
LAYERS="${LAYERS:-}" VISION_BLOCKS="${VISION_BLOCKS:-}" DTYPE="${DTYPE:-bfloat16}"
PROMPTS="${PROMPTS:-2}" STEPS="${STEPS:-3}" TRAINER="${TRAINER:-cpu}"
BUDGET="${BUDGET:-8192}" RETAIN="${RETAIN:-true}"
rm -rf "$OUT" && mkdir -p "$OUT"
TABLE="$OUT/table.md"
echo "| check | result |" > "$TABLE"; echo "|---|---|" >> "$TABLE"
row() { echo "| $1 | $2 |" >> "$TABLE"; }
lscpu 2>/dev/null | grep -E "^Model name|^CPU\(s\)" || true
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true

if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== 1. presets, fast paths at full width, the CI cut-down run"
  if "$PY" -m pytest -q tests/unit/test_qwen_architecture.py tests/integration/test_real_width_fast_paths.py \
      tests/integration/test_real_width_rehearsal.py > "$OUT/tests.log" 2>&1; then
    row "tests (presets, fast paths at 3B width, 2 RL steps cut-down)" "$(tail -1 "$OUT/tests.log")"
  else
    tail -30 "$OUT/tests.log"; row "tests" "FAILED: $OUT/tests.log"
  fi
fi

echo "== 2. 3B RL steps: DAPO + SpeciaRL, LoRA r 16, G 4, $PROMPTS prompts, 64 forced tokens, 448x448"
DEPTH=(); [ -n "$LAYERS" ] && DEPTH+=("model.layers=$LAYERS"); [ -n "$VISION_BLOCKS" ] && DEPTH+=("model.vision_blocks=$VISION_BLOCKS")
/usr/bin/time -v "$PY" -m speciarl.train experiment=dapo_speciarl model=qwen2_5_vl_3b_random "${DEPTH[@]}" \
  model.dtype="$DTYPE" +data.train.image_size=448 +data.val.image_size=448 data.batch_size="$PROMPTS" \
  algorithm.group_size=4 rollout.max_new_tokens=64 rollout.min_new_tokens=64 trainer="$TRAINER" \
  trainer.max_steps="$STEPS" eval.before=false eval.after=false eval.best_of_n=0 logger=csv \
  module.logprob_token_budget="$BUDGET" module.retain_host_memory="$RETAIN" \
  hydra.run.dir="$OUT/rl3b" > "$OUT/rl3b.log" 2> "$OUT/rl3b.time" &
TIMED=$!
# The resident set every 2 s (seconds since start, GiB), to place the peak in a phase of the step.
( START=$(date +%s); while kill -0 "$TIMED" 2>/dev/null; do
    CHILD=$(pgrep -P "$TIMED" | head -1)
    [ -n "$CHILD" ] && awk -v t=$(( $(date +%s) - START )) '/VmRSS/ {printf "%d %.2f\n", t, $2 / 1048576}' "/proc/$CHILD/status" 2>/dev/null
    sleep 2; done ) > "$OUT/rl3b.rss" &
wait "$TIMED" || { tail -n 40 "$OUT/rl3b.log" "$OUT/rl3b.time"; exit 1; }
RSS=$(awk -F': ' '/Maximum resident/ {printf "%.2f", $2 / 1024 / 1024}' "$OUT/rl3b.time")
"$PY" - "$OUT/rl3b" <<'PY' | tee "$OUT/rl3b.phases"
import csv, glob, statistics, sys
rows = [r for r in csv.DictReader(open(glob.glob(f"{sys.argv[1]}/csv/version_*/metrics.csv")[0])) if r.get("train/loss")]
phases = [k for k in rows[0] if k.startswith("train/time_") and rows[0][k]]
print("; ".join(f"{k[len('train/time_'):]} {statistics.median(float(r[k]) for r in rows):.1f} s" for k in phases))
PY
grep -m1 "log-probs:" "$OUT/rl3b.log" || true
EST=$("$PY" -m speciarl.memory --model 3b --lora-r 16 --host --prompts "$PROMPTS" --dtype "$DTYPE" --budget "$BUDGET" \
  $( [ "$RETAIN" = true ] && echo --retain-host-memory ) \
  ${LAYERS:+--layers $LAYERS} ${VISION_BLOCKS:+--vision-blocks $VISION_BLOCKS} | awk '/estimated peak RSS/ {print $4}')
row "3B RL, $STEPS steps (layers ${LAYERS:-36}, vision ${VISION_BLOCKS:-32}, $DTYPE, budget $BUDGET, retain $RETAIN): median phases" "$(cat "$OUT/rl3b.phases")"
row "3B RL peak RSS measured / estimated (python -m speciarl.memory --host)" "$RSS GiB / $EST GiB"

if [ -z "${SKIP_7B:-}" ]; then
  echo "== 3. 7B: load with random bf16 weights, one forward and one LoRA backward of one prompt"
  /usr/bin/time -v "$PY" benchmarks/real_width_load.py --size 7b --image 112 --backward > "$OUT/load7b.json" 2> "$OUT/load7b.time"
  EST7=$("$PY" -m speciarl.memory --model 7b | awk -F'|' '/base weights/ {gsub(/ /, "", $3); print $3; exit}')
  row "7B load + forward + LoRA backward (112x112 image)" "$(cat "$OUT/load7b.json")"
  row "7B peak RSS measured / weights estimated" "$(awk -F': ' '/Maximum resident/ {printf "%.2f", $2 / 1024 / 1024}' "$OUT/load7b.time") GiB / $EST7 GiB (+0.45 process)"
fi
if [ -n "${VLLM_PYTHON:-}" ]; then
  echo "== 4. vLLM: the whole 3B architecture with dummy weights; 2 training steps of the whole 3B (bf16) through it"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} \
    "$VLLM_PYTHON" benchmarks/vllm_full_width.py --out "$OUT/vllm" > "$OUT/vllm.log" 2>&1 || { tail -n 40 "$OUT/vllm.log"; exit 1; }
  row "vLLM engine, whole 3B (dummy weights)" "$(grep '^engine:' "$OUT/vllm.log")"
  row "vLLM rollouts through 2 training steps, whole 3B, bf16" "$(grep '^train:' "$OUT/vllm.log")"
fi
echo; cat "$TABLE"
