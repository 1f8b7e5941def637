"""An OpenAI-compatible chat-completions client: request building, retries with backoff, timeouts.

It knows HTTP and the chat-completions reply shape, nothing of judging: what to ask, what
guidance to send and whether an answer is usable are the caller's (``validate`` turns a reply
text into a value, or None for a malformed answer that is worth asking again).

Failure handling, in order:
- a request is bounded by ``timeout_s`` in total (a deadline over connect, send, headers and
  body: a server that drips one byte at a time cannot hold it longer; ``llm.connection`` gives
  each socket operation the time left, no thread is started) and its reply by
  ``max_reply_bytes`` (a larger or endless body is an ``oversized_replies`` failure, retried);
- a reply that does not parse, whatever the exception (400 KB of nested brackets raises
  ``RecursionError``), is a ``protocol_errors`` failure, and an answer whose validation raises
  is a malformed answer: never an exception out of ``ask``;
- a reply cut off mid-body (``IncompleteRead``), a status line that is not HTTP
  (``BadStatusLine``) or any other broken HTTP exchange is a ``protocol_errors`` failure, retried;
- timeouts, connection errors, HTTP 408/429/5xx and malformed answers are retried with jittered
  exponential backoff (``core.retry``: the k-th pause between half and all of
  ``min(backoff_max_s, backoff_s * 2**k)``; a ``Retry-After`` header is honoured up to that cap);
  other 4xx are not retried;
- an HTTP 400 to a guided request is retried once without guidance; if that succeeds the server
  is taken not to support it and guidance stays off for this client (a warning says so).

Every attempt and failure is counted in a shared ``Counters`` (requests, retries, timeouts,
connection_errors, http_4xx, http_5xx, protocol_errors, oversized_replies, malformed_answers,
guidance_disabled). Connections are kept alive between requests (``llm.connection``).
The API key is read from the environment variable named by ``api_key_env``; it is sent only in
the ``Authorization`` header and appears in no repr, log line, counter or error, and a pickled
client carries none (the other side reads the same variable again).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from speciarl.core.retry import Backoff, call_with_retries
from speciarl.verifier.llm.connection import ConnectionPool
from speciarl.verifier.redaction import redact_url

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class Counters:
    """Thread-safe event counts of the current call; pickled without its lock."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def start(self, keys: Iterable[str]) -> None:
        """Begin a call: every key of ``keys`` at zero, nothing else."""
        with self._lock:
            self.counts = Counter({key: 0 for key in keys})

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def __getstate__(self) -> dict[str, Any]:
        return {"counts": self.counts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.counts = state["counts"]
        self._lock = threading.Lock()


class AttemptFailed(Exception):
    """One HTTP attempt failed; ``kind`` names the counter it goes to."""

    def __init__(self, kind: str, detail: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


class ChatCompletionsClient:
    """POSTs chat completions to ``<base_url>/chat/completions`` and retries what may succeed later.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the served model name.
        counters: where attempts and failures are counted (shared with the caller).
        api_key_env: name of the environment variable holding the API key; None sends no key.
        guided: the name of the guidance the caller sends, for the warning when a server rejects it.
        timeout_s: total deadline of one request (attempt), connect to last body byte.
        max_retries: retries after the first attempt, per request.
        backoff_s, backoff_max_s: jittered exponential backoff between attempts (``core.retry``).
        extra_body: merged into every request body.
        max_reply_bytes: a reply body larger than this is a failed attempt (``oversized_replies``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        counters: Counters,
        api_key_env: str | None = None,
        guided: str = "none",
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        extra_body: dict[str, Any] | None = None,
        max_reply_bytes: int = 1 << 20,
    ) -> None:
        if max_reply_bytes < 1:
            raise ValueError(f"max_reply_bytes must be >= 1, got {max_reply_bytes}")
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.model = model
        self.counters = counters
        self.guided = guided
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.backoff = Backoff(backoff_s, backoff_max_s)
        self.max_reply_bytes = max_reply_bytes
        self.extra_body = dict(extra_body or {})
        self.api_key_env = api_key_env
        self._api_key = read_api_key(api_key_env)
        self.guidance_on = guided != "none"
        parts = urlsplit(self.endpoint)
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._pool = self._new_pool()

    def _new_pool(self) -> ConnectionPool:
        parts = urlsplit(self.endpoint)
        return ConnectionPool(parts.scheme, parts.hostname or "", parts.port)

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    def __getstate__(self) -> dict[str, Any]:
        # Neither the key nor open sockets cross a pickle: the other side opens its own.
        return {k: v for k, v in self.__dict__.items() if k not in ("_api_key", "_pool")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._api_key = read_api_key(self.api_key_env)
        self._pool = self._new_pool()

    def close(self) -> None:
        """Close the kept-alive connections (a later request opens new ones)."""
        self._pool.close()

    def ask(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        validate: Callable[[str | None], Any],
        guidance: dict[str, Any] | None = None,
        temperature: float = 0.0,
    ) -> Any:
        """The first validated answer to ``messages``, or None once every attempt failed."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            **self.extra_body,
        }

        def attempt() -> Any:
            try:
                text = self._post_with_guidance(body, guidance or {})
            except AttemptFailed as failure:
                self.counters.add(failure.kind)
                log.debug("judge request failed (%s): %s", failure.kind, failure.detail)
                raise
            value = _validated(validate, text)
            if value is None:
                self.counters.add("malformed_answers")
                raise AttemptFailed("malformed_answers", "the answer did not validate", True)
            return value

        try:
            return call_with_retries(
                attempt,
                backoff=self.backoff,
                max_retries=self.max_retries,
                should_retry=lambda error: isinstance(error, AttemptFailed) and error.retryable,
                wait_at_least=lambda error: getattr(error, "retry_after", None),
                on_retry=lambda number, error: self.counters.add("retries"),
            )
        except AttemptFailed:
            return None

    def _post_with_guidance(self, body: dict[str, Any], guidance: dict[str, Any]) -> str | None:
        if not (guidance and self.guidance_on):
            return self._post(body)
        try:
            return self._post({**body, **guidance})
        except AttemptFailed as failure:
            if failure.kind != "http_400":
                raise
        # A 400 to a guided request: the server may not know the guidance field. Try without.
        text = self._post(body)
        if self.guidance_on:
            self.guidance_on = False
            self.counters.add("guidance_disabled")
            log.warning(
                "the judge server at %s rejected guided decoding (%s) but accepted the plain request: "
                "judging without it from now on; answers are still validated",
                redact_url(self.base_url),
                self.guided,
            )
        return text

    def _post(self, body: dict[str, Any]) -> str | None:
        """One HTTP attempt; the assistant text (None if the reply had none) or AttemptFailed."""
        self.counters.add("requests")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        status, retry_after, raw = self._exchange(json.dumps(body).encode(), headers)
        if status != 200:
            kind = "http_400" if status == 400 else f"http_{status // 100}xx"
            raise AttemptFailed(kind, f"HTTP {status}", status in RETRYABLE_STATUS, retry_after)
        try:
            payload = json.loads(raw)
            return payload["choices"][0]["message"]["content"]
        except Exception as err:
            # Whatever the body holds (400 KB of nested brackets raises RecursionError, not a
            # JSONDecodeError), a reply that does not parse is a counted failure of this attempt.
            raise AttemptFailed(
                "protocol_errors", f"reply is not a chat completion ({type(err).__name__})", True
            ) from None

    def _exchange(self, data: bytes, headers: dict[str, str]) -> tuple[int, float | None, bytes]:
        """POST ``data``; (status, Retry-After, body) within one deadline of ``timeout_s``.

        A kept-alive connection the server has closed meanwhile fails before any reply byte; the
        request is then sent once more on a fresh connection, within the same deadline.
        """
        connection, reused = self._pool.take()
        connection.start_request(self.timeout_s)
        try:
            try:
                reply = self._send_and_read(connection, data, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                connection.close()
                connection = self._pool.fresh()
                connection.start_request(self.timeout_s)
                reply = self._send_and_read(connection, data, headers)
        except TimeoutError:  # DeadlineExpired too
            connection.close()
            raise AttemptFailed("timeouts", f"timed out after {self.timeout_s}s", True) from None
        except http.client.HTTPException as err:
            # IncompleteRead (body cut short), BadStatusLine (not HTTP), header errors, ...
            connection.close()
            raise AttemptFailed("protocol_errors", type(err).__name__, True) from None
        except OSError as err:
            connection.close()
            raise AttemptFailed("connection_errors", type(err).__name__, True) from None
        except BaseException:
            connection.close()
            raise
        self._pool.give_back(connection)
        return reply

    def _send_and_read(
        self, connection: Any, data: bytes, headers: dict[str, str]
    ) -> tuple[int, float | None, bytes]:
        connection.request("POST", self._path, body=data, headers=headers)
        response = connection.getresponse()
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_reply_bytes:
            raise _oversized(f"Content-Length {int(declared)}", self.max_reply_bytes)
        chunks: list[bytes] = []
        size = 0
        # Read in pieces so that neither a huge body nor a chunked one that never ends can grow
        # past the bound: at most max_reply_bytes + one piece is ever held.
        while piece := response.read(min(65536, self.max_reply_bytes + 1 - size)):
            chunks.append(piece)
            size += len(piece)
            if size > self.max_reply_bytes:
                raise _oversized("the body", self.max_reply_bytes)
        return response.status, _retry_after(response.getheader("Retry-After")), b"".join(chunks)


def _validated(validate: Callable[[str | None], Any], text: str | None) -> Any:
    """``validate(text)``, or None when reading the answer raised anything at all (it is malformed)."""
    try:
        return validate(text)
    except Exception as err:
        log.warning("a judge answer could not be read (%s): counted as malformed", type(err).__name__)
        return None


def _oversized(what: str, limit: int) -> AttemptFailed:
    return AttemptFailed(
        "oversized_replies",
        f"{what} is larger than verifier max_reply_bytes ({limit} bytes)",
        True,
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def read_api_key(env_name: str | None) -> str | None:
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ValueError(
            f"the judge's API key variable {env_name!r} (verifier api_key_env) is not set in the "
            "environment: export it, or set api_key_env to null for a server without a key"
        )
    return value
