"""Qwen2.5-VL-3B at its real widths, cut to 2 decoder layers and 2 vision blocks: two RL steps.

The CI guard of the scale rehearsal (docs/scaling.md): the real hidden sizes, GQA heads,
151,936-entry vocabulary, windowed + full-attention vision blocks and a 448x448 image (256 image
tokens) through ``python -m speciarl.train``'s own code path, so a shape or dtype regression at
full width fails here and not on the first GPU machine.
"""

import csv
import logging
import math

import pytest

from speciarl.train import train

CUT_DOWN_3B = [
    "experiment=dapo_speciarl",
    "model=qwen2_5_vl_3b_random",
    "model.layers=2",
    "model.vision_blocks=2",
    "+data.train.image_size=448",
    "+data.val.image_size=448",
    "data.batch_size=1",
    "algorithm.group_size=2",
    "rollout.max_new_tokens=6",
    "rollout.min_new_tokens=6",
    "trainer.max_steps=2",
    "eval.before=false",
    "eval.after=false",
    "eval.best_of_n=0",
    "logger=csv",
    "module.log_completions_every=1",
]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_two_rl_steps_of_the_3b_architecture_at_real_width(make_config, tmp_path, caplog, dtype):
    # bfloat16 as the preset, with model.cpu_float32_matmuls=true: this test's CPU may or may not
    # have bf16 arithmetic; on one without it, torch's own bf16 kernels made this test take 19 min.
    cfg = make_config(*CUT_DOWN_3B, f"model.dtype={dtype}", "model.cpu_float32_matmuls=true")
    with caplog.at_level(logging.INFO):
        results = train(cfg)
    assert results["steps"] == 2
    (path,) = list(tmp_path.glob("csv/version_*/metrics.csv"))
    rows = [r for r in csv.DictReader(path.open()) if r.get("train/loss")]
    assert len(rows) == 2
    assert all(math.isfinite(float(r["train/loss"])) for r in rows)
    routes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("log-probs:")]
    # Logged once, at setup: on CPU the model takes our completion pass and decode loop.
    assert routes == ["log-probs: completion pass, CPU; rollouts: own decode loop"]
    matmuls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("matmuls:")]
    if dtype == "float32":
        assert matmuls == []  # nothing to route
    else:  # logged once: every frozen Linear (2 layers x 7 + 2 vision blocks x 5 + merger 2 + LM head 1)
        assert len(matmuls) == 1
        assert matmuls[0].startswith("matmuls: 27 frozen bfloat16 Linear layers multiply in float32")
