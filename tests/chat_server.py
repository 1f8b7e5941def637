"""A small OpenAI-compatible chat-completions server on loopback, answering from a Python function.

It speaks the real protocol over real sockets (``POST /v1/chat/completions``, ``GET /v1/models``)
so that the HTTP judge can be exercised end to end without a GPU: the tests script its answers
(verdicts, 500s, stalls, malformed text) and the judge-load benchmark puts an oracle behind it.
Every request it receives is recorded, headers and body, so a test can check exactly what
reached "the LLM".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from speciarl.core.categories import Judgement


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an assistant message, or an HTTP error, optionally after a delay.

    ``raw_body`` replaces the whole response body (to send something that is not the protocol).
    """

    content: str | None = None
    status: int = 200
    delay_s: float = 0.0
    raw_body: bytes | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def user_message(self) -> str:
        """The text of the last user message."""
        users = [m for m in self.body.get("messages", []) if m.get("role") == "user"]
        return users[-1]["content"] if users else ""

    @property
    def system_message(self) -> str:
        systems = [m for m in self.body.get("messages", []) if m.get("role") == "system"]
        return systems[0]["content"] if systems else ""


Responder = Callable[[ReceivedRequest], "Reply | str"]


@dataclass
class ChatCompletionsServer:
    """Serve ``respond(request)`` as OpenAI chat completions on 127.0.0.1 (a free port by default).

    Use as a context manager; ``url`` is the base URL a client appends ``/chat/completions`` to.
    """

    respond: Responder
    host: str = "127.0.0.1"
    port: int = 0
    model: str = "scripted-judge"
    # Keep every request (tests inspect them); a long benchmark only needs ``received``.
    keep_requests: bool = True
    requests: list[ReceivedRequest] = field(default_factory=list)
    received: int = 0
    responder_errors: list[str] = field(default_factory=list)
    # HTTP/1.1 with kept-alive connections (closed after ``idle_close_s`` without a request),
    # instead of one connection per request; ``peers`` holds the client (host, port) of each request.
    keep_alive: bool = False
    idle_close_s: float | None = None
    peers: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not running: use it as a context manager or call start()")
        return f"http://{self.host}:{self._httpd.server_address[1]}/v1"

    @property
    def completions(self) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self) -> ChatCompletionsServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ChatCompletionsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: ReceivedRequest, peer: tuple[str, int]) -> None:
        with self._lock:
            self.received += 1
            self.peers.append(peer)
            if self.keep_requests:
                self.requests.append(request)

    def _wait(self, seconds: float) -> None:
        # Interruptible, so that stopping the server never waits for a scripted stall.
        self._stopping.wait(seconds)


def _make_handler(server: ChatCompletionsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if server.keep_alive else "HTTP/1.0"
        timeout = server.idle_close_s

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return  # quiet: tests and benchmarks send thousands of requests

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "request body is not JSON"}})
                return
            request = ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            server._record(request, self.client_address[:2])
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                reply = server.respond(request)
            except Exception as err:  # a bug in a scripted responder: answer 500 and keep it for the test
                with server._lock:
                    server.responder_errors.append(f"{type(err).__name__}: {err}")
                reply = Reply(status=500)
            if isinstance(reply, str):
                reply = Reply(content=reply)
            if reply.delay_s:
                server._wait(reply.delay_s)
                if server._stopping.is_set():
                    return
            if reply.raw_body is not None:
                self._send_bytes(reply.status, reply.raw_body)
            elif reply.status != 200:
                self._send(reply.status, {"error": {"message": "scripted failure", "code": reply.status}})
            else:
                self._send(200, _completion(body, reply.content))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            self._send_bytes(status, json.dumps(payload).encode())

        def _send_bytes(self, status: int, data: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout); nothing to deliver

    return Handler


def _completion(request: dict[str, Any], content: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def pairs_in_request(request: ReceivedRequest) -> list[tuple[str, str]]:
    """The (ground truth, prediction) pairs a judge request carries, read back from its JSON data."""
    data = json.loads(request.user_message)
    if "pairs" in data:
        return [(row["ground_truth"], row["prediction"]) for row in data["pairs"]]
    return [(data["ground_truth"], data["prediction"])]


def judging_responder(judge_pairs: Callable[[Sequence[tuple[str, str]]], list[Judgement]]) -> Responder:
    """A responder that answers like a well-behaved judge LLM, with verdicts from ``judge_pairs``.

    A single-pair request gets the bare label; a batched one a JSON array of ``{id, category}``.
    """

    def respond(request: ReceivedRequest) -> str:
        pairs = pairs_in_request(request)
        verdicts = judge_pairs(pairs)
        if "pairs" in json.loads(request.user_message):
            return json.dumps([{"id": i, "category": v.value} for i, v in enumerate(verdicts)])
        return verdicts[0].value

    return respond
