"""What the rollout runs inside vLLM's worker processes (a ``worker_extension_cls``).

vLLM mixes this class into its worker, so ``LLM.collective_rpc("<method name>")`` calls its
methods there, next to the model, with nothing pickled (vLLM refuses to pickle functions
unless ``VLLM_ALLOW_INSECURE_SERIALIZATION`` is set).

Why it exists: vLLM's CPU backend does not multiply with a linear layer's weight tensor but with
a copy it packs for its kernels once the weights are loaded (``process_weights_after_loading``:
oneDNN or a packed GEMM). An in-place reload (``reload_weights``) repacks every layer whose
weights are in the checkpoint. A tied LM head is not (its weight is the token embedding's, and
vLLM skips ``lm_head.*``): the reload reports "ParallelLMHead: Failed to load weights", puts the
shared tensor back (already holding the new embedding) and leaves the head's packed copy as it
was, so the logits come from the old embedding (measured on vLLM 0.32 CPU: log-probs off by 0.04
a token after changing the embedding). ``refresh_tied_lm_heads`` repacks such heads from the
shared tensor. On a GPU the head multiplies with the tensor itself and repacking does nothing.
"""

from __future__ import annotations

from typing import Any

import torch


def tied_lm_heads(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's LM heads whose weight is the storage of one of its token embeddings."""
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

    modules = list(model.modules())
    embeddings = {
        m.weight.data_ptr()
        for m in modules
        if isinstance(m, VocabParallelEmbedding)
        and not isinstance(m, ParallelLMHead)
        and getattr(m, "weight", None) is not None
        and m.weight.numel() > 0
    }
    return [
        m
        for m in modules
        if isinstance(m, ParallelLMHead)
        and getattr(m, "weight", None) is not None
        and m.weight.numel() > 0
        and m.weight.data_ptr() in embeddings
    ]


class SpeciaRLWorkerExtension:
    """Methods the rollout calls in every vLLM worker through ``collective_rpc``."""

    def refresh_tied_lm_heads(self) -> int:
        """Redo the post-load processing of tied LM heads after an in-place reload; how many there were.

        Only unquantized heads are touched (for them the processing derives kernel data from the
        weight and is safe to repeat); a quantized tied head raises rather than being processed twice.
        """
        from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod

        heads = tied_lm_heads(self._speciarl_model())
        for head in heads:
            method = head.quant_method
            if not isinstance(method, UnquantizedEmbeddingMethod):
                raise NotImplementedError(
                    f"a tied LM head quantized with {type(method).__name__}: its packed weights "
                    "cannot be refreshed after a reload; use an unquantized model or LoRA"
                )
            method.process_weights_after_loading(head)
        return len(heads)

    def _speciarl_model(self) -> torch.nn.Module:
        runner: Any = self.model_runner  # type: ignore[attr-defined]
        get_model = getattr(runner, "get_model", None)
        return get_model() if callable(get_model) else runner.model
