"""The reproduction table: seeds aggregated by hand-worked means and spreads."""

from __future__ import annotations

import json
import math

import pytest

from speciarl.core.categories import Category
from speciarl.evaluation.loop import EvalRecord
from speciarl.reproduce import (
    SLICES,
    Arm,
    Job,
    _finished,
    aggregate,
    compose_config,
    job_key,
    load_grid,
    plot,
    results_table,
    top_wrong_answers,
)
from speciarl.reproduce_cli import grid_names


def _figures(c: float, s: float) -> dict:
    hm = 2 * c * s / (c + s)
    return {"correctness": c, "specificity": s, "hm": hm}


def _result(arm: str, seed: int, c: float, s: float, zv: float | None) -> dict:
    figures = {scope: _figures(c, s) for scope in ("all", "in_domain", "out_of_domain", *SLICES)}
    return {
        "arm": arm,
        "label": arm,
        "seed": seed,
        "steps": 10,
        "figures": figures,
        "zero_variance_groups": zv,
        "zero_variance_first_25": zv,
        "wall_seconds": 1.0,
    }


def test_mean_and_spread_over_seeds(tmp_path):
    results = [
        _result("rl", 0, 0.5, 1.0, 0.2),
        _result("rl", 1, 0.7, 1.0, 0.4),
        _result("base", 0, 0.9, 0.1, None),
    ]
    rows = aggregate(results)
    rl = rows[0]
    # mean (0.5 + 0.7) / 2 = 0.6; sample sd sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414
    assert rl["in_domain:correctness"][0] == pytest.approx(0.6)
    assert rl["in_domain:correctness"][1] == pytest.approx(math.sqrt(0.02))
    assert rl["zero_variance_groups"][0] == pytest.approx(0.3)
    assert rl["seeds"] == [0, 1]
    base = rows[1]
    assert base["in_domain:correctness"] == (pytest.approx(0.9), 0.0)
    assert math.isnan(base["zero_variance_groups"][0])
    table = results_table(rows)
    assert "| rl | 10 | 0,1 | 0.600 ± 0.141 |" in table
    # HM of (0.9, 0.1) = 2*0.09/1.0 = 0.18
    assert "0.180 ± 0.000" in table
    assert "out_of_domain/unknowable" in table
    assert plot(rows, tmp_path / "t.png").stat().st_size > 0


def test_every_grid_arm_composes_into_a_train_config(tmp_path):
    """The grids are read from conf/reproduce/*.yaml; each arm's overrides name real settings."""
    assert grid_names() == ["main", "noisy", "rollouts"]
    for grid in grid_names():
        arms = load_grid(grid)
        assert len({a.name for a in arms}) == len(arms), grid
        for arm in arms:
            cfg = compose_config(arm, 0, 7, tmp_path)
            assert cfg.data.train._target_.endswith("ShapesBenchmark") and cfg.logger == {}
            assert not cfg.eval.before and not cfg.eval.after and cfg.num_threads == 1
            # evaluation-only and SFT arms run no RL step through the training entry point
            assert cfg.trainer.max_steps == (7 if arm.mode == "rl" else 0), arm.name
    main = {a.name: a for a in load_grid("main")}
    assert [main[n].mode for n in ("base", "base_best_of_8", "sft", "grpo_speciarl")] == [
        "eval",
        "eval",
        "sft",
        "rl",
    ]
    assert main["base_best_of_8"].best_of == 8
    # G x prompts = 128 rollouts a step in every cell of the rollouts grid: 4 x 32, 8 x 16, 16 x 8
    for arm in load_grid("rollouts"):
        cfg = compose_config(arm, 0, 1, tmp_path)
        assert cfg.algorithm.group_size * cfg.data.batch_size == 128, arm.name
    with pytest.raises(ValueError, match="unknown mode 'train'"):
        Arm("x", "train")


def test_answer_shares_table_reads_the_frac_figures():
    result = _result("rl", 0, 0.75, 0.5, 0.1)
    result["figures"]["in_domain"].update(
        frac_specific=0.5, frac_less_specific=0.125, frac_generic=0.125, frac_wrong=0.25
    )
    table = results_table(aggregate([result]))
    # leaf / type / family / wrong in domain; out of domain has no shares, so dashes
    assert "| rl | 0.50 / 0.12 / 0.12 / 0.25 | - / - / - / - |" in table


def test_top_wrong_answers_counts_only_wrong_verdicts_per_slice():
    records = [
        EvalRecord("a", "azure circle", "angular", "", Category.WRONG, {"slice": "in_domain/easy"}),
        EvalRecord("b", "azure circle", "angular", "", Category.WRONG, {"slice": "in_domain/easy"}),
        EvalRecord("c", "lime oval", "ring", "", Category.WRONG, {"slice": "in_domain/easy"}),
        EvalRecord("d", "lime oval", "round", "", Category.GENERIC, {"slice": "in_domain/easy"}),
        EvalRecord("e", "amber star", "star", "", Category.LESS_SPECIFIC, {"slice": "out_of_domain/hard"}),
    ]
    assert top_wrong_answers(records) == {
        "in_domain/easy": [["azure circle", "angular", 2], ["lime oval", "ring", 1]]
    }


def test_a_result_is_read_back_only_for_the_same_model_and_steps(tmp_path):
    arm = next(a for a in load_grid("main") if a.name == "grpo_speciarl")
    job = Job(arm, 0, 20, 300, tmp_path)
    folder = tmp_path / "runs" / arm.name
    folder.mkdir(parents=True)
    (folder / "seed0.json").write_text(json.dumps({"arm": arm.name, "key": job_key(job), "steps": 20}))
    assert _finished(job)["steps"] == 20
    assert _finished(Job(arm, 0, 30, 300, tmp_path)) is None  # other step count
    other_base = Job(arm, 0, 20, 300, tmp_path, ("model.phases.0.steps=10",))
    assert _finished(other_base) is None  # other warm-start recipe: rerun, never mix
