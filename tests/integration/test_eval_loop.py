"""The one evaluation loop: outcome mapping, best-of-N choice, greedy judging on the tiny model."""

from __future__ import annotations

import torch

from speciarl.core.categories import Category, Outcome, extract_answer
from speciarl.data.synthetic import SyntheticShapes, shapes_taxonomy
from speciarl.evaluation.loop import (
    best_judgement,
    evaluate_policy,
    judge_completions,
    judge_greedy,
    resolve,
)
from speciarl.rollout.hf import HFRollout
from speciarl.verifier.taxonomy_judge import TaxonomyJudge

C, Out = Category, Outcome


def test_resolve_maps_only_unresolved_to_wrong():
    judged = [C.SPECIFIC, Out.UNRESOLVED, Out.PARSE_FAILURE, Out.JUDGE_ERROR, C.ABSTAIN]
    assert resolve(judged) == [C.SPECIFIC, C.WRONG, Out.PARSE_FAILURE, Out.JUDGE_ERROR, C.ABSTAIN]


def test_judge_completions_counts_an_unplaced_answer_wrong():
    # A taxonomy judge that leaves unknown answers for a later judge (as in the tiered judge).
    judge = TaxonomyJudge(shapes_taxonomy(), unresolved_as_wrong=False)
    labels = ["crimson circle"] * 3
    texts = ["<answer>crimson circle</answer>", "<answer>teapot</answer>", "no answer tag"]
    assert judge.judge(labels, [extract_answer(t) for t in texts])[1] is Out.UNRESOLVED
    answers, verdicts = judge_completions(judge, labels, texts)
    assert answers == ["crimson circle", "teapot", None]
    assert verdicts == [C.SPECIFIC, C.WRONG, Out.PARSE_FAILURE]


def test_best_judgement_ranks_more_specific_first_and_failures_last():
    assert best_judgement([C.WRONG, Out.PARSE_FAILURE, C.LESS_SPECIFIC, C.SPECIFIC, C.MORE_SPECIFIC]) == 4
    assert best_judgement([Out.PARSE_FAILURE, C.WRONG]) == 1
    assert best_judgement([Out.JUDGE_ERROR, Out.PARSE_FAILURE]) == 1
    assert best_judgement([C.GENERIC, C.GENERIC]) == 0  # ties: the first


def test_greedy_and_best_of_n_on_the_tiny_model(tiny_policy_fresh):
    samples = [SyntheticShapes(size=3, seed=7)[i] for i in range(3)]
    judge = TaxonomyJudge(shapes_taxonomy())
    rollout = HFRollout(max_new_tokens=8)
    out, answers, verdicts = judge_greedy(tiny_policy_fresh, rollout, judge, samples)
    assert len(out.texts) == len(answers) == len(verdicts) == 3
    assert answers == [extract_answer(t) for t in out.texts]
    again = rollout.generate(tiny_policy_fresh, samples, group_size=1, greedy=True)
    assert again.texts == out.texts  # greedy: the same completions every time

    torch.manual_seed(0)
    records = evaluate_policy(tiny_policy_fresh, samples, judge, rollout, best_of=2, batch_size=2)
    assert [r.sample_id for r in records] == [s.sample_id for s in samples]
    for record in records:
        assert len(record.group) == 2
        assert record.judgement is record.group[best_judgement(record.group)]
