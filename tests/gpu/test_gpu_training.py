"""Real training steps of the tiny model on CUDA in bf16 (marked gpu; skipped without a GPU).

Run them with `python -m pytest -m gpu -rs` or scripts/gpu_check.sh on a GPU machine.
"""

import csv
import math

import pytest
import torch

from conftest import compose_config
from speciarl.train import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
]
QUICK = [
    "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]",
    "trainer=gpu",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "data.batch_size=8",
    "data.val.size=32",
    "eval.best_of_n=2",
    "logger=csv",
]


def _rows(out):
    (path,) = out.glob("csv/version_*/metrics.csv")
    return [r for r in csv.DictReader(path.open()) if r.get("train/loss")]


@pytest.mark.parametrize(
    "extra",
    [
        ["algorithm=grpo", "reward=speciarl"],  # full fine-tuning, frozen reference copy on the GPU
        # LoRA, recomputed layers, micro-batched log-probs, two mini-batches
        [
            "experiment=dapo_speciarl",
            "model.lora={r:8,alpha:16}",
            "model.gradient_checkpointing=true",
            "module.logprob_token_budget=256",
            "algorithm.mini_batches=2",
        ],
    ],
    ids=["grpo_full", "dapo_lora_ckpt_micro"],
)
def test_bf16_training_steps_on_cuda(tmp_path, extra):
    cfg = compose_config([*QUICK, *extra], tmp_path)
    assert cfg.trainer.precision == "bf16-mixed"
    results = train(cfg)
    assert results["steps"] == 4
    rows = _rows(tmp_path)
    assert rows and all(math.isfinite(float(r["train/loss"])) for r in rows)
    assert 0.0 <= results["after"]["val/correctness"] <= 1.0


def test_generation_and_training_logprobs_agree_on_cuda():
    """bf16 autocast: sampled tokens stay finite and likely under the training forward."""
    from speciarl.built_models.tiny_loading import tiny_policy
    from speciarl.data.synthetic import SyntheticShapes
    from speciarl.policy.policy import token_logprobs
    from speciarl.rollout.hf import HFRollout

    torch.manual_seed(0)
    policy = tiny_policy(warm_start=False)
    policy.model.cuda()
    samples = [SyntheticShapes(size=4, seed=2)[i] for i in range(4)]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        rollout = HFRollout(max_new_tokens=12).generate(policy, samples, group_size=4)
        with torch.no_grad():
            logp = token_logprobs(policy.model, rollout, policy.suppress_ids)
    assert rollout.completion_ids.is_cuda
    assert torch.isfinite(logp).all()
    assert float(logp[rollout.completion_mask].min()) > -30.0  # sampled tokens are never impossible
