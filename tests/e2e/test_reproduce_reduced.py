"""The reduced reproduction (1 seed, fewer steps): only what holds robustly at this scale.

Slow: the benchmark's warm start ships with the package (building it from code instead takes
about 6 min on 2 cores); the two GRPO arms train two at a time, about 40 s each. CI runs it.
"""

import json

import pytest

from speciarl.reproduce import main

STEPS = 100


@pytest.mark.slow
def test_reduced_table_premise_instruction_and_careful_where_unsure(tmp_path):
    arms = ["base", "base_best_of_8", "be_specific", "grpo_reward3", "grpo_speciarl"]
    assert main(["--out", str(tmp_path), "--seeds", "0", "--steps", str(STEPS), "--arms", *arms]) == 0
    rows = {r["arm"]: r for r in json.loads((tmp_path / "summary.json").read_text())["rows"]}

    def fig(arm: str, key: str) -> float:
        return rows[arm][key][0]

    # The premise, in and out of domain: best-of-8 says the leaf far more often than greedy
    # (measured, 3 seeds, 200 steps: see docs/results-and-reproduction.md).
    for scope in ("in_domain", "out_of_domain"):
        assert fig("base_best_of_8", f"{scope}:specificity") > fig("base", f"{scope}:specificity") + 0.15
        # The base follows "be specific": it names leaves, and pays in correctness on the
        # images whose leaf it does not know (seed 0: C 1.000 -> 0.604 in domain).
        assert fig("be_specific", f"{scope}:specificity") > 0.9
        assert fig("be_specific", f"{scope}:correctness") < fig("base", f"{scope}:correctness") - 0.2
    # Both rewards raise in-domain specificity from the greedy base's ~0.01.
    for arm in ("grpo_reward3", "grpo_speciarl"):
        assert fig(arm, "in_domain:specificity") > fig("base", "in_domain:specificity") + 0.2, arm
    # Where the leaf cannot be known (grey images, and confusable ones with no cue on the
    # image), reward3 guesses at chance (~0.25) and SpeciaRL backs off and stays correct.
    for kind in ("confusable", "unknowable"):
        key = f"in_domain/{kind}:correctness"
        assert fig("grpo_speciarl", key) > fig("grpo_reward3", key) + 0.3, kind
    # So SpeciaRL keeps more correctness than reward3 in domain (seed 0, 100 steps: 0.911 vs
    # 0.594) and out of domain, where reward3's guessing is still spreading at 100 steps (0.893 vs
    # 0.810; at 200 steps, 3 seeds: 0.84-0.86 vs 0.58-0.59).
    assert fig("grpo_speciarl", "in_domain:correctness") > fig("grpo_reward3", "in_domain:correctness") + 0.1
    assert fig("grpo_speciarl", "out_of_domain:correctness") > fig(
        "grpo_reward3", "out_of_domain:correctness"
    )
    assert (tmp_path / "table.md").read_text().count("\n| ") >= len(arms)
    assert (tmp_path / "tradeoff.png").stat().st_size > 0
