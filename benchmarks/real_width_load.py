"""Load the real-width Qwen2.5-VL (random bf16 weights, built by code) and run one forward; print peak RSS.

    python benchmarks/real_width_load.py --size 7b --image 112 [--backward]

The peak resident set after the build and after the forward, beside ``python -m speciarl.memory``'s
weights figure. ``--backward`` adds one LoRA backward of the log-probs of the last 8 positions.

On a CPU without native bf16 arithmetic (AVX2 only), torch's bf16 ``grad @ W`` (a frozen Linear's
input gradient) runs at ~0.26 GFLOP/s, against ~20 for the forward's ``x @ W.T`` and ~40 for the
same product with both sides upcast to float32 (measured: docs/scaling.md); the 7B backward
would take over an hour. The policy's ``model.cpu_float32_matmuls`` (``speciarl.policy.cpu_matmuls``,
``auto`` here: on for such a CPU) multiplies each frozen bf16 Linear in float32, a slab of the weight
at a time, forward and backward, rounded to bf16; ``--matmuls false`` measures torch's own kernels.
``--layers`` / ``--vision-blocks`` cut the depth at full width.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

GIB = 1024**3


def peak_rss_gib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def main() -> None:
    from speciarl.built_models.random_qwen import random_qwen_policy
    from speciarl.data.synthetic import SyntheticShapes
    from speciarl.policy.cpu_matmuls import Float32MatmulLinear

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="7b", choices=["3b", "7b"])
    parser.add_argument("--image", type=int, default=448, help="image side in pixels (448: 256 image tokens)")
    parser.add_argument("--lora-r", type=int, default=64)
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--vision-blocks", type=int, default=None)
    parser.add_argument(
        "--matmuls", default="auto", choices=["auto", "true", "false"], help="model.cpu_float32_matmuls"
    )
    args = parser.parse_args()
    figures: dict[str, float | int | str] = {"size": args.size}
    started = time.perf_counter()
    matmuls = {"true": True, "false": False}.get(args.matmuls, "auto")
    policy = random_qwen_policy(
        args.size,
        args.layers,
        args.vision_blocks,
        dtype="bfloat16",
        lora={"r": args.lora_r, "alpha": 32},
        cpu_float32_matmuls=matmuls,
    )
    figures["build_s"] = round(time.perf_counter() - started, 1)
    figures["parameters"] = sum(p.numel() for p in policy.model.parameters())
    figures["peak_rss_after_build_gib"] = round(peak_rss_gib(), 2)
    figures["float32_matmul_linears"] = sum(type(m) is Float32MatmulLinear for m in policy.model.modules())
    prompts = policy.encode_prompts([SyntheticShapes(size=1, seed=1, image_size=args.image)[0]])
    figures["prompt_tokens"] = int(prompts.input_ids.shape[1])
    started = time.perf_counter()
    with torch.set_grad_enabled(args.backward):
        out = policy.model(**prompts.model_inputs(), use_cache=False, logits_to_keep=8)
    figures["forward_s"] = round(time.perf_counter() - started, 1)
    figures["peak_rss_after_forward_gib"] = round(peak_rss_gib(), 2)
    if args.backward:
        started = time.perf_counter()
        out.logits.float().log_softmax(-1).max(-1).values.sum().backward()
        figures["backward_s"] = round(time.perf_counter() - started, 1)
        grads = [p.grad for n, p in policy.model.named_parameters() if "lora_" in n and p.grad is not None]
        figures["lora_tensors_with_grad"] = len(grads)
        figures["lora_grad_norm"] = float(
            torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))
        )
        figures["peak_rss_after_backward_gib"] = round(peak_rss_gib(), 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
