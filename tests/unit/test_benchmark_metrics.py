"""Per-dataset and group figures against hand-worked examples (the evaluation protocol of the SpeciaRL paper, arXiv 2603.03197)."""

import pytest

from speciarl.core.categories import Category as C
from speciarl.core.categories import Outcome as O
from speciarl.evaluation.figures import dataset_figures, group_figures, text_inclusion


def test_dataset_figures_hand_example():
    # 8 answers: 1 more specific, 1 specific, 2 less specific, 1 generic, 1 abstain, 1 wrong,
    # 1 parse failure; plus 1 judge error outside N.
    # correct = 1 + 1 + 2 + 1 = 5 of N = 8 -> C = 0.625; specific = 2 of 5 -> S = 0.4;
    # HM = 2 * 0.625 * 0.4 / 1.025 = 0.5 / 1.025 = 0.487805
    judgements = [
        C.MORE_SPECIFIC,
        C.SPECIFIC,
        C.LESS_SPECIFIC,
        C.LESS_SPECIFIC,
        C.GENERIC,
        C.ABSTAIN,
        C.WRONG,
        O.PARSE_FAILURE,
        O.JUDGE_ERROR,
    ]
    out = dataset_figures(
        judgements, [True, True, False, False, False, False, False, False, False], None, skipped=2
    )
    assert out["n"] == 8
    assert out["correctness"] == pytest.approx(0.625)
    assert out["specificity"] == pytest.approx(0.4)
    assert out["hm"] == pytest.approx(0.487805, abs=1e-6)
    assert out["fractions"]["parse_failure"] == pytest.approx(1 / 8)
    assert out["judge_errors"] == 1 and out["skipped_images"] == 2
    assert out["text_inclusion"] == pytest.approx(2 / 9)


def test_parse_failures_are_not_correct():
    # 2 specific + 2 parse failures: C = 2/4 = 0.5 (not 1.0), S = 2/2 = 1, HM = 2*0.5*1/1.5 = 0.6667
    out = dataset_figures([C.SPECIFIC, C.SPECIFIC, O.PARSE_FAILURE, O.PARSE_FAILURE])
    assert out["correctness"] == pytest.approx(0.5)
    assert out["specificity"] == pytest.approx(1.0)
    assert out["hm"] == pytest.approx(2 / 3)


def test_group_is_the_mean_of_its_datasets():
    per_dataset = {
        # flowers: C 0.9, S 0.8 -> HM = 1.44 / 1.7 = 0.847059
        "flowers102": {"correctness": 0.9, "specificity": 0.8, "hm": 1.44 / 1.7},
        # food: C 0.6, S 0.5 -> HM = 0.6 / 1.1 = 0.545455
        "food101": {"correctness": 0.6, "specificity": 0.5, "hm": 0.6 / 1.1},
        # pets: C 0.75, S 1.0 -> HM = 1.5 / 1.75 = 0.857143
        "oxford_pets": {"correctness": 0.75, "specificity": 1.0, "hm": 1.5 / 1.75},
        "stanford_cars": {"correctness": 0.5, "specificity": 0.5, "hm": 0.5},
    }
    groups = group_figures(per_dataset)
    fine = groups["fine_grained"]
    assert fine["correctness"] == pytest.approx((0.9 + 0.6 + 0.75) / 3)  # 0.75
    assert fine["specificity"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)  # 0.766667
    # the mean of the HMs (0.847059 + 0.545455 + 0.857143) / 3 = 0.749886, not HM(0.75, 0.766667) = 0.758242
    assert fine["hm"] == pytest.approx(0.749886, abs=1e-6)
    assert fine["complete"] is True
    very = groups["very_fine_grained"]
    assert (
        very["complete"] is False
        and very["datasets"] == ["stanford_cars"]
        and very["hm"] == pytest.approx(0.5)
    )
    assert "in_domain" not in groups


def test_text_inclusion():
    assert text_inclusion("Golden winged Warbler", "a golden winged warbler, perched")
    assert not text_inclusion("Golden winged Warbler", "warbler")
    assert not text_inclusion("apple pie", None)
