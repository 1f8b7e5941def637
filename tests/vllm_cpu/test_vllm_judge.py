"""``vllm serve`` as the judge: the real OpenAI-compatible server on loopback, a tiny text model.

The model is random (``build_tiny_judge_lm``), so its verdicts are arbitrary; what is tested is
the protocol: guided choice answered with exactly one of the six labels, a guided batch answered
with exactly n compact items, errors counted, the tiered judge's cache, and ``python -m speciarl.verify``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from vllm_support import VLLMServer, needs_vllm

from speciarl.core.categories import Category, Outcome
from speciarl.verifier.judge_prompt import LABELS
from speciarl.verifier.llm.protocol import JudgeProtocol
from speciarl.verifier.llm_http import LLMHttpJudge

pytestmark = needs_vllm

PAIRS = [
    ("crimson circle", "red disc"),
    ("crimson circle", "circle"),
    ("crimson circle", "round"),
    ("circle", "azure circle"),
    ("crimson circle", "none"),
    ("crimson circle", "amber star"),
]
NAME = "tiny-judge"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from judge_support import build_tiny_judge_lm

    root = tmp_path_factory.mktemp("vllm-judge")
    # head dim 32: vLLM's CPU attention rejects the default's 8 ("Unsupported CPU attention configuration")
    folder = build_tiny_judge_lm(root / "model", hidden_size=128, intermediate_size=256)
    with VLLMServer(folder, NAME, root / "serve.log") as running:
        print(f"\nvllm serve up after {running.startup_s:.1f} s", file=sys.stderr)
        yield running


def _post(server, body: dict) -> dict:
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.loads(reply.read())


def _judge(server, **kwargs) -> LLMHttpJudge:
    kwargs.setdefault("timeout_s", 300.0)
    kwargs.setdefault("max_retries", 1)
    kwargs.setdefault("backoff_s", 0.1)
    return LLMHttpJudge(server.base_url, NAME, **kwargs)


def test_guided_choice_answers_exactly_one_label(server):
    request = JudgeProtocol("structured_outputs").pair_request(PAIRS[0])
    started = time.monotonic()
    reply = _post(
        server,
        {"model": NAME, "messages": request.messages, "max_tokens": request.max_tokens,
         "temperature": 0.0, **request.guidance},
    )  # fmt: skip
    print(f"first request {time.monotonic() - started:.1f} s", file=sys.stderr)
    text = reply["choices"][0]["message"]["content"]
    assert text in LABELS
    assert isinstance(request.validate(text), Category)


def test_llm_http_single_pairs_all_get_a_category(server):
    judge = _judge(server)
    verdicts = judge.judge([g for g, _ in PAIRS], [p for _, p in PAIRS])
    assert all(isinstance(v, Category) for v in verdicts), verdicts
    stats = judge.last_stats
    assert stats["requests"] == len(PAIRS)
    assert stats["malformed_answers"] == 0 and stats["protocol_errors"] == 0 and stats["judge_errors"] == 0


def test_batch_mode_answers_exactly_n_compact_items(server):
    request = JudgeProtocol("structured_outputs", batch_size=3).batch_request(PAIRS[:3])
    reply = _post(
        server,
        {"model": NAME, "messages": request.messages, "max_tokens": request.max_tokens,
         "temperature": 0.0, **request.guidance},
    )  # fmt: skip
    choice = reply["choices"][0]
    text = choice["message"]["content"]
    # the regex admits only the compact answer: no whitespace, exactly 3 items, ids 0, 1, 2
    assert choice["finish_reason"] == "stop", text
    assert re.fullmatch(request.guidance["structured_outputs"]["regex"], text), text
    reading = request.validate(text)
    assert reading is not None and sorted(reading.verdicts) == [0, 1, 2] and reading.retry == ()
    judge = _judge(server, batch_size=3)
    verdicts = judge.judge([g for g, _ in PAIRS], [p for _, p in PAIRS])
    assert all(isinstance(v, Category) for v in verdicts), verdicts
    stats = judge.last_stats
    # 6 distinct pairs in batches of 3; a hole would be judged again singly (and counted)
    assert stats["malformed_answers"] == 0 and stats["judge_errors"] == 0
    assert stats["requests"] >= 2


def test_unguided_random_model_is_counted_not_guessed(server):
    judge = _judge(server, guided="none", max_retries=0, breaker_failures=0)
    verdicts = judge.judge([g for g, _ in PAIRS], [p for _, p in PAIRS])
    assert len(verdicts) == len(PAIRS)
    errors = sum(v is Outcome.JUDGE_ERROR for v in verdicts)
    # a random model rarely writes a label unguided; every reply that is not one is an error, counted
    assert judge.last_stats["judge_errors"] == errors
    assert judge.last_stats["malformed_answers"] >= errors
    assert all(isinstance(v, Category) or v is Outcome.JUDGE_ERROR for v in verdicts)


def test_an_unknown_model_name_is_a_counted_client_error(server):
    judge = LLMHttpJudge(server.base_url, "no-such-model", timeout_s=60.0, max_retries=2, backoff_s=0.01)
    verdicts = judge.judge(["crimson circle"], ["circle"])
    assert verdicts == [Outcome.JUDGE_ERROR]
    assert judge.last_stats["http_4xx"] >= 1 and judge.last_stats["retries"] == 0


def test_tiered_judge_caches_the_llm_verdicts(server, tmp_path):
    from speciarl.verifier.cache import open_verdict_cache
    from speciarl.verifier.tiered import TieredJudge

    llm = _judge(server)
    tiered = TieredJudge(llm, cache=open_verdict_cache(str(tmp_path / "verdicts.sqlite")))
    truths, predictions = [g for g, _ in PAIRS], [p for _, p in PAIRS]
    first = tiered.judge(truths, predictions)
    asked = llm.totals["requests"]
    assert asked >= 1
    second = tiered.judge(truths, predictions)
    assert second == first
    assert llm.totals["requests"] == asked, "the second call must be served from the cache"


def test_verify_cli_against_vllm_serve(server, tmp_path):
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps({"ground_truth": g, "prediction": p}) + "\n" for g, p in PAIRS))
    command = [
        sys.executable, "-m", "speciarl.verify", f"input={source}", "verifier=llm_http",
        f"verifier.llm.base_url={server.base_url}", f"verifier.llm.model={NAME}", "verifier.llm.timeout_s=300",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (tmp_path / "pairs.verdicts.jsonl").read_text().splitlines()]
    assert len(rows) == len(PAIRS)
    assert all(r["verdict"] in LABELS for r in rows), rows
