"""The HF backend's reported log-probs: same samples, equal to the recomputed ones, logged in training."""

import csv

import pytest
import torch

from speciarl.data.synthetic import SyntheticShapes
from speciarl.policy.policy import token_logprobs
from speciarl.rollout.hf import HFRollout


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_reported_logprobs_match_the_recomputed_ones(tiny_policy_fresh, temperature, top_p):
    policy = tiny_policy_fresh
    samples = [SyntheticShapes(3, seed=5, image_size=32)[i] for i in range(3)]
    plain = HFRollout(max_new_tokens=6, temperature=temperature, top_p=top_p)
    reporting = HFRollout(max_new_tokens=6, temperature=temperature, top_p=top_p, report_logprobs=True)
    torch.manual_seed(3)
    a = plain.generate(policy, samples, group_size=4)
    torch.manual_seed(3)
    b = reporting.generate(policy, samples, group_size=4)
    assert a.sampler_logp is None
    assert torch.equal(a.completion_ids, b.completion_ids), "recording must not change the samples"
    assert b.sampler_logp.shape == b.completion_ids.shape
    with torch.no_grad():
        recomputed = token_logprobs(policy.model.eval(), b, policy.suppress_ids, temperature)
    mask = b.completion_mask
    if top_p == 1.0:
        # the same distribution, computed by generate with a KV cache vs one full forward
        assert (recomputed - b.sampler_logp)[mask].abs().max() < 1e-4
    else:
        # top-p renormalises over the nucleus: the engine's log-probs are >= the full distribution's
        assert ((b.sampler_logp - recomputed)[mask] >= -1e-4).all()
        assert ((b.sampler_logp - recomputed)[mask] > 1e-3).any()


@pytest.mark.parametrize("mini_batches", [1, 2])
def test_training_logs_the_mismatch_and_applies_tis(make_config, tmp_path, mini_batches):
    """On-policy (pi_old = this pass) and with 2 mini-batches (pi_old precomputed): both log it."""
    from speciarl.train import train

    cfg = make_config(
        "model.warm_start=false",
        "logger=csv",
        "data.batch_size=2",
        "data.val.size=8",
        "data.val_batch_size=8",
        "eval.best_of_n=0",
        "eval.before=false",
        "eval.after=false",
        "module.log_completions_every=0",
        "trainer.max_steps=2",
        "trainer.val_check_interval=100",
        "rollout.report_logprobs=true",
        "algorithm.rollout_is_cap=2.0",
        f"algorithm.mini_batches={mini_batches}",
    )
    train(cfg)
    (path,) = list(tmp_path.glob("csv/version_*/metrics.csv"))
    rows = [r for r in csv.DictReader(path.open()) if r.get("train/reward_mean")]
    assert len(rows) == 2 // mini_batches  # max_steps counts optimiser steps
    for row in rows:
        mean, largest = float(row["train/rollout_logp_diff_mean"]), float(row["train/rollout_logp_diff_max"])
        # generate (KV cache) and the training forward agree to float32 rounding
        assert 0.0 <= mean <= largest < 1e-3


def test_tis_without_reported_logprobs_fails_clearly(make_config):
    from speciarl.train import train

    cfg = make_config(
        "model.warm_start=false",
        "logger=csv",
        "data.batch_size=2",
        "eval.before=false",
        "eval.after=false",
        "trainer.max_steps=1",
        "algorithm.rollout_is_cap=2.0",
    )
    with pytest.raises(ValueError, match="report_logprobs"):
        train(cfg)
