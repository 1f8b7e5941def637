"""The fast log-prob pass (shared prompts, shared images, trimmed padding, vocabulary chunks) is exact.

The reference below is the textbook computation, written independently of the code under test:
every row's full sequence through the model, every image copy through the vision tower, no
column trimmed, full logits of every position, log_softmax, pick the token. Both run in float64,
so the comparison is tight: values to 1e-12, gradients to 1e-6 relative per parameter tensor
(the vision tower rotates q/k in float32 internally, and a different summation order of the G
copies' gradients leaves ~1e-7 there; a wrong position, row or mask gives errors above 1e-3).
"""

import pytest
import torch

from speciarl.core.rollouts import Rollout
from speciarl.data.synthetic import SyntheticShapes
from speciarl.policy import completion_pass, shared_prompts
from speciarl.policy.loading import apply_lora
from speciarl.policy.policy import token_logprobs
from speciarl.policy.shared_images import distinct_image_index, image_inputs
from speciarl.policy.shared_prompts import prompt_owner, shared_prompt_hidden
from textbook_forward import textbook_logprobs

VALUE_TOL = 1e-12
GRAD_RTOL = 1e-6


@pytest.fixture
def policy64(tiny_policy_fresh):
    tiny_policy_fresh.model.double()
    return tiny_policy_fresh


@pytest.fixture
def completion_calls(monkeypatch):
    """The ``prompt_valid`` argument of every call of the hand-written completion pass."""
    calls = []
    real = shared_prompts.completion_hidden

    def spy(text, prompt_kv, ids, positions, prompt_valid):
        calls.append(prompt_valid)
        return real(text, prompt_kv, ids, positions, prompt_valid)

    monkeypatch.setattr(shared_prompts, "completion_hidden", spy)
    return calls


def _reference_logprobs(policy, rollout: Rollout) -> torch.Tensor:
    logp = textbook_logprobs(policy, rollout)
    return torch.where(rollout.completion_mask, logp, torch.zeros_like(logp))


def _rollout(policy, samples, group_size: int, lengths: list[int], width: int) -> Rollout:
    """Hand-made completions: random allowed tokens, EOS at the given lengths, EOS padding after."""
    gen = torch.Generator().manual_seed(0)
    n = len(samples) * group_size
    allowed = torch.tensor([t for t in range(40, 200) if t not in policy.suppress_ids])
    ids = allowed[torch.randint(len(allowed), (n, width), generator=gen)]
    mask = torch.zeros(n, width, dtype=torch.bool)
    for row, length in enumerate(lengths):
        ids[row, length - 1 :] = policy.eos_id
        mask[row, :length] = True
    prompts = policy.encode_prompts(samples).repeat(group_size)
    return Rollout(prompts, ids, mask, [""] * n, torch.zeros(n, dtype=torch.bool), group_size)


def _values_and_grads(policy, fn, rollout):
    policy.model.zero_grad(set_to_none=True)
    logp = fn(rollout)
    # A loss that weighs every token differently, so a mixed-up position would show.
    weights = torch.linspace(0.5, 1.5, logp.numel(), dtype=logp.dtype).view_as(logp)
    (logp * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
    return logp.detach(), grads


def _assert_same(policy, rollout, **kwargs):
    fast, fast_grads = _values_and_grads(
        policy, lambda r: token_logprobs(policy.model, r, policy.suppress_ids, **kwargs), rollout
    )
    ref, ref_grads = _values_and_grads(policy, lambda r: _reference_logprobs(policy, r), rollout)
    assert fast.shape == ref.shape and fast.dtype == ref.dtype == torch.float64
    assert torch.allclose(fast, ref, atol=VALUE_TOL, rtol=0), (fast - ref).abs().max()
    assert fast_grads.keys() == ref_grads.keys()
    visual = [n for n in ref_grads if "visual" in n]
    assert visual, "the vision tower must receive gradients in both passes"
    for name, g in ref_grads.items():
        scale = g.abs().max().clamp(min=1e-6)
        assert (fast_grads[name] - g).abs().max() <= GRAD_RTOL * scale, name


def test_distinct_image_index_groups_equal_neighbours():
    a = torch.ones(4, 3)
    b = torch.zeros(4, 3)
    c = torch.ones(16, 3)
    grid_small = torch.tensor([1, 2, 2])
    grid_big = torch.tensor([1, 4, 4])
    pixels = torch.cat([a, a, b, a, c])
    grids = torch.stack([grid_small, grid_small, grid_small, grid_small, grid_big])
    # a a | b | a (equal to an earlier image, but not its neighbour) | c (other size)
    assert distinct_image_index(pixels, grids) == [0, 0, 1, 2, 3]


def test_prompt_owner_groups_equal_neighbour_rows(tiny_policy_fresh):
    data = SyntheticShapes(2, seed=3)
    prompts = tiny_policy_fresh.encode_prompts([data[0], data[1]]).repeat(3)
    args = (prompts.input_ids, prompts.attention_mask, prompts.pixel_values, prompts.image_grid_thw)
    assert prompt_owner(*args) == [0, 0, 0, 1, 1, 1]
    rows = prompts.select([0, 3, 4, 1])
    args = (rows.input_ids, rows.attention_mask, rows.pixel_values, rows.image_grid_thw)
    assert prompt_owner(*args) == [0, 1, 1, 2]


def _prompt_dict(rollout):
    p = rollout.prompts
    return {
        "input_ids": p.input_ids,
        "attention_mask": p.attention_mask,
        "mm_token_type_ids": p.mm_token_type_ids,
        "pixel_values": p.pixel_values,
        "image_grid_thw": p.image_grid_thw,
    }


@pytest.mark.parametrize("width", [7, 40], ids=["shorter-than-prompt", "longer-than-prompt"])
def test_shared_prompt_pass_equals_plain_pass(policy64, completion_calls, monkeypatch, width):
    """Unpadded prompts: completions shorter than the ~28-token prompt attend under an explicit
    mask, longer ones under the fused kernel's causal mask after zero queries (no mask)."""
    policy = policy64
    data = SyntheticShapes(2, seed=3)
    lengths = [5, 2, width, width, 1, 4]
    rollout = _rollout(policy, [data[0], data[1]], group_size=3, lengths=lengths, width=width)
    shapes = []
    real_attention = completion_pass._attention

    def attention_spy(q, keys, values, scale, prompt_valid):
        shapes.append((q.shape[2], keys.shape[2] - q.shape[2]))  # (completion T, prompt P)
        return real_attention(q, keys, values, scale, prompt_valid)

    monkeypatch.setattr(completion_pass, "_attention", attention_spy)
    model = policy.model
    hidden = shared_prompt_hidden(
        model.model, model, _prompt_dict(rollout), rollout.completion_ids, rollout.completion_mask
    )
    assert hidden is not None and hidden.shape[:2] == (6, width), "the shared-prompt path should be taken"
    assert completion_calls == [None], "the hand-written completion pass should run, no prompt padded"
    completion, prompt = shapes[0]
    assert (completion > prompt) == (width == 40), shapes  # which attention branch ran
    _assert_same(policy, rollout)


def test_shared_images_pass_equals_plain_pass(policy64):
    """With gradient checkpointing the KV-cache path is off; images are still encoded once."""
    policy = policy64
    policy.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    data = SyntheticShapes(2, seed=3)
    rollout = _rollout(policy, [data[0], data[1]], group_size=3, lengths=[5, 2, 7, 7, 1, 4], width=7)
    model = policy.model
    assert (
        shared_prompt_hidden(
            model.model, model, _prompt_dict(rollout), rollout.completion_ids, rollout.completion_mask
        )
        is None
    )
    images = image_inputs(policy.model, rollout.prompts.pixel_values, rollout.prompts.image_grid_thw)
    assert "mm_encoder_outputs" in images and "pixel_values" not in images
    assert len(images["mm_encoder_outputs"]["image"].pooler_output) == 6
    _assert_same(policy, rollout)


def test_trimmed_padding_equals_plain_pass(policy64, completion_calls):
    """Prompts of different lengths (32 px and 48 px images) and completions shorter than their width."""
    policy = policy64
    small = SyntheticShapes(1, seed=4, image_size=32)[0]
    big = SyntheticShapes(1, seed=4, image_size=48)[0]
    rollout = _rollout(policy, [big, small], group_size=2, lengths=[3, 2, 4, 1], width=9)
    assert not rollout.prompts.attention_mask.bool().all(), "the 32 px prompt should be left-padded"
    _assert_same(policy, rollout)
    # The completion pass ran with the prompts' padding as its mask.
    assert completion_calls and completion_calls[0] is not None and not completion_calls[0].all()
    # Only the short prompt's rows: leading columns are padding in every row and get cut.
    _assert_same(policy, rollout.select([2, 3]))


def test_single_token_completions(policy64):
    data = SyntheticShapes(2, seed=8)
    _assert_same(
        policy64, _rollout(policy64, [data[0], data[1]], group_size=2, lengths=[1, 1, 1, 1], width=3)
    )


@pytest.mark.parametrize("chunk_tokens", [1, 3])
def test_vocabulary_chunks_equal_plain_pass(policy64, chunk_tokens):
    policy = policy64
    data = SyntheticShapes(2, seed=6)
    rollout = _rollout(policy, [data[0], data[1]], group_size=2, lengths=[6, 3, 1, 5], width=6)
    vocab = policy.model.get_output_embeddings().out_features
    _assert_same(policy, rollout, max_logits=vocab * chunk_tokens)


def test_vocabulary_chunk_budget_must_hold_a_row(tiny_policy_fresh):
    policy = tiny_policy_fresh
    data = SyntheticShapes(1, seed=6)
    rollout = _rollout(policy, [data[0]], group_size=1, lengths=[2], width=2)
    with pytest.raises(ValueError, match="max_logits"):
        token_logprobs(policy.model, rollout, policy.suppress_ids, max_logits=10)


def test_lora_reference_pass_through_the_shared_prompt_path(policy64):
    """The KL reference of a LoRA policy (adapter disabled) is the base model's, on the fast path."""
    policy = policy64
    data = SyntheticShapes(2, seed=9)
    rollout = _rollout(policy, [data[0], data[1]], group_size=3, lengths=[4, 2, 5, 5, 1, 3], width=5)
    with torch.no_grad():
        base_logp = _reference_logprobs(policy, rollout)
    model = apply_lora(policy.model, r=4, alpha=8)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
        adapted = token_logprobs(model, rollout, policy.suppress_ids)
        with model.disable_adapter():
            reference = token_logprobs(model, rollout, policy.suppress_ids)
    assert torch.allclose(reference, base_logp, atol=VALUE_TOL, rtol=0)
    assert (adapted - base_logp).abs().max() > 1e-4, "the adapter should change the policy"


def test_lora_gradients_through_the_completion_pass(policy64, completion_calls):
    """A LoRA policy trained on the fast path: the adapters' gradients equal the textbook pass's."""
    policy = policy64
    policy.model = apply_lora(policy.model, r=4, alpha=8)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    data = SyntheticShapes(2, seed=10)
    rollout = _rollout(policy, [data[0], data[1]], group_size=3, lengths=[6, 2, 5, 6, 1, 3], width=6)
    fast, fast_grads = _values_and_grads(
        policy, lambda r: token_logprobs(policy.model, r, policy.suppress_ids), rollout
    )
    ref, ref_grads = _values_and_grads(policy, lambda r: _reference_logprobs(policy, r), rollout)
    assert completion_calls, "the hand-written completion pass should run for a LoRA policy"
    assert torch.allclose(fast, ref, atol=VALUE_TOL, rtol=0), (fast - ref).abs().max()
    lora = [n for n in ref_grads if "lora_" in n]
    assert lora and fast_grads.keys() == ref_grads.keys()
    for name in lora:
        scale = ref_grads[name].abs().max().clamp(min=1e-6)
        assert (fast_grads[name] - ref_grads[name]).abs().max() <= GRAD_RTOL * scale, name
