"""The LLM judge over HTTP: any OpenAI-compatible chat-completions endpoint (``vllm serve``, a hosted API).

One request judges one (ground truth, prediction) pair, or, in batched mode, ``batch_size``
pairs at once. Temperature 0; when the server supports it, decoding is constrained to the six
labels (vLLM ``structured_outputs`` / older ``guided_choice``). Every answer is validated: a
reply that is not exactly one of the six labels is retried, and a pair that still has no valid
verdict after ``max_retries`` retries becomes ``Outcome.JUDGE_ERROR``: counted, never scored.

Failure handling, in order:
- a request is bounded by ``timeout_s`` per socket operation (connect, each read);
- timeouts, connection errors, HTTP 408/429/5xx and malformed answers are retried with
  exponential backoff (``backoff_s * 2**k``, at most ``backoff_max_s``; a ``Retry-After`` header
  is honoured up to that cap); other 4xx are not retried;
- an HTTP 400 to a guided request is retried once without guidance; if that succeeds the server
  is taken not to support it and guidance stays off for this judge (a warning says so);
- once ``breaker_failures`` pairs in a row have failed within one ``judge`` call, the rest of that
  call fails fast (``JUDGE_ERROR`` without a request): a server that is down costs seconds, not
  minutes per step. The next call tries again.

Batched mode (``batch_size > 1``): the reply must be a JSON array of ``{"id", "category"}``
with ids in order. A reply that cannot be trusted as a whole (not JSON, unknown, repeated or
out-of-order ids) sends every pair of the batch back to be judged singly; a missing item or an
item with an invalid label sends just that pair back singly. Nothing is dropped: every pair ends
as a category or a counted ``JUDGE_ERROR``.

The API key is read from the environment variable named by ``api_key_env``; it is sent only in
the ``Authorization`` header and appears in no repr, log line, statistic or error.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from speciarl.core.categories import Category, Judgement, Outcome, normalize_label
from speciarl.core.interfaces import Judge
from speciarl.verifier.judge_prompt import (
    BATCH_PROMPT_VERSION,
    LABELS,
    PROMPT_VERSION,
    batch_json_schema,
    batch_messages,
    pair_messages,
    read_batch,
    read_label,
)
from speciarl.verifier.redaction import redact_url

log = logging.getLogger(__name__)

GUIDED_MODES = ("structured_outputs", "guided_choice", "none")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
Pair = tuple[str, str]
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
    "failed_pairs",
    "breaker_skipped_pairs",
)


class _AttemptFailed(Exception):
    """One HTTP attempt failed; ``kind`` names the counter it goes to."""

    def __init__(self, kind: str, detail: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


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
        timeout_s: per socket operation of one request.
        max_retries: retries after the first attempt, per request.
        backoff_s, backoff_max_s: exponential backoff between attempts.
        breaker_failures: consecutive failed pairs after which the rest of a call fails fast (0: never).
        normalize: judge the normalised strings (SPEC section 1); the cache keys are normalised anyway.
        max_tokens: answer budget; None picks 8 for one pair, 16 per pair + 16 for a batch.
        extra_body: merged into every request body, e.g.
            ``{chat_template_kwargs: {enable_thinking: false}}`` for Qwen3.
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
    ) -> None:
        if guided not in GUIDED_MODES:
            raise ValueError(f"guided must be one of {GUIDED_MODES}, got {guided!r}")
        if batch_size < 1 or max_concurrency < 1:
            raise ValueError(
                f"batch_size and max_concurrency must be >= 1, got {batch_size}, {max_concurrency}"
            )
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be > 0, max_retries and backoff_s >= 0")
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.model = model
        self.guided = guided
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.breaker_failures = breaker_failures
        self.normalize = normalize
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.api_key_env = api_key_env
        self._api_key = _read_api_key(api_key_env)
        self._guidance_on = guided != "none"
        self._lock = threading.Lock()
        self._call: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.last_stats: dict[str, float] = {}

    # ------------------------------------------------------------------ identity
    @property
    def prompt_version(self) -> str:
        return PROMPT_VERSION if self.batch_size == 1 else BATCH_PROMPT_VERSION

    @property
    def identity(self) -> str:
        """Who gave a verdict: cached verdicts are shared only between identical identities."""
        return f"llm|{self.model}|{self.prompt_version}|{'norm' if self.normalize else 'raw'}"

    def __repr__(self) -> str:
        return (
            f"LLMHttpJudge(base_url={redact_url(self.base_url)!r}, model={self.model!r}, "
            f"batch_size={self.batch_size}, guided={self.guided!r}, "
            f"api_key={'set' if self._api_key else 'none'})"
        )

    def __getstate__(self) -> dict[str, Any]:
        # Pickled copies (e.g. spawned workers) carry no key and no lock: the key is read again
        # from the same environment variable on the other side.
        state = {k: v for k, v in self.__dict__.items() if k not in ("_api_key", "_lock")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._api_key = _read_api_key(self.api_key_env)

    # ------------------------------------------------------------------ judging
    def judge(self, ground_truths: Sequence[str], predictions: Sequence[str | None]) -> list[Judgement]:
        """One judgement per pair, in order; a missing prediction is a parse failure."""
        if len(ground_truths) != len(predictions):
            raise ValueError(
                f"judge got {len(ground_truths)} ground truths for {len(predictions)} predictions"
            )
        started = time.perf_counter()
        with self._lock:
            self._call = Counter({key: 0 for key in _ALWAYS_REPORTED})
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
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="llm-judge") as pool:
            if self.batch_size == 1:
                for pair, verdict in zip(pairs, pool.map(lambda p: self._judge_single(p, state), pairs)):
                    results[pair] = verdict
                return results
            chunks = [pairs[i : i + self.batch_size] for i in range(0, len(pairs), self.batch_size)]
            leftovers: list[Pair] = []
            for answered, retry in pool.map(lambda c: self._judge_batch(c, state), chunks):
                results.update(answered)
                leftovers.extend(retry)
            self._count("batch_pairs_retried_singly", len(leftovers))
            for pair, verdict in zip(leftovers, pool.map(lambda p: self._judge_single(p, state), leftovers)):
                results[pair] = verdict
        return results

    def _judge_single(self, pair: Pair, state: _CallState) -> Judgement:
        if state.open:
            self._count("breaker_skipped_pairs")
            return Outcome.JUDGE_ERROR
        verdict = self._ask(pair_messages(*pair), self._single_guidance(), read_label)
        state.record(verdict is not None)
        if verdict is None:
            self._count("failed_pairs")
            return Outcome.JUDGE_ERROR
        return verdict

    def _judge_batch(self, pairs: list[Pair], state: _CallState) -> tuple[dict[Pair, Category], list[Pair]]:
        """Verdicts the batched answer gave, and the pairs to ask again singly."""
        if state.open:
            return {}, list(pairs)  # the single path counts and fails them fast
        self._count("batch_requests")
        readings: list[Any] = []

        def validate(text: str | None) -> Any:
            reading = read_batch(text, len(pairs))
            readings.append(reading)
            # A partly good answer is accepted (its holes go back singly); only an answer that
            # cannot be trusted at all is retried as a batch.
            return None if reading.whole_answer_rejected else reading

        reading = self._ask(batch_messages(pairs), self._batch_guidance(len(pairs)), validate, len(pairs))
        state.record(reading is not None, len(pairs))
        if reading is None:
            self._count("batch_answers_rejected")
            if readings and readings[-1].problem:
                log.warning(
                    "batched judge answer rejected (%s); judging its %d pairs singly",
                    readings[-1].problem,
                    len(pairs),
                )
            return {}, list(pairs)
        if reading.problem:
            self._count("batch_answers_incomplete")
            log.warning("batched judge answer: %s; judging those pairs singly", reading.problem)
        verdicts = {pairs[i]: c for i, c in reading.verdicts.items()}
        return verdicts, [pairs[i] for i in reading.retry]

    def _single_guidance(self) -> dict[str, Any]:
        if self.guided == "structured_outputs":
            return {"structured_outputs": {"choice": list(LABELS)}}
        if self.guided == "guided_choice":
            return {"guided_choice": list(LABELS)}
        return {}

    def _batch_guidance(self, n: int) -> dict[str, Any]:
        if self.guided == "structured_outputs":
            return {"structured_outputs": {"json": batch_json_schema(n)}}
        if self.guided == "guided_choice":
            return {"guided_json": batch_json_schema(n)}
        return {}

    # ------------------------------------------------------------------ one request, with retries
    def _ask(
        self,
        messages: list[dict[str, str]],
        guidance: dict[str, Any],
        validate: Callable[[str | None], Any],
        pairs: int = 1,
    ) -> Any:
        """The validated answer to ``messages`` (about ``pairs`` pairs), or None once every attempt failed."""
        max_tokens = self.max_tokens
        if max_tokens is None:
            max_tokens = 8 if pairs == 1 else 16 * pairs + 16
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": max_tokens,
            **self.extra_body,
        }
        delay = 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(delay)
            delay = min(self.backoff_max_s, self.backoff_s * 2**attempt)
            try:
                text = self._post_with_guidance(body, guidance)
            except _AttemptFailed as failure:
                self._count(failure.kind)
                log.debug("judge request failed (%s): %s", failure.kind, failure.detail)
                if not failure.retryable:
                    return None
                if failure.retry_after is not None:
                    delay = min(self.backoff_max_s, max(delay, failure.retry_after))
                continue
            value = validate(text)
            if value is not None:
                return value
            self._count("malformed_answers")
        return None

    def _post_with_guidance(self, body: dict[str, Any], guidance: dict[str, Any]) -> str | None:
        if not (guidance and self._guidance_on):
            return self._post(body)
        try:
            return self._post({**body, **guidance})
        except _AttemptFailed as failure:
            if failure.kind != "http_400":
                raise
        # A 400 to a guided request: the server may not know the guidance field. Try without.
        text = self._post(body)
        if self._guidance_on:
            self._guidance_on = False
            self._count("guidance_disabled")
            log.warning(
                "the judge server at %s rejected guided decoding (%s) but accepted the plain request: "
                "judging without it from now on; answers are still validated",
                redact_url(self.base_url),
                self.guided,
            )
        return text

    def _post(self, body: dict[str, Any]) -> str | None:
        """One HTTP attempt; the assistant text (None if the reply had none) or _AttemptFailed."""
        self._count("requests")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self.endpoint, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            status = err.code
            retry_after = _retry_after(err.headers.get("Retry-After") if err.headers else None)
            err.close()
            kind = "http_400" if status == 400 else f"http_{status // 100}xx"
            raise _AttemptFailed(kind, f"HTTP {status}", status in RETRYABLE_STATUS, retry_after) from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise _AttemptFailed("timeouts", f"timed out after {self.timeout_s}s", True) from None
            raise _AttemptFailed("connection_errors", f"{type(err.reason).__name__}", True) from None
        except TimeoutError:
            raise _AttemptFailed("timeouts", f"timed out after {self.timeout_s}s", True) from None
        except (ConnectionError, OSError) as err:
            raise _AttemptFailed("connection_errors", type(err).__name__, True) from None
        try:
            payload = json.loads(raw)
            return payload["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise _AttemptFailed("protocol_errors", "reply is not a chat completion", True) from None

    # ------------------------------------------------------------------ bookkeeping
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._call[key] += n

    def _finish_call(self, verdicts: list[Judgement], unique_pairs: int, seconds: float) -> None:
        errors = sum(v is Outcome.JUDGE_ERROR for v in verdicts)
        with self._lock:
            call = Counter(self._call)
        call["verdicts"] = len(verdicts)
        call["unique_pairs"] = unique_pairs
        call["judge_errors"] = errors
        self.totals.update(call)
        self.last_stats = {k: float(v) for k, v in sorted(call.items())}
        self.last_stats["seconds"] = seconds
        if errors:
            failure_kinds = ("timeouts", "connection_errors", "malformed_answers", "protocol_errors")
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


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _read_api_key(env_name: str | None) -> str | None:
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ValueError(
            f"the judge's API key variable {env_name!r} (verifier api_key_env) is not set in the "
            "environment: export it, or set api_key_env to null for a server without a key"
        )
    return value
