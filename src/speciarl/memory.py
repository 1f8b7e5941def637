"""GPU memory estimate of a training rank, from the model's sizes (an estimate, not a measurement).

    python -m speciarl.memory            # the 7B preset: Qwen2.5-VL-7B-Instruct, LoRA r 64, bf16
    python -m speciarl.memory --model 3b --lora-r 16 --host   # the CPU scale rehearsal's process

Parameter and LoRA counts are exact: the model is built on PyTorch's meta device (no memory, no
download) from its config, and LoRA's r * (in + out) is summed over the linear layers the preset
adapts. The per-token figures are estimates of this code path (stated with each row).
"""

from __future__ import annotations

import re
from typing import Any

from speciarl.memory_host import GIB, HostRun, ModelSizes, host_peak_gib, host_rows

# vocab_chunks.DEFAULT_MAX_LOGITS: the most logits alive at once in the log-prob passes.
VOCAB_CHUNK_LOGITS = 2**26
# apply_lora's "all-linear-language": every LM linear, nothing under the vision tower.
LORA_TARGET = re.compile(r"^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$")


def qwen2_5_vl_7b_config() -> Any:
    """The published Qwen2.5-VL-7B-Instruct architecture (config.json), without downloading it."""
    from speciarl.policy.qwen_architecture import QWEN2_5_VL_7B, qwen_vl_config

    return qwen_vl_config(QWEN2_5_VL_7B)


def model_sizes(config: Any, lora_r: int) -> ModelSizes:
    """Exact parameter counts of ``config``'s model and of a rank-``lora_r`` adapter on its LM linears."""
    import torch  # here, not at the top: `--help` answers without loading torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    lora = sum(
        lora_r * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and LORA_TARGET.match(name)
    )
    text = config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    return ModelSizes(
        parameters=sum(p.numel() for p in model.parameters()),
        vision_parameters=sum(p.numel() for n, p in model.named_parameters() if "visual" in n),
        lora_parameters=lora,
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        kv_width=text.num_key_value_heads * head_dim,
        vocab=text.vocab_size,
    )


def memory_rows(
    sizes: ModelSizes,
    token_budget: int,
    completion_share: float = 0.5,
    gpu_gib: float = 80.0,
    vllm_fraction: float = 0.3,
    gradient_checkpointing: bool = True,
) -> list[tuple[str, float, str]]:
    """(item, GiB, how it is counted) for one rank of a LoRA run with bf16 base weights.

    Activations are per micro-batch of ``token_budget`` tokens, ``completion_share`` of them
    completion tokens (only those are projected to the vocabulary).
    """
    h, layers = sizes.hidden, sizes.layers
    # one layer's saved tensors in bf16: norms, q/k/v/o, attention output, SwiGLU (gate, up, act, product)
    per_layer = 2 * (4 * h + 2 * sizes.kv_width + 4 * sizes.intermediate)
    if gradient_checkpointing:
        act_per_token = 2 * h * layers + per_layer  # each layer's input kept, one layer recomputed at a time
        act_note = "checkpointed: 2 B x hidden x layers, plus one recomputed layer"
    else:
        act_per_token = per_layer * layers
        act_note = "every layer's saved tensors (no checkpointing)"
    # bf16 logits, their fp32 copy, logsumexp's temporary, the fp32 gradient: 14 B per vocab entry.
    # Only one vocabulary chunk exists at a time (vocab_chunks: each chunk checkpointed, at most
    # 2**26 logits), not every completion token's row.
    logit_bytes = 14 * sizes.vocab
    completion_tokens = token_budget * completion_share
    chunk_tokens = min(completion_tokens, VOCAB_CHUNK_LOGITS // sizes.vocab)
    return [
        (
            "base weights, bf16 (frozen, vision included)",
            2 * sizes.parameters / GIB,
            f"{sizes.parameters:,} x 2 B",
        ),
        ("LoRA weights, fp32", 4 * sizes.lora_parameters / GIB, f"{sizes.lora_parameters:,} x 4 B"),
        ("LoRA gradients, fp32", 4 * sizes.lora_parameters / GIB, "as the weights"),
        ("AdamW moments, fp32", 8 * sizes.lora_parameters / GIB, "2 x 4 B per LoRA weight"),
        (
            f"activations, {token_budget:,}-token micro-batch",
            act_per_token * token_budget / GIB,
            f"{act_per_token / 1024:,.0f} KiB a token ({act_note})",
        ),
        (
            f"logits of one vocabulary chunk ({chunk_tokens:,.0f} of {completion_tokens:,.0f} completion tokens)",
            logit_bytes * chunk_tokens / GIB,
            f"{logit_bytes / 1024**2:.1f} MiB a token (bf16 + fp32 + logsumexp + fp32 gradient)",
        ),
        (
            "vLLM engine while generating (asleep while training)",
            vllm_fraction * gpu_gib,
            f"gpu_memory_utilization {vllm_fraction} x {gpu_gib:.0f} GiB; its weights sleep in CPU RAM",
        ),
    ]


def format_table(rows: list[tuple[str, float, str]]) -> str:
    """A Markdown table with training-phase and rollout-phase totals."""
    lines = ["| item | GiB (estimated) | counted as |", "|---|---:|---|"]
    lines += [f"| {item} | {gib:.1f} | {note} |" for item, gib, note in rows]
    static = sum(gib for item, gib, _ in rows[:4])
    training = static + rows[4][1] + rows[5][1]
    rollout = static + rows[6][1]
    lines.append(
        f"| **peak while training** (static + activations + logits) | **{training:.1f}** | vLLM asleep |"
    )
    lines.append(f"| **peak while generating** (static + vLLM) | **{rollout:.1f}** | no activations held |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m speciarl.memory",
        description="Estimate the memory of one training rank of Qwen2.5-VL with LoRA: a GPU rank "
        "(bf16, per log-prob token budget) or, with --host, the CPU process of the scale rehearsal. "
        "Parameter counts are exact (meta device); the rest are estimates.",
    )
    parser.add_argument("--model", default="7b", choices=["3b", "7b"], help="architecture (default 7b)")
    parser.add_argument("--layers", type=int, default=None, help="cut-down decoder depth (default: real)")
    parser.add_argument("--vision-blocks", type=int, default=None, help="cut-down vision depth")
    parser.add_argument("--lora-r", type=int, default=64, help="LoRA rank (default 64, the paper's)")
    parser.add_argument(
        "--budget",
        type=int,
        nargs="+",
        default=None,
        help="logprob_token_budget values, one table each (default 16384 32768); "
        "--host: the first one (default 8192, train.yaml's)",
    )
    parser.add_argument("--host", action="store_true", help="the CPU process of one RL step instead")
    parser.add_argument("--prompts", type=int, default=2, help="--host: prompts a step")
    parser.add_argument("--group", type=int, default=4, help="--host: rollouts a prompt (G)")
    parser.add_argument("--prompt-tokens", type=int, default=323, help="--host: 323 = a 448x448 image prompt")
    parser.add_argument("--new-tokens", type=int, default=64, help="--host: completion tokens")
    parser.add_argument(
        "--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="--host: weights"
    )
    parser.add_argument(
        "--retain-host-memory",
        action="store_true",
        help="--host: module.retain_host_memory=true (the default of runs; heap holes add to the peak)",
    )
    args = parser.parse_args(argv)
    from speciarl.policy.qwen_architecture import architecture, qwen_vl_config

    arch = architecture(args.model).cut_down(args.layers, args.vision_blocks)
    sizes = model_sizes(qwen_vl_config(arch), lora_r=args.lora_r)
    print(
        f"{arch.name}: {sizes.parameters:,} parameters ({sizes.vision_parameters:,} vision); "
        f"LoRA r {args.lora_r} on every LM linear: {sizes.lora_parameters:,}"
    )
    if args.host:
        run = HostRun(
            args.prompts,
            args.group,
            args.prompt_tokens,
            args.new_tokens,
            4 if args.dtype == "float32" else 2,
            token_budget=(args.budget or [8192])[0],
            retain_host_memory=args.retain_host_memory,
        )
        rows = host_rows(sizes, run)
        print("\nCPU process, one RL step (own decode loop, completion pass, no checkpointing):")
        print("| item | GiB (estimated) | counted as |\n|---|---:|---|")
        print("\n".join(f"| {item} | {gib:.2f} | {note} |" for item, gib, note in rows))
        print(f"estimated peak RSS: {host_peak_gib(rows):.2f} GiB")
        return
    for budget in args.budget or [16384, 32768]:
        print(f"\nper rank, logprob_token_budget={budget}, half of the tokens completion tokens:")
        print(format_table(memory_rows(sizes, budget)))


if __name__ == "__main__":
    main()
