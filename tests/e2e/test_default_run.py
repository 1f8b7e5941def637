"""The README's main job, end to end: the embedded default learns to be more specific.

Slow (the first run warm-starts the tiny model, ~2-3 min, then trains 300 steps); CI runs it.
"""

import pytest

from speciarl.train import train


@pytest.mark.slow
def test_dapo_speciarl_default_raises_specificity_and_hm(make_config):
    cfg = make_config("experiment=dapo_speciarl", "logger=csv")
    results = train(cfg)
    before, after = results["before"], results["after"]
    best_of_8 = results["before_best_of_8"]
    # The premise: the warm-started model knows more than it says.
    assert best_of_8["val/specificity"] > 3 * before["val/specificity"]
    assert best_of_8["val/specificity"] > 0.15
    # RL with the SpeciaRL reward makes it say more of what it knows.
    assert after["val/specificity"] > before["val/specificity"] + 0.05
    assert after["val/hm"] > before["val/hm"] + 0.05
    assert results["totals"]["judge_errors"] == 0
