"""Every experiment the paper ran composes, with the optimiser and reward settings of the paper (arXiv 2603.03197)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from speciarl.rl.rewards import NoisySpeciaRLReward, SpeciaRLReward, StaticReward
from speciarl.train import CONF_DIR

# (experiment, algorithm, reward class, reward name / p, dynamic sampling)
PAPER = [
    ("grpo_speciarl", "grpo", SpeciaRLReward, "speciarl", False),
    ("grpo_reward3", "grpo", StaticReward, "reward3", False),
    ("dr_grpo_speciarl", "dr_grpo", SpeciaRLReward, "speciarl", False),
    ("dr_grpo_reward3", "dr_grpo", StaticReward, "reward3", False),
    ("dapo_speciarl", "dapo", SpeciaRLReward, "speciarl", False),
    ("dapo_reward3", "dapo", StaticReward, "reward3", False),
    ("dapo_speciarl_ds", "dapo", SpeciaRLReward, "speciarl", True),
    ("dapo_reward3_ds", "dapo", StaticReward, "reward3", True),
    ("grpo_scala1", "grpo", StaticReward, "scala1", False),
    ("grpo_scala2", "grpo", StaticReward, "scala2", False),
    ("grpo_scala3", "grpo", StaticReward, "scala3", False),
    ("grpo_noisy05", "grpo", NoisySpeciaRLReward, 0.05, False),
    ("grpo_noisy10", "grpo", NoisySpeciaRLReward, 0.10, False),
    ("grpo_noisy25", "grpo", NoisySpeciaRLReward, 0.25, False),
]
# The paper, Sec. 4: std normalisation, clip low / high, dual clip, aggregation, KL coef, overlong shaping
OPTIMISERS = {
    "grpo": (True, 0.2, 0.2, 3.0, "token_mean", 0.01, False),
    "dr_grpo": (False, 0.2, 0.2, 3.0, "seq_mean_token_sum_norm", 0.0, False),
    "dapo": (True, 0.2, 0.28, 10.0, "token_mean", 0.0, True),
}


def compose_train(*overrides, hydra=False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=hydra)


@pytest.mark.parametrize(("experiment", "algorithm", "reward_cls", "reward_id", "ds"), PAPER)
def test_paper_experiment(experiment, algorithm, reward_cls, reward_id, ds):
    cfg = compose_train(f"experiment={experiment}")
    algo = instantiate(cfg.algorithm)
    reward = instantiate(cfg.reward)
    assert algo.name == algorithm
    assert (
        algo.normalize_std,
        algo.clip_low,
        algo.clip_high,
        algo.dual_clip,
        algo.loss_agg,
        algo.kl_coef,
        algo.overlong.enabled,
    ) == OPTIMISERS[algorithm]
    assert algo.kl_estimator == "k3" and algo.entropy_coef == 0.0 and algo.truncation == "keep"
    assert algo.dynamic_sampling.enabled is ds
    if ds:  # SPEC: generation batch 3x, at most 10 rounds
        assert (algo.dynamic_sampling.generation_batch_multiple, algo.dynamic_sampling.max_rounds) == (3, 10)
    assert algo.overlong.resolved(cfg.rollout.max_new_tokens) == (16, 4)
    assert isinstance(reward, reward_cls)
    if reward_cls is NoisySpeciaRLReward:
        assert reward.p == reward_id and reward.mode == "all"
    elif reward_cls is SpeciaRLReward:
        assert reward.mode == "all"
    else:
        assert reward.name == reward_id
    assert algorithm in cfg.tags


def test_each_setting_is_overridable_alone():
    cfg = compose_train(
        "experiment=grpo_speciarl",
        "algorithm.loss_agg=seq_mean_token_mean",
        "algorithm.kl_estimator=k2",
        "algorithm.kl_coef=0.05",
        "algorithm.entropy_coef=0.001",
        "algorithm.dual_clip=null",
        "algorithm.normalize_std=false",
        "algorithm.clip_high=0.28",
        "algorithm.truncation=penalize",
        "algorithm.overlong.enabled=true",
        "algorithm.overlong.buffer=2",
        "algorithm.dynamic_sampling.enabled=true",
        "algorithm.dynamic_sampling.max_rounds=4",
        "reward=noisy",
        "reward.p=0.3",
    )
    algo = instantiate(cfg.algorithm)
    assert (algo.loss_agg, algo.kl_estimator, algo.kl_coef, algo.entropy_coef) == (
        "seq_mean_token_mean",
        "k2",
        0.05,
        0.001,
    )
    assert (algo.dual_clip, algo.normalize_std, algo.clip_low, algo.clip_high) == (None, False, 0.2, 0.28)
    assert algo.truncation == "penalize" and algo.overlong.resolved(16) == (16, 2)
    assert algo.dynamic_sampling.enabled and algo.dynamic_sampling.max_rounds == 4
    assert instantiate(cfg.reward).p == 0.3


@pytest.mark.parametrize("preset", ["paper_grid", "optimiser_grid", "reward_grid"])
def test_grid_presets_are_multiruns_over_existing_configs(preset):
    cfg = compose_train(f"hparams={preset}", hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = cfg.hydra.sweeper.params
    assert params.seed == "0,1,2"
    for group in ("experiment", "reward"):
        if group in params:
            values = [v.strip() for v in params[group].split(",")]
            assert all((Path(CONF_DIR) / group / f"{v}.yaml").is_file() for v in values), values
    if preset == "paper_grid":
        assert sorted(v.strip() for v in params.experiment.split(",")) == sorted(e for e, *_ in PAPER)


def test_grid_summary_callback_is_registered():
    cfg = compose_train(hydra=True)
    assert cfg.hydra.callbacks.grid_summary._target_ == "speciarl.runs.sweep.GridSummaryCallback"
