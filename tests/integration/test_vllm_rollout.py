"""rollout=vllm: what can be checked without vLLM, and the real engine where it exists.

vLLM itself runs only on a CUDA machine with the extra installed; the tests that need it skip
elsewhere and say why. The assembly of vLLM outputs into the module's Rollout is checked here
against the HF backend: the same completions, handed over in vLLM's output shape, must give the
same token ids, masks, truncation flags, texts and prompts.
"""

import importlib.util
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from speciarl.data.synthetic import SyntheticShapes
from speciarl.rollout.hf import HFRollout
from speciarl.rollout.vllm import INSTALL_HINT, rollout_from_outputs, vllm_lora_rank, vllm_requests

HAS_VLLM = importlib.util.find_spec("vllm") is not None
HAS_CUDA = torch.cuda.is_available()


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here: the missing-extra error cannot occur")
def test_without_vllm_the_error_names_the_extra(make_config):
    cfg = make_config("rollout=vllm")
    with pytest.raises(Exception, match=r"pip install -e \.\[vllm\]"):
        instantiate(cfg.rollout)
    assert "rollout=hf" in INSTALL_HINT


def test_lora_rank_rounds_up_to_a_vllm_rank():
    assert [vllm_lora_rank(r) for r in (1, 8, 9, 64, 65, 512)] == [8, 8, 16, 64, 128, 512]
    with pytest.raises(ValueError, match="largest supported rank"):
        vllm_lora_rank(1024)


def _as_vllm_outputs(rollout, prompt_ids):
    """The HF rollout's completions in the shape of vLLM RequestOutputs (token_ids through the stop token)."""
    G = rollout.group_size
    outputs = []
    for i, ids in enumerate(prompt_ids):
        completions = []
        for g in range(G):
            row = i * G + g
            n = int(rollout.completion_mask[row].sum())
            finish = "length" if bool(rollout.truncated[row]) else "stop"
            completions.append(
                SimpleNamespace(token_ids=rollout.completion_ids[row, :n].tolist(), finish_reason=finish)
            )
        outputs.append(SimpleNamespace(prompt_token_ids=ids, outputs=completions))
    return outputs


def test_outputs_become_the_same_rollout_as_the_hf_backend(tiny_policy_fresh):
    policy = tiny_policy_fresh
    samples = [SyntheticShapes(size=3, seed=4)[i] for i in range(3)]
    torch.manual_seed(1)
    # 6 new tokens: a young model often runs out of budget, so both finish reasons occur
    hf = HFRollout(max_new_tokens=6).generate(policy, samples, group_size=4)
    assert hf.truncated.any()
    encoded = policy.encode_prompts(samples)
    prompt_ids = [encoded.input_ids[i][encoded.attention_mask[i].bool()].tolist() for i in range(3)]
    ours = rollout_from_outputs(policy, samples, _as_vllm_outputs(hf, prompt_ids), group_size=4)

    width = ours.completion_ids.shape[1]
    assert torch.equal(ours.completion_mask, hf.completion_mask[:, :width])
    assert not hf.completion_mask[:, width:].any()
    assert torch.equal(ours.completion_ids[ours.completion_mask], hf.completion_ids[hf.completion_mask])
    assert torch.equal(ours.truncated, hf.truncated)
    assert ours.texts == hf.texts
    assert torch.equal(ours.prompts.input_ids, hf.prompts.input_ids)
    assert torch.equal(ours.prompts.pixel_values, hf.prompts.pixel_values)
    assert ours.group_size == 4 and ours.num_groups == 3


def test_a_prompt_vllm_tokenised_differently_is_refused(tiny_policy_fresh):
    policy = tiny_policy_fresh
    samples = [SyntheticShapes(size=1, seed=4)[0]]
    encoded = policy.encode_prompts(samples)
    ids = encoded.input_ids[0][encoded.attention_mask[0].bool()].tolist()
    outputs = [
        SimpleNamespace(
            prompt_token_ids=ids[:-1],
            outputs=[SimpleNamespace(token_ids=[policy.eos_id], finish_reason="stop")],
        )
    ]
    with pytest.raises(RuntimeError, match="tokenised prompt 0 .* differently"):
        rollout_from_outputs(policy, samples, outputs, group_size=1)


def test_requests_carry_one_image_placeholder_and_the_image(tiny_policy_fresh):
    samples = [SyntheticShapes(size=2, seed=4)[i] for i in range(2)]
    requests = vllm_requests(tiny_policy_fresh, samples)
    for request, sample in zip(requests, samples):
        assert request["prompt"].count("<|image_pad|>") == 1  # vLLM expands it itself
        assert request["multi_modal_data"]["image"] is sample.image
        assert request["prompt"].endswith("<|im_start|>assistant\n")


@pytest.mark.gpu
@pytest.mark.skipif(
    not (HAS_CUDA and HAS_VLLM), reason="needs a CUDA GPU and the vllm extra (pip install -e .[vllm])"
)
def test_vllm_engine_follows_the_lora_policy():
    """Real engine on the tiny model: G samples per prompt, log-probs computable, new adapter after an update."""
    from speciarl.built_models.tiny_loading import tiny_policy
    from speciarl.policy.policy import token_logprobs
    from speciarl.rollout.vllm import VLLMRollout

    torch.manual_seed(0)
    policy = tiny_policy(warm_start=False, lora={"r": 8, "alpha": 16})
    policy.model.cuda()
    rollout = VLLMRollout(
        max_new_tokens=16, gpu_memory_utilization=0.2, max_model_len=512, enforce_eager=True
    )
    samples = [SyntheticShapes(size=4, seed=9)[i] for i in range(4)]
    first = rollout.generate(policy, samples, group_size=4)
    assert first.completion_ids.shape[0] == 16 and len(first.texts) == 16
    assert first.completion_mask[:, 0].all()
    with torch.no_grad():
        logp = token_logprobs(policy.model, _to(first, "cuda"), policy.suppress_ids)
    assert torch.isfinite(logp).all()
    version = rollout._version
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    rollout.policy_updated()
    rollout.generate(policy, samples, group_size=4, greedy=True)
    assert rollout._version == version + 1
    rollout.close()


def _to(rollout, device):
    from speciarl.core.rollouts import PromptBatch, Rollout

    p = rollout.prompts
    return Rollout(
        prompts=PromptBatch(
            *(
                t.to(device)
                for t in (
                    p.input_ids,
                    p.attention_mask,
                    p.mm_token_type_ids,
                    p.pixel_values,
                    p.image_grid_thw,
                )
            )
        ),
        completion_ids=rollout.completion_ids.to(device),
        completion_mask=rollout.completion_mask.to(device),
        texts=rollout.texts,
        truncated=rollout.truncated,
        group_size=rollout.group_size,
    )
