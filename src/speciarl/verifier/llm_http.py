"""The LLM judge over HTTP: any OpenAI-compatible chat-completions endpoint (``vllm serve``, a hosted API).

One request judges one (ground truth, prediction) pair, or, in batched mode, ``batch_size``
pairs at once. Temperature 0; when the server supports it, decoding is constrained to the six
labels (vLLM ``structured_outputs`` / older ``guided_choice``). Every answer is validated: a
reply that is not exactly one of the six labels is retried, and a pair that still has no valid
verdict after ``max_retries`` retries becomes ``Outcome.JUDGE_ERROR``: counted, never scored.

The parts: ``llm.transport`` (HTTP, timeouts, retries with backoff, the reply size bound, the
guidance fallback, the API key; ``llm.connection`` the deadline and the kept-alive connections) and ``llm.protocol`` (what a request asks and how its reply is read); this judge adds
deduplication, concurrency, the circuit breaker and the batch-to-single fallback. Once
``breaker_failures`` pairs in a row have failed within one ``judge`` call, the rest of that call
fails fast (``JUDGE_ERROR`` without a request): a server that is down costs seconds, not minutes
per step. The next call tries again.

Batched mode (``batch_size > 1``): the reply must be a JSON array of ``{"id", "category"}``
with ids in order. A reply that cannot be trusted as a whole (not JSON, unknown, repeated or
out-of-order ids) sends every pair of the batch back to be judged singly; a missing item or an
item with an invalid label sends just that pair back singly. Nothing is dropped: every pair ends
as a category or a counted ``JUDGE_ERROR``.

The API key is read from the environment variable named by ``api_key_env``; it is sent only in
the ``Authorization`` header and appears in no repr, log line, statistic or error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from speciarl.core.categories import Category, Judgement, Outcome, normalize_label
from speciarl.core.interfaces import Judge
from speciarl.verifier.llm.protocol import GUIDED_MODES, JudgeProtocol, JudgeRequest, Pair
from speciarl.verifier.llm.transport import ChatCompletionsClient, Counters
from speciarl.verifier.redaction import redact_url

log = logging.getLogger(__name__)

# Counters present in every call's stats (zero when nothing happened), so logged columns are stable.
_ALWAYS_REPORTED = (
    "requests",
    "retries",
    "timeouts",
    "connection_errors",
    "http_4xx",
    "http_5xx",
    "malformed_answers",
    "protocol_errors",
    "oversized_replies",
    "failed_pairs",
    "breaker_skipped_pairs",
)


@dataclass
class _CallState:
    """Per-``judge``-call circuit breaker: consecutive failed pairs across worker threads."""

    threshold: int
    consecutive_failures: int = 0
    open: bool = False

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def record(self, ok: bool, pairs: int = 1) -> None:
        with self.lock:
            if ok:
                self.consecutive_failures = 0
            else:
                self.consecutive_failures += pairs
                if self.threshold and self.consecutive_failures >= self.threshold:
                    self.open = True


class LLMHttpJudge(Judge):
    """Judge pairs with an LLM behind an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: the served model name (part of the judge's identity, hence of cache keys).
        api_key_env: name of the environment variable holding the API key; None sends no key.
        guided: ``structured_outputs`` (vLLM >= 0.12), ``guided_choice`` (older vLLM) or ``none``.
        batch_size: pairs per request; 1 is the paper's one-pair prompt.
        max_concurrency: requests in flight at once.
        timeout_s: total deadline of one request (connect to last body byte), not per socket read.
        max_retries: retries after the first attempt, per request.
        backoff_s, backoff_max_s: jittered exponential backoff between attempts.
        breaker_failures: consecutive failed pairs after which the rest of a call fails fast (0: never).
        normalize: judge the normalised strings (``core.categories.normalize_label``); the cache keys are normalised anyway.
        max_tokens: answer budget; None picks 8 for one pair, the longest compact answer + 16 for a batch.
        extra_body: merged into every request body, e.g.
            ``{chat_template_kwargs: {enable_thinking: false}}`` for Qwen3.
        max_reply_bytes: a reply body larger than this (1 MiB by default) is a failed attempt.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        guided: str = "structured_outputs",
        batch_size: int = 1,
        max_concurrency: int = 16,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        breaker_failures: int = 16,
        normalize: bool = True,
        max_tokens: int | None = None,
        extra_body: dict[str, Any] | None = None,
        max_reply_bytes: int = 1 << 20,
    ) -> None:
        if guided not in GUIDED_MODES:
            raise ValueError(f"guided must be one of {GUIDED_MODES}, got {guided!r}")
        if batch_size < 1 or max_concurrency < 1:
            raise ValueError(
                f"batch_size and max_concurrency must be >= 1, got {batch_size}, {max_concurrency}"
            )
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be > 0, max_retries and backoff_s >= 0")
        self.model = model
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.breaker_failures = breaker_failures
        self.normalize = normalize
        self.protocol = JudgeProtocol(guided, batch_size, max_tokens)
        self.counters = Counters()
        self.client = ChatCompletionsClient(
            base_url,
            model,
            self.counters,
            api_key_env=api_key_env,
            guided=guided,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            extra_body=extra_body,
            max_reply_bytes=max_reply_bytes,
        )
        self.totals: Counter[str] = Counter()
        self.last_stats: dict[str, float] = {}

    # ------------------------------------------------------------------ identity
    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def guided(self) -> str:
        return self.protocol.guided

    @property
    def prompt_version(self) -> str:
        return self.protocol.prompt_version

    @property
    def identity(self) -> str:
        """Who gave a verdict: cached verdicts are shared only between identical identities."""
        return f"llm|{self.model}|{self.prompt_version}|{'norm' if self.normalize else 'raw'}"

    def __repr__(self) -> str:
        return (
            f"LLMHttpJudge(base_url={redact_url(self.base_url)!r}, model={self.model!r}, "
            f"batch_size={self.batch_size}, guided={self.guided!r}, "
            f"api_key={'set' if self.client.has_api_key else 'none'})"
        )

    # ------------------------------------------------------------------ judging
    def judge(self, ground_truths: Sequence[str], predictions: Sequence[str | None]) -> list[Judgement]:
        """One judgement per pair, in order; a missing prediction is a parse failure."""
        if len(ground_truths) != len(predictions):
            raise ValueError(
                f"judge got {len(ground_truths)} ground truths for {len(predictions)} predictions"
            )
        started = time.perf_counter()
        self.counters.start(_ALWAYS_REPORTED)
        verdicts: list[Judgement | None] = [None] * len(predictions)
        where: dict[Pair, list[int]] = {}
        for i, (truth, prediction) in enumerate(zip(ground_truths, predictions, strict=True)):
            if prediction is None:
                verdicts[i] = Outcome.PARSE_FAILURE
                continue
            where.setdefault(self._pair(truth, prediction), []).append(i)
        unique = list(where)
        by_pair = self._judge_unique(unique) if unique else {}
        for pair, indices in where.items():
            for i in indices:
                verdicts[i] = by_pair[pair]
        out: list[Judgement] = [v if v is not None else Outcome.JUDGE_ERROR for v in verdicts]
        self._finish_call(out, len(unique), time.perf_counter() - started)
        return out

    def _pair(self, truth: str, prediction: str) -> Pair:
        if self.normalize:
            return normalize_label(truth), normalize_label(prediction)
        return truth, prediction

    def _judge_unique(self, pairs: list[Pair]) -> dict[Pair, Judgement]:
        state = _CallState(self.breaker_failures)
        results: dict[Pair, Judgement] = {}
        with _abandonable_pool(self.max_concurrency) as pool:
            if self.batch_size == 1:
                for pair, verdict in zip(pairs, pool.map(lambda p: self._judge_single(p, state), pairs)):
                    results[pair] = verdict
                return results
            chunks = [pairs[i : i + self.batch_size] for i in range(0, len(pairs), self.batch_size)]
            leftovers: list[Pair] = []
            for answered, retry in pool.map(lambda c: self._judge_batch(c, state), chunks):
                results.update(answered)
                leftovers.extend(retry)
            self.counters.add("batch_pairs_retried_singly", len(leftovers))
            for pair, verdict in zip(leftovers, pool.map(lambda p: self._judge_single(p, state), leftovers)):
                results[pair] = verdict
        return results

    def _ask(self, request: JudgeRequest) -> Any:
        return self.client.ask(
            request.messages, request.max_tokens, request.validate, request.guidance, request.temperature
        )

    def _judge_single(self, pair: Pair, state: _CallState) -> Judgement:
        if state.open:
            self.counters.add("breaker_skipped_pairs")
            return Outcome.JUDGE_ERROR
        verdict = self._ask(self.protocol.pair_request(pair))
        state.record(verdict is not None)
        if verdict is None:
            self.counters.add("failed_pairs")
            return Outcome.JUDGE_ERROR
        return verdict

    def _judge_batch(self, pairs: list[Pair], state: _CallState) -> tuple[dict[Pair, Category], list[Pair]]:
        """Verdicts the batched answer gave, and the pairs to ask again singly."""
        if state.open:
            return {}, list(pairs)  # the single path counts and fails them fast
        self.counters.add("batch_requests")
        request = self.protocol.batch_request(pairs)
        reading = self._ask(request)
        state.record(reading is not None, len(pairs))
        if reading is None:
            self.counters.add("batch_answers_rejected")
            if request.readings and request.readings[-1].problem:
                log.warning(
                    "batched judge answer rejected (%s); judging its %d pairs singly",
                    request.readings[-1].problem,
                    len(pairs),
                )
            return {}, list(pairs)
        if reading.problem:
            self.counters.add("batch_answers_incomplete")
            log.warning("batched judge answer: %s; judging those pairs singly", reading.problem)
        verdicts = {pairs[i]: c for i, c in reading.verdicts.items()}
        return verdicts, [pairs[i] for i in reading.retry]

    # ------------------------------------------------------------------ bookkeeping
    def _finish_call(self, verdicts: list[Judgement], unique_pairs: int, seconds: float) -> None:
        errors = sum(v is Outcome.JUDGE_ERROR for v in verdicts)
        call = self.counters.snapshot()
        call["verdicts"] = len(verdicts)
        call["unique_pairs"] = unique_pairs
        call["judge_errors"] = errors
        self.totals.update(call)
        self.last_stats = {k: float(v) for k, v in sorted(call.items())}
        self.last_stats["seconds"] = seconds
        if errors:
            failure_kinds = (
                "timeouts",
                "connection_errors",
                "malformed_answers",
                "protocol_errors",
                "oversized_replies",
            )
            causes = {
                k: v
                for k, v in call.items()
                if v and (k in failure_kinds or k == "breaker_skipped_pairs" or k.startswith("http_"))
            }
            log.warning(
                "LLM judge at %s: %d of %d verdicts failed (%d unique pairs; causes %s)",
                redact_url(self.base_url),
                errors,
                len(verdicts),
                call["failed_pairs"] + call["breaker_skipped_pairs"],
                dict(causes),
            )


@contextmanager
def _abandonable_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """The judge's thread pool; a preemption signal (a BaseException raised in the waiting main
    thread, ``runs.preemption``) leaves without waiting for the requests in flight, which would
    otherwise hold the step until the judge deadline."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-judge")
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
