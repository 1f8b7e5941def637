"""Log-prob passes cut into micro-batches by token budget give the unbatched results."""

import csv

import pytest
import torch
from lightning.pytorch import Callback

from conftest import compose_config
from speciarl.data.synthetic import SyntheticShapes
from speciarl.policy.microbatch import chunked_token_logprobs, micro_batches
from speciarl.policy.policy import token_logprobs
from speciarl.rollout.hf import HFRollout
from speciarl.train import train


def test_chunked_logprobs_equal_the_unbatched_ones(tiny_policy_fresh):
    policy = tiny_policy_fresh
    samples = [SyntheticShapes(size=6, seed=3)[i] for i in range(6)]
    torch.manual_seed(0)
    rollout = HFRollout(max_new_tokens=12).generate(policy, samples, group_size=3)
    prompt_width = rollout.prompts.input_ids.shape[1]
    budget = 2 * (prompt_width + 12)  # about two rows per micro-batch
    parts = micro_batches(rollout, budget)
    assert len(parts) >= 6
    assert sorted(r for rows, _ in parts for r in rows) == list(range(18))
    for rows, part in parts:
        # each micro-batch holds one row, or fits the budget after trimming its completion columns
        assert len(rows) == 1 or len(rows) * (prompt_width + part.completion_ids.shape[1]) <= budget
    with torch.no_grad():
        whole = token_logprobs(policy.model, rollout, policy.suppress_ids)
        chunked = chunked_token_logprobs(policy.model, rollout, policy.suppress_ids, 1.0, budget)
    assert chunked.shape == whole.shape
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert float(whole.abs().sum()) > 0


QUICK_PHASES = [{"steps": 40, "lr": 0.003, "leaf": 1.0, "type": 0.0, "family": 0.0}]
COMMON = [
    # A seed whose two batches both earn some reward: on a batch where every answer is wrong the
    # gradient is float32 noise (KL is 0 at the start), which Adam scales up to lr-sized steps
    # whose signs differ between two runs (seed 2 did this with the own decode loop's samples).
    "seed=4",
    "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]",
    "data.batch_size=4",
    "data.train.size=8",
    "trainer.max_steps=4",
    "algorithm.mini_batches=2",
    "eval.before=false",
    "eval.after=false",
    "eval.best_of_n=0",
    "logger=csv",
    "checkpoint=periodic",
    "checkpoint.every_n_train_steps=4",
    "checkpoint.export_policy=false",
    "module.log_completions_every=0",
]


@pytest.mark.parametrize(
    "loss_agg",
    [
        "token_mean",
        pytest.param("seq_mean_token_mean", marks=pytest.mark.slow),
        # a sum over rows (units none): the micro-batches must add up unweighted
        pytest.param("token_sum_over_max_length", marks=pytest.mark.slow),
    ],
)
def test_token_budget_gives_the_unbatched_update(tmp_path, loss_agg):
    """GRPO (k3 KL), 2 mini-batches, micro-batches of <= 120 tokens vs one pass per mini-batch."""
    from speciarl.built_models.tiny_loading import tiny_policy

    tiny_policy(warm_start=True, phases=QUICK_PHASES)
    outs = {}
    for name, budget in (("whole", "null"), ("micro", "120")):
        out = tmp_path / name
        overrides = ["algorithm=grpo", "reward=speciarl", f"algorithm.loss_agg={loss_agg}", *COMMON]
        train(compose_config([*overrides, f"module.logprob_token_budget={budget}"], out))
        outs[name] = out
    weights = {
        n: torch.load(o / "checkpoints" / "step-000004.ckpt", weights_only=True)["state_dict"]
        for n, o in outs.items()
    }
    worst = max(float((weights["whole"][k] - weights["micro"][k]).abs().max()) for k in weights["whole"])
    assert worst < 1e-5
    figures = {}
    for name, out in outs.items():
        (path,) = out.glob("csv/version_*/metrics.csv")
        figures[name] = [r for r in csv.DictReader(path.open()) if r.get("train/loss")]
    assert len(figures["whole"]) == 2
    for one, two in zip(figures["whole"], figures["micro"]):
        for key in ("train/loss", "train/kl", "train/grad_norm", "train/clip_fraction", "train/ratio_mean"):
            assert float(two[key]) == pytest.approx(float(one[key]), rel=1e-5, abs=1e-7), key
    assert any(float(r["train/grad_norm"]) > 0.1 for r in figures["whole"])


def test_gradient_checkpointing_gives_the_same_gradients():
    """The tiny model with and without recomputation: same log-probs, same gradients (train mode)."""
    from speciarl.built_models.tiny_loading import tiny_policy

    grads = []
    for checkpointing in (False, True):
        policy = tiny_policy(warm_start=False, gradient_checkpointing=checkpointing)
        assert policy.model.is_gradient_checkpointing == checkpointing
        samples = [SyntheticShapes(size=2, seed=3)[i] for i in range(2)]
        torch.manual_seed(0)
        rollout = HFRollout(max_new_tokens=8).generate(policy, samples, group_size=2)
        policy.model.train()
        logp = token_logprobs(policy.model, rollout, policy.suppress_ids)
        logp.sum().backward()
        grads.append({n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None})
    plain, recomputed = grads
    assert plain.keys() == recomputed.keys() and plain
    assert max(float((plain[k] - recomputed[k]).abs().max()) for k in plain) < 1e-5


class _Gradients(Callback):
    """Each optimiser step's gradients (after clipping, which the test sets out of reach)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.steps.append({n: p.grad.clone() for n, p in pl_module.named_parameters() if p.grad is not None})


def test_micro_batches_give_the_full_batch_gradients_in_float64(tmp_path):
    """One GRPO step (entropy bonus) in float64: micro-batches of <= 80 tokens (1-2 rows) vs one pass.

    The micro-batched update weighs each part's token-mean loss by its share of the tokens,
    (1/n_a) sum_a * (n_a / n) + (1/n_b) sum_b * (n_b / n) = (sum_a + sum_b) / n, so the summed
    gradients equal the one-pass gradient: 1e-6 relative per tensor, as in test_fast_logprobs
    (the vision tower rotates q/k in float32 inside, which leaves ~1e-8 through the image
    features; a part weighted wrong is off by ~1e-1).
    """
    from speciarl.built_models.tiny_loading import tiny_policy

    tiny_policy(warm_start=True, phases=QUICK_PHASES)
    grads = {}
    for name, budget in (("whole", "null"), ("micro", "80")):
        capture = _Gradients()
        overrides = [
            "algorithm=grpo",
            *COMMON,
            "trainer.max_steps=1",
            "algorithm.mini_batches=1",
            "+trainer.precision=64-true",
            "module.max_grad_norm=1.0e9",
            # The quick base earns no reward: the entropy bonus makes the gradient. No KL: the
            # frozen reference copy stays float32 under 64-true and would leave ~1e-7 differences.
            "algorithm.entropy_coef=0.01",
            "algorithm.kl_coef=0.0",
            f"module.logprob_token_budget={budget}",
        ]
        train(compose_config(overrides, tmp_path / name), callbacks=[capture])
        assert len(capture.steps) == 1
        grads[name] = capture.steps[0]
    whole, micro = grads["whole"], grads["micro"]
    assert whole.keys() == micro.keys() and whole
    assert all(g.dtype == torch.float64 for g in whole.values())
    assert max(float(g.abs().max()) for g in whole.values()) > 1e-4, "the step should move the weights"
    for key, g in whole.items():
        error = float((micro[key] - g).abs().max() / g.abs().max().clamp(min=1e-30))
        assert error <= 1e-6, (key, error)  # measured <= 6e-8
