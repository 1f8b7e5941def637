"""The one evaluation loop: generate (greedy or best-of-N), extract answers, judge, keep records.

Every evaluation path goes through here: ``python -m speciarl.evaluate`` (resumable, one batch
at a time), the best-of-N figures of ``python -m speciarl.train`` and of the reproduction, and the
module's greedy validation (``judge_greedy``). The outcome mapping of evaluation, an
``UNRESOLVED`` verdict counted as wrong, is made in ``resolve`` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from speciarl.core.categories import BEST_OF_N_ORDER, Category, Judgement, Outcome, extract_answer
from speciarl.evaluation.metrics import summary

if TYPE_CHECKING:  # annotations only: ``resolve`` is imported by the light verify CLI
    from speciarl.core.interfaces import Judge
    from speciarl.core.rollouts import Rollout
    from speciarl.core.samples import Sample
    from speciarl.policy.policy import Policy
    from speciarl.rollout.backend import RolloutBackend


@dataclass(frozen=True)
class Decoding:
    """How one answer per image is chosen: greedy (best_of 1) or the best of N samples."""

    best_of: int = 1
    temperature: float = 0.6
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.best_of < 1:
            raise ValueError(f"eval.best_of_n must be >= 1, got {self.best_of}")
        if self.best_of > 1 and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(
                f"best-of-N needs temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )


_BEST_ORDER = {c: i for i, c in enumerate(BEST_OF_N_ORDER)}
_BEST_ORDER[Outcome.PARSE_FAILURE] = len(BEST_OF_N_ORDER)
_BEST_ORDER[Outcome.JUDGE_ERROR] = len(BEST_OF_N_ORDER) + 1


def best_judgement(judgements: Sequence[Judgement]) -> int:
    """Index of the best answer of a group: more specific > specific > ... > wrong > parse failure."""
    return min(range(len(judgements)), key=lambda i: _BEST_ORDER[judgements[i]])


def resolve(judgements: Sequence[Judgement]) -> list[Judgement]:
    """Evaluation's outcome mapping: an unresolved verdict is wrong, every other one stays.

    A deterministic judge leaves a prediction it cannot place ``UNRESOLVED`` for a later judge;
    in evaluation no later judge comes, so it is wrong (the taxonomy judge's own
    ``unresolved_as_wrong``). Parse failures and judge errors stay: the metrics count them apart.
    """
    return [Category.WRONG if j is Outcome.UNRESOLVED else j for j in judgements]


def judge_completions(
    judge: Judge, labels: Sequence[str], texts: Sequence[str]
) -> tuple[list[str | None], list[Judgement]]:
    """(extracted answers, resolved judgements) of completions against their labels."""
    answers = [extract_answer(t) for t in texts]
    return answers, resolve(judge.judge(list(labels), answers))


def judge_greedy(
    policy: Policy, rollout_backend: RolloutBackend, judge: Judge, samples: Sequence[Sample]
) -> tuple[Rollout, list[str | None], list[Judgement]]:
    """One greedy completion per sample, its answer and its resolved judgement (validation)."""
    rollout = rollout_backend.generate(policy, samples, group_size=1, greedy=True)
    answers, judgements = judge_completions(judge, [s.label for s in samples], rollout.texts)
    return rollout, answers, judgements


@dataclass
class EvalRecord:
    """The chosen answer of one sample; ``group`` holds every judgement of its best-of-N group."""

    sample_id: str
    label: str
    prediction: str | None
    completion: str
    judgement: Judgement
    tags: dict[str, str]
    group: tuple[Judgement, ...] = ()


def evaluate_batch(
    policy: Policy,
    rollout_backend: RolloutBackend,
    judge: Judge,
    samples: Sequence[Sample],
    decoding: Decoding,
) -> list[EvalRecord]:
    """One record per sample of one batch: the greedy answer, or the best of ``decoding.best_of``."""
    n = decoding.best_of
    out = rollout_backend.generate(
        policy, samples, group_size=n, greedy=n == 1, temperature=decoding.temperature, top_p=decoding.top_p
    )
    answers, verdicts = judge_completions(judge, [s.label for s in samples for _ in range(n)], out.texts)
    records = []
    for i, sample in enumerate(samples):
        group = tuple(verdicts[i * n : (i + 1) * n])
        j = i * n + best_judgement(group)
        records.append(
            EvalRecord(
                sample.sample_id,
                sample.label,
                answers[j],
                out.texts[j],
                verdicts[j],
                dict(sample.tags),
                group,
            )
        )
    return records


def evaluate_policy(
    policy: Policy,
    samples: Sequence[Sample],
    judge: Judge,
    rollout: Any,
    best_of: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[EvalRecord]:
    """One record per sample: greedy when ``best_of`` is 1, else the best of ``best_of`` samples.

    ``progress`` is called with the number of samples done after every batch.
    """
    decoding = Decoding(best_of, temperature, top_p)
    records: list[EvalRecord] = []
    for start in range(0, len(samples), batch_size):
        records += evaluate_batch(policy, rollout, judge, list(samples[start : start + batch_size]), decoding)
        if progress is not None:
            progress(len(records))
    return records


def summarize_records(
    records: Sequence[EvalRecord], by_tag: str | None = None
) -> dict[str, dict[str, float]]:
    """C/S/HM overall, and per value of ``by_tag`` when given."""
    out = {"all": summary(r.judgement for r in records)}
    if by_tag:
        for value in sorted({r.tags.get(by_tag, "") for r in records}):
            out[value] = summary(r.judgement for r in records if r.tags.get(by_tag, "") == value)
    return out
