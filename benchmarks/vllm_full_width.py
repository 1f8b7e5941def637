"""vLLM at Qwen2.5-VL-3B's real widths on CPU: the engine at full depth, and LoRA training through it.

Runs in the vLLM CPU environment (``bash scripts/setup_vllm_cpu.sh``, docs/vllm-cpu.md):

    OMP_NUM_THREADS=2 VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm-cpu/bin/python benchmarks/vllm_full_width.py

1. ``engine``: the whole 3B architecture (36 layers, 32 vision blocks, vocabulary 151,936) with
   vLLM's dummy weights (``load_format="dummy"``; ``--engine-dtype``, float32 by default: this
   AVX2 CPU has no bf16 arithmetic, a GPU runs bf16): the model folder holds only the config,
   the tokenizer built by code (real special-token ids) and the card's processor. Measured: engine
   start, the first request, and tokens/s for ``--prompts`` prompts x G ``--group`` x
   ``--new-tokens`` forced tokens on 448x448 images (256 image tokens each), and the peak RSS of
   the engine's processes.
2. ``train``: the 3B widths, the whole depth by default (``--layers`` / ``--vision-blocks`` cut it),
   the random model saved whole so that the engine and the policy hold the same weights; then
   ``python -m speciarl.train`` with ``rollout=vllm`` and LoRA r 16 for ``--steps`` steps: the
   adapter is sent to the engine after every optimiser step, and each step logs the
   train/inference log-prob mismatch (``train/rollout_logp_diff_mean`` / ``_max``) and its phases.
   The random model's rewards are all equal (every answer unparsable and forced to full length),
   so the policy gradient is 0: a small entropy bonus (``--entropy-coef``) gives the adapter a
   gradient, so that step 2's rollouts come from a changed adapter (its norm is read from the
   step checkpoints) and the sync is exercised, not a no-op.

Memory: at full depth, a float32 policy (20 GiB at peak) beside a float32 engine (19 GiB) does not
fit in 24 GiB; ``--train-dtype bfloat16`` (the default) does: weights of 7 GiB in each. The
bf16 policy's frozen layers multiply in float32 on a CPU without bf16 arithmetic
(``model.cpu_float32_matmuls=auto``), else its backward would take hours.
Writes ``vllm_full_width.json`` in ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GIB = 1024**3


def children_peak_rss_gib() -> float:
    """Peak resident set of the largest waited-for child process (vLLM's engine core), GiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GIB


def write_config_folder(folder: Path) -> None:
    """The full 3B architecture's config, tokenizer and processor; no weights (the engine makes dummies)."""
    from speciarl.built_models.random_qwen import build_qwen_processor
    from speciarl.policy.processor import make_stock
    from speciarl.policy.qwen_architecture import architecture, qwen_vl_config

    config = qwen_vl_config(architecture("3b"))
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]  # else vLLM takes it for a pooling model
    config.save_pretrained(str(folder))
    build_qwen_processor().save_pretrained(str(folder))
    make_stock(folder)


def engine_check(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Start vLLM on the dummy full-depth 3B and sample G completions for each of ``--prompts`` images."""
    import vllm

    from speciarl.core.prompts import chat_messages, prompt_text
    from speciarl.data.synthetic import SyntheticShapes

    write_config_folder(folder)
    started = time.perf_counter()
    llm = vllm.LLM(
        model=str(folder),
        load_format="dummy",
        dtype=args.engine_dtype,
        enforce_eager=True,
        max_model_len=512,
        limit_mm_per_prompt={"image": 1},
        gpu_memory_utilization=0.5,
        seed=0,
    )
    figures: dict[str, Any] = {"engine_start_s": round(time.perf_counter() - started, 1)}
    from speciarl.built_models.random_qwen import build_qwen_processor

    processor = build_qwen_processor()  # the card's chat template, as the policy applies it
    samples = SyntheticShapes(size=args.prompts, seed=3, image_size=448)
    requests = [
        {
            "prompt": processor.apply_chat_template(
                chat_messages(samples[i].image, prompt_text("base")),
                add_generation_prompt=True,
                tokenize=False,
            ),
            "multi_modal_data": {"image": samples[i].image},
        }
        for i in range(args.prompts)
    ]
    params = vllm.SamplingParams(
        n=args.group, max_tokens=args.new_tokens, min_tokens=args.new_tokens, ignore_eos=True, temperature=1.0
    )
    started = time.perf_counter()
    llm.generate(requests[:1], vllm.SamplingParams(max_tokens=1), use_tqdm=False)
    figures["first_request_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    outputs = llm.generate(requests, params, use_tqdm=False)
    seconds = time.perf_counter() - started
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    figures.update(
        prompt_tokens=len(outputs[0].prompt_token_ids),
        image_tokens=sum(1 for t in outputs[0].prompt_token_ids if t == 151655),
        generated_tokens=tokens,
        generate_s=round(seconds, 1),
        tokens_per_s=round(tokens / seconds, 1),
    )
    llm.llm_engine.engine_core.shutdown(timeout=60.0)
    figures["engine_peak_rss_gib"] = round(children_peak_rss_gib(), 2)
    return figures


def save_random_model(args: argparse.Namespace, folder: Path) -> None:
    """The random 3B at ``--layers`` depth, weights and all (``--train-dtype``), for engine and policy alike."""
    from speciarl.built_models.random_qwen import random_qwen_policy
    from speciarl.policy.processor import make_stock

    policy = random_qwen_policy("3b", args.layers, args.vision_blocks, dtype=args.train_dtype, lora=None)
    policy.model.save_pretrained(str(folder))
    policy.processor.save_pretrained(str(folder))
    make_stock(folder)


def train_check(args: argparse.Namespace, folder: Path, out: Path) -> dict[str, Any]:
    """RL steps of the random 3B with vLLM rollouts and LoRA r 16; per-step mismatch, phases, adapter norm."""
    if not (folder / "config.json").exists():
        save_random_model(args, folder)
    run = out / "train"
    command = [
        sys.executable, "-m", "speciarl.train", "experiment=dapo_speciarl", "model=qwen2_5_vl_7b",
        f"model.path={folder}", f"model.dtype={args.train_dtype}", "model.lora.r=16", "model.lora.alpha=32",
        "model.gradient_checkpointing=false", "rollout=vllm", f"rollout.dtype={args.train_dtype}",
        "rollout.enforce_eager=true", "rollout.gpu_memory_utilization=0.3", "rollout.sleep_between_steps=false",
        "rollout.max_model_len=512", f"rollout.max_new_tokens={args.new_tokens}",
        f"+rollout.min_new_tokens={args.new_tokens}", "+data.train.image_size=448", "+data.val.image_size=448",
        f"data.batch_size={args.prompts}", f"algorithm.group_size={args.group}", f"trainer.max_steps={args.steps}",
        "eval.before=false", "eval.after=false", "eval.best_of_n=0", "logger=csv", f"hydra.run.dir={run}",
        f"algorithm.entropy_coef={args.entropy_coef}", f"optimizer.lr={args.lr}", "module.retain_host_memory=false",
        f"module.logprob_token_budget={args.budget}", "checkpoint=periodic", "checkpoint.every_n_train_steps=1",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    # vLLM gives up on a model call after 300 s; the first bf16 prefill at full depth on an AVX2
    # CPU (448x448 image, 32 vision blocks) takes longer.
    env.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "3600")
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    (out / "train.out").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"training with vLLM failed ({done.returncode}): see {out / 'train.out'}")
    (path,) = run.glob("csv/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(path.open()) if r.get("train/reward_mean")]
    keys = (
        "train/rollout_logp_diff_mean",
        "train/rollout_logp_diff_max",
        "train/time_rollout",
        "train/time_update",
        "train/grad_norm",
        "train/entropy",
    )
    steps = [{k.split("/", 1)[1]: float(r[k]) for k in keys if r.get(k)} for r in rows]
    route = [line for line in (done.stdout + done.stderr).splitlines() if "log-probs:" in line]
    for step, norm in zip(steps, lora_b_norms(run / "checkpoints")):
        step["lora_B_norm_after"] = norm
    return {
        "steps": steps,
        "wall_s": round(wall, 1),
        "route": route[0].split("log-probs:", 1)[1].strip() if route else "not logged",
        "peak_rss_gib_all_children": round(children_peak_rss_gib(), 2),
    }


def lora_b_norms(folder: Path) -> list[float]:
    """The norm of all LoRA B matrices in each step checkpoint (0 at initialisation), in step order."""
    import torch

    norms = []
    for path in sorted(folder.glob("step-*.ckpt")):
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        squares = [v.float().square().sum() for k, v in state.items() if "lora_B" in k]
        norms.append(float(torch.stack(squares).sum().sqrt()))
    return norms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="engine,train")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--engine-dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--train-dtype", default="bfloat16", choices=["float32", "bfloat16"], help="policy and engine"
    )
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default: all 36)")
    parser.add_argument("--vision-blocks", type=int, default=None, help="vision blocks (default: all 32)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--entropy-coef", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--budget", type=int, default=1548, help="module.logprob_token_budget")
    parser.add_argument("--out", type=Path, default=Path("outputs/vllm_full_width"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}}
    if "engine" in args.parts:
        figures["engine"] = engine_check(args, args.out / "qwen3b-config-only")
        print("engine:", json.dumps(figures["engine"]), flush=True)
    if "train" in args.parts:
        depth = f"{args.layers or 36}-layers-{args.train_dtype}"
        figures["train"] = train_check(args, args.out / f"qwen3b-{depth}", args.out)
        print("train:", json.dumps(figures["train"]), flush=True)
    (args.out / "vllm_full_width.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
