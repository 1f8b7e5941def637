"""The persistent verdict cache: sqlite and Redis, restarts, identities, damage, two writers at once."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3

import pytest

from chat_server import ChatCompletionsServer
from judge_support import RedisServer, open_fresh_caches_at_once, verdict_for, write_verdicts_concurrently
from speciarl.core.categories import Category
from speciarl.data.synthetic import shapes_taxonomy
from speciarl.verifier.cache import CacheError, SqliteVerdictCache, open_verdict_cache
from speciarl.verifier.llm_http import LLMHttpJudge
from speciarl.verifier.taxonomy_judge import TaxonomyJudge
from speciarl.verifier.tiered import TieredJudge

NEEDS_REDIS = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="no redis-server binary on PATH: `apt-get install -y redis-server` (.ci/run installs it)",
)
GT = "crimson circle"
UNKNOWN = ["crimsn circle", "reddish disk", "a round red thing", "circel", "crimson circle-ish"]


@pytest.fixture
def redis_url(tmp_path):
    pytest.importorskip("redis", reason="the redis client is not installed: pip install 'speciarl[redis]'")
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary on PATH: `apt-get install -y redis-server` (.ci/run installs it)")
    with RedisServer(tmp_path / "redis") as server:
        yield server.url


@pytest.fixture(params=["sqlite", "redis"])
def cache_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "verdicts.sqlite")
    return request.getfixturevalue("redis_url")


def run_once(url: str, cache_url: str):
    """A fresh judge and a fresh cache connection, as after a restart."""
    llm = LLMHttpJudge(url, "judge-under-test", timeout_s=1.0, max_retries=0, backoff_s=0.0)
    judge = TieredJudge(
        llm, TaxonomyJudge(shapes_taxonomy(), unresolved_as_wrong=False), open_verdict_cache(cache_url)
    )
    predictions = ["red disc", "circle", *UNKNOWN, *UNKNOWN]
    verdicts = judge.judge([GT] * len(predictions), predictions)
    judge.cache.close()
    return verdicts, judge.last_stats


class TestBothBackends:
    def test_round_trip_normalised_keys_and_first_verdict_wins(self, cache_url):
        cache = open_verdict_cache(cache_url)
        assert cache.put_many("judge-a", {("Crimson Circle", "Red Disc!"): Category.SPECIFIC}) == 1
        # the same normalised pair again: kept as it was
        assert cache.put_many("judge-a", {("crimson circle", "red disc"): Category.WRONG}) == 0
        assert cache.get_many("judge-a", [("crimson  circle", "red disc"), ("x", "y")]) == {
            ("crimson  circle", "red disc"): Category.SPECIFIC
        }
        # another judge identity (model or prompt version) does not see it
        assert cache.get_many("judge-b", [("crimson circle", "red disc")]) == {}
        assert cache.count("judge-a") == 1 and cache.count("judge-b") == 0
        with pytest.raises(ValueError):
            cache.put_many("judge-a", {("a", "b"): "judge error"})
        cache.close()

    def test_a_second_identical_run_makes_zero_llm_calls(self, cache_url):
        with ChatCompletionsServer(lambda r: "less specific") as server:
            first, stats1 = run_once(server.url, cache_url)
            calls_first = len(server.completions)
            second, stats2 = run_once(server.url, cache_url)
            calls_second = len(server.completions) - calls_first
        assert calls_first == len(UNKNOWN)  # each unknown pair once, though it appears twice
        assert stats1["llm"] == 2 * len(UNKNOWN)
        assert calls_second == 0
        assert second == first
        assert stats2["cache"] == 2 * len(UNKNOWN) and stats2["llm"] == 0

    def test_two_processes_writing_at_once_lose_nothing(self, cache_url):
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(2)
        # overlapping ranges: 0..1199 and 400..1599, written 8 pairs per transaction
        jobs = [(cache_url, "judge-x", 0, 1200, barrier, 8), (cache_url, "judge-x", 400, 1600, barrier, 8)]
        results = ctx.Queue()
        workers = [ctx.Process(target=write_verdicts_concurrently, args=(*job, results)) for job in jobs]
        for worker in workers:
            worker.start()
        reports = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
            assert worker.exitcode == 0
        inserted = [n for n, _, _ in reports]
        (_, start_a, end_a), (_, start_b, end_b) = reports
        assert start_a < end_b and start_b < end_a, "the two writers should have overlapped in time"
        cache = open_verdict_cache(cache_url)
        # every pair stored exactly once, whoever won the race for the 800 shared ones
        assert sum(inserted) == 1600
        assert cache.count("judge-x") == 1600
        pairs = [(f"truth {i}", f"prediction {i}") for i in range(1600)]
        found = cache.get_many("judge-x", pairs)
        assert found == {pair: verdict_for(i) for i, pair in enumerate(pairs)}
        cache.close()


class TestSqlite:
    def test_default_location_is_beside_the_built_models(self, tmp_path, monkeypatch):
        monkeypatch.setenv("SPECIARL_CACHE", str(tmp_path / "spc"))
        cache = open_verdict_cache(None)
        assert cache.location == str(tmp_path / "spc" / "judge_verdicts.sqlite")
        assert isinstance(open_verdict_cache(f"sqlite://{tmp_path}/other.sqlite"), SqliteVerdictCache)

    def test_a_corrupt_file_is_a_clear_error(self, tmp_path):
        path = tmp_path / "verdicts.sqlite"
        path.write_bytes(b"this is not a database, just some bytes " * 200)
        with pytest.raises(CacheError, match=r"not a readable sqlite database.*move it away"):
            SqliteVerdictCache(path)

    def test_a_damaged_entry_is_a_clear_error_not_a_miss(self, tmp_path):
        path = tmp_path / "verdicts.sqlite"
        cache = SqliteVerdictCache(path)
        with sqlite3.connect(path) as raw:
            raw.execute("INSERT INTO verdicts VALUES ('j', 'a', 'b', 'banana', 0)")
        with pytest.raises(CacheError, match="'banana'.*not a category"):
            cache.get_many("j", [("a", "b")])

    def test_a_lock_held_too_long_is_a_clear_error(self, tmp_path):
        path = tmp_path / "verdicts.sqlite"
        cache = SqliteVerdictCache(path, busy_timeout_s=0.2)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(CacheError, match=r"stayed locked for more than 0.2 s"):
                cache.put_many("j", {("a", "b"): Category.WRONG})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # once the lock is gone the same cache works
        assert cache.put_many("j", {("a", "b"): Category.WRONG}) == 1

    def test_unknown_url_scheme_is_refused(self):
        with pytest.raises(ValueError, match="unknown verdict cache URL 'mongodb://\\*\\*\\*@db/x'"):
            open_verdict_cache("mongodb://user:pw@db/x")


@NEEDS_REDIS
class TestRedis:
    def test_redis_down_is_a_clear_error(self):
        pytest.importorskip("redis")
        from judge_support import free_port

        with pytest.raises(
            CacheError, match=r"redis verdict cache at redis://\*\*\*@127.0.0.1:\d+/0 unreachable"
        ):
            open_verdict_cache(f"redis://user:secret@127.0.0.1:{free_port()}/0", busy_timeout_s=0.5)


def test_processes_opening_a_new_sqlite_cache_at_once_all_succeed(tmp_path):
    """Four processes open each of 30 new cache files at the same moment (a barrier per file).

    Switching a new file to WAL can fail at once with "database is locked" (sqlite refuses a lock
    upgrade rather than wait); the cache retries its idempotent open. Before it did, 10 of 160
    such opens failed on this machine (a CI run died on one).
    """
    ctx = multiprocessing.get_context("spawn")
    workers_n, files = 4, 30
    paths = [str(tmp_path / f"cache-{i}" / "verdicts.sqlite") for i in range(files)]
    barrier = ctx.Barrier(workers_n)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=open_fresh_caches_at_once, args=(paths, barrier, results))
        for _ in range(workers_n)
    ]
    for worker in workers:
        worker.start()
    failures = [f for _ in workers for f in results.get(timeout=300)]
    for worker in workers:
        worker.join(timeout=60)
    assert failures == []
    for path in paths:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
