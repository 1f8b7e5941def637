"""Persistent verdict cache: a pair is never judged twice by the same judge.

Keys are the normalised (ground truth, prediction) pair plus the judge's identity (model and
prompt version), so changing the judge or its prompt starts a fresh key space instead of reusing
verdicts it did not give. Only the six categories are stored: errors, parse failures and
unresolved outcomes are never cached.

Backends:
- sqlite (default), one file shared by every process on a machine: WAL journal (readers never
  block the writer), a busy timeout for writers, ``INSERT OR IGNORE`` so that concurrent writers
  of the same pair cannot conflict. Not for network filesystems (WAL needs shared memory).
- Redis (``redis://host:6379/0``), for several nodes: one hash per judge identity, ``HSETNX``.

A cache that cannot be read (corrupt file, a lock held beyond the busy timeout, Redis down) raises
``CacheError`` with what to do; it never degrades silently into a miss on every lookup, which
would quietly turn a cheap run into one that sends everything to the LLM.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from speciarl.core.categories import Category, normalize_label
from speciarl.core.retry import Backoff, call_with_retries
from speciarl.verifier.redaction import redact_url

Pair = tuple[str, str]
SCHEMA_VERSION = "1"


class CacheError(RuntimeError):
    """The verdict cache cannot be used; the message says where it is and what to do."""


class VerdictCache(Protocol):
    location: str

    def get_many(self, judge_id: str, pairs: Sequence[Pair]) -> dict[Pair, Category]: ...

    def put_many(self, judge_id: str, verdicts: Mapping[Pair, Category]) -> int: ...

    def count(self, judge_id: str | None = None) -> int: ...

    def close(self) -> None: ...


def cache_key(ground_truth: str, prediction: str) -> Pair:
    """The normalised pair a verdict is stored under."""
    return normalize_label(ground_truth), normalize_label(prediction)


def default_cache_path() -> Path:
    """``$SPECIARL_CACHE/judge_verdicts.sqlite`` (default ``~/.cache/speciarl``), beside the built models."""
    root = Path(os.environ.get("SPECIARL_CACHE", Path.home() / ".cache" / "speciarl"))
    return root / "judge_verdicts.sqlite"


def open_verdict_cache(
    url: str | None = None, busy_timeout_s: float = 30.0, password_env: str | None = None
) -> VerdictCache:
    """A cache from a URL: None (the default sqlite file), a path, ``sqlite://<path>``, or ``redis://...``.

    A Redis password is read from the environment variable named ``password_env``, never from
    the URL (a URL's ``user:password@`` would be written to the run's saved configs).
    """
    if url is None or url == "":
        return SqliteVerdictCache(default_cache_path(), busy_timeout_s)
    if url.startswith(("redis://", "rediss://", "unix://")):
        password = os.environ.get(password_env) if password_env else None
        if password_env and not password:
            raise ValueError(f"the verdict cache's password variable {password_env!r} is not set")
        return RedisVerdictCache(url, timeout_s=busy_timeout_s, password=password)
    if url.startswith("sqlite://"):
        return SqliteVerdictCache(url[len("sqlite://") :], busy_timeout_s)
    if "://" in url:
        raise ValueError(
            f"unknown verdict cache URL {redact_url(url)!r}: expected a file path, sqlite://<path> "
            "or redis://host:port/db"
        )
    return SqliteVerdictCache(url, busy_timeout_s)


def _stored(location: str, judge_id: str, pair: Pair, value: str) -> Category:
    try:
        return Category(value)
    except ValueError:
        raise CacheError(
            f"verdict cache at {location} holds {value!r} for {pair} (judge {judge_id!r}), which is not "
            f"a category (expected one of {[c.value for c in Category]}): the cache is damaged or was "
            "written by another program; move it away or point the cache URL elsewhere"
        ) from None


# The k-th pause of a contended open lies between 0.01 * 2**k and 0.02 * 2**k s, at most 0.5 s.
_OPEN_BACKOFF = Backoff(base_s=0.02, max_s=0.5)


def _is_locked(error: Exception) -> bool:
    """A lock another process holds for a moment: worth trying again."""
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))


class SqliteVerdictCache:
    """Verdicts in one sqlite file, safe for several processes on one machine."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._connect()

    def __getstate__(self) -> dict[str, Any]:
        # Connections never cross a pickle or a fork: the other process opens its own.
        return {"path": self.path, "busy_timeout_s": self.busy_timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["busy_timeout_s"])

    def __repr__(self) -> str:
        return f"SqliteVerdictCache({self.location!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CacheError(f"cannot create the folder of the verdict cache {self.location}: {err}") from err
        with self._errors("open"):
            conn, schema = self._open_retrying()
        if schema != SCHEMA_VERSION:
            conn.close()
            raise CacheError(
                f"verdict cache at {self.location} has schema {schema!r}, this code reads "
                f"{SCHEMA_VERSION!r}: move the file away or point the cache URL elsewhere"
            )
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open_retrying(self) -> tuple[sqlite3.Connection, str]:
        """Open, switch to WAL and create the tables, retried while another process does the same.

        Two processes opening a new file at once can get "database is locked" at once, without
        sqlite's busy handler waiting: switching the journal mode (and a schema write racing a
        reader) needs a lock upgrade that sqlite refuses rather than risk a deadlock. The whole
        sequence is idempotent, so it is simply tried again until ``busy_timeout_s`` has passed.
        """

        def attempt() -> tuple[sqlite3.Connection, str]:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            try:
                return conn, self._prepare(conn)
            except BaseException:
                conn.close()
                raise

        return call_with_retries(
            attempt,
            backoff=_OPEN_BACKOFF,
            should_retry=_is_locked,
            deadline=time.monotonic() + self.busy_timeout_s,
        )

    def _prepare(self, conn: sqlite3.Connection) -> str:
        """WAL journal, the tables; returns the file's schema version."""
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise CacheError(
                f"verdict cache at {self.location}: sqlite refused the WAL journal (got {mode!r}); "
                "it cannot be shared safely between processes there (network filesystem?): "
                "use a local path or a redis:// cache"
            )
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (judge TEXT NOT NULL, ground_truth TEXT NOT NULL, "
            "prediction TEXT NOT NULL, verdict TEXT NOT NULL, created REAL NOT NULL, "
            "PRIMARY KEY (judge, ground_truth, prediction)) WITHOUT ROWID"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        (schema,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return schema

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise CacheError(
                    f"verdict cache at {self.location} stayed locked for more than "
                    f"{self.busy_timeout_s:g} s during {action}: another process holds a write lock "
                    "(a crashed writer, or a filesystem without working locks); stop it, or raise "
                    "busy_timeout_s, or use a separate cache file"
                ) from err
            raise CacheError(f"verdict cache at {self.location} failed during {action}: {err}") from err
        except sqlite3.DatabaseError as err:
            raise CacheError(
                f"verdict cache at {self.location} is not a readable sqlite database ({err}): it is "
                "corrupt or not a cache file; move it away (a new one is created) or point the cache "
                "URL elsewhere"
            ) from err

    def get_many(self, judge_id: str, pairs: Sequence[Pair]) -> dict[Pair, Category]:
        """Stored verdicts for the pairs that have one (keys as given; looked up normalised)."""
        found: dict[Pair, Category] = {}
        if not pairs:
            return found
        with self._lock, self._errors("lookup"):
            conn = self._connect()
            conn.execute("BEGIN")
            try:
                for pair in pairs:
                    row = conn.execute(
                        "SELECT verdict FROM verdicts WHERE judge = ? AND ground_truth = ? AND prediction = ?",
                        (judge_id, *cache_key(*pair)),
                    ).fetchone()
                    if row is not None:
                        found[pair] = _stored(self.location, judge_id, pair, row[0])
            finally:
                conn.execute("COMMIT")
        return found

    def put_many(self, judge_id: str, verdicts: Mapping[Pair, Category]) -> int:
        """Store verdicts; an existing verdict for a pair is kept. Returns how many rows were new."""
        rows = [
            (judge_id, *cache_key(*pair), Category(verdict).value, time.time())
            for pair, verdict in verdicts.items()
        ]
        if not rows:
            return 0
        with self._lock, self._errors("write"):
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?, ?)", rows)
                inserted = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return inserted

    def count(self, judge_id: str | None = None) -> int:
        with self._lock, self._errors("count"):
            conn = self._connect()
            if judge_id is None:
                return int(conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])
            return int(
                conn.execute("SELECT COUNT(*) FROM verdicts WHERE judge = ?", (judge_id,)).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


class RedisVerdictCache:
    """Verdicts in Redis, one hash per judge identity, shared by every node that reaches the server."""

    def __init__(
        self, url: str, prefix: str = "speciarl:verdicts", timeout_s: float = 5.0, password: str | None = None
    ) -> None:
        try:
            import redis
        except ImportError as err:
            raise CacheError(
                "a redis:// verdict cache needs the redis client: pip install 'speciarl[redis]'"
            ) from err
        self._redis_errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._response_error = redis.exceptions.ResponseError
        self.url = url
        self.location = redact_url(url)
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            **({"password": password} if password else {}),
        )
        with self._errors("connect"):
            self._client.ping()

    def __repr__(self) -> str:
        return f"RedisVerdictCache({self.location!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "prefix": self.prefix, "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["prefix"], state["timeout_s"])

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._redis_errors as err:
            raise CacheError(
                f"redis verdict cache at {self.location} unreachable during {action} "
                f"({type(err).__name__}): start the server or fix the cache URL"
            ) from None
        except self._response_error as err:
            raise CacheError(f"redis verdict cache at {self.location} refused {action}: {err}") from None

    def _key(self, judge_id: str) -> str:
        return f"{self.prefix}:{judge_id}"

    @staticmethod
    def _field(pair: Pair) -> str:
        return json.dumps(cache_key(*pair), ensure_ascii=False)

    def get_many(self, judge_id: str, pairs: Sequence[Pair]) -> dict[Pair, Category]:
        found: dict[Pair, Category] = {}
        pairs = list(pairs)
        with self._errors("lookup"):
            for start in range(0, len(pairs), 1000):
                chunk = pairs[start : start + 1000]
                values = self._client.hmget(self._key(judge_id), [self._field(p) for p in chunk])
                for pair, value in zip(chunk, values, strict=True):
                    if value is not None:
                        found[pair] = _stored(self.location, judge_id, pair, value)
        return found

    def put_many(self, judge_id: str, verdicts: Mapping[Pair, Category]) -> int:
        if not verdicts:
            return 0
        with self._errors("write"):
            pipe = self._client.pipeline(transaction=False)
            for pair, verdict in verdicts.items():
                pipe.hsetnx(self._key(judge_id), self._field(pair), Category(verdict).value)
            return int(sum(pipe.execute()))

    def count(self, judge_id: str | None = None) -> int:
        with self._errors("count"):
            if judge_id is not None:
                return int(self._client.hlen(self._key(judge_id)))
            return int(sum(self._client.hlen(k) for k in self._client.scan_iter(f"{self.prefix}:*")))

    def close(self) -> None:
        self._client.close()
