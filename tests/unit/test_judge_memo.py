"""The taxonomy judge memoises verdicts: each distinct pair is placed once, results unchanged."""

from speciarl.core.categories import Category, Outcome
from speciarl.data.synthetic import shapes_taxonomy
from speciarl.verifier.taxonomy_judge import TaxonomyJudge


class CountingJudge(TaxonomyJudge):
    """The real judge, counting how often it actually places a pair."""

    def __init__(self) -> None:
        super().__init__(shapes_taxonomy())
        self.placed = 0

    def judge_one(self, ground_truth, prediction):
        self.placed += 1
        return super().judge_one(ground_truth, prediction)


def test_batch_is_judged_once_per_distinct_pair():
    judge = CountingJudge()
    # 8 rollouts of one image: 4 distinct answers (leaf, its type, its family, a parse failure).
    answers = ["crimson circle", "circle", "round", "crimson circle", None, "circle", "round", "circle"]
    verdicts = judge.judge(["crimson circle"] * 8, answers)
    specific, less, generic = Category.SPECIFIC, Category.LESS_SPECIFIC, Category.GENERIC
    fail = Outcome.PARSE_FAILURE
    assert verdicts == [specific, less, generic, specific, fail, less, generic, less]
    assert judge.placed == 4
    # The next step repeats two known pairs and brings one new one ("red circle" is a synonym).
    assert judge.judge(["crimson circle"] * 3, ["circle", "round", "red circle"]) == [less, generic, specific]
    assert judge.placed == 5


def test_memo_is_keyed_by_the_ground_truth_too():
    judge = CountingJudge()
    assert judge.judge(["crimson circle", "amber ring"], ["round", "round"]) == [
        Category.GENERIC,
        Category.GENERIC,
    ]
    assert judge.judge(["amber ring"], ["crimson circle"]) == [Category.WRONG]
    assert judge.placed == 3


def test_memo_is_bounded():
    judge = CountingJudge()
    judge.MEMO_LIMIT = 2
    judge.judge(["crimson circle"] * 3, ["circle", "round", "shape"])
    assert len(judge._memo) == 3
    # Over the limit: started afresh before the next batch, so the old pair is placed again.
    judge.judge(["crimson circle"], ["circle"])
    assert len(judge._memo) == 1
    assert judge.placed == 4
