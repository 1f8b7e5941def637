"""A judge server on loopback that misbehaves at the socket level, seeded: the soak's adversary.

It reads real HTTP requests from real sockets and answers like an OpenAI-compatible judge (the
verdict comes from ``judge_pair``), except for a seeded share of requests, which fail in one of
``FAULTS`` ways, written byte by byte the way a broken server or network would:

- ``http_500``: a well-formed HTTP 500;
- ``hang``: reads the request and says nothing for ``hang_s`` (past the client's deadline);
- ``drip``: a valid reply, one byte every ``drip_s`` (each read is quick, the whole is not);
- ``cut_body``: ``Content-Length`` larger than the body, then the connection closes (IncompleteRead);
- ``bad_status``: ``GARBAGE\\r\\n\\r\\n`` instead of a status line (BadStatusLine);
- ``malformed``: HTTP 200 whose assistant text is not a label;
- ``out_of_set``: HTTP 200 whose assistant text is a label that is not one of the six;
- ``reset``: the connection is closed with a TCP reset (SO_LINGER 0) before any answer.

``REPLY_FAULTS`` are replies no parser should be trusted with (not in the default plan, so the
soak's seeded faults stay what they were):

- ``endless_chunked``: HTTP 200, ``Transfer-Encoding: chunked``, 64 KiB chunks that never end;
- ``huge_body``: HTTP 200 with a 2 MiB body (``Content-Length`` says so);
- ``nested_brackets``: HTTP 200 whose body is 400 KB of ``[`` (JSON nesting that exhausts a
  recursive parser's stack: ``RecursionError``, not a decode error).

Which requests fail is a function of the seed and the request body only, so two runs that send
the same requests see the same faults: a request body is *permanently* faulty (every attempt
fails, so its pair ends as a judge error) with probability ``permanent_share``, and *transiently*
faulty (its first attempt fails, a retry succeeds) with probability ``transient_share``. The
server counts every request and every fault by kind.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

FAULTS = ("http_500", "hang", "drip", "cut_body", "bad_status", "malformed", "out_of_set", "reset")
REPLY_FAULTS = ("endless_chunked", "huge_body", "nested_brackets")


def _unit(seed: int, body: bytes, salt: str) -> float:
    digest = hashlib.sha256(f"{seed}|{salt}|".encode() + body).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class FaultPlan:
    """Which requests fail and how (see the module docstring)."""

    seed: int = 0
    permanent_share: float = 0.05
    transient_share: float = 0.10
    faults: tuple[str, ...] = FAULTS

    def __post_init__(self) -> None:
        if not 0 <= self.permanent_share + self.transient_share <= 1:
            raise ValueError("permanent_share + transient_share must be in [0, 1]")
        unknown = set(self.faults) - set(FAULTS + REPLY_FAULTS)
        if unknown or not self.faults:
            raise ValueError(
                f"faults must be a non-empty subset of {FAULTS + REPLY_FAULTS}, got {self.faults}"
            )

    def fault(self, body: bytes, times_seen: int) -> str | None:
        """The fault for this request body's ``times_seen``-th arrival (0: first), or None."""
        u = _unit(self.seed, body, "share")
        kind = self.faults[int(_unit(self.seed, body, "kind") * len(self.faults))]
        if u < self.permanent_share:
            return kind
        if u < self.permanent_share + self.transient_share and times_seen == 0:
            return kind
        return None


@dataclass
class FaultyJudgeServer:
    """Serve judge verdicts on 127.0.0.1 with ``plan``'s faults; a context manager."""

    judge_pair: Callable[[str, str], str]
    plan: FaultPlan = field(default_factory=FaultPlan)
    hang_s: float = 5.0
    drip_s: float = 0.3
    requests: int = 0
    faults: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seen: Counter = Counter()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._thread = threading.Thread(target=self._accept, name="faulty-judge", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> FaultyJudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "failed": sum(self.faults.values()), **self.faults}

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            body = _read_request(conn)
            if body is None:
                return
            with self._lock:
                self.requests += 1
                fault = self.plan.fault(body, self._seen[body])
                self._seen[body] += 1
                if fault:
                    self.faults[fault] += 1
            self._answer(conn, body, fault)
        except OSError:
            pass  # the client gave up (its deadline): nothing to deliver
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, body: bytes, fault: str | None) -> None:
        if fault == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if fault == "hang":
            self._stop.wait(self.hang_s)
            return
        if fault == "bad_status":
            conn.sendall(b"GARBAGE\r\n\r\n")
            return
        if fault in REPLY_FAULTS:
            self._unreadable_reply(conn, fault)
            return
        if fault == "http_500":
            conn.sendall(_response(500, b'{"error": {"message": "scripted failure"}}'))
            return
        request = json.loads(body)
        truth, prediction = _pair(request)
        content = self.judge_pair(truth, prediction)
        if fault == "malformed":
            content = "I think the answer is probably fine, hard to say."
        elif fault == "out_of_set":
            content = "partially correct"
        reply = _response(200, json.dumps(_completion(request, content)).encode())
        if fault == "cut_body":
            head, _, payload = reply.partition(b"\r\n\r\n")
            conn.sendall(head + b"\r\n\r\n" + payload[: len(payload) // 2])
            return
        if fault == "drip":
            for i in range(len(reply)):
                if self._stop.wait(self.drip_s):
                    return
                conn.sendall(reply[i : i + 1])
            return
        conn.sendall(reply)

    def _unreadable_reply(self, conn: socket.socket, fault: str) -> None:
        if fault == "huge_body":
            conn.sendall(_response(200, b" " * (2 << 20)))
            return
        if fault == "nested_brackets":
            conn.sendall(_response(200, b"[" * 400_000))
            return
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        conn.sendall(head)
        chunk = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"
        while not self._stop.is_set():
            conn.sendall(chunk)  # until the client hangs up (OSError ends the serving thread)


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return body[:length]


def _response(status: int, payload: bytes) -> bytes:
    reason = {200: "OK", 500: "Internal Server Error"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


def _pair(request: dict) -> tuple[str, str]:
    users = [m["content"] for m in request["messages"] if m.get("role") == "user"]
    data = json.loads(users[-1])
    return data["ground_truth"], data["prediction"]


def _completion(request: dict, content: str) -> dict:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
