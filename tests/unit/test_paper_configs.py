"""Every run the paper made composes from the grid presets, with the paper's optimiser and reward
settings (the SpeciaRL paper, arXiv 2603.03197, Sec. 4)."""

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speciarl.rl.rewards import NoisySpeciaRLReward, SpeciaRLReward, StaticReward
from speciarl.train import CONF_DIR, with_run_tags

# Sec. 4: std normalisation, clip low / high, dual clip, aggregation, KL coef, overlong shaping
OPTIMISERS = {
    "grpo": (True, 0.2, 0.2, 3.0, "token_mean", 0.01, False),
    "dr_grpo": (False, 0.2, 0.2, 3.0, "seq_mean_token_sum_norm", 0.0, False),
    "dapo": (True, 0.2, 0.28, 10.0, "token_mean", 0.0, True),
}
# Jobs per preset (3 seeds each): 3 algorithms x 2 rewards; DAPO with dynamic sampling x 2
# rewards; GRPO x 5 rewards; GRPO x 3 noise levels.
PRESETS = {"algorithm_reward_grid": 18, "dynamic_sampling_grid": 6, "reward_grid": 15, "noise_grid": 9}


def compose_train(*overrides, hydra=False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=hydra)


def grid_jobs(preset: str) -> list[list[str]]:
    """The overrides of every job of an hparams preset: the product of its sweeper params."""
    params = compose_train(f"hparams={preset}", hydra=True).hydra.sweeper.params
    axes = [[f"{key}={v.strip()}" for v in str(values).split(",")] for key, values in params.items()]
    return [list(job) for job in itertools.product(*axes)]


def check_paper_settings(cfg) -> None:
    algo = instantiate(cfg.algorithm)
    reward = instantiate(cfg.reward)
    assert (
        algo.normalize_std,
        algo.clip_low,
        algo.clip_high,
        algo.dual_clip,
        algo.loss_agg,
        algo.kl_coef,
        algo.overlong.enabled,
    ) == OPTIMISERS[algo.name]
    assert algo.kl_estimator == "k3" and algo.entropy_coef == 0.0 and algo.truncation == "keep"
    if algo.dynamic_sampling.enabled:  # DAPO only; generation batch 3x, at most 10 rounds
        assert algo.name == "dapo"
        assert (algo.dynamic_sampling.generation_batch_multiple, algo.dynamic_sampling.max_rounds) == (3, 10)
    assert algo.overlong.resolved(cfg.rollout.max_new_tokens) == (16, 4)
    if isinstance(reward, NoisySpeciaRLReward):
        assert reward.p in (0.05, 0.10, 0.25) and reward.mode == "all"
    elif isinstance(reward, SpeciaRLReward):
        assert reward.mode == "all"
    else:
        assert isinstance(reward, StaticReward) and reward.name in ("reward3", "scala1", "scala2", "scala3")
    # W&B tags derive from what the run trains with (filled in when the run starts)
    ds = ["dynamic_sampling"] if algo.dynamic_sampling.enabled else []
    assert cfg.tags is None
    assert list(with_run_tags(cfg).tags) == [algo.name, *ds, reward.name]


@pytest.mark.parametrize(("preset", "jobs"), PRESETS.items())
def test_grid_presets_are_multiruns_of_the_paper_settings(preset, jobs):
    cfg = compose_train(f"hparams={preset}", hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params.seed == "0,1,2"
    overrides = grid_jobs(preset)
    assert len(overrides) == jobs
    for job in overrides:
        if "seed=0" in job:  # the other seeds compose alike
            check_paper_settings(compose_train(*job))


def test_every_grid_preset_is_checked():
    assert sorted(p.stem for p in (Path(CONF_DIR) / "hparams").glob("*.yaml")) == sorted(PRESETS)


def test_the_paper_runs_are_all_in_the_grids():
    """14 distinct runs: 3 algorithms x 2 rewards, DAPO with dynamic sampling x 2, 3 more static
    rewards under GRPO, 3 noise levels (the two GRPO runs of the reward grid are shared)."""
    runs = {tuple(o for o in job if not o.startswith("seed=")) for p in PRESETS for job in grid_jobs(p)}
    assert len(runs) == 14


def test_an_experiment_is_an_algorithm_and_a_reward():
    preset = compose_train("experiment=dapo_speciarl", "paths.output_dir=/run")
    groups = compose_train("algorithm=dapo", "reward=speciarl", "paths.output_dir=/run")
    assert OmegaConf.to_container(preset, resolve=True) == OmegaConf.to_container(groups, resolve=True)
    assert list(with_run_tags(groups).tags) == ["dapo", "speciarl"]
    assert list(with_run_tags(compose_train("reward=noisy", "reward.p=0.05")).tags) == ["grpo", "noisy_p0.05"]
    # tags given by a preset or on the command line are kept as they are
    assert list(with_run_tags(compose_train("tags=[mine]")).tags) == ["mine"]


def test_each_setting_is_overridable_alone():
    cfg = compose_train(
        "algorithm=grpo",
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


def test_grid_summary_callback_is_registered():
    cfg = compose_train(hydra=True)
    assert cfg.hydra.callbacks.grid_summary._target_ == "speciarl.runs.sweep.GridSummaryCallback"
