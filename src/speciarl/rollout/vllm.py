"""Rollout backend on vLLM's offline ``LLM`` API, colocated with training on the same GPU(s).

``rollout=vllm``. Each rank builds its own engine the first time it generates (after the process
group exists; with several ranks it joins them through ``distributed_executor_backend=
"external_launcher"``, tensor parallel 1, so every rank samples its own prompts). The engine holds
``gpu_memory_utilization`` of the GPU; with ``sleep_between_steps`` it sleeps (level 1: weights
offloaded to CPU RAM, KV cache dropped) while the trainer computes log-probs and gradients, and
wakes for the next rollout.

How the engine follows the policy: after every optimiser step the module marks the rollout
stale, and the next generate sends the current weights before sampling:

* a LoRA policy: **a LoRA request per policy version**. The adapter is saved with peft's
  ``save_pretrained`` (the format of the checkpoints' ``-policy`` folders) and sent as a
  ``LoRARequest`` with a fresh id; the base weights in the engine never change (~0.6 GB a step
  for the 7B preset, r 64 on every linear layer; only the public API).
* full fine-tuning: **the weights reloaded in place**. The model is saved (``save_pretrained``,
  safetensors) and every engine worker reloads it through ``collective_rpc("reload_weights",
  weights_path=...)`` (vLLM's in-place reload, >= 0.32); a tied LM head, which the reload skips,
  is then repacked (``refresh_tied_lm_heads`` in ``rollout/vllm_worker.py``: vLLM's CPU kernels
  multiply with a packed copy of it); then the prefix and encoder caches are reset so no prompt
  or image is served from KV or embeddings computed with the old weights. One write of the model
  a step: fine for small models; for the 7B use LoRA or a faster transport.

Both write to ``adapter_dir`` (default ``/dev/shm``). vLLM reports the log-prob of every sampled
token (``logprobs=0``, ``logprobs_mode="processed_logprobs"``: after temperature, top-p and the
suppression bias, i.e. the distribution actually sampled from) as ``Rollout.sampler_logp``, so
the update logs the train/inference mismatch and can correct it (``algorithm.rollout_is_cap``).
On CPU (the ``vllm-cpu`` build, docs/vllm-cpu.md) ``gpu_memory_utilization`` is the share of
RAM reserved for the KV cache and sleep mode is not available.

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

from speciarl.core.distributed import global_rank, world_size
from speciarl.core.prompts import chat_messages
from speciarl.core.rollouts import PromptBatch, Rollout
from speciarl.core.samples import Sample
from speciarl.policy.policy import Policy, is_peft_model
from speciarl.policy.processor import make_stock
from speciarl.rollout.backend import RolloutBackend
from speciarl.rollout.vllm_outputs import rollout_from_outputs

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "rollout=vllm needs vLLM: pip install -e .[vllm] on a CUDA machine, or the CPU build with "
    "bash scripts/setup_vllm_cpu.sh (docs/vllm-cpu.md); or use rollout=hf, which runs anywhere"
)
# max_lora_rank values vLLM accepts; an adapter's r is rounded up to the next one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
# vLLM clamps logit biases to [-100, 100]; e^-100 is as good as the -inf the HF path uses.
SUPPRESS_BIAS = -100.0
# Mixed into vLLM's workers: what the rollout calls there through collective_rpc.
WORKER_EXTENSION = "speciarl.rollout.vllm_worker.SpeciaRLWorkerExtension"


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
        min_new_tokens: forbid EOS before this many tokens (benchmarks only, as ``HFRollout``'s).
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
        min_new_tokens: int = 0,
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
        if "worker_extension_cls" in self.engine_kwargs:
            raise ValueError(
                f"engine_kwargs.worker_extension_cls: the rollout needs its own, {WORKER_EXTENSION}"
            )
        if not 0 <= min_new_tokens <= max_new_tokens:
            raise ValueError(f"need 0 <= min_new_tokens <= max_new_tokens, got {min_new_tokens}")
        self.min_new_tokens = min_new_tokens
        self._llm: Any = None
        self._on_cpu = False
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
        lora = self._sync_weights(policy, llm)
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
                logprobs=0,  # the sampled token's log-prob (the mismatch figures, TIS)
                min_tokens=self.min_new_tokens,  # benchmarks only, as HFRollout's
            )
            if greedy:
                kwargs["temperature"] = 0.0
            else:
                kwargs["temperature"] = temperature or self.temperature
                kwargs["top_p"] = top_p if top_p is not None else self.top_p
                # Drawn from torch's RNG: restored with checkpoints and seeded by seed_everything.
                seed = int(torch.randint(0, 2**31 - 1, (1,)))
                if not self._on_cpu:
                    # vLLM 0.32's CPU worker crashes on per-request seeds ("CPU Generator does not
                    # use offset" when a chunked prefill is discarded): the engine's seed only.
                    kwargs["seed"] = seed
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
        path = Path(str(self.model_path or policy.model.config._name_or_path))
        if not path.is_dir():
            raise FileNotFoundError(
                f"vLLM needs the base model folder; {str(path)!r} is not one (set rollout.model_path)"
            )
        if (path / "processor_config.json").is_file():
            make_stock(path)  # a folder written before processors were saved stock (a no-op otherwise)
        kwargs: dict[str, Any] = dict(
            model=str(path),
            dtype=self.dtype,
            gpu_memory_utilization=self.gpu_memory_utilization,
            enable_sleep_mode=self.sleep_between_steps,
            limit_mm_per_prompt={"image": 1},
            generation_config="vllm",  # ignore the checkpoint's sampling defaults (top_k, penalties)
            enforce_eager=self.enforce_eager,
            seed=int(torch.initial_seed() % (2**31 - 1)),
            logprobs_mode="processed_logprobs",  # after temperature / top-p / bias: what was sampled
        )
        if is_peft_model(policy.model):
            ranks = [int(cfg.r) for cfg in policy.model.peft_config.values()]
            # each step's adapter evicts the previous one
            kwargs.update(
                enable_lora=True, max_lora_rank=vllm_lora_rank(max(ranks)), max_loras=1, max_cpu_loras=1
            )
        if self.max_model_len:
            kwargs["max_model_len"] = self.max_model_len
        kwargs["worker_extension_cls"] = WORKER_EXTENSION  # refresh_tied_lm_heads after reloads
        if world_size() > 1:
            # One engine per training rank, joined through the trainer's process group.
            kwargs["distributed_executor_backend"] = "external_launcher"
            kwargs["tensor_parallel_size"] = 1
        kwargs.update(self.engine_kwargs)
        log.info(
            "starting vLLM on rank %d: %s", global_rank(), {k: v for k, v in kwargs.items() if k != "model"}
        )
        self._llm = vllm.LLM(**kwargs)
        from vllm.platforms import current_platform

        self._on_cpu = bool(current_platform.is_cpu())
        return self._llm

    def _sync_weights(self, policy: Policy, llm: Any) -> Any:
        """Send the current policy to the engine if it changed; the LoRA request to sample with (or None)."""
        if not self._stale:
            return self._adapter
        if _is_sharded(policy.model):
            raise NotImplementedError(
                "rollout=vllm with a sharded (FSDP) policy would need the weights gathered first; "
                "use trainer=ddp (a LoRA 7B policy fits on one GPU per rank) or rollout=hf"
            )
        self._version += 1
        target = self._next_folder()
        policy.model.save_pretrained(str(target))
        if is_peft_model(policy.model):
            from vllm.lora.request import LoRARequest

            self._adapter = LoRARequest(f"policy-v{self._version}", self._version, str(target))
        else:
            # vLLM reads the whole folder as a checkpoint (same parameter names as model.path)
            llm.collective_rpc(
                "reload_weights", kwargs=dict(weights_path=str(target), is_checkpoint_format=True)
            )
            # The reload skips a tied LM head (its weight is the embedding's): vLLM's CPU kernels
            # would keep multiplying with the head's old packed copy (rollout/vllm_worker.py).
            llm.collective_rpc("refresh_tied_lm_heads")
            # Nothing computed with the old weights may be reused: KV of cached prefixes, and the
            # vision tower's outputs for images seen before (the scheduler's encoder cache would
            # otherwise claim outputs the worker's reload dropped: "Encoder cache miss").
            llm.reset_prefix_cache()
            llm.llm_engine.reset_encoder_cache()
            self._adapter = None
        self._stale = False
        return self._adapter

    def _next_folder(self) -> Path:
        """A fresh folder for this version's weights; all but the last two are deleted."""
        if self._workdir is None:
            shm = Path("/dev/shm")
            root = self.adapter_dir or (str(shm) if shm.is_dir() else None)
            self._workdir = Path(tempfile.mkdtemp(prefix=f"speciarl-weights-rank{global_rank()}-", dir=root))
        target = self._workdir / f"v{self._version}"
        self._adapter_paths.append(target)
        while len(self._adapter_paths) > 2:  # vLLM has read the older ones by now
            shutil.rmtree(self._adapter_paths.pop(0), ignore_errors=True)
        return target

    def close(self) -> None:
        """Shut the engine down (core process, KV cache, shared memory); delete the adapter files.

        Only dropping the reference left the engine alive until exit (its finaliser waits for it)."""
        llm, self._llm = self._llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown(timeout=60.0)  # vLLM's 5 s force-kills a loaded CPU engine mid-teardown
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
