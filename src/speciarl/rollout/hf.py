"""Rollout backend on transformers ``generate``: G samples per prompt, no gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from speciarl.core.rollouts import PromptBatch, Rollout
from speciarl.core.samples import Sample
from speciarl.policy.logprob_route import AUTO, path_enabled
from speciarl.policy.policy import Policy
from speciarl.rollout.backend import RolloutBackend
from speciarl.rollout.decode import SAMPLERS, DecodeSettings, decode, unsupported_reason
from speciarl.rollout.shared_prefill import prefilled_generate_inputs


class HFRollout(RolloutBackend):
    """Sample completions on the transformers model (the CPU default; vLLM is the GPU backend).

    Qwen2-VL-style policies run our own decode loop (``rollout.decode``: a preallocated KV
    cache, one hand-written step a token); anything it does not model takes ``model.generate``.

    Args:
        max_new_tokens: response budget; a completion without EOS within it is truncated.
        temperature: sampling temperature for training rollouts (1.0 in the paper).
        top_p: nucleus mass; 1.0 samples from the full distribution.
        min_new_tokens: forbid EOS before this many tokens (0: off). For benchmarks that need a
            fixed response length: the log-probs do not model this EOS mask.
        share_prefill: on the ``generate`` path, run each prompt's prefill once for its G samples
            (same samples, faster; ``shared_prefill``); False uses the stock
            ``num_return_sequences`` expansion. The own loop always prefills once per prompt.
        fast_decode: our decode loop where it applies: "auto" (the default) on CPU only, a GPU
            keeping ``generate``'s fused kernels; True on any device (asked for); False: always
            ``generate`` (``policy.logprob_route``, which logs the choice at setup).
        sampler: how the own loop draws a token: ``"multinomial"`` (the default: ``generate``'s own
            draw, so the same samples for a seed and every recorded run regenerates; one
            exponential variate per vocabulary entry) or ``"inverse_cdf"`` (one uniform per row:
            the same distribution as ``generate``, other samples for a seed, faster).
        report_logprobs: record the log-prob of every sampled token under the distribution it
            was drawn from (``Rollout.sampler_logp``: the train/inference mismatch is logged and
            ``algorithm.rollout_is_cap`` can correct it); one log-softmax per decoding step.
    """

    def __init__(
        self,
        max_new_tokens: int = 16,
        temperature: float = 1.0,
        top_p: float = 1.0,
        min_new_tokens: int = 0,
        share_prefill: bool = True,
        report_logprobs: bool = False,
        fast_decode: bool | str = AUTO,
        sampler: str = "multinomial",
    ):
        if max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
        if not 0 <= min_new_tokens <= max_new_tokens:
            raise ValueError(f"need 0 <= min_new_tokens <= max_new_tokens, got {min_new_tokens}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
        if fast_decode not in (True, False, AUTO):
            raise ValueError(f"fast_decode must be true, false or {AUTO!r}, got {fast_decode!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.min_new_tokens = min_new_tokens
        self.share_prefill = share_prefill
        self.report_logprobs = report_logprobs
        self.fast_decode = fast_decode
        self.sampler = sampler

    @torch.no_grad()
    def generate(
        self,
        policy: Policy,
        samples: Sequence[Sample] | PromptBatch,
        group_size: int,
        greedy: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> Rollout:
        prompts = samples if isinstance(samples, PromptBatch) else policy.encode_prompts(samples)
        temperature = temperature or self.temperature
        top_p = top_p if top_p is not None else self.top_p
        model = policy.model
        was_training = model.training
        model.eval()
        try:
            own = path_enabled(self.fast_decode, prompts.input_ids.device, "own decode loop")
            if own and unsupported_reason(model, prompts) is None:
                settings = DecodeSettings(
                    max_new_tokens=self.max_new_tokens,
                    eos_id=policy.eos_id,
                    pad_id=policy.pad_id,
                    suppress_ids=tuple(policy.suppress_ids),
                    min_new_tokens=self.min_new_tokens,
                    greedy=greedy,
                    temperature=temperature,
                    top_p=top_p,
                    sampler=self.sampler,
                    report_logprobs=self.report_logprobs,
                )
                raw, sampler_logp = decode(model, prompts, group_size, settings)
            else:
                raw, sampler_logp = self._generate(policy, prompts, group_size, greedy, temperature, top_p)
        finally:
            model.train(was_training)
        ids, mask, truncated = policy.completion_tensors(raw)
        return Rollout(
            prompts=prompts.repeat(group_size),
            completion_ids=ids,
            completion_mask=mask,
            texts=policy.decode(ids, mask),
            truncated=truncated,
            group_size=group_size,
            sampler_logp=sampler_logp,
        )

    def _generate(
        self,
        policy: Policy,
        prompts: PromptBatch,
        group_size: int,
        greedy: bool,
        temperature: float,
        top_p: float,
    ) -> tuple[Tensor, Tensor | None]:
        """The stock path: ``model.generate`` (model in eval mode); generated tokens and reported log-probs."""
        model = policy.model
        kwargs: dict = dict(max_new_tokens=self.max_new_tokens)
        if self.min_new_tokens:
            kwargs["min_new_tokens"] = self.min_new_tokens
        recorder = None
        if greedy:
            kwargs.update(do_sample=False, num_beams=1)
        else:
            # the model's default top_k=50 would make sampling disagree with log-probs
            kwargs.update(do_sample=True, top_k=0, temperature=temperature, top_p=top_p)
            if self.report_logprobs:
                recorder = SampledLogprobs()
                kwargs.update(sampling_processors(temperature, top_p, recorder))
        inputs = prefilled_generate_inputs(model, prompts, group_size) if self.share_prefill else None
        if inputs is None:
            inputs = dict(prompts.model_inputs(), num_return_sequences=group_size)
        out = model.generate(**inputs, pad_token_id=policy.pad_id, eos_token_id=policy.eos_id, **kwargs)
        raw = out[:, prompts.input_ids.shape[1] :]
        if raw.shape[1] == 0:
            raw = torch.full((raw.shape[0], 1), policy.eos_id, dtype=raw.dtype)
        return raw, recorder.finish(raw) if recorder is not None and raw.shape[1] else None


class SampledLogprobs(LogitsProcessor):
    """Log p of each sampled token under the final (sampled-from) distribution of its step.

    ``generate`` calls logits processors before sampling, so step t keeps its log-softmax and
    step t + 1 reads the token appended to ``input_ids`` meanwhile; ``finish`` reads the last.
    Must run after every processor that shapes the distribution (``sampling_processors``).
    """

    def __init__(self) -> None:
        self.previous: Tensor | None = None
        self.picked: list[Tensor] = []

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if self.previous is not None:
            self.picked.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, completions: Tensor) -> Tensor:
        """[N, T] log-probs aligned with the generated tokens ``completions``."""
        steps = [*self.picked, self.previous.gather(1, completions[:, -1:]).squeeze(1)]
        return torch.stack(steps, dim=1)[:, : completions.shape[1]]


def sampling_processors(temperature: float, top_p: float, recorder: SampledLogprobs) -> dict:
    """``generate`` kwargs applying temperature and top-p in our list, so the recorder runs after them.

    ``generate`` puts a custom ``logits_processor`` before its own temperature and top-p warpers;
    handing it neutral values (1.0) and applying the same warpers, in the same order, here gives
    the same distribution (and the same samples for a seed) with the recorder last.
    """
    processors = LogitsProcessorList()
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p=top_p))
    processors.append(recorder)
    return dict(temperature=1.0, top_p=1.0, logits_processor=processors)
