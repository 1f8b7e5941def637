"""Static tables (reward3, scala1-3) entry by entry, and the noisy reward's transitions."""

import math
import random

import pytest

from speciarl.core.categories import Category as C
from speciarl.core.categories import Outcome as O
from speciarl.rl.rewards import (
    NoisySpeciaRLReward,
    SpeciaRLReward,
    StaticReward,
    perturb_category,
    perturb_group,
    speciarl_reward,
)

# The paper's reward tables (arXiv 2603.03197, Sec. 3), written out cell by cell:
#            more specific, specific, less specific, generic, abstain, wrong
SPEC_TABLES = {
    "reward3": (1, 1, 0, 0, 0, 0),
    "scala1": (1, 1, 0.75, 0.5, 0.25, 0),
    "scala2": (1, 1, 0.75, 0.5, 0, 0),
    "scala3": (1, 1, 0.75, 0, 0, 0),
}
ORDER = (C.MORE_SPECIFIC, C.SPECIFIC, C.LESS_SPECIFIC, C.GENERIC, C.ABSTAIN, C.WRONG)
ENTRIES = [(name, cat, row[i]) for name, row in SPEC_TABLES.items() for i, cat in enumerate(ORDER)]


@pytest.mark.parametrize(("variant", "category", "expected"), ENTRIES)
def test_every_static_table_entry(variant, category, expected):
    assert StaticReward(variant)([[category]]).tolist() == [[expected]]


@pytest.mark.parametrize("variant", sorted(SPEC_TABLES))
def test_parse_failure_is_minus_one_and_judge_error_nan_in_every_variant(variant):
    out = StaticReward(variant)([[O.PARSE_FAILURE, O.JUDGE_ERROR]])[0]
    assert out[0].item() == -1.0
    assert math.isnan(out[1].item())


def test_scala_rewards_a_group_without_looking_at_the_others():
    # Static: the same verdict earns the same score whatever the rest of the group did.
    assert StaticReward("scala1")([[C.GENERIC, C.ABSTAIN, C.SPECIFIC]]).tolist() == [[0.5, 0.25, 1.0]]
    assert StaticReward("scala1")([[C.GENERIC, C.WRONG]]).tolist() == [[0.5, 0.0]]


# ---------------------------------------------------------------- noisy SpeciaRL
# Expected one-draw transition probabilities with noise p: the chain is
# specific - less specific - generic - abstain - wrong; middle states go up or down with p / 2
# each; the two ends go inward with p; more specific moves like specific.
def expected_transitions(start: C, p: float) -> dict[C, float]:
    chain = [C.SPECIFIC, C.LESS_SPECIFIC, C.GENERIC, C.ABSTAIN, C.WRONG]
    i = chain.index(C.SPECIFIC if start is C.MORE_SPECIFIC else start)
    if i == 0:
        moves = {chain[1]: p}
    elif i == len(chain) - 1:
        moves = {chain[-2]: p}
    else:
        moves = {chain[i - 1]: p / 2, chain[i + 1]: p / 2}
    return {start: 1 - p, **moves}


@pytest.mark.parametrize("p", [0.05, 0.10, 0.25])
@pytest.mark.parametrize("start", ORDER)
def test_noisy_transition_probabilities(start, p):
    # 20,000 draws with a fixed seed (so the test is deterministic). Tolerance: 5 standard errors
    # of a frequency, 5 * sqrt(q (1 - q) / n); for the largest q (1 - q) = 0.25 that is 0.0177.
    # A correct implementation fails a check with probability < 1e-6 over seeds; a wrong rule
    # (e.g. ends moving with p / 2, or two-step moves) is off by >= p / 2 = 0.025 at p = 0.05.
    n = 20_000
    rng = random.Random(20260303)
    counts: dict[C, int] = {}
    for _ in range(n):
        out = perturb_category(start, p, rng)
        counts[out] = counts.get(out, 0) + 1
    expected = expected_transitions(start, p)
    assert set(counts) <= set(expected), f"impossible transition from {start}: {set(counts) - set(expected)}"
    for target, q in expected.items():
        tolerance = 5 * math.sqrt(q * (1 - q) / n)
        assert counts.get(target, 0) / n == pytest.approx(q, abs=tolerance), target


def test_noise_with_p_one_moves_every_verdict_one_step():
    # p = 1: specific must go down to less specific, wrong up to abstain (the ends only inward);
    # the middle goes one step either way.
    rng = random.Random(0)
    assert perturb_category(C.SPECIFIC, 1.0, rng) is C.LESS_SPECIFIC
    assert perturb_category(C.MORE_SPECIFIC, 1.0, rng) is C.LESS_SPECIFIC
    assert perturb_category(C.WRONG, 1.0, rng) is C.ABSTAIN
    assert {perturb_category(C.GENERIC, 1.0, rng) for _ in range(200)} == {C.LESS_SPECIFIC, C.ABSTAIN}
    assert {perturb_category(C.ABSTAIN, 1.0, rng) for _ in range(200)} == {C.GENERIC, C.WRONG}


def test_noise_happens_before_the_grouping():
    # [specific, wrong] at p = 1 becomes [less specific, abstain]: the best verdict is now less
    # specific (rank 2), so SpeciaRL gives [1, 0]; a bar set after noise, not before.
    reward = NoisySpeciaRLReward(p=1.0, seed=0)
    assert reward([[C.SPECIFIC, C.WRONG]]).tolist() == [[1.0, 0.0]]
    # [less specific, wrong] at p = 1: wrong -> abstain, less specific -> specific or generic.
    # If it went up: best = specific -> [1, 0]; if down: best = generic (rank 3) < abstain -> [1, 0].
    assert NoisySpeciaRLReward(p=1.0, seed=3)([[C.LESS_SPECIFIC, C.WRONG]]).tolist() == [[1.0, 0.0]]


def test_non_verdicts_are_never_perturbed():
    group = [O.PARSE_FAILURE, O.JUDGE_ERROR, C.GENERIC]
    out = perturb_group(group, 1.0, random.Random(1))
    assert out[:2] == [O.PARSE_FAILURE, O.JUDGE_ERROR]
    rewards = NoisySpeciaRLReward(p=1.0, seed=1)([group])[0].tolist()
    assert rewards[0] == -1.0 and math.isnan(rewards[1]) and rewards[2] == 1.0


def test_noisy_reward_is_seeded_and_zero_noise_is_speciarl():
    groups = [[C.SPECIFIC, C.GENERIC, C.WRONG, C.LESS_SPECIFIC]] * 50
    a = NoisySpeciaRLReward(p=0.25, seed=7)(groups)
    b = NoisySpeciaRLReward(p=0.25, seed=7)(groups)
    c = NoisySpeciaRLReward(p=0.25, seed=8)(groups)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    assert NoisySpeciaRLReward(p=0.0, seed=7)(groups).tolist() == SpeciaRLReward()(groups).tolist()


def test_noisy_reward_counts_its_moves():
    reward = NoisySpeciaRLReward(p=1.0, seed=0)
    reward([[C.SPECIFIC, C.WRONG, O.PARSE_FAILURE]])
    assert reward.stats() == {"noise_moved": 2.0, "noise_rate": 1.0}


def test_noisy_single_mode():
    # p = 1: [specific, more specific] -> [less specific, less specific]; single mode rewards the first.
    assert NoisySpeciaRLReward(p=1.0, seed=0, mode="single")([[C.SPECIFIC, C.MORE_SPECIFIC]]).tolist() == [
        [1.0, 0.0]
    ]
    assert speciarl_reward([C.LESS_SPECIFIC, C.LESS_SPECIFIC], "single") == [1.0, 0.0]


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_noisy_bad_p(p):
    with pytest.raises(ValueError, match="p must be in"):
        NoisySpeciaRLReward(p=p)
