"""Greedy and best-of-N evaluation of a policy on labelled samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from speciarl.core.categories import BEST_OF_N_ORDER, Judgement, Outcome, extract_answer
from speciarl.core.samples import Sample
from speciarl.evaluation.metrics import summary
from speciarl.policy.policy import Policy
from speciarl.rollout.hf import HFRollout


class Judge(Protocol):
    def judge(self, ground_truths: Sequence[str], predictions: Sequence[str | None]) -> list[Judgement]: ...


_BEST_ORDER = {c: i for i, c in enumerate(BEST_OF_N_ORDER)}
_BEST_ORDER[Outcome.PARSE_FAILURE] = len(BEST_OF_N_ORDER)
_BEST_ORDER[Outcome.JUDGE_ERROR] = len(BEST_OF_N_ORDER) + 1


def best_judgement(judgements: Sequence[Judgement]) -> int:
    """Index of the best answer of a group: more specific > specific > ... > wrong > parse failure."""
    return min(range(len(judgements)), key=lambda i: _BEST_ORDER[judgements[i]])


@dataclass
class EvalRecord:
    sample_id: str
    label: str
    prediction: str | None
    completion: str
    judgement: Judgement
    tags: dict[str, str]


def evaluate_policy(
    policy: Policy,
    samples: Sequence[Sample],
    judge: Judge,
    rollout: HFRollout,
    best_of: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
) -> list[EvalRecord]:
    """One record per sample: greedy when ``best_of`` is 1, else the best of ``best_of`` samples."""
    records: list[EvalRecord] = []
    for start in range(0, len(samples), batch_size):
        chunk = list(samples[start : start + batch_size])
        out = rollout.generate(
            policy, chunk, group_size=best_of, greedy=best_of == 1, temperature=temperature, top_p=top_p
        )
        answers = [extract_answer(t) for t in out.texts]
        labels = [s.label for s in chunk for _ in range(best_of)]
        verdicts = judge.judge(labels, answers)
        for i, sample in enumerate(chunk):
            group = verdicts[i * best_of : (i + 1) * best_of]
            j = i * best_of + best_judgement(group)
            records.append(
                EvalRecord(
                    sample.sample_id, sample.label, answers[j], out.texts[j], verdicts[j], dict(sample.tags)
                )
            )
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
