"""The "before" figures reused across a sweep's jobs: same inputs and random state, same figures and state after."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from speciarl.runs.before_cache import cache_folder, measure_once

CONFIG = {
    "model": {"name": "tiny"},
    "data": {"val": {"size": 512, "seed": 10}},
    "verifier": {"name": "taxonomy"},
    "rollout": {"max_new_tokens": 24},
    "eval": {"before": True, "after": True, "best_of_n": 8, "temperature": 1.0, "top_p": 1.0},
    "module": {"val_breakdown_tag": "kind"},
    "trainer": {"limit_val_batches": None, "max_steps": 200},
    "optimizer": {"lr": 1e-4},
}


class Measurement:
    """Draws from every global generator, as validation and best-of-N do; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, float]:
        self.calls += 1
        draw = float(torch.rand(3).sum()) + random.random() + float(np.random.rand())
        return {"val/hm": draw}


def _after_state() -> tuple[float, float, float]:
    """What the training after the measurement would draw first."""
    return float(torch.rand(1)), random.random(), float(np.random.rand())


def _seed(value: int) -> None:
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value)


def test_a_second_job_reuses_the_figures_and_trains_from_the_same_random_state(tmp_path):
    cfg, measure = OmegaConf.create(CONFIG), Measurement()
    _seed(0)
    first, reused_first = measure_once(tmp_path, cfg, "before", measure)
    after_first = _after_state()
    _seed(0)
    second, reused_second = measure_once(tmp_path, cfg, "before", measure)
    after_second = _after_state()
    assert (reused_first, reused_second) == (False, True)
    assert measure.calls == 1
    assert second == first
    assert after_second == after_first


@pytest.mark.parametrize(
    ("key", "value", "reused"),
    [
        ("optimizer.lr", 3e-4, True),  # the training setting: the same base measured the same way
        ("trainer.max_steps", 10, True),
        ("eval.after", False, True),
        ("eval.temperature", 0.6, False),  # the measurement's own sampling
        ("rollout.max_new_tokens", 32, False),
        ("model.name", "other", False),
        ("data.val.seed", 11, False),
        ("trainer.limit_val_batches", 1, False),
    ],
)
def test_what_changes_the_measurement_changes_the_key(tmp_path, key, value, reused):
    measure = Measurement()
    _seed(0)
    measure_once(tmp_path, OmegaConf.create(CONFIG), "before", measure)
    changed = OmegaConf.create(CONFIG)
    OmegaConf.update(changed, key, value)
    _seed(0)
    _, was_reused = measure_once(tmp_path, changed, "before", measure)
    assert was_reused is reused
    assert measure.calls == (1 if reused else 2)


def test_another_random_state_or_name_measures_again(tmp_path):
    cfg, measure = OmegaConf.create(CONFIG), Measurement()
    _seed(0)
    measure_once(tmp_path, cfg, "before", measure)
    _seed(1)  # another seed of the sweep: its best-of-N samples and training draws differ
    assert measure_once(tmp_path, cfg, "before", measure)[1] is False
    _seed(0)
    assert measure_once(tmp_path, cfg, "before_best_of_8", measure)[1] is False
    assert measure.calls == 3


def test_no_folder_always_measures(tmp_path):
    cfg, measure = OmegaConf.create(CONFIG), Measurement()
    for _ in range(2):
        _seed(0)
        assert measure_once(None, cfg, "before", measure)[1] is False
    assert measure.calls == 2


def test_cache_folder_setting():
    cfg = OmegaConf.create(CONFIG)
    cfg.eval.before_cache = "auto"
    assert cache_folder(cfg, world_size=1) is None  # not a Hydra multirun: a single run's folder is new
    cfg.eval.before_cache = "/somewhere/cache"
    assert str(cache_folder(cfg, world_size=1)) == "/somewhere/cache"
    assert cache_folder(cfg, world_size=2) is None  # DDP ranks must all measure
    cfg.eval.before_cache = None
    assert cache_folder(cfg, world_size=1) is None
