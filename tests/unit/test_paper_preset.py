"""The 7B paper preset composes with every paper hyperparameter (the SpeciaRL paper, arXiv 2603.03197,
Sec. 4), though it cannot run here."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speciarl.module import SpeciaRLModule
from speciarl.rollout.hf import HFRollout


@pytest.fixture
def paper(make_config):
    cfg = make_config("experiment=paper_grpo_speciarl")
    return cfg, OmegaConf.to_container(cfg, resolve=True)


def test_every_paper_hyperparameter_is_in_the_resolved_config(paper):
    _, c = paper
    model = c["model"]
    assert model["_target_"] == "speciarl.policy.loading.pretrained_policy"
    assert model["dtype"] == "bfloat16"
    assert model["lora"]["r"] == 64 and model["lora"]["alpha"] == 32
    assert model["lora"]["target_modules"] == "all-linear-language"  # every LM linear, no vision LoRA
    optimizer, algo = c["optimizer"], c["algorithm"]
    assert optimizer["_target_"] == "torch.optim.AdamW" and optimizer["lr"] == pytest.approx(3e-5)
    assert optimizer["weight_decay"] == pytest.approx(0.01)
    assert c["lr_scheduler"]["_target_"] == "speciarl.rl.schedules.constant"
    assert c["module"]["max_grad_norm"] == pytest.approx(1.0)
    assert algo["group_size"] == 10
    assert algo["mini_batches"] == 2 and algo["ppo_epochs"] == 1
    assert c["data"]["batch_size"] == 256
    assert c["data"]["batch_size"] // algo["mini_batches"] == 128  # prompts per optimiser mini-batch
    assert c["data"]["train_subset"] == 3000
    assert c["seed"] == 42 and c["data"]["seed"] == 42  # the subset and the order use seed 42
    assert c["rollout"]["_target_"] == "speciarl.rollout.vllm.VLLMRollout"
    assert c["rollout"]["temperature"] == 1.0 and c["rollout"]["top_p"] == 1.0
    assert c["rollout"]["max_new_tokens"] == 2048
    assert c["rollout"]["max_model_len"] == 2048 + 2048
    trainer = c["trainer"]
    assert trainer["max_epochs"] == 15 and trainer["max_steps"] == -1
    assert trainer["precision"] == "bf16-mixed"
    assert trainer["strategy"]["_target_"] == "lightning.pytorch.strategies.DDPStrategy"
    assert trainer["use_distributed_sampler"] is False
    # about 165 steps: 15 epochs x floor(3000 / 256) rollout batches
    assert trainer["max_epochs"] * (c["data"]["train_subset"] // c["data"]["batch_size"]) == 165
    algorithm = c["algorithm"]
    assert algorithm["name"] == "grpo" and algorithm["normalize_std"] is True
    assert algorithm["clip_low"] == pytest.approx(0.2) and algorithm["clip_high"] == pytest.approx(0.2)
    assert algorithm["kl_coef"] == pytest.approx(0.01) and algorithm["kl_estimator"] == "k3"
    assert algorithm["loss_agg"] == "token_mean" and algorithm["dual_clip"] == pytest.approx(3.0)
    assert c["reward"]["_target_"] == "speciarl.rl.rewards.SpeciaRLReward" and c["reward"]["mode"] == "all"


def test_paper_optimiser_is_constant_adamw(paper, tiny_policy_fresh):
    """AdamW(lr 3e-5, wd 0.01) with a constant schedule: the learning rate never moves."""
    cfg, _ = paper
    module = SpeciaRLModule(
        policy=tiny_policy_fresh,
        judge=None,
        reward=instantiate(cfg.reward),
        algorithm=instantiate(cfg.algorithm),
        # the preset's vLLM backend needs a GPU; HF generate with the same budget stands in
        rollout=HFRollout(max_new_tokens=int(cfg.rollout.max_new_tokens)),
        optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler),
        **{k: v for k, v in cfg.module.items() if k != "logprob_token_budget"},
    )
    configured = module.configure_optimizers()
    optimiser, schedule = configured["optimizer"], configured["lr_scheduler"]
    assert isinstance(optimiser, torch.optim.AdamW)
    assert optimiser.defaults["lr"] == pytest.approx(3e-5)
    assert optimiser.defaults["weight_decay"] == pytest.approx(0.01)
    for _ in range(5):
        optimiser.step()
        schedule.step()
    assert optimiser.param_groups[0]["lr"] == 3e-5


def test_lora_preset_targets_language_linears_and_never_the_vision_tower(tiny_policy_fresh, paper):
    from speciarl.policy.loading import apply_lora

    _, c = paper
    lora = {k: v for k, v in c["model"]["lora"].items()}
    wrapped = apply_lora(tiny_policy_fresh.model, **lora)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in wrapped.named_parameters() if ".lora_A." in n}
    assert adapted and not any("visual" in n for n in adapted)
    kinds = {n.rsplit(".", 1)[-1] for n in adapted}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    # the vision tower has gate/up/down projections too: none of them got an adapter
    assert any("visual" in n and n.endswith("gate_proj") for n, _ in wrapped.named_modules())
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in trainable)


def test_missing_model_folder_names_model_path(make_config, tmp_path, monkeypatch):
    monkeypatch.delenv("SPECIARL_QWEN7B_PATH", raising=False)
    missing = tmp_path / "no-such-model"
    for overrides in ([f"model.path={missing}"], []):  # an absent folder; the uncached hub id
        cfg = make_config("experiment=paper_grpo_speciarl", *overrides)
        # hydra wraps the FileNotFoundError of resolve_model_path in an InstantiationException
        with pytest.raises(Exception, match=r"not a local folder.*Set model\.path="):
            instantiate(cfg.model)
