"""Two gloo processes (trainer=ddp_cpu, launched by torchrun) take the same update as one process.

Same seed, same global batch (the data module gives each rank a contiguous half of it) and the
same completions (rollout=hf_seeded samples each prompt under its own seed), so any difference
comes from how the ranks' losses, gradients and figures are combined. Two rollout batches of
4 prompts x 4 rollouts, GRPO (k3 KL to the frozen reference), 2 mini-batches, micro-batches of
at most 150 tokens: each rank's ranks hold different token counts, so a per-rank token mean
would change the gradient; the logged grad norm is taken before clipping, so a missing factor
of W (DDP averages gradients) would halve it.
"""

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import speciarl.train
from conftest import compose_config
from speciarl.train import train

QUICK_PHASES = [{"steps": 40, "lr": 0.003, "leaf": 1.0, "type": 0.0, "family": 0.0}]
PHASES_OVERRIDE = "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]"
OVERRIDES = [
    "algorithm=grpo",
    "reward=speciarl",
    "seed=2",  # both batches of this seed have reward variance (measured), so both steps update
    PHASES_OVERRIDE,
    "rollout=hf_seeded",
    "trainer.max_steps=4",  # 2 rollout batches x 2 mini-batches = 4 optimiser steps
    "algorithm.mini_batches=2",
    "module.logprob_token_budget=150",
    "data.batch_size=4",
    "data.train.size=8",
    "eval.before=false",
    "eval.after=false",
    "eval.best_of_n=0",
    "logger=csv",
    "checkpoint=periodic",
    "checkpoint.every_n_train_steps=2",
    "checkpoint.export_policy=false",
    "module.log_completions_every=1",
]
FIGURES = ["loss", "policy_loss", "kl", "grad_norm", "reward_mean", "hm", "response_length", "adv_abs_mean"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(launcher: list[str], out: Path, *extra: str) -> None:
    env = dict(os.environ)
    src = str(Path(speciarl.train.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    cmd = [*launcher, "-m", "speciarl.train", *OVERRIDES, *extra, f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _figures(out: Path) -> list[dict[str, float]]:
    (path,) = out.glob("csv/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(path.open()) if r.get("train/loss")]
    return [{k: float(r[f"train/{k}"]) for k in FIGURES} for r in rows]


def _weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / f"step-{step:06d}.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from speciarl.built_models.tiny_loading import tiny_policy

    tiny_policy(warm_start=True, phases=QUICK_PHASES)  # build the cached model once, not per rank
    root = tmp_path_factory.mktemp("ddp")
    train(compose_config(OVERRIDES, root / "single"))  # one process: in this one
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
    ]
    # W&B (offline) as well on the two ranks: one run must come out of it, not two.
    _run(torchrun, root / "ddp", "trainer=ddp_cpu", "logger=default")
    return root / "single", root / "ddp"


def test_two_ranks_log_the_single_process_figures(runs):
    single, ddp = (_figures(out) for out in runs)
    assert len(single) == len(ddp) == 2
    # Both steps really update (else the comparison would be vacuous).
    assert all(row["grad_norm"] > 0.1 and row["adv_abs_mean"] > 0.1 for row in single)
    for one, two in zip(single, ddp):
        for key in FIGURES:
            assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-7), key


def test_two_ranks_take_the_single_process_update(runs):
    single, ddp = runs
    start = _weights(single, 2)
    for step in (2, 4):
        one, two = _weights(single, step), _weights(ddp, step)
        assert one.keys() == two.keys()
        worst = max(float((one[k] - two[k]).abs().max()) for k in one)
        # Tolerance: float32 sums taken in a different order over ranks and micro-batches.
        assert worst < 1e-5, (step, worst)
    moved = max(float((_weights(single, 4)[k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-5  # the second batch changed the weights by far more than the tolerance


def test_two_ranks_make_one_wandb_run_and_one_completion_table(runs):
    single, ddp = runs
    assert len(list((ddp / "wandb").glob("offline-run-*"))) == 1
    assert len(list(ddp.rglob("results.json"))) == 1
    # rank 0 alone writes the table: its own 2 prompts x 4 rollouts per step, 2 steps
    lines = (ddp / "completions_train.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 8
    assert len((single / "completions_train.jsonl").read_text().splitlines()) == 2 * 8  # the first 8 of 16
