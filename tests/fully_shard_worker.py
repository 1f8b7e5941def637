"""Worker of tests/integration/test_fully_shard_cpu.py: the tiny policy under torch's ``fully_shard``.

    torchrun --nproc_per_node 2 tests/fully_shard_worker.py OUT     (2 gloo processes, sharded)
    python tests/fully_shard_worker.py OUT                          (one process, unsharded)

Five AdamW steps (float64) on a fixed batch of 4 rows (each rank takes its half; FSDP averages gradients
over ranks, so the update is that of the mean loss over all 4 rows), a sharded checkpoint
(torch.distributed.checkpoint) after step 3, then a fresh model resumed from it for steps 4-5.
Writes OUT/initial.pt, OUT/final.pt (the full weights after 5 steps), OUT/resumed.pt (after the resumed steps 4-5)
and OUT/steps.json (the optimiser's step counters).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard

from speciarl.built_models.tiny_loading import tiny_policy
from speciarl.core.rollouts import Rollout
from speciarl.data.synthetic import SyntheticShapes
from speciarl.policy.policy import token_logprobs

ROWS = 4


def build(world: int):
    torch.manual_seed(0)
    policy = tiny_policy(warm_start=False)
    # float64, so that the comparison sees how ranks combine gradients, not float32 summation order
    # (float32: 2.9e-6 apart after 5 AdamW steps, Adam's normalisation amplifying ~1e-7 gradient noise).
    model = policy.model.double()
    if world > 1:
        for layer in model.model.language_model.layers:
            fully_shard(layer)
        for block in model.model.visual.blocks:
            fully_shard(block)
        fully_shard(model)
    return policy, torch.optim.AdamW(model.parameters(), lr=1e-3)


def fixed_rollout(policy) -> Rollout:
    samples = [SyntheticShapes(size=ROWS, seed=3)[i] for i in range(ROWS)]
    prompts = policy.encode_prompts(samples)
    ids = torch.randint(10, 200, (ROWS, 5), generator=torch.Generator().manual_seed(0))
    return Rollout(
        prompts,
        ids,
        torch.ones_like(ids, dtype=torch.bool),
        [""] * ROWS,
        torch.zeros(ROWS, dtype=torch.bool),
        1,
    )


def step(policy, optimizer, rollout: Rollout, rank: int, world: int) -> None:
    rows = list(range(rank * ROWS // world, (rank + 1) * ROWS // world))
    logp = token_logprobs(policy.model, rollout.select(rows), policy.suppress_ids)
    loss = -logp.sum(-1).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def full_weights(model) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.named_parameters():
        value = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = value.detach().clone()
    return out


def main(out: Path) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    policy, optimizer = build(world)
    rollout = fixed_rollout(policy)
    initial = full_weights(policy.model)
    for _ in range(3):
        step(policy, optimizer, rollout, rank, world)
    model_state, optim_state = get_state_dict(policy.model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(out / "ckpt"))
    for _ in range(2):
        step(policy, optimizer, rollout, rank, world)
    final = full_weights(policy.model)
    counters = [int(s["step"]) for s in optimizer.state.values()]

    policy, optimizer = build(world)
    model_state, optim_state = get_state_dict(policy.model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(out / "ckpt"))
    set_state_dict(policy.model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    for _ in range(2):
        step(policy, optimizer, rollout, rank, world)
    resumed = full_weights(policy.model)
    resumed_counters = [int(s["step"]) for s in optimizer.state.values()]
    if rank == 0:
        torch.save(initial, out / "initial.pt")
        torch.save(final, out / "final.pt")
        torch.save(resumed, out / "resumed.pt")
        (out / "steps.json").write_text(json.dumps({"final": counters, "resumed": resumed_counters}))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
