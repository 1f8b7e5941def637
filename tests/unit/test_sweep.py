"""Grid values of a multirun job, and the grid summary table, on hand-made job folders."""

import csv
import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from speciarl.runs.sweep import (
    annotate_sweep_job,
    grid_axes,
    read_grid,
    split_override,
    swept_keys,
    write_summary,
)
from speciarl.train import CONF_DIR


def make_job(sweep, num, overrides, after=None, before_hm=None, error=None, steps=5):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    if after is not None:
        c, s, h = after
        results = {
            "steps": steps,
            "fit_seconds": 12.34,
            "after": {"val/correctness": c, "val/specificity": s, "val/hm": h},
        }
        if before_hm is not None:
            results["before"] = {"val/hm": before_hm}
        (job / "results.json").write_text(json.dumps(results))
    if error is not None:
        (job / "job_error.txt").write_text(error)


@pytest.fixture
def sweep(tmp_path):
    common = ["trainer.max_steps=5", "logger=csv"]
    make_job(tmp_path, 0, ["reward=speciarl", "seed=0", *common], (0.8, 0.5, 0.615385), 0.2)
    make_job(tmp_path, 1, ["reward=speciarl", "seed=1", *common], (0.6, 0.7, 0.646154), 0.25)
    make_job(tmp_path, 2, ["reward=reward3", "seed=0", *common], (0.9, 0.1, 0.18))
    make_job(tmp_path, 3, ["reward=reward3", "seed=1", *common], error="RuntimeError: boom\n")
    make_job(tmp_path, 10, ["reward=scala1", "seed=0", *common])  # never finished
    (tmp_path / "multirun.yaml").write_text("{}")
    return tmp_path


def test_split_override():
    assert split_override("reward=speciarl") == ("reward", "speciarl")
    assert split_override("+trainer.limit_train_batches=2") == ("trainer.limit_train_batches", "2")
    assert split_override("a.b=x=y") == ("a.b", "x=y")


def test_swept_keys_from_preset_and_command_line():
    argv = ["-m", "reward=a,b", "seed=range(0,3)", "trainer.max_steps=5", "model.lora={r: 16}"]
    assert swept_keys(None, argv) == {"reward", "seed"}
    assert swept_keys({"reward": "x,y", "seed": "0,1"}, ["trainer.max_steps=5"]) == {"reward", "seed"}


def test_grid_axes_are_the_overrides_that_vary(sweep):
    rows = read_grid(sweep)
    assert [r.job for r in rows] == ["0", "1", "2", "3", "10"]  # numeric order, not 0, 1, 10, 2
    assert grid_axes(rows) == ["reward", "seed"]
    assert [r.status for r in rows] == ["ok", "ok", "ok", "failed", "incomplete"]


def test_summary_table(sweep):
    path = write_summary(sweep)
    with (sweep / "summary.csv").open() as fh:
        table = list(csv.reader(fh))
    assert table[0] == [
        "job", "reward", "seed", "status", "steps", "correctness", "specificity", "hm", "hm_before", "fit_seconds"
    ]  # fmt: skip
    assert table[1] == ["0", "speciarl", "0", "ok", "5", "0.800", "0.500", "0.615", "0.200", "12.3"]
    assert table[3] == ["2", "reward3", "0", "ok", "5", "0.900", "0.100", "0.180", "", "12.3"]
    assert table[4] == ["3", "reward3", "1", "failed", "", "", "", "", "", ""]
    assert table[5][:4] == ["10", "scala1", "0", "incomplete"]
    text = path.read_text()
    assert "5 jobs, 3 finished" in text
    # over seeds: speciarl correctness mean (0.8 + 0.6) / 2 = 0.7, sample std sqrt(0.02) = 0.141;
    # hm mean (0.615385 + 0.646154) / 2 = 0.630770, std |0.615385 - 0.646154| / sqrt(2) = 0.021757.
    assert "| speciarl | 2 | 0.700 ± 0.141 | 0.600 ± 0.141 | 0.631 ± 0.022 |" in text
    assert "| reward3 | 1 | 0.900 | 0.100 | 0.180 |" in text
    assert "job 3: RuntimeError: boom" in text


def test_empty_sweep_writes_nothing(tmp_path):
    assert write_summary(tmp_path) is None
    assert write_summary(tmp_path / "missing") is None


def test_annotate_sweep_job_puts_grid_values_in_config_tags_and_wandb(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["hparams=reward_grid", "reward=scala2", "seed=1", "trainer.max_steps=5"],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.job.num = 3
        cfg.hydra.sweep.dir = str(tmp_path / "multirun" / "grid")
        cfg.hydra.runtime.output_dir = str(tmp_path / "multirun" / "grid" / "3")
        cfg.paths.output_dir = cfg.hydra.runtime.output_dir
    HydraConfig.instance().set_config(cfg)
    try:
        task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        out = annotate_sweep_job(task)
    finally:
        HydraConfig.instance().cfg = None
    # reward and seed are the preset's axes; trainer.max_steps is a fixed override, not a grid value
    assert out.sweep.grid == {"reward": "scala2", "seed": "1"}
    assert out.sweep.job == 3
    assert out.sweep.overrides["trainer.max_steps"] == "5"
    assert list(out.tags)[-2:] == ["reward=scala2", "seed=1"]
    resolved = OmegaConf.to_container(out.logger, resolve=True)
    assert resolved["wandb"]["tags"][-2:] == ["reward=scala2", "seed=1"]
    assert resolved["wandb"]["name"] == "reward=scala2,seed=1"
    assert resolved["wandb"]["group"].endswith("multirun_grid")


def test_annotate_outside_a_multirun_changes_nothing(make_config):
    cfg = make_config("algorithm=grpo", "reward=speciarl")
    assert "sweep" not in annotate_sweep_job(cfg)
