"""Prefilling each prompt once gives the same rollouts as generate's own G-fold expansion.

Same seed, same model: the sampled tokens must be identical and generate's logits equal to
1e-5 (float32; measured ~4e-6), with left-padded prompts of two lengths, with LoRA, and with
a minimum response length. A wrong position offset or cache row shows up as different logits.
"""

import pytest
import torch

from speciarl.data.synthetic import SyntheticShapes
from speciarl.policy.loading import apply_lora
from speciarl.rollout.hf import HFRollout
from speciarl.rollout.shared_prefill import prefilled_generate_inputs

LOGIT_TOL = 1e-5


def _samples():
    small = SyntheticShapes(2, seed=11, image_size=32)
    big = SyntheticShapes(1, seed=12, image_size=48)
    return [small[0], big[0], small[1]]


def _generate(policy, prompts, group_size, share: bool, **kwargs):
    model = policy.model
    model.eval()
    inputs = prefilled_generate_inputs(model, prompts, group_size) if share else None
    if share:
        assert inputs is not None, "the shared-prefill path should apply to this model"
    else:
        inputs = dict(prompts.model_inputs(), num_return_sequences=group_size)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(
            **inputs,
            do_sample=True,
            top_k=0,
            max_new_tokens=6,
            pad_token_id=policy.pad_id,
            eos_token_id=policy.eos_id,
            output_logits=True,
            return_dict_in_generate=True,
            **kwargs,
        )
    model.train()
    return out.sequences, torch.stack(out.logits, dim=1)


@pytest.mark.parametrize("lora", [False, True])
def test_same_tokens_and_logits_as_stock_generate(tiny_policy_fresh, lora):
    policy = tiny_policy_fresh
    if lora:
        policy.model = apply_lora(policy.model, r=4, alpha=8)
        # A non-zero adapter, so that a path that skipped it would differ.
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.05)
    prompts = policy.encode_prompts(_samples())
    assert not prompts.attention_mask.bool().all(), "prompts of two lengths should be left-padded"
    stock_ids, stock_logits = _generate(policy, prompts, 3, share=False)
    ids, logits = _generate(policy, prompts, 3, share=True)
    assert ids.shape == stock_ids.shape == (9, prompts.input_ids.shape[1] + stock_logits.shape[1])
    assert torch.equal(ids, stock_ids)
    finite = torch.isfinite(stock_logits)
    assert torch.equal(finite, torch.isfinite(logits))
    assert (logits[finite] - stock_logits[finite]).abs().max() < LOGIT_TOL


def test_min_new_tokens_is_respected(tiny_policy_fresh):
    policy = tiny_policy_fresh
    prompts = policy.encode_prompts(_samples())
    stock_ids, _ = _generate(policy, prompts, 2, share=False, min_new_tokens=6)
    ids, _ = _generate(policy, prompts, 2, share=True, min_new_tokens=6)
    assert torch.equal(ids, stock_ids)
    assert not (ids[:, prompts.input_ids.shape[1] :] == policy.eos_id).any()


def test_rollout_backend_uses_it_and_matches(tiny_policy_fresh):
    policy = tiny_policy_fresh
    samples = _samples()
    rollouts = []
    for share in (False, True):
        torch.manual_seed(3)
        rollouts.append(
            HFRollout(max_new_tokens=5, share_prefill=share, fast_decode=False).generate(
                policy, samples, group_size=2
            )
        )
    stock, shared = rollouts
    assert torch.equal(stock.completion_ids, shared.completion_ids)
    assert torch.equal(stock.completion_mask, shared.completion_mask)
    assert stock.texts == shared.texts
    assert policy.model.training, "generate must hand the model back in train mode"


def test_single_rollout_takes_the_stock_call(tiny_policy_fresh):
    prompts = tiny_policy_fresh.encode_prompts(_samples())
    assert prefilled_generate_inputs(tiny_policy_fresh.model, prompts, 1) is None
