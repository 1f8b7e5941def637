"""The judge's vocabulary: six categories, their ranks, and the non-category outcomes.

Also the two text operations every judge relies on: answer extraction and normalisation
(the SpeciaRL paper, arXiv 2603.03197, Sec. 3.2), kept here so that every judge sees exactly the same strings.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Category(StrEnum):
    """One of the six verdicts a judge may give, from best to worst."""

    MORE_SPECIFIC = "more specific"
    SPECIFIC = "specific"
    LESS_SPECIFIC = "less specific"
    GENERIC = "generic"
    ABSTAIN = "abstain"
    WRONG = "wrong"

    @property
    def rank(self) -> int:
        """SpeciaRL rank: 1 is best; more specific and specific share rank 1."""
        return _RANK[self]

    @property
    def is_correct(self) -> bool:
        """Correct answers are the four categories that name the right concept at some level."""
        return self in CORRECT_CATEGORIES

    @property
    def is_specific(self) -> bool:
        return self in SPECIFIC_CATEGORIES


class Outcome(StrEnum):
    """Results of judging that are not one of the six categories.

    PARSE_FAILURE: the completion had no usable ``<answer>``; rewarded -1, never sets a bar.
    UNRESOLVED: a deterministic judge could not place the prediction; a later judge may take it
    over, otherwise it resolves to wrong.
    JUDGE_ERROR: judging failed (e.g. the LLM judge stayed down); never silently scored.
    """

    PARSE_FAILURE = "parse failure"
    UNRESOLVED = "unresolved"
    JUDGE_ERROR = "judge error"


Judgement = Category | Outcome

_RANK = {
    Category.MORE_SPECIFIC: 1,
    Category.SPECIFIC: 1,
    Category.LESS_SPECIFIC: 2,
    Category.GENERIC: 3,
    Category.ABSTAIN: 4,
    Category.WRONG: 5,
}
CORRECT_CATEGORIES = frozenset(
    {Category.MORE_SPECIFIC, Category.SPECIFIC, Category.LESS_SPECIFIC, Category.GENERIC}
)
SPECIFIC_CATEGORIES = frozenset({Category.MORE_SPECIFIC, Category.SPECIFIC})
# Order used by best-of-N evaluation, where more specific ranks strictly above specific.
BEST_OF_N_ORDER = (
    Category.MORE_SPECIFIC,
    Category.SPECIFIC,
    Category.LESS_SPECIFIC,
    Category.GENERIC,
    Category.ABSTAIN,
    Category.WRONG,
)


def parse_judgement(text: str) -> Judgement:
    """Map a stored string (a category or outcome value) back to its enum member."""
    for enum in (Category, Outcome):
        try:
            return enum(text)
        except ValueError:
            continue
    raise ValueError(
        f"unknown judgement {text!r}: expected one of "
        f"{[c.value for c in Category] + [o.value for o in Outcome]}"
    )


_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NOT_WORDY = re.compile(r"[^\w\s-]|_", re.UNICODE)
_SPACES = re.compile(r"\s+")


def extract_answer(completion: str) -> str | None:
    """The first ``<answer>(.*?)</answer>`` match, stripped; None when missing or empty."""
    match = _ANSWER_RE.search(completion)
    if match is None:
        return None
    answer = match.group(1).strip()
    return answer or None


def normalize_label(text: str) -> str:
    """Non letter/digit/dash/space -> space, lowercase, collapse whitespace, strip."""
    text = _NOT_WORDY.sub(" ", text)
    return _SPACES.sub(" ", text.lower()).strip()
