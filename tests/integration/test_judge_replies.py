"""Judge replies no parser should trust (issue 22, item 7), against real loopback servers.

A reply is bounded by ``max_reply_bytes`` (a huge body, or a chunked one that never ends, costs
at most that much memory), and a reply that does not parse, whatever the exception (400 KB of
nested brackets raises ``RecursionError``), is a counted judge error: never an exception out of
``judge``, never a category. ``python -m speciarl.verify`` writes every line whatever the judge does.
"""

from __future__ import annotations

import json
import sqlite3
import time
import tracemalloc

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from chat_server import ChatCompletionsServer, Reply, pairs_in_request
from faulty_server import REPLY_FAULTS, FaultPlan, FaultyJudgeServer
from speciarl.core.categories import Category, Outcome
from speciarl.verifier.llm_http import LLMHttpJudge

NESTED = "[" * 400_000


def specific(truth: str, prediction: str) -> str:
    return Category.SPECIFIC.value


def judge_at(url: str, **kwargs) -> LLMHttpJudge:
    options = {"guided": "none", "timeout_s": 5.0, "max_retries": 1, "backoff_s": 0.01, "breaker_failures": 0}
    return LLMHttpJudge(url, "faulty", **{**options, **kwargs})


EXPECTED_COUNTER = {
    "endless_chunked": "oversized_replies",
    "huge_body": "oversized_replies",
    "nested_brackets": "protocol_errors",
}


@pytest.mark.parametrize("fault", REPLY_FAULTS)
def test_an_unreadable_reply_is_a_counted_judge_error(fault):
    plan = FaultPlan(seed=0, permanent_share=1.0, transient_share=0.0, faults=(fault,))
    with FaultyJudgeServer(specific, plan) as server:
        judge = judge_at(server.url)
        tracemalloc.start()
        verdicts = judge.judge(["crimson circle"], ["red disc"])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert verdicts == [Outcome.JUDGE_ERROR]
    stats = judge.last_stats
    assert stats["judge_errors"] == 1 and stats["requests"] == 2
    assert stats[EXPECTED_COUNTER[fault]] == 2
    # The 1 MiB bound holds for the body read; a few MiB covers the joins and the parser.
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("fault", REPLY_FAULTS)
def test_an_unreadable_reply_that_a_retry_gets_past_gives_the_verdict(fault):
    plan = FaultPlan(seed=0, permanent_share=0.0, transient_share=1.0, faults=(fault,))
    with FaultyJudgeServer(specific, plan) as server:
        judge = judge_at(server.url)
        verdicts = judge.judge(["crimson circle"], ["red disc"])
    assert verdicts == [Category.SPECIFIC]
    assert judge.last_stats[EXPECTED_COUNTER[fault]] == 1 and judge.last_stats["retries"] == 1


def test_the_bound_is_the_setting_and_a_reply_under_it_is_read():
    # A valid completion padded with spaces to ~300 KB: under 1 MiB it is read, over 100 KB it is not.
    def padded(request):
        body = {"choices": [{"message": {"role": "assistant", "content": "specific"}}]}
        return Reply(raw_body=json.dumps(body).encode() + b" " * 300_000)

    with ChatCompletionsServer(padded) as server:
        roomy = judge_at(server.url)
        assert roomy.judge(["a"], ["b"]) == [Category.SPECIFIC]
        tight = judge_at(server.url, max_reply_bytes=100_000, max_retries=0)
        assert tight.judge(["a"], ["b"]) == [Outcome.JUDGE_ERROR]
    assert tight.last_stats["oversized_replies"] == 1 and roomy.last_stats["oversized_replies"] == 0


def test_nested_brackets_as_a_batched_answer_send_the_pairs_back_singly():
    # The assistant text of a batch is 400 KB of "[": reading it raised RecursionError before.
    def respond(request):
        pairs = pairs_in_request(request)
        return NESTED if len(pairs) > 1 else Category.LESS_SPECIFIC.value

    with ChatCompletionsServer(respond) as server:
        judge = judge_at(server.url, batch_size=3, max_retries=0)
        verdicts = judge.judge(["a", "b", "c"], ["x", "y", "z"])
    assert verdicts == [Category.LESS_SPECIFIC] * 3
    assert judge.last_stats["batch_answers_rejected"] == 1
    assert judge.last_stats["malformed_answers"] == 1
    assert judge.last_stats["batch_pairs_retried_singly"] == 3


def test_nested_brackets_as_a_single_answer_are_malformed():
    with ChatCompletionsServer(lambda request: NESTED) as server:
        judge = judge_at(server.url, max_retries=1)
        verdicts = judge.judge(["a"], ["b"])
    assert verdicts == [Outcome.JUDGE_ERROR]
    assert judge.last_stats["malformed_answers"] == 2


def _verify(tmp_path, overrides, lines):
    from speciarl.verify import CONF_DIR, verify

    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="verify", overrides=[f"input={source}", *overrides])
    status = verify(cfg)
    written = (tmp_path / "pairs.verdicts.jsonl").read_text().splitlines()
    return status, [json.loads(line) for line in written]


def test_verify_writes_every_line_through_nested_and_endless_replies(tmp_path):
    # One server for two pairs: the reply to one pair is nested brackets, to the other endless.
    lines = [
        {"ground_truth": "crimson circle", "prediction": "red disc"},
        {"ground_truth": "crimson circle", "prediction": "circle"},
        {"ground_truth": "crimson circle", "prediction": "crimson circle"},
    ]
    plan = FaultPlan(seed=0, permanent_share=1.0, transient_share=0.0, faults=REPLY_FAULTS)
    with FaultyJudgeServer(specific, plan) as server:
        started = time.monotonic()
        status, rows = _verify(
            tmp_path,
            ["verifier=llm_http", f"verifier.llm.base_url={server.url}", "verifier.llm.guided=none"]
            + ["verifier.llm.max_retries=0", "verifier.llm.timeout_s=5"],
            lines,
        )
        seconds = time.monotonic() - started
    assert [r["prediction"] for r in rows] == ["red disc", "circle", "crimson circle"]
    assert [r["verdict"] for r in rows] == ["judge error"] * 3
    assert status == 1 and seconds < 30


def test_verify_writes_every_line_when_the_judge_itself_raises(tmp_path):
    # A verdict cache holding a value that is not a category: the tiered judge raises CacheError
    # while judging. The lines are still all written, as judge errors naming the failure.
    cache = tmp_path / "verdicts.sqlite"
    lines = [
        {"ground_truth": "crimson circle", "prediction": "scarlet ring"},
        {"ground_truth": "crimson circle", "prediction": "crimson circle"},
        {"line": "not a pair"},
    ]
    overrides = [
        "verifier=tiered",
        f"verifier.cache.url={cache}",
        "verifier.llm.base_url=http://127.0.0.1:9/v1",
    ]
    # First open creates the schema; then a foreign program damages one verdict.
    from speciarl.verifier.cache import SqliteVerdictCache

    SqliteVerdictCache(cache).close()
    with sqlite3.connect(cache) as conn:
        conn.execute(
            "INSERT INTO verdicts VALUES (?, ?, ?, ?, 0)",
            (_judge_identity(overrides), "crimson circle", "scarlet ring", "banana"),
        )
    status, rows = _verify(tmp_path, overrides, lines)
    assert len(rows) == 3
    assert rows[0]["verdict"] == "judge error" and "CacheError" in rows[0]["judge_failure"]
    assert rows[2]["verdict"] is None and "error" in rows[2]
    assert status == 1


def _judge_identity(overrides):
    from hydra.utils import instantiate

    from speciarl.verify import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="verify", overrides=["input=x", *overrides])
    return instantiate(cfg.verifier.llm).identity
