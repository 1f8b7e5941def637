"""HTTP connections for the judge: one deadline per request, no watchdog thread, kept alive between requests.

A request's ``timeout_s`` bounds all of it, connect to the last body byte. Rather than a timer
thread per attempt that shuts the socket at the deadline, every socket operation is given the
time left until the deadline as its timeout, and a read that starts past the deadline fails at
once: a server that drips one byte at a time gets at most the deadline, and no thread is started.

Connections are kept alive: a finished exchange whose server allows it returns its connection to
a small pool, so a judge call of many requests opens few connections. A connection is never
shared by two requests at once, never crosses a fork, and one that failed in any way is closed.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import threading
import time
from typing import Any


class DeadlineExpired(TimeoutError):
    """The request's deadline passed before the exchange finished."""


class _DeadlineReader(io.RawIOBase):
    """Reads a socket's bytes, each read bounded by the time left until the owner's deadline."""

    def __init__(self, sock: socket.socket, owner: _Deadline) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket's reference count right
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._owner.time_left())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """A connected socket whose sends and reads obey the owning connection's deadline."""

    def __init__(self, sock: socket.socket, owner: _Deadline) -> None:
        self._sock = sock
        self._owner = owner

    def sendall(self, data: bytes) -> None:
        # Since Python 3.5 a socket timeout bounds the whole sendall, not each chunk of it.
        self._sock.settimeout(self._owner.time_left())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"the judge's connections are read as 'rb', not {mode!r}")
        return io.BufferedReader(_DeadlineReader(self._sock, self._owner))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Deadline:
    """Gives an ``HTTPConnection`` a ``deadline`` (a monotonic time) that every socket operation obeys.

    Placed first among the bases so that its ``connect`` wraps the socket after the base's
    ``connect`` is done, TLS handshake included.
    """

    deadline: float = float("inf")
    timeout: float | None
    sock: Any

    def start_request(self, timeout_s: float) -> None:
        """Begin a request that must be over within ``timeout_s`` from now."""
        self.deadline = time.monotonic() + timeout_s

    def time_left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExpired("the request's deadline passed")
        return left

    def connect(self) -> None:
        self.timeout = self.time_left()  # bounds the TCP connect and the TLS handshake
        super().connect()  # type: ignore[misc]
        self.sock = _DeadlineSocket(self.sock, self)


class DeadlineHTTPConnection(_Deadline, http.client.HTTPConnection):
    """A plain-HTTP connection whose request ends by its deadline."""


class DeadlineHTTPSConnection(_Deadline, http.client.HTTPSConnection):
    """A TLS connection whose request ends by its deadline."""


class ConnectionPool:
    """Idle kept-alive connections to one host, at most ``max_idle`` of them; safe across threads and forks.

    Args:
        scheme: ``http`` or ``https``.
        host, port: where the connections go.
        max_idle: idle connections kept; more are closed when returned.
    """

    def __init__(self, scheme: str, host: str, port: int | None, max_idle: int = 16) -> None:
        self._cls: type = DeadlineHTTPSConnection if scheme == "https" else DeadlineHTTPConnection
        self._host, self._port, self._max_idle = host, port, max_idle
        self._idle: list[_Deadline] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self) -> tuple[Any, bool]:
        """A connection, and whether it was used before (a kept-alive one may have been closed by the server)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not read its parent's sockets
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop(), True
        return self.fresh(), False

    def fresh(self) -> Any:
        """A new, not yet connected connection."""
        return self._cls(self._host, self._port)

    def give_back(self, connection: Any) -> None:
        """Keep ``connection`` for the next request if it is still open, else drop it."""
        if connection.sock is None:
            return
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
