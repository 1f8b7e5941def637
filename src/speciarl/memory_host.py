"""Host-memory estimate of one CPU training process (the scale rehearsal), and the model sizes both estimates read.

A CPU run holds everything in one address space: the process itself (Python, torch, transformers,
Lightning), the weights, the LoRA state, the rollout's KV cache while decoding and, while
training, the saved activations of the log-prob pass and one vocabulary chunk of logits. The
peak is the larger of the decoding and the training phase. Counted for this code path:

* the training pass runs each distinct prompt once (``shared_prompts``) and every row's
  completion tokens after it, so it holds ``prompts x P + rows x T`` tokens' activations, for the
  rows of the largest micro-batch (``module.logprob_token_budget``: consecutive rows, r = budget //
  (P + T) of them, counted with the prompts they span);
* the vision tower is frozen and carries no LoRA: its activations are freed block by block;
* logits exist for one vocabulary chunk at a time (``vocab_chunks``, at most 2**26 logits).

Two constants are measured, not derived (docs/scaling.md, the 3B widths in float32 on CPU):

* the tensors autograd saves for the backward, counted with ``saved_tensors_hooks`` at 2 and 4
  layers. A float32 model: 231,516 B a token and layer on the completion pass, ``(6.5 h + 2 kv +
  4 I)`` values within 0.05% (the first version counted ``4 h + 2 kv + 4 I`` and missed 10%). A
  bf16 model with LoRA saves most of it in float32 all the same (peft casts each LoRA input to the
  adapter's float32, the RMS norms compute in float32): ``2 h + 2 kv + 3 I`` bf16 values and
  ``8 h + I`` float32 values, fitted on the 3B and 7B widths and within 0.3% of both (185,352 and
  321,080 B); the first version counted all of it in bf16, ``2 B x (6.5 h + 2 kv + 4 I)``, 38% under;
* the resident set per saved byte: 0.99 with ``module.retain_host_memory=false`` (+126 MiB a layer
  for 128 MiB saved, 579 tokens: every large tensor is its own mapping, ``runs.host_memory``);
  1.82 for the first micro-batch with glibc's dynamic threshold or the retaining one (+233 MiB a
  layer), the forward's freed temporaries kept in holes of the heap, and later micro-batches of
  the step add more. The estimate counts 1.0 for the first setting and 1.82 for the second, so
  with several micro-batches a retaining run can exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
# Resident set of a process that imported speciarl.train and its stack (measured: 0.45 GiB).
PROCESS_BASELINE_GIB = 0.45
MAX_LOGITS = 2**26
SAVED_HIDDEN_WIDTHS = 6.5  # saved values a token and layer: 6.5 h + 2 kv + 4 I (measured)
RESIDENT_PER_SAVED_BYTE = {False: 1.0, True: 1.82}  # by retain_host_memory (measured)


@dataclass(frozen=True)
class ModelSizes:
    """Counts read off a model built on the meta device."""

    parameters: int
    vision_parameters: int
    lora_parameters: int
    layers: int
    hidden: int
    intermediate: int
    kv_width: int
    vocab: int


@dataclass(frozen=True)
class HostRun:
    """The settings of one RL step that shape its memory."""

    prompts: int
    group_size: int
    prompt_tokens: int
    new_tokens: int
    weight_bytes: int = 2  # 2: bfloat16, 4: float32
    gradient_checkpointing: bool = False
    token_budget: int | None = 8192  # module.logprob_token_budget (train.yaml's default)
    retain_host_memory: bool = False  # module.retain_host_memory

    @property
    def rows(self) -> int:
        return self.prompts * self.group_size

    def pass_rows_and_prompts(self) -> tuple[int, int]:
        """Rows and distinct prompts of the largest micro-batch of the training pass.

        Every row is P + T tokens wide (forced lengths), so the micro-batches are consecutive runs
        of r rows from row 0 (``policy.microbatch.token_budget_chunks``).
        """
        width = self.prompt_tokens + self.new_tokens
        rows = self.rows if not self.token_budget else max(1, min(self.rows, self.token_budget // width))
        spans = [
            (min(self.rows, start + rows) - 1) // self.group_size - start // self.group_size + 1
            for start in range(0, self.rows, rows)
        ]
        return rows, max(spans)


def saved_bytes_per_token_layer(sizes: ModelSizes, weight_bytes: int) -> float:
    """Bytes autograd saves a token and decoder layer in the LoRA training pass (measured; module doc)."""
    h, kv, inter = sizes.hidden, sizes.kv_width, sizes.intermediate
    if weight_bytes == 4:
        return 4 * (SAVED_HIDDEN_WIDTHS * h + 2 * kv + 4 * inter)
    # half precision: what stays in the model's dtype, and what LoRA and the norms keep in float32
    return weight_bytes * (2 * h + 2 * kv + 3 * inter) + 4 * (8 * h + inter)


def host_rows(sizes: ModelSizes, run: HostRun) -> list[tuple[str, float, str]]:
    """(item, GiB, how it is counted) for the CPU process of a LoRA run; the last two rows are the phase peaks."""
    b = run.weight_bytes
    h, layers, kv = sizes.hidden, sizes.layers, sizes.kv_width
    per_layer = saved_bytes_per_token_layer(sizes, b)
    pass_rows, pass_prompts = run.pass_rows_and_prompts()
    train_tokens = pass_prompts * run.prompt_tokens + pass_rows * run.new_tokens
    saved_per_token = (b * h * layers + per_layer) if run.gradient_checkpointing else per_layer * layers
    resident = RESIDENT_PER_SAVED_BYTE[run.retain_host_memory]
    act_per_token = resident * saved_per_token
    kv_cache = run.rows * (run.prompt_tokens + run.new_tokens) * layers * 2 * kv * b
    chunk_tokens = min(pass_rows * run.new_tokens, MAX_LOGITS // sizes.vocab)
    rows = [
        (
            "process (Python, torch, transformers, Lightning)",
            PROCESS_BASELINE_GIB,
            "measured after the imports",
        ),
        ("base weights", b * sizes.parameters / GIB, f"{sizes.parameters:,} x {b} B"),
        (
            "LoRA weights, gradients, AdamW moments (fp32)",
            16 * sizes.lora_parameters / GIB,
            "16 B a LoRA weight",
        ),
        (
            "rollout KV cache (own decode loop)",
            kv_cache / GIB,
            f"{run.rows} rows x {run.prompt_tokens + run.new_tokens} positions x {layers} layers x K,V",
        ),
        (
            f"training activations, {train_tokens:,} tokens",
            act_per_token * train_tokens / GIB,
            f"{pass_prompts} prompts x {run.prompt_tokens} + {pass_rows} rows x {run.new_tokens} "
            f"(a micro-batch of the {run.rows} rows); {saved_per_token / 1024:,.0f} KiB saved a token "
            f"x {resident} resident per saved byte",
        ),
        (
            "logits of one vocabulary chunk",
            3 * 4 * chunk_tokens * sizes.vocab / GIB,
            f"{chunk_tokens} tokens x {sizes.vocab:,} x fp32 (logits, softmax, gradient)",
        ),
    ]
    static = sum(gib for _, gib, _ in rows[:3])
    rows.append(("**peak while decoding**", static + rows[3][1], "static + KV cache"))
    rows.append(
        ("**peak while training**", static + rows[4][1] + rows[5][1], "static + activations + logits")
    )
    return rows


def host_peak_gib(rows: list[tuple[str, float, str]]) -> float:
    """The estimated peak resident set: the larger phase."""
    return max(rows[-1][1], rows[-2][1])
