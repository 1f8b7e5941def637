"""``--help`` of every entry point: fast (before torch loads), every preset, the keys people change first."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speciarl.cli_help import CONF_DIR, config_groups, group_options, help_text

ROOT = Path(__file__).resolve().parents[2]
HYDRA_ENTRY_POINTS = ("train", "evaluate", "export", "verify")
ARGPARSE_ENTRY_POINTS = ("reproduce", "memory")
# Keys a newcomer changes first; each must be named in the help of the entry point that takes it.
COMMON_KEYS = {
    "train": ("trainer.max_steps", "save_policy", "num_threads", "eval.best_of_n", "checkpoint=periodic"),
    "evaluate": ("ckpt=", "eval.split", "eval.best_of_n", "eval.temperature", "num_threads"),
    "export": ("ckpt_path", "checkpoint=periodic", "save_policy=true"),
    "verify": ("input=", "output=", "verifier"),
}


def _help(entry_point: str) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", f"speciarl.{entry_point}", "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, time.perf_counter() - started


@pytest.mark.parametrize("entry_point", HYDRA_ENTRY_POINTS)
def test_hydra_help_is_fast_and_lists_every_preset_and_the_common_keys(entry_point):
    text, seconds = _help(entry_point)
    assert seconds < 5.0, f"--help took {seconds:.1f} s"
    groups = config_groups(entry_point)
    assert groups, "every entry point has config groups"
    for group in groups:
        for option in group_options(group):
            assert option in text, f"{entry_point} --help misses {group}={option}"
    for key in COMMON_KEYS[entry_point]:
        assert key in text, f"{entry_point} --help misses {key}"
    assert "$APP_CONFIG_GROUPS" not in text


@pytest.mark.parametrize("entry_point", ARGPARSE_ENTRY_POINTS)
def test_argparse_help_is_fast(entry_point):
    text, seconds = _help(entry_point)
    assert seconds < 5.0, f"--help took {seconds:.1f} s"
    assert f"speciarl.{entry_point}" in text


def test_train_help_names_the_presets_a_newcomer_asks_for_and_marks_defaults():
    text = help_text("train")
    for preset in ("tiny_benchmark_confusable", "shapes_benchmark_confusable", "algorithm_reward_grid"):
        assert preset in text
    assert "optimiser_grid" not in text
    # The default of a group carries a star; a group defaulting to null has none.
    algorithm_line = next(line for line in text.splitlines() if line.strip().startswith("algorithm "))
    assert "grpo*" in algorithm_line and "dapo*" not in algorithm_line
    experiment_line = next(line for line in text.splitlines() if line.strip().startswith("experiment "))
    assert "*" not in experiment_line


def test_group_options_are_the_files_of_the_folder(tmp_path):
    (tmp_path / "root.yaml").write_text(
        "defaults:\n  - _self_\n  - colour: red\n  - override hydra/job_logging: stdout\n  - shape: null\n"
    )
    (tmp_path / "colour" / "deep").mkdir(parents=True)
    for name in ("red.yaml", "blue.yaml", "deep/navy.yaml", "notes.txt"):
        (tmp_path / "colour" / name).write_text("{}\n")
    (tmp_path / "shape").mkdir()
    (tmp_path / "shape" / "round.yaml").write_text("{}\n")
    assert config_groups("root", tmp_path) == {"colour": "red", "shape": None}
    # A sub-folder is a group of its own (verifier/llm), not an option of its parent.
    assert group_options("colour", tmp_path) == ["blue", "red"]


def test_a_config_without_a_help_template_is_a_clear_error(tmp_path):
    (tmp_path / "bare.yaml").write_text("seed: 0\n")
    with pytest.raises(KeyError, match="bare.yaml has no hydra.help.template"):
        help_text("bare", tmp_path)


def test_the_conf_folder_is_the_packaged_one():
    assert (CONF_DIR / "train.yaml").is_file()
