"""The reproduction table: seeds aggregated by hand-worked means and spreads."""

from __future__ import annotations

import json
import math

import pytest

from speciarl.core.categories import Category
from speciarl.evaluation.loop import EvalRecord
from speciarl.reproduce import (
    GRIDS,
    MAIN_ARMS,
    SLICES,
    Job,
    _finished,
    aggregate,
    job_key,
    markdown_table,
    plot,
    top_wrong_answers,
)


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
    table = markdown_table(rows)
    assert "| rl | 10 | 0,1 | 0.600 ± 0.141 |" in table
    # HM of (0.9, 0.1) = 2*0.09/1.0 = 0.18
    assert "0.180 ± 0.000" in table
    assert "out_of_domain/unknowable" in table
    assert plot(rows, tmp_path / "t.png").stat().st_size > 0


def test_every_paper_arm_and_grid_is_listed():
    names = {a.name for a in MAIN_ARMS}
    assert {
        "base",
        "base_best_of_8",
        "be_specific",
        "sft",
        "grpo_reward3",
        "grpo_scala1",
        "grpo_speciarl",
    } <= names
    assert {"dr_grpo_reward3", "dr_grpo_speciarl", "dapo_reward3", "dapo_speciarl"} <= names
    assert sorted(a.name for a in GRIDS["rollouts"]) == sorted(
        f"grpo_{r}_G{g}" for r in ("speciarl", "reward3") for g in (4, 8, 16)
    )
    assert len(GRIDS["noisy"]) == 3


def test_answer_shares_table_reads_the_frac_figures():
    result = _result("rl", 0, 0.75, 0.5, 0.1)
    result["figures"]["in_domain"].update(
        frac_specific=0.5, frac_less_specific=0.125, frac_generic=0.125, frac_wrong=0.25
    )
    table = markdown_table(aggregate([result]))
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
    arm = next(a for a in MAIN_ARMS if a.name == "grpo_speciarl")
    job = Job(arm, 0, 20, 300, tmp_path)
    folder = tmp_path / "runs" / arm.name
    folder.mkdir(parents=True)
    (folder / "seed0.json").write_text(json.dumps({"arm": arm.name, "key": job_key(job), "steps": 20}))
    assert _finished(job)["steps"] == 20
    assert _finished(Job(arm, 0, 30, 300, tmp_path)) is None  # other step count
    other_base = Job(arm, 0, 20, 300, tmp_path, ("model.phases.0.steps=10",))
    assert _finished(other_base) is None  # other warm-start recipe: rerun, never mix
