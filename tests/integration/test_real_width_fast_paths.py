"""Our fast paths at Qwen2.5-VL-3B's real widths (hidden 2048, 16 / 2 heads, 151,936 entries), 2 layers, float32.

float32 on a cut-down depth: bf16 tolerances (~1e-2) would hide an indexing or masking bug,
float32 at these widths agrees to ~1e-4. Each fast path is compared with the stock call:

* the own decode loop returns ``generate``'s tokens for a seed;
* the completion pass (shared prompt, layer-by-layer completion tokens, vocabulary chunks) gives
  the stock forward's log-probs and LoRA gradients;
* micro-batched gradients add up to the one-pass gradients;
* the vocabulary is projected in several chunks at 151,936 entries, with the one-pass values;
* the route chosen at setup says which path runs and why.
"""

import pytest
import torch
from tests.textbook_forward import textbook_logprobs

from speciarl.built_models.random_qwen import random_qwen_policy
from speciarl.data.synthetic import SyntheticShapes
from speciarl.policy.logprob_route import choose_route
from speciarl.policy.microbatch import micro_batches
from speciarl.policy.policy import token_logprobs, token_logprobs_with_entropy
from speciarl.policy.vocab_chunks import DEFAULT_MAX_LOGITS, chunk_count, entropy_from_logits
from speciarl.rollout.hf import HFRollout

# float32 at hidden 2048 over a 151,936-way softmax: 1e-3 (absolute on log-probs, relative L2 on
# gradients) leaves room for summation order across BLAS builds (not measured separately).
LOGP_ATOL = 1e-3
GRAD_RTOL = 1e-3


@pytest.fixture(scope="module")
def policy3b():
    torch.manual_seed(0)
    return random_qwen_policy("3b", layers=2, vision_blocks=2, dtype="float32", lora={"r": 16, "alpha": 32})


@pytest.fixture(scope="module")
def rollout3b(policy3b):
    samples = [SyntheticShapes(size=2, seed=1, image_size=448)[i] for i in range(2)]
    torch.manual_seed(1)
    return HFRollout(max_new_tokens=5, min_new_tokens=5, fast_decode=True).generate(policy3b, samples, 2)


def _lora_grads(policy, loss):
    params = [p for p in policy.model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    loss.backward()
    return torch.cat([p.grad.flatten() for p in params])


def _close(a, b):
    return float((a - b).norm()) <= GRAD_RTOL * float(b.norm())


def test_rollout_has_the_real_image_token_count(rollout3b):
    assert int((rollout3b.prompts.input_ids[0] == 151655).sum()) == 256
    assert rollout3b.completion_ids.shape == (4, 5)


def test_own_decode_loop_returns_generates_tokens(policy3b):
    samples = [SyntheticShapes(size=1, seed=3, image_size=448)[0]]
    tokens = []
    for fast in (True, False):
        torch.manual_seed(7)
        rollout = HFRollout(max_new_tokens=4, min_new_tokens=4, fast_decode=fast).generate(
            policy3b, samples, 2
        )
        tokens.append(rollout.completion_ids)
    assert torch.equal(tokens[0], tokens[1])


@pytest.mark.parametrize("completion_pass", [True, False])
def test_log_probs_and_gradients_equal_the_stock_forward(policy3b, rollout3b, completion_pass):
    weights = torch.linspace(-1.0, 1.0, rollout3b.completion_ids.numel()).view_as(rollout3b.completion_ids)
    stock = textbook_logprobs(policy3b, rollout3b)
    stock_grads = _lora_grads(policy3b, (stock * weights).sum())
    fast = token_logprobs(policy3b.model, rollout3b, policy3b.suppress_ids, completion_pass=completion_pass)
    assert torch.allclose(fast, stock.detach(), atol=LOGP_ATOL)
    assert _close(_lora_grads(policy3b, (fast * weights).sum()), stock_grads)


def test_entropy_on_the_route_equals_the_stock_logits_entropy(policy3b, rollout3b):
    p, ids = rollout3b.prompts, rollout3b.completion_ids
    with torch.no_grad():
        logits = policy3b.model(
            input_ids=torch.cat([p.input_ids, ids], 1),
            attention_mask=torch.cat([p.attention_mask, rollout3b.completion_mask.long()], 1),
            mm_token_type_ids=torch.cat([p.mm_token_type_ids, torch.zeros_like(ids)], 1),
            pixel_values=p.pixel_values,
            image_grid_thw=p.image_grid_thw,
        ).logits[:, p.input_ids.shape[1] - 1 : -1]
        logits[..., policy3b.suppress_ids] = float("-inf")
        _, entropy = token_logprobs_with_entropy(
            policy3b.model, rollout3b, policy3b.suppress_ids, completion_pass=True
        )
    assert torch.allclose(entropy, entropy_from_logits(logits), atol=LOGP_ATOL)


def test_micro_batched_gradients_equal_one_pass(policy3b, rollout3b):
    def loss_of(part):
        return token_logprobs(policy3b.model, part, policy3b.suppress_ids).sum()

    one = _lora_grads(policy3b, loss_of(rollout3b))
    pieces = micro_batches(rollout3b, token_budget=rollout3b.prompts.input_ids.shape[1] + 6)
    assert len(pieces) == 4  # one row each
    params = [p for p in policy3b.model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    for _, piece in pieces:
        loss_of(piece).backward()
    assert _close(torch.cat([p.grad.flatten() for p in params]), one)


def test_vocabulary_chunks_engage_at_151936_entries(policy3b, rollout3b):
    # 2**26 logits hold 441 rows of 151,936: a 7B batch of 128 x 64 completion tokens makes 19 chunks.
    assert chunk_count(128 * 64, 151936, DEFAULT_MAX_LOGITS) == 19
    three_rows = 3 * 151936  # 20 real tokens -> 7 chunks
    assert chunk_count(20, 151936, three_rows) == 7
    one = token_logprobs(policy3b.model, rollout3b, policy3b.suppress_ids)
    chunked = token_logprobs(policy3b.model, rollout3b, policy3b.suppress_ids, max_logits=three_rows)
    assert torch.allclose(chunked, one, atol=1e-5)
    assert _close(_lora_grads(policy3b, chunked.sum()), _lora_grads(policy3b, one.sum()))


def test_route_is_chosen_from_device_model_and_settings(policy3b):
    model = policy3b.model
    cpu = choose_route(model, "cpu", entropy=True, fast_decode="auto")
    assert cpu.describe() == (
        "log-probs: completion pass, CPU; entropy: same route (from each vocabulary chunk's logits); "
        "rollouts: own decode loop"
    )
    gpu = choose_route(model, "cuda", fast_decode="auto")
    assert (gpu.completion_pass, gpu.own_decode) == (False, False)
    assert "stock call keeps its fused kernels" in gpu.describe()
    asked = choose_route(model, "cuda", completion_pass=True, fast_decode=True)
    assert (asked.completion_pass, asked.own_decode) == (True, True)
    with pytest.raises(ValueError, match="must be true, false or 'auto'"):
        choose_route(model, "cpu", fast_decode="yes")
