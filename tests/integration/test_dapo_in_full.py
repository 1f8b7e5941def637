"""DAPO's pieces on real components: truncation handling, overlong shaping, dynamic sampling.

Rollouts here are built from real token ids of the tiny model's tokenizer, scored by the real
taxonomy judge and reward; dynamic sampling runs through the Hydra entry point on the tiny model.
"""

import csv
import math

import pytest
import torch

from speciarl.core.categories import Category as C
from speciarl.core.categories import Outcome as O
from speciarl.core.prompts import format_answer
from speciarl.core.rollouts import Rollout, concat_rollouts
from speciarl.core.samples import Sample
from speciarl.data.synthetic import SyntheticShapes, shapes_taxonomy
from speciarl.policy.policy import Policy, token_logprobs
from speciarl.rl.config import AlgorithmConfig, OverlongShaping
from speciarl.rl.rewards import SpeciaRLReward
from speciarl.rl.scoring import RolloutScorer, ScoredRollouts, penalize_truncated
from speciarl.rollout.hf import HFRollout
from speciarl.train import train
from speciarl.verifier.taxonomy_judge import TaxonomyJudge

BUDGET = 16


def handmade_rollout(policy: Policy, samples, completions):
    """completions[i] = (answer label, finished?) for row i; G = len(completions) // len(samples).

    A finished completion is the formatted answer then EOS (7 tokens for a two-word label); an
    unfinished one is the same answer followed by filler words until the budget is spent, no EOS.
    """
    tok = policy.tokenizer
    filler = tok.encode(" shape", add_special_tokens=False)
    rows = []
    for label, finished in completions:
        ids = tok.encode(format_answer(label), add_special_tokens=False)
        if finished:
            ids = ids + [policy.eos_id] * (BUDGET - len(ids))
        else:
            ids = (ids + filler * BUDGET)[:BUDGET]
        rows.append(ids)
    ids, mask, truncated = policy.completion_tensors(torch.tensor(rows))
    G = len(completions) // len(samples)
    return Rollout(
        prompts=policy.encode_prompts(samples).repeat(G),
        completion_ids=ids,
        completion_mask=mask,
        texts=policy.decode(ids, mask),
        truncated=truncated,
        group_size=G,
    )


@pytest.fixture
def one_group(tiny_policy_fresh):
    sample = SyntheticShapes(size=1, seed=1)[0]
    assert sample.label == "azure diamond"
    # specific but cut at the budget, less specific and finished, generic and finished
    rollout = handmade_rollout(
        tiny_policy_fresh, [sample], [("azure diamond", False), ("diamond", True), ("angular", True)]
    )
    return tiny_policy_fresh, sample, rollout


def score(sample, rollout, **algorithm):
    scorer = RolloutScorer(
        TaxonomyJudge(shapes_taxonomy()), SpeciaRLReward(), AlgorithmConfig(**algorithm), BUDGET
    )
    return scorer.score([sample], rollout)


def test_truncated_completion_is_flagged_and_counted(one_group):
    _, _, rollout = one_group
    assert rollout.truncated.tolist() == [True, False, False]
    assert rollout.completion_mask.sum(-1).tolist() == [16, 6, 6]  # answer tokens + EOS


def test_truncation_keep(one_group):
    _, sample, rollout = one_group
    out = score(sample, rollout, truncation="keep")
    # The cut completion still holds a specific answer: it sets the bar, the others get 0.
    assert out.judgements == [C.SPECIFIC, C.LESS_SPECIFIC, C.GENERIC]
    assert out.rewards.tolist() == [[1.0, 0.0, 0.0]]


def test_truncation_penalize(one_group):
    _, sample, rollout = one_group
    out = score(sample, rollout, truncation="penalize")
    # Scored as a parse failure: -1, and the bar falls to the best finished answer (less specific).
    assert out.rewards.tolist() == [[-1.0, 1.0, 0.0]]
    assert out.judgements[0] is C.SPECIFIC  # metrics still see the judge's verdict


def test_truncation_mask_keeps_rewards_and_masks_the_loss(one_group):
    from speciarl.rl.losses import loss_mask_for_truncation

    _, sample, rollout = one_group
    out = score(sample, rollout, truncation="mask")
    assert out.rewards.tolist() == [[1.0, 0.0, 0.0]]
    mask = loss_mask_for_truncation(rollout.completion_mask, rollout.truncated, "mask")
    assert mask.sum(-1).tolist() == [0, 6, 6]


def test_overlong_shaping_on_real_lengths(one_group):
    _, sample, rollout = one_group
    out = score(sample, rollout, overlong=OverlongShaping(enabled=True))
    # L = 16 (the budget), B = 4: lengths 16, 6, 6 -> penalties -(16 - 12) / 4 = -1, 0, 0.
    assert out.overlong.tolist() == [[-1.0, 0.0, 0.0]]
    assert out.shaped.tolist() == [[0.0, 0.0, 0.0]]  # 1 - 1, 0, 0: shaping removed the cut one's gain


def test_penalize_keeps_judge_errors_visible():
    assert penalize_truncated([O.JUDGE_ERROR, C.SPECIFIC], [True, True]) == [O.JUDGE_ERROR, O.PARSE_FAILURE]


def test_concatenated_rounds_give_the_same_logprobs(tiny_policy_fresh):
    # Two rounds whose prompts differ in length (a larger image has more image tokens, and the
    # "be specific" prompt more words) and whose completions differ in width: concatenation pads
    # prompts on the left and completions on the right; log-probs must not move.
    policy = tiny_policy_fresh
    other = Policy(policy.model, policy.processor, prompt="be_specific")
    samples = [SyntheticShapes(size=3, seed=5)[i] for i in range(3)]
    big = Sample(image=samples[2].image.resize((64, 64)), label=samples[2].label, sample_id="big")
    torch.manual_seed(0)
    a = HFRollout(max_new_tokens=6).generate(policy, samples[:2], group_size=2)
    b = HFRollout(max_new_tokens=9).generate(other, [big], group_size=2)
    assert a.prompts.input_ids.shape[1] != b.prompts.input_ids.shape[1]
    both = concat_rollouts([a, b], policy.pad_id, policy.eos_id)
    with torch.no_grad():
        parts = [token_logprobs(policy.model, r, policy.suppress_ids) for r in (a, b)]
        joined = token_logprobs(policy.model, both, policy.suppress_ids)
    assert torch.allclose(joined[:4, : parts[0].shape[1]], parts[0], atol=1e-5)
    assert torch.allclose(joined[4:, : parts[1].shape[1]], parts[1], atol=1e-5)
    assert (
        both.texts == a.texts + b.texts
        and both.truncated.tolist() == a.truncated.tolist() + b.truncated.tolist()
    )


def test_scored_rollouts_select_and_concat(tiny_policy_fresh):
    samples = [SyntheticShapes(size=2, seed=1)[i] for i in range(2)]
    rollout = handmade_rollout(
        tiny_policy_fresh,
        samples,
        [("azure diamond", True), ("diamond", True), ("amber bar", True), ("bar", True)],
    )
    scored = score_many(samples, rollout)
    assert scored.rewards.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    second = scored.select_groups([1])
    assert [s.label for s in second.samples] == ["amber bar"] and second.answers == ["amber bar", "bar"]
    joined = ScoredRollouts.concat(
        [second, scored.select_groups([0])], tiny_policy_fresh.pad_id, tiny_policy_fresh.eos_id
    )
    assert [s.label for s in joined.samples] == ["amber bar", "azure diamond"]
    assert joined.rollout.completion_ids.shape[0] == 4


def score_many(samples, rollout):
    scorer = RolloutScorer(TaxonomyJudge(shapes_taxonomy()), SpeciaRLReward(), AlgorithmConfig(), BUDGET)
    return scorer.score(samples, rollout)


# ---------------------------------------------------------------- through the entry point
FAST = [
    "model.warm_start=false",
    "logger=csv",
    "data.batch_size=2",
    "data.val.size=8",
    "data.val_batch_size=8",
    "eval.best_of_n=0",
    "eval.before=false",
    "module.log_completions_every=0",
]


def _metrics(tmp_path):
    (path,) = list(tmp_path.glob("csv/version_*/metrics.csv"))
    return [r for r in csv.DictReader(path.open()) if r.get("train/reward_mean")]


def test_dynamic_sampling_round_limit_through_the_module(make_config, tmp_path, caplog):
    # The untrained model never writes an <answer>: every group is all parse failures (-1), so
    # every group is dropped, the step hits the round limit and makes no update.
    cfg = make_config(
        "algorithm=dapo",
        "reward=speciarl",
        "algorithm.dynamic_sampling.enabled=true",
        *FAST,
        "algorithm.dynamic_sampling.max_rounds=3",
        "algorithm.dynamic_sampling.generation_batch_multiple=2",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        "trainer.val_check_interval=1",
    )
    import logging

    with caplog.at_level(logging.WARNING, logger="speciarl.rl.dynamic_sampling"):
        results = train(cfg)
    assert results["steps"] == 0
    (row,) = _metrics(tmp_path)
    assert float(row["train/ds_rounds"]) == 3
    assert float(row["train/ds_generated_groups"]) == 12  # 3 rounds x (2 x batch of 2)
    assert float(row["train/ds_kept_groups"]) == 0
    assert float(row["train/ds_dropped_equal_groups"]) == 12
    assert float(row["train/ds_hit_round_limit"]) == 1
    assert float(row["train/total_ds_round_limit_hits"]) == 1
    assert "round limit 3 reached with 0 of 2" in caplog.text


def test_dynamic_sampling_stops_a_run_that_gets_no_signal(make_config):
    cfg = make_config(
        "algorithm=dapo",
        "reward=speciarl",
        "algorithm.dynamic_sampling.enabled=true",
        *FAST,
        "algorithm.dynamic_sampling.max_rounds=1",
        "algorithm.dynamic_sampling.generation_batch_multiple=1",
        "algorithm.dynamic_sampling.max_empty_steps=2",
        "trainer.max_steps=1",
    )
    with pytest.raises(RuntimeError, match="no group with unequal rewards in 2 consecutive steps"):
        train(cfg)


@pytest.mark.parametrize("truncation", ["keep", "mask"])
def test_entropy_bonus_and_truncation_through_the_module(make_config, tmp_path, truncation):
    cfg = make_config(
        "algorithm=dr_grpo",
        "reward=speciarl",
        *FAST,
        "algorithm.entropy_coef=0.01",
        f"algorithm.truncation={truncation}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=100",
        "eval.after=false",
    )
    results = train(cfg)
    assert results["steps"] == 2
    rows = _metrics(tmp_path)
    assert len(rows) == 2
    truncated = [float(r["train/truncated"]) for r in rows]
    # The untrained model rarely stops within 16 tokens; truncations are counted either way.
    assert sum(truncated) > 0
    assert float(rows[-1]["train/total_truncated"]) == sum(truncated)
    assert results["totals"]["truncated"] == sum(truncated)
    for r, cut in zip(rows, truncated, strict=True):
        entropy, loss = float(r["train/entropy"]), float(r["train/loss"])
        if truncation == "keep":
            # every completion token enters the loss; a random policy's entropy is high but finite
            # (the exact bound ln |V| is checked in test_entropy_of_a_real_policy_is_bounded)
            assert 1.0 < entropy < 20.0
        elif cut == 8:  # 2 prompts x G = 4, all cut and masked: nothing enters the loss
            assert loss == 0.0 and entropy == 0.0
    if truncation == "mask":
        assert any(cut == 8 for cut in truncated)


def test_entropy_of_a_real_policy_is_bounded(tiny_policy_fresh):
    from speciarl.policy.policy import token_logprobs_with_entropy

    policy = tiny_policy_fresh
    rollout = HFRollout(max_new_tokens=5).generate(policy, [SyntheticShapes(size=1, seed=2)[0]], group_size=3)
    with torch.no_grad():
        logp, entropy = token_logprobs_with_entropy(policy.model, rollout, policy.suppress_ids)
        plain = token_logprobs(policy.model, rollout, policy.suppress_ids)
    vocab = policy.model.get_output_embeddings().weight.shape[0]
    mask = rollout.completion_mask
    # The plain path is the fast one (shared prefill, chunked vocabulary): equal up to float rounding.
    torch.testing.assert_close(logp, plain, atol=1e-5, rtol=0)
    # 0 < H <= ln(number of tokens the policy may emit), the uniform distribution's entropy
    assert torch.all(entropy[mask] > 0)
    assert torch.all(entropy[mask] <= math.log(vocab - len(set(policy.suppress_ids))) + 1e-4)
    assert torch.all(entropy[~mask] == 0)


@pytest.mark.slow
def test_dynamic_sampling_refills_with_the_warm_started_model(make_config, tmp_path):
    # The warm-started model answers; under reward3 a group is informative only when some but not
    # all rollouts are specific, so a batch of 8 prompts with multiple 1 needs refills.
    cfg = make_config(
        "algorithm=dapo",
        "reward=reward3",
        "algorithm.dynamic_sampling.enabled=true",
        "logger=csv",
        "data.batch_size=8",
        "data.val.size=8",
        "data.val_batch_size=8",
        "eval.best_of_n=0",
        "eval.before=false",
        "module.log_completions_every=0",
        "algorithm.dynamic_sampling.generation_batch_multiple=1",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
    )
    results = train(cfg)
    rows = _metrics(tmp_path)
    assert results["steps"] == 3 and len(rows) == 3
    for r in rows:
        kept, rounds = float(r["train/ds_kept_groups"]), float(r["train/ds_rounds"])
        assert kept == 8 or float(r["train/ds_hit_round_limit"]) == 1
        assert float(r["train/ds_generated_groups"]) == 8 * rounds
        assert float(r["train/trained_groups"]) == kept
    assert any(float(r["train/ds_rounds"]) > 1 for r in rows), "expected at least one refill"
