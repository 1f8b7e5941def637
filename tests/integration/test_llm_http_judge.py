"""The HTTP judge against a real OpenAI-compatible server on loopback, with scripted answers.

Every scenario checks that nothing is lost (one judgement per input, in order) and that every
failure is counted. Timeouts and backoff are short so nothing here waits more than a few seconds.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import socket
import threading
import time
from collections import Counter

import pytest

from chat_server import ChatCompletionsServer, Reply, judging_responder, pairs_in_request
from speciarl.core.categories import Category, Outcome
from speciarl.data.synthetic import shapes_taxonomy
from speciarl.verifier.judge_prompt import BATCH_SYSTEM_PROMPT, LABELS, SYSTEM_PROMPT, batch_answer_regex
from speciarl.verifier.llm_http import LLMHttpJudge
from speciarl.verifier.taxonomy_judge import TaxonomyJudge

ORACLE = TaxonomyJudge(shapes_taxonomy())


def oracle(pairs):
    return ORACLE.judge([g for g, _ in pairs], [p for _, p in pairs])


# One pair per category (the oracle behind the server is the taxonomy judge).
PAIRS = [
    ("crimson circle", "red disc"),  # specific (synonym)
    ("crimson circle", "circle"),  # less specific
    ("crimson circle", "round"),  # generic
    ("circle", "azure circle"),  # more specific
    ("crimson circle", "none"),  # abstain
    ("crimson circle", "amber star"),  # wrong
]
EXPECTED = [
    Category.SPECIFIC,
    Category.LESS_SPECIFIC,
    Category.GENERIC,
    Category.MORE_SPECIFIC,
    Category.ABSTAIN,
    Category.WRONG,
]


def fast_judge(url: str, **kwargs) -> LLMHttpJudge:
    settings = {"timeout_s": 1.0, "max_retries": 2, "backoff_s": 0.01, "backoff_max_s": 0.05}
    settings.update(kwargs)
    return LLMHttpJudge(url, "judge-under-test", **settings)


def judge_pairs(judge, pairs):
    return judge.judge([g for g, _ in pairs], [p for _, p in pairs])


class ByAttempt:
    """Answers the n-th attempt at a pair with ``script[n]``; later attempts get the oracle's verdict."""

    def __init__(self, script):
        self.script = script
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, request):
        pairs = tuple(pairs_in_request(request))
        with self.lock:
            n = self.attempts[pairs]
            self.attempts[pairs] += 1
        if n < len(self.script):
            return self.script[n]
        return judging_responder(oracle)(request)


def dead_url() -> str:
    """A loopback URL where nothing listens (a port that was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def assert_nothing_lost(verdicts, n):
    assert len(verdicts) == n
    assert all(
        isinstance(v, Category) or v is Outcome.JUDGE_ERROR or v is Outcome.PARSE_FAILURE for v in verdicts
    )


class TestNormalVerdicts:
    def test_one_request_per_distinct_pair_at_temperature_zero(self):
        with ChatCompletionsServer(judging_responder(oracle)) as server:
            judge = fast_judge(server.url)
            # every pair twice, and a missing prediction: 13 inputs, 6 distinct pairs
            truths = [g for g, _ in PAIRS] * 2 + ["crimson circle"]
            predictions = [p for _, p in PAIRS] * 2 + [None]
            verdicts = judge.judge(truths, predictions)
            requests = server.completions
        assert verdicts == EXPECTED * 2 + [Outcome.PARSE_FAILURE]
        assert len(requests) == 6
        for request in requests:
            assert request.path == "/v1/chat/completions"
            assert request.body["temperature"] == 0.0
            assert request.body["model"] == "judge-under-test"
            assert request.system_message == SYSTEM_PROMPT
        assert judge.last_stats["requests"] == 6
        assert judge.last_stats["unique_pairs"] == 6
        assert judge.last_stats["verdicts"] == 13
        assert judge.last_stats["judge_errors"] == 0

    def test_batched_mode_answers_in_one_request(self):
        with ChatCompletionsServer(judging_responder(oracle)) as server:
            judge = fast_judge(server.url, batch_size=8)
            verdicts = judge_pairs(judge, PAIRS)
            (request,) = server.completions
        assert verdicts == EXPECTED
        assert request.system_message == BATCH_SYSTEM_PROMPT
        assert [row["id"] for row in json.loads(request.user_message)["pairs"]] == list(range(6))
        assert judge.last_stats["batch_requests"] == 1
        assert judge.identity != fast_judge(server.url).identity  # another prompt, another cache key space


class TestGuidedChoice:
    def test_structured_outputs_constrain_to_the_six_labels(self):
        with ChatCompletionsServer(judging_responder(oracle)) as server:
            judge_pairs(fast_judge(server.url, guided="structured_outputs"), PAIRS[:1])
            judge_pairs(fast_judge(server.url, guided="guided_choice"), PAIRS[:1])
            judge_pairs(fast_judge(server.url, guided="none"), PAIRS[:1])
            new, old, plain = (r.body for r in server.completions)
        assert new["structured_outputs"] == {"choice": list(LABELS)}
        assert "guided_choice" not in new
        assert old["guided_choice"] == list(LABELS)
        assert "structured_outputs" not in old
        assert "structured_outputs" not in plain and "guided_choice" not in plain

    def test_batched_guidance_is_a_regex_of_exactly_n_compact_items(self):
        with ChatCompletionsServer(judging_responder(oracle)) as server:
            judge_pairs(fast_judge(server.url, batch_size=6), PAIRS)
            judge_pairs(fast_judge(server.url, batch_size=6, guided="guided_choice"), PAIRS)
            new, old = (r.body for r in server.completions)
        # a regex, not a JSON schema: vLLM 0.32 ignores a request's disable_any_whitespace
        assert new["structured_outputs"] == {"regex": batch_answer_regex(6)}
        assert old["guided_regex"] == batch_answer_regex(6)
        # the longest compact answer in characters (6 x 35 + 5 commas + 2 brackets) + 16
        assert new["max_tokens"] == old["max_tokens"] == 217 + 16
        compact = json.dumps(
            [{"id": i, "category": c.value} for i, c in enumerate(EXPECTED)], separators=(",", ":")
        )
        assert re.fullmatch(new["structured_outputs"]["regex"], compact)

    def test_a_server_without_guidance_gets_plain_requests(self, caplog):
        def respond(request):
            if "structured_outputs" in request.body:
                return Reply(status=400)
            return judging_responder(oracle)(request)

        with ChatCompletionsServer(respond) as server:
            judge = fast_judge(server.url, max_concurrency=1)
            with caplog.at_level(logging.WARNING):
                verdicts = judge_pairs(judge, PAIRS)
            bodies = [r.body for r in server.completions]
        assert verdicts == EXPECTED
        # the first pair: guided (400), then plain; every later request plain
        assert "structured_outputs" in bodies[0]
        assert all("structured_outputs" not in b for b in bodies[1:])
        assert len(bodies) == 7
        assert judge.last_stats["guidance_disabled"] == 1
        assert judge.last_stats["http_4xx"] == 0  # the 400 was the probe, not a failure
        assert "rejected guided decoding" in caplog.text


class TestFailures:
    def test_a_500_is_retried(self):
        with ChatCompletionsServer(ByAttempt([Reply(status=500), Reply(status=503)])) as server:
            judge = fast_judge(server.url, max_retries=3)
            verdicts = judge_pairs(judge, PAIRS)
        assert verdicts == EXPECTED
        # each of 6 pairs: 500, 503, then the verdict -> 18 requests, 12 retries
        assert judge.last_stats["http_5xx"] == 12
        assert judge.last_stats["retries"] == 12
        assert judge.last_stats["requests"] == 18
        assert judge.last_stats["judge_errors"] == 0

    def test_a_500_that_persists_is_a_counted_error(self, caplog):
        with ChatCompletionsServer(lambda r: Reply(status=500)) as server:
            judge = fast_judge(server.url, max_retries=2, breaker_failures=0)
            with caplog.at_level(logging.WARNING):
                verdicts = judge_pairs(judge, PAIRS)
            sent = len(server.completions)
        assert_nothing_lost(verdicts, 6)
        assert verdicts == [Outcome.JUDGE_ERROR] * 6
        # 1 attempt + 2 retries for each of 6 pairs
        assert sent == 18
        assert judge.last_stats["http_5xx"] == 18
        assert judge.last_stats["failed_pairs"] == 6
        assert judge.last_stats["judge_errors"] == 6
        assert "6 of 6 verdicts failed" in caplog.text

    def test_a_client_error_is_not_retried(self):
        with ChatCompletionsServer(lambda r: Reply(status=401)) as server:
            judge = fast_judge(server.url, max_retries=3, breaker_failures=0)
            verdicts = judge_pairs(judge, PAIRS[:2])
            sent = len(server.completions)
        assert verdicts == [Outcome.JUDGE_ERROR] * 2
        assert sent == 2
        assert judge.last_stats["http_4xx"] == 2

    def test_a_stalled_answer_times_out_and_is_retried(self):
        with ChatCompletionsServer(ByAttempt([Reply(content="specific", delay_s=5.0)])) as server:
            judge = fast_judge(server.url, timeout_s=0.3, max_retries=2)
            started = time.monotonic()
            verdicts = judge_pairs(judge, PAIRS)
            elapsed = time.monotonic() - started
        assert verdicts == EXPECTED
        assert judge.last_stats["timeouts"] == 6
        # six stalls run concurrently: about one timeout (0.3 s), below the 5 s stall even when loaded
        assert elapsed < 4.5

    def test_a_server_that_never_answers_does_not_hang(self):
        with ChatCompletionsServer(lambda r: Reply(content="specific", delay_s=30.0)) as server:
            judge = fast_judge(server.url, timeout_s=0.2, max_retries=1, breaker_failures=0)
            started = time.monotonic()
            verdicts = judge_pairs(judge, PAIRS)
            elapsed = time.monotonic() - started
        assert verdicts == [Outcome.JUDGE_ERROR] * 6
        assert judge.last_stats["timeouts"] == 12
        # concurrent pairs: 2 attempts x 0.2 s + backoff, with slack for a loaded 2-core machine
        assert elapsed < 4.0

    def test_a_malformed_answer_is_retried(self):
        script = [Reply(content="Specific!"), Reply(content="I would say generic")]
        with ChatCompletionsServer(ByAttempt(script)) as server:
            judge = fast_judge(server.url, max_retries=2)
            verdicts = judge_pairs(judge, PAIRS)
        assert verdicts == EXPECTED
        assert judge.last_stats["malformed_answers"] == 12
        assert judge.last_stats["judge_errors"] == 0

    def test_an_answer_that_stays_malformed_is_an_error_not_a_guess(self):
        # "specific" appears in the answer, but the answer is not exactly a label
        with ChatCompletionsServer(lambda r: "the prediction is specific") as server:
            judge = fast_judge(server.url, max_retries=1, breaker_failures=0)
            verdicts = judge_pairs(judge, PAIRS[:3])
        assert verdicts == [Outcome.JUDGE_ERROR] * 3
        assert judge.last_stats["malformed_answers"] == 6
        assert judge.last_stats["failed_pairs"] == 3

    def test_a_reply_that_is_not_the_protocol_is_counted(self):
        with ChatCompletionsServer(ByAttempt([Reply(raw_body=b"<html>gateway</html>")])) as server:
            judge = fast_judge(server.url)
            verdicts = judge_pairs(judge, PAIRS[:2])
        assert verdicts == EXPECTED[:2]
        assert judge.last_stats["protocol_errors"] == 2

    def test_a_server_down_throughout(self, caplog):
        judge = fast_judge(dead_url(), max_retries=2, breaker_failures=4, max_concurrency=2)
        truths = ["crimson circle"] * 40 + ["crimson circle"]
        predictions = [f"thing number {i}" for i in range(40)] + [None]
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            verdicts = judge.judge(truths, predictions)
        elapsed = time.monotonic() - started
        assert_nothing_lost(verdicts, 41)
        assert verdicts == [Outcome.JUDGE_ERROR] * 40 + [Outcome.PARSE_FAILURE]
        stats = judge.last_stats
        assert stats["judge_errors"] == 40
        # every distinct pair is accounted for: tried and failed, or skipped once the breaker opened
        assert stats["failed_pairs"] + stats["breaker_skipped_pairs"] == 40
        assert stats["breaker_skipped_pairs"] > 0
        assert stats["connection_errors"] == stats["requests"] > 0
        assert elapsed < 5.0  # about 0.1 s unloaded: connection refused, 10 ms backoff
        assert "40 of 41 verdicts failed" in caplog.text
        # the next call tries the server again (the breaker is per call)
        assert judge.judge(["a"], ["b"]) == [Outcome.JUDGE_ERROR]
        assert judge.last_stats["requests"] == 3
        assert judge.totals["judge_errors"] == 41


class TestBatchedAnswers:
    def test_a_missing_item_is_judged_again_alone(self, caplog):
        def respond(request):
            rows = json.loads(request.user_message)
            if "pairs" not in rows:
                return judging_responder(oracle)(request)
            pairs = pairs_in_request(request)
            items = [{"id": i, "category": v.value} for i, v in enumerate(oracle(pairs)) if i != 2]
            return json.dumps(items)

        with ChatCompletionsServer(respond) as server:
            judge = fast_judge(server.url, batch_size=6)
            with caplog.at_level(logging.WARNING):
                verdicts = judge_pairs(judge, PAIRS)
            requests = server.completions
        assert verdicts == EXPECTED
        assert len(requests) == 2
        # the single request carries exactly the missing pair
        assert json.loads(requests[1].user_message) == {
            "ground_truth": PAIRS[2][0],
            "prediction": PAIRS[2][1],
        }
        assert judge.last_stats["batch_answers_incomplete"] == 1
        assert judge.last_stats["batch_pairs_retried_singly"] == 1
        assert "1 missing and 0 invalid items of 6" in caplog.text

    def test_an_out_of_order_answer_is_not_trusted(self):
        def respond(request):
            if "pairs" not in json.loads(request.user_message):
                return judging_responder(oracle)(request)
            verdicts = oracle(pairs_in_request(request))
            items = [{"id": i, "category": v.value} for i, v in enumerate(verdicts)]
            return json.dumps(items[::-1])

        with ChatCompletionsServer(respond) as server:
            judge = fast_judge(server.url, batch_size=6, max_retries=1)
            verdicts = judge_pairs(judge, PAIRS)
            requests = server.completions
        assert verdicts == EXPECTED
        # the batch twice (first try and one retry), then all six pairs one by one
        assert len(requests) == 2 + 6
        assert judge.last_stats["batch_answers_rejected"] == 1
        assert judge.last_stats["malformed_answers"] == 2
        assert judge.last_stats["batch_pairs_retried_singly"] == 6

    def test_a_batch_the_server_fails_on_falls_back_and_counts(self):
        def respond(request):
            if "pairs" in json.loads(request.user_message):
                return Reply(status=500)
            return judging_responder(oracle)(request)

        with ChatCompletionsServer(respond) as server:
            judge = fast_judge(server.url, batch_size=3, max_retries=1)
            verdicts = judge_pairs(judge, PAIRS)
        assert verdicts == EXPECTED
        # two batches of 3, each tried twice -> 4 server errors; then 6 single requests
        assert judge.last_stats["http_5xx"] == 4
        assert judge.last_stats["batch_pairs_retried_singly"] == 6
        assert judge.last_stats["requests"] == 10


class TestSecretsAndConcurrency:
    SECRET = "sk-test-7f3a9c0e1d2b"

    def test_api_key_is_sent_and_never_shown(self, monkeypatch, caplog):
        monkeypatch.setenv("SPECIARL_TEST_JUDGE_KEY", self.SECRET)
        with ChatCompletionsServer(ByAttempt([Reply(status=500)])) as server:
            judge = fast_judge(server.url, api_key_env="SPECIARL_TEST_JUDGE_KEY", max_retries=0)
            with caplog.at_level(logging.DEBUG):
                verdicts = judge_pairs(judge, PAIRS[:2])
            headers = [r.headers for r in server.completions]
        assert verdicts == [Outcome.JUDGE_ERROR] * 2
        assert all(h["authorization"] == f"Bearer {self.SECRET}" for h in headers)
        shown = (
            repr(judge)
            + str(judge.last_stats)
            + str(dict(judge.totals))
            + caplog.text
            + str(vars(judge).keys())
        )
        assert self.SECRET not in shown
        assert "api_key=set" in repr(judge)

    def test_a_pickled_judge_carries_no_key(self, monkeypatch):
        monkeypatch.setenv("SPECIARL_TEST_JUDGE_KEY", self.SECRET)
        with ChatCompletionsServer(judging_responder(oracle)) as server:
            judge = fast_judge(server.url, api_key_env="SPECIARL_TEST_JUDGE_KEY")
            data = pickle.dumps(judge)
            copy = pickle.loads(data)
            assert judge_pairs(copy, PAIRS[:1]) == EXPECTED[:1]
            (request,) = server.completions
        assert self.SECRET.encode() not in data
        assert request.headers["authorization"] == f"Bearer {self.SECRET}"

    def test_a_missing_key_variable_is_a_clear_error(self, monkeypatch):
        monkeypatch.delenv("SPECIARL_TEST_JUDGE_KEY", raising=False)
        with pytest.raises(ValueError, match="'SPECIARL_TEST_JUDGE_KEY' .* is not set"):
            LLMHttpJudge("http://127.0.0.1:1/v1", "m", api_key_env="SPECIARL_TEST_JUDGE_KEY")

    def test_credentials_in_the_url_are_redacted(self):
        judge = LLMHttpJudge("http://user:hunter2@127.0.0.1:1/v1", "m")
        assert "hunter2" not in repr(judge)

    def test_requests_in_flight_are_bounded(self):
        lock = threading.Lock()
        in_flight = [0]
        peak = [0]

        def respond(request):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.05)
            with lock:
                in_flight[0] -= 1
            return judging_responder(oracle)(request)

        pairs = [("crimson circle", f"guess {i}") for i in range(12)]
        with ChatCompletionsServer(respond) as server:
            verdicts = judge_pairs(fast_judge(server.url, max_concurrency=3), pairs)
        assert verdicts == [Category.WRONG] * 12  # the taxonomy does not know "guess i": wrong
        assert 2 <= peak[0] <= 3


def test_a_broken_responder_is_a_500_and_is_recorded():
    def respond(request):
        raise KeyError("script bug")

    with ChatCompletionsServer(respond) as server:
        verdicts = judge_pairs(fast_judge(server.url, max_retries=0), PAIRS[:1])
        errors = list(server.responder_errors)
    assert verdicts == [Outcome.JUDGE_ERROR]
    assert errors == ["KeyError: 'script bug'"]
