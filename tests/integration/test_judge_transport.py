"""The HTTP judge's transport on a real loopback server: kept-alive connections, no thread per attempt.

Issue 25, item 3: an attempt starts no watchdog thread (the deadline lives in the socket
timeouts), connections are reused between requests, and a kept-alive connection the server has
closed meanwhile is replaced silently (no failure counted, no retry spent).
"""

from __future__ import annotations

import threading
import time

from chat_server import ChatCompletionsServer
from speciarl.core.categories import Category
from speciarl.verifier.llm_http import LLMHttpJudge


def judge_at(url: str, **kwargs) -> LLMHttpJudge:
    options = {"guided": "none", "timeout_s": 5.0, "max_retries": 1, "backoff_s": 0.01, "max_concurrency": 1}
    return LLMHttpJudge(url, "scripted", **{**options, **kwargs})


def test_one_kept_alive_connection_serves_every_request_of_a_thread():
    with ChatCompletionsServer(lambda request: "specific", keep_alive=True) as server:
        judge = judge_at(server.url)
        first = judge.judge([f"truth {i}" for i in range(10)], [f"guess {i}" for i in range(10)])
        second = judge.judge(["truth 10"], ["guess 10"])
    assert first == [Category.SPECIFIC] * 10 and second == [Category.SPECIFIC]
    assert server.received == 11
    assert len(set(server.peers)) == 1  # one TCP connection for 11 requests over two calls


def test_a_server_that_closes_each_connection_gets_a_new_one_each_time():
    with ChatCompletionsServer(lambda request: "specific") as server:  # HTTP/1.0: closes after each reply
        judge = judge_at(server.url)
        assert judge.judge(["a", "b", "c"], ["x", "y", "z"]) == [Category.SPECIFIC] * 3
    assert len(set(server.peers)) == 3 and judge.last_stats["connection_errors"] == 0


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_without_a_failure():
    with ChatCompletionsServer(lambda request: "generic", keep_alive=True, idle_close_s=0.2) as server:
        judge = judge_at(server.url, max_retries=0)
        assert judge.judge(["a"], ["x"]) == [Category.GENERIC]
        time.sleep(0.6)  # the server drops the idle connection
        assert judge.judge(["b"], ["y"]) == [Category.GENERIC]
    stats = judge.last_stats
    assert stats["judge_errors"] == 0 and stats["retries"] == 0 and stats["connection_errors"] == 0
    assert len(set(server.peers)) == 2


def test_an_attempt_starts_no_thread():
    seen: list[list[str]] = []

    def respond(request):
        # Runs in the server's thread of this same process, while the client waits on its reply.
        seen.append(sorted(type(t).__name__ for t in threading.enumerate()))
        return "specific"

    with ChatCompletionsServer(respond) as server:
        judge = judge_at(server.url)
        # The client's own call, in this thread (no worker pool): only the server's threads exist.
        answer = judge.client.ask([{"role": "user", "content": "x"}], 8, lambda text: text)
    assert answer == "specific"
    # The watchdog this replaces was a threading.Timer started per attempt.
    assert len(seen) == 1 and "Timer" not in seen[0]
