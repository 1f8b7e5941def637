"""Correctness, specificity and HM from hand-made category lists."""

import pytest

from speciarl.core.categories import Category as C
from speciarl.core.categories import Outcome as O
from speciarl.evaluation.metrics import CategoryCounts, correctness_specificity, summary

# 10 judged answers: 1 more specific, 2 specific, 1 less specific, 2 generic, 1 abstain,
# 2 wrong, 1 parse failure; plus 1 judge error that is not a verdict.
JUDGEMENTS = (
    [C.MORE_SPECIFIC]
    + [C.SPECIFIC] * 2
    + [C.LESS_SPECIFIC]
    + [C.GENERIC] * 2
    + [C.ABSTAIN]
    + [C.WRONG] * 2
    + [O.PARSE_FAILURE]
    + [O.JUDGE_ERROR]
)


def test_hand_example():
    # correct = 1 + 2 + 1 + 2 = 6 of N = 10 -> C 0.6; specific 3 of 6 -> S 0.5;
    # HM = 2 * 0.6 * 0.5 / 1.1 = 0.545454.
    out = summary(JUDGEMENTS)
    assert out["correctness"] == pytest.approx(0.6)
    assert out["specificity"] == pytest.approx(0.5)
    assert out["hm"] == pytest.approx(0.545454, abs=1e-6)
    assert out["frac_judge_error"] == pytest.approx(1 / 11)


def test_empty_and_all_wrong():
    assert correctness_specificity({}) == (0.0, 0.0, 0.0)
    assert summary([C.WRONG, O.PARSE_FAILURE])["correctness"] == 0.0


def test_torchmetrics_accumulate_over_updates():
    metric = CategoryCounts()
    metric.update(JUDGEMENTS[:5])
    metric.update(JUDGEMENTS[5:])
    # the hand example above, accumulated over two updates: C 0.6, S 0.5, HM 0.545454
    out = metric.compute()
    assert out["correctness"].item() == pytest.approx(0.6)
    assert out["specificity"].item() == pytest.approx(0.5)
    assert out["hm"].item() == pytest.approx(0.545454, abs=1e-6)
    # shares are over all 11 slots counted, the judge error included: 2 specific of 11
    assert out["frac_specific"].item() == pytest.approx(2 / 11)
    metric.reset()
    metric.update([])
    assert metric.compute()["correctness"].item() == 0.0


def test_unresolved_rejected():
    with pytest.raises(ValueError, match="unresolved"):
        summary([O.UNRESOLVED])
