"""The reduced reproduction (1 seed, fewer steps): only what holds robustly at this scale.

Slow: builds the benchmark's warm start on first use (about 6 min on 2 cores, then cached in
$SPECIARL_CACHE) and trains three GRPO arms (two at a time, about 40 s each); CI runs it.
"""

import json

import pytest

from speciarl.reproduce import main

STEPS = 100


@pytest.mark.slow
def test_reduced_table_premise_specificity_and_unknowable_correctness(tmp_path):
    arms = ["base", "base_best_of_8", "grpo_reward3", "grpo_scala1", "grpo_speciarl"]
    assert main(["--out", str(tmp_path), "--seeds", "0", "--steps", str(STEPS), "--arms", *arms]) == 0
    rows = {r["arm"]: r for r in json.loads((tmp_path / "summary.json").read_text())["rows"]}

    def fig(arm: str, key: str) -> float:
        return rows[arm][key][0]

    # The premise, in and out of domain: best-of-8 says the leaf far more often than greedy
    # (measured, 3 seeds: in domain 0.511 vs 0.019, out of domain 0.412 vs 0.006).
    for scope in ("in_domain", "out_of_domain"):
        assert fig("base_best_of_8", f"{scope}:specificity") > fig("base", f"{scope}:specificity") + 0.15
    # Every reward drives specificity up on the domain it trains on (200 steps, 3 seeds: S 0.67
    # scala1, 0.80 SpeciaRL, 1.00 reward3, from 0.02).
    for arm in ("grpo_reward3", "grpo_scala1", "grpo_speciarl"):
        assert fig(arm, "in_domain:specificity") > fig("base", "in_domain:specificity") + 0.3, arm
    # On images whose leaf cannot be known, SpeciaRL keeps more answers correct than reward3
    # (200 steps, 3 seeds: 0.61 vs 0.25, reward3 at chance).
    assert fig("grpo_speciarl", "in_domain/unknowable:correctness") > fig(
        "grpo_reward3", "in_domain/unknowable:correctness"
    )
    assert (tmp_path / "table.md").read_text().count("\n| ") >= len(arms)
    assert (tmp_path / "tradeoff.png").stat().st_size > 0
