"""A run stopped after step k and resumed from its checkpoint takes the uninterrupted run's next steps.

Training set of 8 prompts in batches of 4 (2 batches an epoch): resuming after the first batch
continues mid-epoch and then crosses into the next epoch's reshuffle. Rollouts are sampled from
the global RNG (rollout=hf), so the resumed steps only match if the RNG states, the data
position, the optimiser state and the weights are all restored.
"""

import json

import pytest
import torch

from conftest import compose_config
from speciarl.export import load_checkpoint_weights
from speciarl.train import train

QUICK_PHASES = [{"steps": 40, "lr": 0.003, "leaf": 1.0, "type": 0.0, "family": 0.0}]
COMMON = [
    "algorithm=grpo",
    "reward=speciarl",
    "seed=2",
    "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]",
    "data.batch_size=4",
    "data.train.size=8",
    "eval.before=false",
    "eval.after=false",
    "eval.best_of_n=0",
    "logger=none",
    "checkpoint=periodic",
    "module.log_completions_every=0",
]
VARIANTS = {
    # full fine-tuning, 2 mini-batches: AdamW state of every weight, old log-probs, 2 steps a batch
    "full": ["algorithm.mini_batches=2"],
    # LoRA: the checkpoint holds only the adapter; the base is rebuilt from the model folder
    "lora": ["model.lora={r:8,alpha:16}", "optimizer.lr=0.01"],
}


def _weights(ckpt) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, weights_only=True)["state_dict"]


@pytest.mark.parametrize("variant", [pytest.param("full", marks=pytest.mark.slow), "lora"])
def test_resumed_run_repeats_the_uninterrupted_steps(tmp_path, variant):
    from speciarl.built_models.tiny_loading import tiny_policy

    tiny_policy(warm_start=True, phases=QUICK_PHASES)  # cached after the first build
    per_batch = 2 if variant == "full" else 1  # optimiser steps per rollout batch
    base = [*COMMON, *VARIANTS[variant], f"checkpoint.every_n_train_steps={per_batch}"]

    whole = tmp_path / "whole"
    train(compose_config([*base, f"trainer.max_steps={3 * per_batch}"], whole))
    stopped = tmp_path / "stopped"
    train(compose_config([*base, f"trainer.max_steps={per_batch}"], stopped))
    resumed = tmp_path / "resumed"
    first = stopped / "checkpoints" / f"step-{per_batch:06d}.ckpt"
    results = train(
        compose_config([*base, f"trainer.max_steps={3 * per_batch}", f"ckpt_path={first}"], resumed)
    )
    assert results["steps"] == 3 * per_batch

    checkpoint = torch.load(first, weights_only=True)
    assert checkpoint["speciarl"]["trainable_only"] == (variant == "lora")
    datamodule_state = next(v for k, v in checkpoint.items() if k.endswith("SamplesDataModule"))
    assert datamodule_state == {"batches_consumed": 1}
    # The step-k weights are the same file content in both runs; the next steps must match too.
    for batch in (2, 3):
        step = batch * per_batch
        one = _weights(whole / "checkpoints" / f"step-{step:06d}.ckpt")
        two = _weights(resumed / "checkpoints" / f"step-{step:06d}.ckpt")
        assert one.keys() == two.keys()
        worst = max(float((one[k] - two[k]).abs().max()) for k in one)
        assert worst < 1e-6, (step, worst)
    # ... and they are real updates, far larger than the tolerance.
    before = _weights(first)
    after = _weights(whole / "checkpoints" / f"step-{3 * per_batch:06d}.ckpt")
    assert max(float((after[k] - before[k]).abs().max()) for k in before) > 1e-4
    saved = json.loads((resumed / "results.json").read_text())
    assert saved["steps"] == 3 * per_batch


def test_lora_checkpoint_exports_a_peft_adapter_that_reproduces_the_policy(tmp_path):
    """The adapter beside a checkpoint loads with peft onto the base model and gives the same logits."""
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    from speciarl.built_models.tiny_loading import tiny_policy
    from speciarl.data.synthetic import SyntheticShapes
    from speciarl.export import export

    tiny_policy(warm_start=True, phases=QUICK_PHASES)
    overrides = [*COMMON, *VARIANTS["lora"], "checkpoint.every_n_train_steps=1", "trainer.max_steps=1"]
    train(compose_config(overrides, tmp_path / "run"))
    ckpt = tmp_path / "run" / "checkpoints" / "step-000001.ckpt"
    adapter = tmp_path / "run" / "checkpoints" / "step-000001-policy"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    # The adapter travels: a model card, and its base model named, not a path on this machine.
    assert (
        json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
        == "tiny-qwen2.5-vl"
    )
    card = (adapter / "README.md").read_text()
    assert "library_name: peft" in card and "license: apache-2.0" in card and "grpo+speciarl" in card

    trained = tiny_policy(warm_start=True, phases=QUICK_PHASES, lora={"r": 8, "alpha": 16})
    load_checkpoint_weights(trained, ckpt)
    base_dir = trained.model.base_model.model.config._name_or_path
    loaded = PeftModel.from_pretrained(Qwen2_5_VLForConditionalGeneration.from_pretrained(base_dir), adapter)
    sample = SyntheticShapes(size=1, seed=5)[0]
    inputs = trained.encode_prompts([sample]).model_inputs()
    with torch.no_grad():
        want = trained.model.eval()(**inputs).logits
        got = loaded.eval()(**inputs).logits
        base = loaded.get_base_model()
        with loaded.disable_adapter():
            untrained = base(**inputs).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert float((want - untrained).abs().max()) > 1e-3  # the adapter is not a no-op

    # A merged export is a plain transformers folder with the same outputs.
    merged_dir = export(trained, None, str(tmp_path / "merged"), merge=True)
    merged = Qwen2_5_VLForConditionalGeneration.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        assert torch.allclose(merged(**inputs).logits, want, atol=1e-5)
