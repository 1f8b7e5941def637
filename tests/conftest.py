"""Shared fixtures: the composed Hydra config, a fresh tiny policy, offline W&B."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from speciarl.train import CONF_DIR

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


def compose_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """The real training config with ``overrides``, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


@pytest.fixture
def make_config(tmp_path):
    def _make(*overrides: str) -> DictConfig:
        return compose_config(list(overrides), tmp_path)

    return _make


@pytest.fixture
def tiny_policy_fresh():
    """A randomly initialised tiny policy (no warm start: seconds, not minutes)."""
    from speciarl.built_models.tiny_loading import tiny_policy

    torch.manual_seed(0)
    return tiny_policy(warm_start=False)
