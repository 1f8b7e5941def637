"""GSPO (algorithm=gspo) trains the warm-started tiny model through the Hydra entry point."""

import csv
import math

import torch

from conftest import compose_config
from speciarl.train import train

QUICK_PHASES = [{"steps": 40, "lr": 0.003, "leaf": 1.0, "type": 0.0, "family": 0.0}]
OVERRIDES = [
    "algorithm=gspo",
    "reward=speciarl",
    "seed=2",
    "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]",
    # 2 epochs over each rollout batch: the second is off-policy, so the sequence ratios leave
    # GSPO's narrow clip range
    "algorithm.ppo_epochs=2",
    "optimizer.lr=0.001",
    "data.batch_size=4",
    "data.train.size=8",
    "trainer.max_steps=4",
    "eval.before=false",
    "eval.after=false",
    "eval.best_of_n=0",
    "logger=csv",
    "checkpoint=periodic",
    "checkpoint.every_n_train_steps=2",
    "checkpoint.export_policy=false",
    "module.log_completions_every=0",
]


def test_a_short_gspo_run_updates_the_policy(tmp_path):
    from speciarl.built_models.tiny_loading import tiny_policy

    tiny_policy(warm_start=True, phases=QUICK_PHASES)  # cached after the first build
    cfg = compose_config(OVERRIDES, tmp_path)
    assert cfg.algorithm.policy_loss == "gspo" and cfg.algorithm.clip_high == 4e-4
    results = train(cfg)
    assert results["steps"] == 4
    (path,) = tmp_path.glob("csv/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(path.open()) if r.get("train/loss")]
    assert len(rows) == 2  # 2 rollout batches x 2 epochs
    for row in rows:
        assert math.isfinite(float(row["train/loss"])) and float(row["train/kl"]) == 0.0
        assert float(row["train/updates"]) == 2
    # The first epoch is on-policy (every s_i = 1, nothing clipped); the second follows an
    # update, and its sequence ratios leave [1 - 3e-4, 1 + 4e-4]: some sequences are clipped.
    assert any(float(r["train/clip_fraction"]) > 0 for r in rows)
    assert any(float(r["train/grad_norm"]) > 0 for r in rows)
    first = torch.load(tmp_path / "checkpoints" / "step-000002.ckpt", weights_only=True)["state_dict"]
    last = torch.load(tmp_path / "checkpoints" / "step-000004.ckpt", weights_only=True)["state_dict"]
    assert max(float((last[k] - first[k]).abs().max()) for k in first) > 1e-6
