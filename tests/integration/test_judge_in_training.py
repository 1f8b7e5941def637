"""The judge inside real training steps: per-step judge counters, dropped groups, and the stop rule.

These use the warm-started tiny model (its answers are taxonomy words, not the random text of a
fresh model, so they reach the judge); it is cached after its first build, hence ``slow``.
"""

from __future__ import annotations

import csv
import json
import math

import pytest

from chat_server import ChatCompletionsServer, Reply, judging_responder, pairs_in_request
from speciarl.data.synthetic import shapes_taxonomy
from speciarl.train import train
from speciarl.verifier.failure_guard import JudgeFailureRateExceeded
from speciarl.verifier.taxonomy_judge import TaxonomyJudge

ORACLE = TaxonomyJudge(shapes_taxonomy())
STEPS = [
    "experiment=dapo_speciarl",
    "logger=csv",
    "data.batch_size=4",
    "algorithm.group_size=4",
    "eval.before=false",
    "eval.after=false",
    "eval.best_of_n=0",
    "module.log_completions_every=1",
    "module.completions_per_table=16",
    "verifier=tiered",
    "verifier.deterministic=null",  # exact match only: almost every answer goes to the LLM
    "verifier.llm.timeout_s=1.0",
    "verifier.llm.backoff_s=0.01",
    "verifier.llm.max_retries=1",
]


def metrics(tmp_path):
    (path,) = list(tmp_path.glob("csv/version_*/metrics.csv"))
    return [r for r in csv.DictReader(path.open()) if r.get("train/judge_verdicts")]


@pytest.mark.slow
def test_failed_groups_are_dropped_and_counted_per_step(make_config, tmp_path):
    # The judge LLM fails (HTTP 500) on every pair whose ground truth is amber or azure.
    def respond(request):
        (truth, prediction) = pairs_in_request(request)[0]
        if truth.split()[0] in ("amber", "azure"):
            return Reply(status=500)
        return judging_responder(lambda pairs: ORACLE.judge([truth], [prediction]))(request)

    with ChatCompletionsServer(respond) as server:
        cfg = make_config(
            *STEPS,
            f"verifier.llm.base_url={server.url}",
            f"verifier.cache.url={tmp_path / 'verdicts.sqlite'}",
            "trainer.max_steps=2",
            "module.judge_max_failure_rate=1.0",  # never stop: this test is about dropping
        )
        results = train(cfg)
    rows = metrics(tmp_path)
    assert len(rows) == 2
    completions = [
        json.loads(line) for line in (tmp_path / "completions_train.jsonl").read_text().splitlines()
    ]
    dropped_total = 0
    for row in rows:
        step = int(row["step"])
        mine = [c for c in completions if c["step"] == step]
        groups: dict[str, list[dict]] = {}
        for c in mine:
            groups.setdefault(c["sample_id"], []).append(c)
        failed = [g for g in groups.values() if any(c["category"] == "judge error" for c in g)]
        # a group is dropped exactly when one of its rollouts has a judge error
        assert float(row["train/dropped_groups"]) == len(failed)
        errors = sum(c["category"] == "judge error" for c in mine)
        assert float(row["train/judge_errors"]) == errors
        assert float(row["train/judge_llm_error"]) == errors
        for g in failed:
            assert all(c["ground_truth"].split()[0] in ("amber", "azure") for c in g)
        for g in groups.values():
            if g not in failed:
                assert all(math.isfinite(c["reward"]) for c in g)
        dropped_total += len(failed)
        tiers = (
            "judge_parse_failure",
            "judge_exact",
            "judge_taxonomy",
            "judge_cache",
            "judge_llm",
            "judge_llm_error",
        )
        assert sum(float(row[f"train/{t}"]) for t in tiers) == float(row["train/judge_verdicts"]) == 16
    assert results["totals"]["dropped_groups"] == dropped_total
    assert 0 < dropped_total < 8, "the seeded batches should hold both failing and judged groups"


@pytest.mark.slow
def test_a_judge_that_stays_down_stops_the_run(make_config, tmp_path):
    with ChatCompletionsServer(lambda r: Reply(status=503)) as server:
        cfg = make_config(
            *STEPS,
            f"verifier.llm.base_url={server.url}",
            "verifier.cache=null",
            "trainer.max_steps=50",
            "module.judge_failure_min_verdicts=8",
        )
        with pytest.raises(JudgeFailureRateExceeded, match=r"the judge failed on \d+ of \d+ verdicts"):
            train(cfg)
        sent = len(server.completions)
    assert sent > 0
    rows = metrics(tmp_path)
    # it stopped at the first step, after logging that step's counters
    assert [int(r["step"]) for r in rows] == [0]
    assert float(rows[0]["train/judge_llm_error"]) > 0
    assert float(rows[0]["train/judge_llm_http_5xx"]) > 0
