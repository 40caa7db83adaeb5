"""The rate-limit state in PostgreSQL (snapcache.pglimits): one budget for every process on
every host using the store, on the database's clock; ``[rates] scope`` "global" or "host".

Real PostgreSQL (tests/pgkit.py, one schema per test) and real processes; no mocks.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.cache.postgres import PostgresStore
from snapcache.config import config_from_mapping
from snapcache.errors import ConfigError, DeferredError
from snapcache.pglimits import PostgresLimiterState
from snapcache.transport import DailyBudget, Pool, RateLimiter

from tests import pgkit
from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.spn2 import SaveEmulator

YEAR_3000 = 32503680000.0


def _take(dsn: str, scope: str, host: str, n: int, rate: float, out: Any) -> None:
    """A process of its own (a host of its own, for scope "host") taking ``n`` tokens."""
    limiter = RateLimiter(PostgresLimiterState(dsn, scope=scope, host=host),
                          {Pool.PLAYBACK: rate})

    async def go() -> None:
        for _ in range(n):
            await limiter.acquire("archive", Pool.PLAYBACK, max_wait=60)
            out.put((host, time.time()))

    asyncio.run(go())
    limiter.close()


def _two_processes(dsn: str, scope: str, rate: float, n: int) -> list[tuple[str, float]]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_take, args=(dsn, scope, host, n, rate, queue))
             for host in ("host-a", "host-b")]
    for proc in procs:
        proc.start()
    taken = sorted((queue.get(timeout=60) for _ in range(2 * n)), key=lambda x: x[1])
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return taken


def _peak(times: list[float], window: float) -> int:
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


@pytest.mark.parametrize("scope", ["global", "host"])
def test_two_processes_share_one_budget_globally_or_each_have_their_own_per_host(
    scope: str,
) -> None:
    dsn = pgkit.new_schema()
    PostgresStore(dsn).close()  # the store made the tables
    rate, n = 600.0, 20  # 10 a second, burst 10
    taken = _two_processes(dsn, scope, rate, n)
    times = [t for _, t in taken]
    span = times[-1] - times[0]
    burst = RateLimiter.burst(rate)
    if scope == "global":
        # 40 tokens at 10/s with a burst of 10 take 3 s whoever takes them; each process
        # alone would have needed 1 s: the budget is shared across processes (hosts).
        assert span >= 2.7, span
        assert _peak(times, 1.0) <= burst + rate / 60.0 + 1
    else:
        # Each host its own bucket: both done in about 1 s, each within its own budget.
        assert span < 2.2, span
        for host in ("host-a", "host-b"):
            mine = [t for h, t in taken if h == host]
            assert _peak(mine, 1.0) <= burst + rate / 60.0 + 1, host


def test_pauses_are_shared_per_scope_and_save_pools_always_per_account() -> None:
    dsn = pgkit.new_schema()
    PostgresStore(dsn).close()
    rates = {Pool.PLAYBACK: 600.0, Pool.SAVE: 5.0}
    a = RateLimiter(PostgresLimiterState(dsn, scope="host", host="a"), rates)
    b = RateLimiter(PostgresLimiterState(dsn, scope="host", host="b"), rates)
    shared = RateLimiter(PostgresLimiterState(dsn, scope="global", host="c"), rates)
    try:
        a.pause("archive", Pool.PLAYBACK, 30.0)  # a 429 met behind host a's address
        assert 29 < a.paused_for("archive", Pool.PLAYBACK) <= 30
        assert b.paused_for("archive", Pool.PLAYBACK) == 0.0  # b has an address of its own
        assert shared.paused_for("archive", Pool.PLAYBACK) == 0.0
        a.pause("archive", Pool.SAVE, 30.0)  # Save Page Now counts per account: everyone
        assert 29 < b.paused_for("archive", Pool.SAVE) <= 30
        assert 29 < shared.paused_for("archive", Pool.SAVE) <= 30
        assert a.recently_paused("archive", 1.0) and not shared.recently_paused("x", 1.0)
        assert [(s.key, s.pool) for s in b.states()] == [("archive", Pool.SAVE)]
        assert {(s.pool, s.paused_for > 29) for s in a.states()} == {
            (Pool.PLAYBACK, True), (Pool.SAVE, True)}
    finally:
        for limiter in (a, b, shared):
            limiter.close()


def test_the_buckets_run_on_the_database_clock_not_the_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host whose clock is an hour ahead must not write times an hour ahead: the next
    taker on a right clock would see a bucket refilled "in the future" (or, the other way
    round, be credited an hour of tokens)."""
    import psycopg

    dsn = pgkit.new_schema()
    PostgresStore(dsn).close()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600.0)
    limiter = RateLimiter(PostgresLimiterState(dsn), {Pool.PLAYBACK: 600.0})
    try:
        asyncio.run(limiter.acquire("archive", Pool.PLAYBACK, max_wait=5))
        limiter.pause("archive", Pool.CDX, 10.0)
    finally:
        limiter.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT bucket, extract(epoch FROM clock_timestamp() - updated),"
            " extract(epoch FROM paused_until - clock_timestamp())"
            " FROM snapcache_rate_buckets ORDER BY bucket").fetchall()
    assert [r[0] for r in rows] == ["archive|cdx", "archive|playback"]
    for _, age, _pause in rows:
        assert 0 <= float(age) < 5, rows  # written on the server's clock, not ours
    assert 5 < float(rows[0][2]) <= 10


def test_times_from_the_future_are_not_trusted_in_postgres_either(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import psycopg

    dsn = pgkit.new_schema()
    PostgresStore(dsn).close()
    state = PostgresLimiterState(dsn)
    limiter = RateLimiter(state, {Pool.PLAYBACK: 120.0}, max_pause=30.0)
    try:
        asyncio.run(limiter.acquire("h", Pool.PLAYBACK, max_wait=5))
        with psycopg.connect(dsn, autocommit=True) as conn:  # the server's clock stepped back
            conn.execute("UPDATE snapcache_rate_buckets SET tokens = 0,"
                         " updated = clock_timestamp() + interval '1 hour'")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            asyncio.run(limiter.acquire("h", Pool.PLAYBACK, max_wait=5))
        assert time.monotonic() - started < 1.5
        assert "future" in caplog.text and state.location in caplog.text
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE snapcache_rate_buckets SET paused_until = to_timestamp(%s)",
                         (YEAR_3000,))
        assert 29 < limiter.paused_for("h", Pool.PLAYBACK) <= 30
        with pytest.raises(DeferredError, match="paused for 30 s more"):
            asyncio.run(limiter.acquire("h", Pool.PLAYBACK, max_wait=0))
    finally:
        limiter.close()


def test_the_daily_save_budget_is_counted_once_for_every_host() -> None:
    dsn = pgkit.new_schema()
    PostgresStore(dsn).close()
    one, other = PostgresLimiterState(dsn, scope="host", host="a"), PostgresLimiterState(
        dsn, scope="host", host="b")
    try:
        a, b = DailyBudget(one, 3), DailyBudget(other, 3)
        assert [a.take(), b.take(), a.take(), b.take(), a.take()] == [
            True, True, True, False, False]
    finally:
        one.close()
        other.close()


def test_fetchers_on_the_postgres_store_keep_their_limits_there_saves_included(
    tmp_path: Path, emulator: Any
) -> None:
    """Two fetchers standing for two hosts (each its own state file, were the limits kept
    there): the daily save budget of 1 lets only one of them submit."""
    spn = SaveEmulator(emulator, "ACCESS123", "SECRET456")
    dsn = pgkit.new_schema()
    urls = ["https://lost.example/page", "https://second.example/"]

    def config(name: str) -> Any:
        return emulator_config(
            tmp_path / name, emulator.base_url, cache={"backend": "postgres", "dsn": dsn},
            save={"enabled": True, "access_key": "ACCESS123", "secret_key": "SECRET456",
                  "poll_interval": 0.05, "poll_budget": 5.0, "per_minute": 6000.0,
                  "per_day": 1})

    emulator.add_capture("https://kept.example/", "20220101000000", body=html_page("K", "k"))
    with Fetcher(config("a")) as first:
        assert first.fetch("https://kept.example/").status == "ok"
        states = first.rate_limits()
        assert [(s.pool, s.per_minute) for s in states] == [(Pool.PLAYBACK, 480.0)]
        saved, _ = first.save(urls[:1])
    with Fetcher(config("b")) as second:
        # The same buckets, the first fetcher's submission included.
        assert {s.pool for s in second.rate_limits()} >= {Pool.PLAYBACK, Pool.SAVE}
        results, stats = second.save(urls[1:])
    assert [r.save_status for r in saved + results] == [  # type: ignore[union-attr]
        "success", "deferred"]
    assert stats.stopped and "daily save budget" in stats.stopped
    assert spn.submissions == urls[:1]
    for name in ("a", "b"):  # no state file: the limits live in PostgreSQL
        assert not (tmp_path / name / "ratelimit.sqlite").exists()


def test_rates_scope_is_global_or_host_and_anything_else_names_the_key() -> None:
    assert config_from_mapping({}).rates.scope == "global"
    assert config_from_mapping({"rates": {"scope": "host"}}).rates.scope == "host"
    for bad in ("machine", 3):
        with pytest.raises(ConfigError, match=r"rates\.scope"):
            config_from_mapping({"rates": {"scope": bad}}, source="t.toml")
