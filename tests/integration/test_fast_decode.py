"""Our decode loop (rollout/decode.py) samples what ``generate`` samples, from the same distribution.

* With ``sampler="multinomial"`` it makes generate's own draw: the same tokens for a seed as the
  stock path, the same number of random numbers used (the global RNG state after the call is
  equal) and reported log-probs equal to generate's to 1e-5 in float32 (measured ~1e-6); with
  left-padded prompts of two lengths, LoRA, temperature + top-p, min_new_tokens and greedy.
  Its draw (``exponential_race``) is torch.multinomial's, vectorised: the same tokens and the same
  generator state after it, bitwise, over many seeds and shapes.
* With the opt-in ``sampler="inverse_cdf"`` (other samples for a seed), the log-prob it reports
  for every sampled token equals the textbook computation in float64 to 1e-10: every row's full
  sequence through the stock forward, suppressed tokens masked, temperature, log_softmax. The
  draw itself is checked on hand-worked cumulative sums and by frequencies.
"""

import pytest
import torch

from speciarl.data.synthetic import SyntheticShapes
from speciarl.policy.loading import apply_lora
from speciarl.rollout import decode as decode_module
from speciarl.rollout.decode import (
    DecodeSettings,
    decode,
    exponential_race,
    inverse_cdf_draw,
    unsupported_reason,
)
from speciarl.rollout.hf import HFRollout
from textbook_forward import textbook_logprobs

LOGP_TOL = 1e-5
TEXTBOOK_TOL = 1e-10
QUICK_PHASES = [{"steps": 40, "lr": 0.003, "leaf": 1.0, "type": 0.0, "family": 0.0}]


def _samples():
    small = SyntheticShapes(2, seed=11, image_size=32)
    big = SyntheticShapes(1, seed=12, image_size=48)
    return [small[0], big[0], small[1]]


def _with_lora(policy):
    policy.model = apply_lora(policy.model, r=4, alpha=8)
    with torch.no_grad():  # a non-zero adapter, so that a path that skipped it would differ
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return policy


def _both(policy, samples, group_size, greedy=False, **kwargs):
    """(stock, ours) rollouts from the same seed, and the RNG state after each."""
    out = []
    for fast in (False, True):
        backend = HFRollout(fast_decode=fast, sampler="multinomial", report_logprobs=True, **kwargs)
        torch.manual_seed(7)
        rollout = backend.generate(policy, samples, group_size=group_size, greedy=greedy)
        out.append((rollout, torch.get_rng_state()))
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_new_tokens=7),
        dict(max_new_tokens=6, temperature=0.7, top_p=0.9),
        dict(max_new_tokens=5, min_new_tokens=5),
        dict(max_new_tokens=6, lora=True),
    ],
    ids=["plain", "temperature-top-p", "min-new-tokens", "lora"],
)
def test_multinomial_loop_gives_generates_samples(tiny_policy_fresh, kwargs):
    policy = _with_lora(tiny_policy_fresh) if kwargs.pop("lora", False) else tiny_policy_fresh
    samples = _samples()
    prompts = policy.encode_prompts(samples)
    assert not prompts.attention_mask.bool().all(), "prompts of two lengths should be left-padded"
    assert unsupported_reason(policy.model, prompts) is None, "the own loop should apply"
    (stock, stock_rng), (ours, our_rng) = _both(policy, samples, 3, **kwargs)
    assert ours.completion_ids.shape == stock.completion_ids.shape == (9, kwargs["max_new_tokens"])
    assert torch.equal(ours.completion_ids, stock.completion_ids)
    assert torch.equal(ours.completion_mask, stock.completion_mask)
    assert ours.texts == stock.texts
    assert torch.equal(our_rng, stock_rng), "the same random numbers must be drawn"
    mask = stock.completion_mask
    assert (ours.sampler_logp - stock.sampler_logp)[mask].abs().max() < LOGP_TOL
    if "min_new_tokens" in kwargs:
        assert not (ours.completion_ids == policy.eos_id).any()
    assert policy.model.training, "the rollout must hand the model back in train mode"


def test_greedy_and_early_ends_match_generate():
    """A warm-started model ends its answers early: the loop stops where generate stops."""
    from speciarl.built_models.tiny_loading import tiny_policy

    policy = tiny_policy(warm_start=True, phases=QUICK_PHASES)
    samples = [SyntheticShapes(4, seed=3)[i] for i in range(4)]
    (stock, _), (ours, _) = _both(policy, samples, 1, greedy=True, max_new_tokens=40)
    assert torch.equal(ours.completion_ids, stock.completion_ids)
    (stock, stock_rng), (ours, our_rng) = _both(policy, samples, 4, max_new_tokens=40)
    assert torch.equal(ours.completion_ids, stock.completion_ids)
    assert torch.equal(our_rng, stock_rng)
    ended = (~stock.truncated).sum()
    assert ended == len(stock.texts), "every answer should end within 40 tokens"
    assert stock.completion_ids.shape[1] < 40, "generate stops at the last row's EOS"


def test_checking_the_end_every_k_tokens_gives_the_same_tokens():
    """On an accelerator the end is checked every CHECK_EVERY tokens; the columns past the last EOS go."""
    from speciarl.built_models.tiny_loading import tiny_policy

    policy = tiny_policy(warm_start=True, phases=QUICK_PHASES)
    model = policy.model.eval()
    prompts = policy.encode_prompts([SyntheticShapes(3, seed=4)[i] for i in range(3)])
    settings = DecodeSettings(40, policy.eos_id, policy.pad_id, tuple(policy.suppress_ids))
    outs = []
    for every in (1, 8):
        torch.manual_seed(5)
        outs.append(decode(model, prompts, 4, settings, check_every=every)[0])
    assert torch.equal(outs[0], outs[1])
    assert outs[0].shape[1] < 40 and (outs[0] == policy.eos_id).any(-1).all()


@pytest.fixture
def policy64(tiny_policy_fresh):
    tiny_policy_fresh.model.double()
    return tiny_policy_fresh


def _textbook_logprobs(policy, rollout, temperature: float) -> torch.Tensor:
    """Every row's full sequence through the stock forward; log p of each sampled token."""
    policy.model.eval()
    with torch.no_grad():
        logp = textbook_logprobs(policy, rollout, temperature)
    policy.model.train()
    return logp


@pytest.mark.parametrize(
    "temperature,lora,layout",
    [
        (1.0, False, "transposed"),
        (0.7, False, "transposed"),
        (1.0, True, "transposed"),
        (0.7, False, "plain"),
    ],
)
def test_reported_logprobs_equal_the_textbook_forward_in_float64(
    policy64, temperature, lora, layout, monkeypatch
):
    """``layout="plain"``: keys unstransposed and scaled_dot_product_attention, as bf16 models run."""
    if layout == "plain":
        monkeypatch.setattr(decode_module, "TRANSPOSED_KEY_DTYPES", ())
    policy = _with_lora(policy64) if lora else policy64
    if lora:
        policy.model.double()
    backend = HFRollout(max_new_tokens=8, temperature=temperature, report_logprobs=True)
    torch.manual_seed(1)
    rollout = backend.generate(policy, _samples(), group_size=3)
    assert rollout.sampler_logp.dtype == torch.float64, "a float64 model is sampled in float64"
    reference = _textbook_logprobs(policy, rollout, temperature)
    mask = rollout.completion_mask
    assert mask.sum() > 40
    assert (rollout.sampler_logp - reference)[mask].abs().max() < TEXTBOOK_TOL


@pytest.mark.parametrize("shape", [(1, 2), (7, 3), (128, 502), (3, 4096)])
def test_exponential_race_is_multinomials_draw(shape):
    for seed in range(40):
        gen = torch.Generator().manual_seed(1000 + seed)
        logits = torch.randn(shape, generator=gen) * (1 + seed % 4) * 2
        logits[:, :: max(2, shape[1] // 3)] = float("-inf")  # zero-probability tokens
        logits[0, 0] = 0.0  # at least one finite entry in row 0
        probs = torch.softmax(logits, -1)
        torch.manual_seed(seed)
        expected = torch.multinomial(probs, num_samples=1).squeeze(1)
        state = torch.get_rng_state()
        torch.manual_seed(seed)
        drawn = exponential_race(probs)
        assert torch.equal(drawn, expected), (shape, seed)
        assert torch.equal(torch.get_rng_state(), state), "a different number of random numbers"
        assert bool(probs.gather(1, drawn[:, None]).gt(0).all()), "a zero-probability token"


def test_exponential_race_refuses_nan_rows_as_multinomial_does():
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.2, float("nan"), 0.8]])
    with pytest.raises(RuntimeError, match="nan"):
        exponential_race(probs)
    with pytest.raises(RuntimeError):
        torch.multinomial(probs, 1)


def test_inverse_cdf_draw_on_hand_worked_sums():
    # cumulative sums 0.125, 0.125, 0.375, 1, 1 (exact in binary): token i is drawn for u in
    # [cdf[i-1], cdf[i]); the zero-probability tokens 1 and 4 never are.
    probs = torch.tensor([[0.125, 0.0, 0.25, 0.625, 0.0]])
    uniforms = torch.tensor([0.0, 0.124, 0.125, 0.374, 0.375, 0.999, 1 - 2**-53], dtype=torch.float64)
    drawn = inverse_cdf_draw(probs.expand(len(uniforms), -1), uniforms)
    assert drawn.tolist() == [0, 0, 2, 2, 3, 3, 3]
    # unnormalised rows are divided by their total
    assert inverse_cdf_draw(4 * probs.expand(len(uniforms), -1), uniforms).tolist() == drawn.tolist()


def test_inverse_cdf_draw_frequencies():
    probs = torch.tensor([0.05, 0.0, 0.15, 0.3, 0.5, 0.0])
    n = 200_000
    gen = torch.Generator().manual_seed(0)
    drawn = inverse_cdf_draw(probs.expand(n, -1), torch.rand(n, dtype=torch.float64, generator=gen))
    counts = torch.bincount(drawn, minlength=6).double()
    expected = n * probs.double()
    sigma = (n * probs.double() * (1 - probs.double())).sqrt()
    assert counts[1] == 0 and counts[5] == 0
    assert ((counts - expected).abs() <= 5 * sigma).all(), (counts, expected)


def test_a_generation_setting_it_does_not_model_takes_generate(tiny_policy_fresh):
    policy = tiny_policy_fresh
    prompts = policy.encode_prompts(_samples())
    policy.model.generation_config.repetition_penalty = 1.05
    assert "repetition_penalty" in unsupported_reason(policy.model, prompts)
    with pytest.raises(ValueError, match="sampler"):
        HFRollout(sampler="gumbel")
    rollouts = []
    for fast in (False, True):
        torch.manual_seed(2)
        rollouts.append(HFRollout(max_new_tokens=5, fast_decode=fast).generate(policy, prompts, 2))
    assert torch.equal(rollouts[0].completion_ids, rollouts[1].completion_ids)


def test_bfloat16_policy_samples_its_own_distribution():
    """A bf16 policy (plain key layout, fused attention): reported log-probs agree with the
    textbook bf16 forward to bf16 resolution (its logits carry ~3 significant digits)."""
    from speciarl.built_models.tiny_loading import tiny_policy

    torch.manual_seed(0)
    policy = tiny_policy(warm_start=False, dtype="bfloat16")
    assert unsupported_reason(policy.model, policy.encode_prompts(_samples())) is None
    torch.manual_seed(1)
    rollout = HFRollout(max_new_tokens=8, report_logprobs=True).generate(policy, _samples(), group_size=3)
    assert rollout.sampler_logp.dtype == torch.float32
    reference = _textbook_logprobs(policy, rollout, 1.0).float()
    mask = rollout.completion_mask
    assert (rollout.sampler_logp - reference)[mask].abs().max() < 0.1
