"""Rollout backend on vLLM's offline ``LLM`` API, colocated with training on the same GPU(s).

``rollout=vllm``. Each rank builds its own engine the first time it generates (after the process
group exists; with several ranks it joins them through ``distributed_executor_backend=
"external_launcher"``, tensor parallel 1, so every rank samples its own prompts). The engine holds
``gpu_memory_utilization`` of the GPU; with ``sleep_between_steps`` it sleeps (level 1: weights
offloaded to CPU RAM, KV cache dropped) while the trainer computes log-probs and gradients, and
wakes for the next rollout.

How the engine follows the policy: **a LoRA request per policy version**. After every optimiser
step the module marks the rollout stale; the next generate saves the adapter with peft's
``save_pretrained`` (the very format of the checkpoints' ``-policy`` folders) to a local directory
and sends it as a ``LoRARequest`` with a fresh id, so vLLM loads exactly the trained weights while
the base weights in the engine never change. Why not weight sync: it needs vLLM internals (the
model runner's ``load_weights``, which move between releases) and merging the adapter into a
bf16 copy of the base every step; the adapter path uses only the public API, costs one save of
~0.6 GB for the 7B preset (r 64 on every linear layer) to local disk per step, and is what a
served model would load. The price: the policy must be a LoRA policy (full fine-tuning needs
``rollout=hf``), and the adapter never touches the vision tower (the paper's setting).

The result is the same ``Rollout`` the HF backend returns: the prompts are encoded by the
policy's own processor (and checked token for token against what vLLM saw), completions are
vLLM's sampled token ids, the mask runs through each completion's last token, ``truncated`` marks
completions stopped by the token budget, so the module is unchanged.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from speciarl.core.interfaces import RolloutBackend
from speciarl.core.samples import Sample
from speciarl.data.prompts import chat_messages
from speciarl.policy.policy import Policy, PromptBatch, Rollout, is_peft_model
from speciarl.runs.distributed import global_rank, world_size

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "rollout=vllm needs the optional vllm extra, on a CUDA machine: pip install -e .[vllm] "
    "(or use rollout=hf, which runs anywhere)"
)
# max_lora_rank values vLLM accepts; an adapter's r is rounded up to the next one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
# vLLM clamps logit biases to [-100, 100]; e^-100 is as good as the -inf the HF path uses.
SUPPRESS_BIAS = -100.0


def import_vllm() -> Any:
    """The vllm module, or an ImportError that names the extra to install."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return vllm


def vllm_lora_rank(r: int) -> int:
    """The smallest rank vLLM supports that holds an adapter of rank ``r``."""
    for rank in VLLM_LORA_RANKS:
        if r <= rank:
            return rank
    raise ValueError(f"LoRA rank {r} is above vLLM's largest supported rank {VLLM_LORA_RANKS[-1]}")


def vllm_requests(policy: Policy, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """One prompt per sample: the chat-templated text (one image placeholder) and its PIL image."""
    return [
        {
            "prompt": policy.processor.apply_chat_template(
                chat_messages(s.image, policy.prompt), add_generation_prompt=True, tokenize=False
            ),
            "multi_modal_data": {"image": s.image},
        }
        for s in samples
    ]


def rollout_from_outputs(
    policy: Policy, samples: Sequence[Sample], outputs: Sequence[Any], group_size: int
) -> Rollout:
    """Build the module's ``Rollout`` from vLLM ``RequestOutput``s (one per sample, in order).

    Uses each output's ``prompt_token_ids`` and, for each of its ``group_size`` completions,
    ``token_ids`` and ``finish_reason`` (``"stop"`` or ``"length"``).
    """
    if len(outputs) != len(samples):
        raise ValueError(f"{len(outputs)} vLLM outputs for {len(samples)} prompts")
    prompts = policy.encode_prompts(samples)
    for i, out in enumerate(outputs):
        ours = prompts.input_ids[i][prompts.attention_mask[i].bool()].tolist()
        if list(out.prompt_token_ids) != ours:
            raise RuntimeError(
                f"vLLM tokenised prompt {i} ({samples[i].sample_id}) differently from the policy's processor "
                f"({len(out.prompt_token_ids)} vs {len(ours)} tokens): the training log-probs would be "
                "computed on another prompt. Check that vLLM reads the same processor config (model.path) "
                "and image size limits."
            )
        if len(out.outputs) != group_size:
            raise ValueError(
                f"vLLM returned {len(out.outputs)} completions for prompt {i}, expected {group_size}"
            )
    rows = [c for out in outputs for c in out.outputs]
    width = max(1, max(len(c.token_ids) for c in rows))
    ids = torch.full((len(rows), width), policy.eos_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, completion in enumerate(rows):
        n = len(completion.token_ids)
        ids[r, :n] = torch.as_tensor(list(completion.token_ids), dtype=torch.long)
        mask[r, :n] = True  # through the stop token: its probability is part of the policy's choice
    truncated = torch.tensor([c.finish_reason != "stop" for c in rows])
    device = prompts.input_ids.device
    return Rollout(
        prompts=prompts.repeat(group_size),
        completion_ids=ids.to(device),
        completion_mask=mask.to(device),
        texts=policy.decode(ids, mask),
        truncated=truncated.to(device),
        group_size=group_size,
    )


def _is_sharded(model: torch.nn.Module) -> bool:
    kinds = []
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel

        kinds.append(FullyShardedDataParallel)
        from torch.distributed.fsdp import FSDPModule

        kinds.append(FSDPModule)
    except ImportError:
        pass
    return any(isinstance(m, tuple(kinds)) for m in model.modules()) if kinds else False


class VLLMRollout(RolloutBackend):
    """G samples per prompt from a colocated vLLM engine that follows the LoRA policy step by step.

    Args:
        max_new_tokens: response budget (2048 in the paper).
        temperature, top_p: sampling of training rollouts (1.0, 1.0 in the paper).
        gpu_memory_utilization: share of the GPU the engine may take (weights + KV cache).
        max_model_len: prompt + response tokens the engine reserves per sequence (None: the model's).
        sleep_between_steps: sleep (level 1) after each generate, wake before the next.
        model_path: base model folder (None: the folder the policy was loaded from).
        dtype: engine dtype.
        enforce_eager: skip CUDA graphs (less memory and start-up time, slower decoding).
        adapter_dir: where adapters are written each step (None: /dev/shm, else the temp dir).
        engine_kwargs: anything else for ``vllm.LLM`` (e.g. ``max_num_seqs``).
    """

    def __init__(
        self,
        max_new_tokens: int = 2048,
        temperature: float = 1.0,
        top_p: float = 1.0,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        sleep_between_steps: bool = True,
        model_path: str | None = None,
        dtype: str = "bfloat16",
        enforce_eager: bool = False,
        adapter_dir: str | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import_vllm()  # fail at configuration time, with the install hint, not at the first step
        if max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
        if not 0 < gpu_memory_utilization < 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1), got {gpu_memory_utilization}")
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.sleep_between_steps = sleep_between_steps
        self.model_path = model_path
        self.dtype = dtype
        self.enforce_eager = enforce_eager
        self.adapter_dir = adapter_dir
        self.engine_kwargs = dict(engine_kwargs or {})
        self._llm: Any = None
        self._asleep = False
        self._stale = True
        self._version = 0
        self._adapter: Any = None
        self._adapter_paths: list[Path] = []
        self._workdir: Path | None = None

    # ------------------------------------------------------------------ module hooks
    def policy_updated(self) -> None:
        """The policy's weights changed: the next generate sends a new adapter."""
        self._stale = True

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        policy: Policy,
        samples: Sequence[Sample] | PromptBatch,
        group_size: int,
        greedy: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> Rollout:
        if isinstance(samples, PromptBatch):
            raise TypeError(
                "VLLMRollout needs the samples (their images go to vLLM), not an encoded PromptBatch"
            )
        vllm = import_vllm()
        llm = self._engine(policy)
        if self._asleep:
            llm.wake_up()
            self._asleep = False
        lora = self._current_adapter(policy)
        requests = vllm_requests(policy, samples)
        bias = {int(i): SUPPRESS_BIAS for i in policy.suppress_ids} or None
        params = []
        for _ in samples:
            kwargs: dict[str, Any] = dict(
                n=group_size,
                max_tokens=self.max_new_tokens,
                # Stop at the policy's EOS only, as the HF path does (not at other EOS-like tokens).
                stop_token_ids=[policy.eos_id],
                ignore_eos=True,
                logit_bias=bias,
                detokenize=False,  # texts are decoded by the policy's tokenizer, as in the HF path
            )
            if greedy:
                kwargs["temperature"] = 0.0
            else:
                kwargs["temperature"] = temperature or self.temperature
                kwargs["top_p"] = top_p if top_p is not None else self.top_p
                # Drawn from torch's RNG: restored with checkpoints and seeded by seed_everything.
                kwargs["seed"] = int(torch.randint(0, 2**31 - 1, (1,)))
            params.append(vllm.SamplingParams(**kwargs))
        outputs = llm.generate(requests, params, use_tqdm=False, lora_request=lora)
        if self.sleep_between_steps:
            llm.sleep(level=1)
            self._asleep = True
        return rollout_from_outputs(policy, samples, outputs, group_size)

    # ------------------------------------------------------------------ engine and adapters
    def _engine(self, policy: Policy) -> Any:
        if self._llm is not None:
            return self._llm
        vllm = import_vllm()
        if not is_peft_model(policy.model):
            raise ValueError(
                "rollout=vllm follows the policy through its LoRA adapter: set model.lora (e.g. "
                "model.lora={r: 64, alpha: 32}), or use rollout=hf for full fine-tuning"
            )
        if not torch.cuda.is_available():
            raise RuntimeError("rollout=vllm needs a CUDA GPU; use rollout=hf on this machine")
        path = self.model_path or policy.model.config._name_or_path
        if not Path(str(path)).is_dir():
            raise FileNotFoundError(
                f"vLLM needs the base model folder; {path!r} is not one (set rollout.model_path)"
            )
        ranks = [int(cfg.r) for cfg in policy.model.peft_config.values()]
        kwargs: dict[str, Any] = dict(
            model=str(path),
            dtype=self.dtype,
            gpu_memory_utilization=self.gpu_memory_utilization,
            enable_sleep_mode=self.sleep_between_steps,
            enable_lora=True,
            max_lora_rank=vllm_lora_rank(max(ranks)),
            max_loras=1,
            max_cpu_loras=1,  # each step's adapter evicts the previous one
            limit_mm_per_prompt={"image": 1},
            generation_config="vllm",  # ignore the checkpoint's sampling defaults (top_k, penalties)
            enforce_eager=self.enforce_eager,
            seed=int(torch.initial_seed() % (2**31 - 1)),
        )
        if self.max_model_len:
            kwargs["max_model_len"] = self.max_model_len
        if world_size() > 1:
            # One engine per training rank, joined through the trainer's process group.
            kwargs["distributed_executor_backend"] = "external_launcher"
            kwargs["tensor_parallel_size"] = 1
        kwargs.update(self.engine_kwargs)
        log.info(
            "starting vLLM on rank %d: %s", global_rank(), {k: v for k, v in kwargs.items() if k != "model"}
        )
        self._llm = vllm.LLM(**kwargs)
        return self._llm

    def _current_adapter(self, policy: Policy) -> Any:
        if self._adapter is not None and not self._stale:
            return self._adapter
        if _is_sharded(policy.model):
            raise NotImplementedError(
                "rollout=vllm with a sharded (FSDP) policy would need the adapter gathered first; "
                "use trainer=ddp (a LoRA 7B policy fits on one GPU per rank) or rollout=hf"
            )
        from vllm.lora.request import LoRARequest

        if self._workdir is None:
            shm = Path("/dev/shm")
            root = self.adapter_dir or (str(shm) if shm.is_dir() else None)
            self._workdir = Path(tempfile.mkdtemp(prefix=f"speciarl-adapter-rank{global_rank()}-", dir=root))
        self._version += 1
        target = self._workdir / f"v{self._version}"
        policy.model.save_pretrained(str(target))
        self._adapter = LoRARequest(f"policy-v{self._version}", self._version, str(target))
        self._adapter_paths.append(target)
        while len(self._adapter_paths) > 2:  # vLLM has read the older ones by now
            shutil.rmtree(self._adapter_paths.pop(0), ignore_errors=True)
        self._stale = False
        return self._adapter

    def close(self) -> None:
        """Drop the engine and the adapter files."""
        self._llm = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
