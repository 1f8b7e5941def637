"""The reduced reproduction (1 seed, fewer steps): only what holds robustly at this scale.

Slow: builds the benchmark's warm start on first use (~4-10 min on 2 shared cores, then cached in
$SPECIARL_CACHE) and trains three GRPO arms (two at a time); CI runs it.
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
    # (measured: in domain 0.252 vs 0.004, out of domain 0.213 vs 0.003).
    for scope in ("in_domain", "out_of_domain"):
        assert fig("base_best_of_8", f"{scope}:specificity") > fig("base", f"{scope}:specificity") + 0.15
    # reward3 drives specificity up on the domain it trains on. On this benchmark SpeciaRL and
    # scala1 did NOT raise it (200 steps, seed 0: S 0.004 and 0.000, locked in at family/type
    # answers; README "Reproducing the paper's table"), so that part of the check is not
    # asserted here: it does not hold.
    assert fig("grpo_reward3", "in_domain:specificity") > fig("base", "in_domain:specificity") + 0.2
    # On images whose leaf cannot be known, SpeciaRL keeps more answers correct than reward3.
    assert fig("grpo_speciarl", "in_domain/unknowable:correctness") > fig(
        "grpo_reward3", "in_domain/unknowable:correctness"
    )
    assert (tmp_path / "table.md").read_text().count("\n| ") >= len(arms)
    assert (tmp_path / "tradeoff.png").stat().st_size > 0
