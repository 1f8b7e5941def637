"""The HTTP judge against a server that breaks HTTP at the socket level (``faulty_server``).

Every fault must end as a counted judge error (when it never stops) or a retried success (when a
retry gets through), never an exception out of ``judge`` or a made-up verdict; and ``timeout_s``
bounds a whole request, however slowly the server drips its reply.
"""

from __future__ import annotations

import json
import time

import pytest

from faulty_server import FAULTS, FaultPlan, FaultyJudgeServer
from speciarl.core.categories import Category, Outcome
from speciarl.verifier.llm_http import LLMHttpJudge


def specific(truth: str, prediction: str) -> str:
    return Category.SPECIFIC.value


def judge_at(url: str, **kwargs) -> LLMHttpJudge:
    options = {"guided": "none", "timeout_s": 1.0, "max_retries": 1, "backoff_s": 0.01, "breaker_failures": 0}
    return LLMHttpJudge(url, "faulty", **{**options, **kwargs})


EXPECTED_COUNTER = {
    "http_500": "http_5xx",
    "hang": "timeouts",
    "drip": "timeouts",
    "cut_body": "protocol_errors",
    "bad_status": "protocol_errors",
    "malformed": "malformed_answers",
    "out_of_set": "malformed_answers",
    "reset": "connection_errors",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_that_never_stops_is_a_counted_judge_error(fault):
    plan = FaultPlan(seed=0, permanent_share=1.0, transient_share=0.0, faults=(fault,))
    with FaultyJudgeServer(specific, plan, hang_s=3.0, drip_s=0.2) as server:
        judge = judge_at(server.url)
        started = time.monotonic()
        verdicts = judge.judge(["crimson circle"], ["red disc"])
        seconds = time.monotonic() - started
    assert verdicts == [Outcome.JUDGE_ERROR]
    stats = judge.last_stats
    assert stats["judge_errors"] == 1 and stats["failed_pairs"] == 1
    assert stats["requests"] == 2 and stats["retries"] == 1  # first attempt + one retry
    assert stats[EXPECTED_COUNTER[fault]] == 2
    assert server.stats()[fault] == 2
    # Two attempts of at most timeout_s each (the drip would take ~40 s per reply otherwise).
    assert seconds < 2 * 1.0 + 1.0


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_that_a_retry_gets_past_gives_the_verdict(fault):
    plan = FaultPlan(seed=0, permanent_share=0.0, transient_share=1.0, faults=(fault,))
    with FaultyJudgeServer(specific, plan, hang_s=3.0, drip_s=0.2) as server:
        judge = judge_at(server.url)
        verdicts = judge.judge(["crimson circle"], ["red disc"])
    assert verdicts == [Category.SPECIFIC]
    assert judge.last_stats["retries"] == 1 and judge.last_stats[EXPECTED_COUNTER[fault]] == 1
    assert judge.last_stats["judge_errors"] == 0


def test_timeout_is_a_deadline_per_request_not_per_read():
    # Each byte comes 0.05 s after the last, well inside the 0.5 s budget of any single read;
    # the whole reply (~300 bytes) takes ~15 s. The request must end at its 0.5 s deadline.
    plan = FaultPlan(seed=0, permanent_share=1.0, transient_share=0.0, faults=("drip",))
    with FaultyJudgeServer(specific, plan, drip_s=0.05) as server:
        judge = judge_at(server.url, timeout_s=0.5, max_retries=0)
        started = time.monotonic()
        verdicts = judge.judge(["crimson circle"], ["red disc"])
        seconds = time.monotonic() - started
    assert verdicts == [Outcome.JUDGE_ERROR] and judge.last_stats["timeouts"] == 1
    assert 0.45 < seconds < 1.0


@pytest.mark.parametrize("fault", ["cut_body", "bad_status"])
def test_verify_writes_its_verdict_file_through_broken_replies(tmp_path, fault):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from speciarl.verify import CONF_DIR, verify

    source = tmp_path / "pairs.jsonl"
    source.write_text(
        "\n".join(
            json.dumps({"ground_truth": "crimson circle", "prediction": p}) for p in ("red disc", "circle")
        )
    )
    plan = FaultPlan(seed=0, permanent_share=1.0, transient_share=0.0, faults=(fault,))
    with FaultyJudgeServer(specific, plan) as server:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(
                config_name="verify",
                overrides=[
                    f"input={source}",
                    "verifier=llm_http",
                    f"verifier.llm.base_url={server.url}",
                    "verifier.llm.guided=none",
                    "verifier.llm.max_retries=1",
                    "verifier.llm.backoff_s=0.01",
                ],
            )
        status = verify(cfg)
    rows = [json.loads(line) for line in (tmp_path / "pairs.verdicts.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in rows] == ["judge error", "judge error"]
    assert status == 1
