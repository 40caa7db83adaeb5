"""The transport: rate limits shared across processes, 429 pauses, cut bodies, host
allow-list. Real sockets on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.errors import (
    DeferredError,
    DisallowedHostError,
    RateLimitedError,
    TransientError,
    UsageError,
)
from snapcache.transport import (
    FULL,
    DailyBudget,
    Pool,
    RateLimiter,
    Transport,
    TransportStats,
    wait_at_most,
)

from tests.conftest import emulator_config
from tests.docgen import html_page


class RawServer:
    """A loopback server that answers every connection with fixed bytes, then closes.
    For failures an HTTP library server will not produce (a body cut short)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.recv(65536)
                conn.sendall(self.payload)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def cut_server() -> Iterator[RawServer]:
    payload = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
               b"Memento-Datetime: Tue, 27 Oct 2020 21:55:55 GMT\r\n"
               b"Content-Length: 5000\r\nConnection: close\r\n\r\n<html>only a little")
    server = RawServer(payload)
    yield server
    server.close()


def test_a_body_shorter_than_its_content_length_is_transient_and_retried(
    tmp_path: Path, cut_server: RawServer
) -> None:
    base = f"http://127.0.0.1:{cut_server.port}"
    config = emulator_config(tmp_path, base)
    with Fetcher(config) as f:
        record = f.fetch("https://example.org/cut")
    assert record.status == "error"
    assert record.error is not None
    assert record.preview == ""
    # Retried up to max_attempts (3 in the test config), then recorded, not cached as final.
    assert cut_server.connections == 3
    assert record.last_outcome == "error"


def test_requests_to_hosts_outside_the_configuration_are_refused(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, "http://127.0.0.1:9")

    async def go() -> None:
        transport = Transport(config)
        try:
            with pytest.raises(DisallowedHostError):
                await transport.request("GET", "http://127.0.0.2:9/x", Pool.PLAYBACK,
                                        want_body=lambda s, h: -1)
            with pytest.raises(DisallowedHostError):
                await transport.request("GET", "https://web.archive.org/web/x", Pool.PLAYBACK,
                                        want_body=lambda s, h: -1)
        finally:
            await transport.aclose()

    asyncio.run(go())


def _acquire_many(path: str, n: int, rate: float, out: Any) -> None:
    limiter = RateLimiter(Path(path), {Pool.PLAYBACK: rate})

    async def go() -> None:
        for _ in range(n):
            await limiter.acquire("archive", Pool.PLAYBACK, max_wait=60)
            out.put(time.time())

    asyncio.run(go())


def test_the_rate_limit_is_shared_by_processes_on_the_same_state_file(tmp_path: Path) -> None:
    """Pitfall 1: the archive counts per IP, so cron and CLI must share one budget."""
    rate = 600.0  # 10 per second, burst 10
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    path = str(tmp_path / "rl.sqlite")
    RateLimiter(Path(path), {Pool.PLAYBACK: rate})
    procs = [ctx.Process(target=_acquire_many, args=(path, 20, rate, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    times = sorted(queue.get(timeout=60) for _ in range(40))
    for p in procs:
        p.join(timeout=30)
    # 40 tokens at 10/s with a burst of 10 need at least 3 s whoever takes them; each
    # process alone would have needed only 1 s.
    span = times[-1] - times[0]
    assert span >= 2.7
    # And in no one-second window were more than burst + rate tokens taken.
    for t in times:
        assert sum(1 for u in times if t <= u < t + 1.0) <= 21


def test_a_429_pauses_the_pool_for_every_process(tmp_path: Path) -> None:
    path = tmp_path / "rl.sqlite"
    one = RateLimiter(path, {Pool.CDX: 24.0})
    other = RateLimiter(path, {Pool.CDX: 24.0})
    one.pause("archive", Pool.CDX, 30.0)
    assert 29 < other.paused_for("archive", Pool.CDX) <= 30

    async def go() -> None:
        with pytest.raises(DeferredError):
            await other.acquire("archive", Pool.CDX, max_wait=5)

    asyncio.run(go())


def test_the_archives_429_pauses_the_pool_and_is_never_retried_fast(
    tmp_path: Path, emulator: Any
) -> None:
    """Pitfall 1: no Retry-After; pause at least pause_on_429 for everyone."""
    emulator.set_rate_limits(playback_per_minute=3, window_seconds=2.0)
    for i in range(4):
        emulator.add_capture(f"https://example.org/p{i}", "20220101000000",
                             body=html_page(f"P{i}", "text"))
    config = emulator_config(tmp_path, emulator.base_url,
                             rates={"playback_per_minute": 6000.0, "pause_on_429": 2.0},
                             retry={"max_attempts": 4})
    with Fetcher(config) as f:
        started = time.monotonic()
        records = [f.fetch(f"https://example.org/p{i}") for i in range(4)]
        elapsed = time.monotonic() - started
    assert all(r.status == "ok" for r in records)
    # Each 429 cost one pause (2 s), and the requests right after a 429 were not sent
    # until the pause was over: so 429s are few, and time passed.
    assert 1 <= emulator.count_429 <= 3
    assert elapsed >= 2.0 * emulator.count_429 * 0.9


def test_transient_errors_are_bounded_in_count(tmp_path: Path, emulator: Any) -> None:
    emulator.set_outage(503)
    config = emulator_config(tmp_path, emulator.base_url, retry={"max_attempts": 2})
    with Fetcher(config) as f:
        record = f.fetch("https://example.org/x")
    assert record.status == "error"
    assert emulator.counts["playback"] == 2


def test_transient_error_type_is_public() -> None:
    assert issubclass(RateLimitedError, TransientError)


def test_a_redirect_to_another_host_is_refused_recorded_and_never_requested(
    tmp_path: Path,
) -> None:
    """Only configured archive hosts are contacted: a second loopback server named in a
    redirect receives nothing."""
    other = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    elsewhere = f"http://127.0.0.1:{other.port}/web/20200101000000id_/https://example.org/"
    archive = RawServer(
        b"HTTP/1.1 302 FOUND\r\nLocation: " + elsewhere.encode()
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    try:
        config = emulator_config(tmp_path, f"http://127.0.0.1:{archive.port}")
        with Fetcher(config) as f:
            record = f.fetch("https://example.org/")
        assert record.status == "error"
        assert record.error is not None and "non-archive host" in record.error
        assert elsewhere in record.redirects
        assert archive.connections == 1
        assert other.connections == 0
    finally:
        other.close()
        archive.close()


# --- pools: every one declared, budgeted and paused ---------------------------------------


def _answering(status: str, body: bytes = b"{}") -> RawServer:
    return RawServer(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                     + body)


def test_save_status_polls_take_a_token_and_honour_a_429_pause(tmp_path: Path) -> None:
    """Status polls of Save Page Now jobs go to the archive host too: they have a budget
    ([save] per_minute, a bucket of their own) and stop while their pool is paused."""
    ok, limited = _answering("200 OK", b'{"status": "pending"}'), _answering("429 Too Many")
    try:
        config = emulator_config(tmp_path, f"http://127.0.0.1:{ok.port}",
                                 archive={"extra_hosts": [f"127.0.0.1:{limited.port}"]},
                                 rates={"pause_on_429": 60.0})
        key_ok, key_limited = f"127.0.0.1:{ok.port}", f"127.0.0.1:{limited.port}"

        async def go() -> TransportStats:
            transport = Transport(config)
            try:
                response = await transport.request(
                    "GET", f"http://{key_ok}/save/status/spn2-1", Pool.SAVE_STATUS,
                    want_body=lambda s, h: FULL)
                assert response.status == 200 and response.body == b'{"status": "pending"}'
                # The default budget (5/min) holds one token: the next poll must wait ~12 s.
                with wait_at_most(1.0), pytest.raises(DeferredError, match="save_status"):
                    await transport.request("GET", f"http://{key_ok}/save/status/spn2-1",
                                            Pool.SAVE_STATUS, want_body=lambda s, h: FULL)
                with pytest.raises(RateLimitedError):
                    await transport.request(
                        "GET", f"http://{key_limited}/save/status/spn2-2", Pool.SAVE_STATUS,
                        want_body=lambda s, h: FULL)
                # Paused for everyone: the next poll is not sent while the pause lasts.
                assert transport.limiter.paused_for(key_limited, Pool.SAVE_STATUS) > 50
                with wait_at_most(5.0), pytest.raises(DeferredError):
                    await transport.request(
                        "GET", f"http://{key_limited}/save/status/spn2-2", Pool.SAVE_STATUS,
                        want_body=lambda s, h: FULL)
                return transport.stats_snapshot()
            finally:
                await transport.aclose()

        stats = asyncio.run(go())
    finally:
        ok.close()
        limited.close()
    assert (ok.connections, limited.connections) == (1, 1)
    assert stats.requests == {"save_status": 2}
    assert (stats.rate_limited, stats.pauses, stats.firewall_pauses) == (1, 1, 0)


def test_every_pool_is_declared_with_its_budget(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, "http://127.0.0.1:9", save={"per_minute": 4.0},
                             rates={"cdx_per_minute": 6.0, "playback_per_minute": 60.0})
    limiter = RateLimiter.from_config(config)
    assert {pool.value for pool in Pool} == {"cdx", "playback", "save", "save_status"}
    assert {pool: limiter.budget_for("127.0.0.1:9", pool) for pool in Pool} == {
        Pool.CDX: 6.0, Pool.PLAYBACK: 60.0, Pool.SAVE: 4.0, Pool.SAVE_STATUS: 4.0}


def test_a_request_on_an_undeclared_pool_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    server = _answering("200 OK")
    try:
        config = emulator_config(tmp_path, f"http://127.0.0.1:{server.port}")

        async def go() -> None:
            transport = Transport(config)
            try:
                for pool in ("availability", "Save", ""):
                    with pytest.raises(UsageError, match="unknown rate-limit pool"):
                        await transport.request(
                            "GET", f"http://127.0.0.1:{server.port}/x",
                            pool,  # type: ignore[arg-type]
                            want_body=lambda s, h: FULL)
                with pytest.raises(UsageError):
                    await transport.limiter.acquire(
                        "h", "availability", max_wait=1)  # type: ignore[arg-type]
                assert transport.stats_snapshot().requests == {}
            finally:
                await transport.aclose()

        asyncio.run(go())
    finally:
        server.close()
    assert server.connections == 0
    with pytest.raises(UsageError):
        RateLimiter(tmp_path / "rl.sqlite", {"availability": 12.0})  # type: ignore[dict-item]
    with pytest.raises(UsageError):
        RateLimiter(tmp_path / "rl.sqlite", {Pool.CDX: 1.0},
                    {"h": {"bogus": 1.0}})  # type: ignore[dict-item]


# --- wait_at_most: per task, the transport unchanged ------------------------------------


def test_wait_at_most_scopes_apply_per_task_without_changing_the_transport(
    tmp_path: Path,
) -> None:
    server = _answering("200 OK")
    try:
        config = emulator_config(tmp_path, f"http://127.0.0.1:{server.port}",
                                 rates={"max_wait": 30.0})
        key = f"127.0.0.1:{server.port}"
        url = f"http://{key}/web/20240101000000id_/https://example.com/"  # a replay URL

        async def go() -> None:
            transport = Transport(config)
            before = dict(vars(transport))
            try:
                assert transport.max_wait == 30.0  # rates.max_wait outside any scope
                transport.limiter.pause(key, Pool.PLAYBACK, 1.0)

                async def hasty() -> str:
                    with wait_at_most(0.2):
                        try:
                            await transport.request("GET", url, Pool.PLAYBACK,
                                                    want_body=lambda s, h: FULL)
                        except DeferredError:
                            return "deferred"
                    return "sent"

                async def patient() -> str:
                    # Started while hasty's scope is in force elsewhere: not affected.
                    await asyncio.sleep(0.05)
                    assert transport.max_wait == 30.0
                    await transport.request("GET", url, Pool.PLAYBACK,
                                            want_body=lambda s, h: FULL)
                    return "sent"

                async def inherits() -> float:
                    return transport.max_wait

                with wait_at_most(7.0):
                    # A task created inside the block inherits the scope, nested ones win.
                    inherited = await asyncio.create_task(inherits())
                    with wait_at_most(3.0):
                        assert transport.max_wait == 3.0
                    assert transport.max_wait == 7.0
                assert inherited == 7.0
                assert await asyncio.gather(hasty(), patient()) == ["deferred", "sent"]
                assert transport.max_wait == 30.0
                assert vars(transport).keys() == before.keys()
                assert all(vars(transport)[k] is v for k, v in before.items())
            finally:
                await transport.aclose()

        asyncio.run(go())
    finally:
        server.close()
    assert server.connections == 1  # only the patient request was sent
    with pytest.raises(ValueError), wait_at_most(float("nan")):
        pass


# --- reading the shared state --------------------------------------------------------


def test_rate_limiter_states_read_the_shared_file_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "rl.sqlite"
    limiter = RateLimiter(path, {Pool.CDX: 60.0, Pool.PLAYBACK: 600.0, Pool.SAVE: 5.0},
                          {"b.example": {Pool.CDX: 6.0}})
    assert limiter.states() == []

    async def take() -> None:
        await limiter.acquire("a.example", Pool.PLAYBACK, max_wait=5)
        await limiter.acquire("b.example", Pool.CDX, max_wait=5)

    asyncio.run(take())
    other = RateLimiter(path, {Pool.SAVE: 5.0})  # another process on the same file
    other.pause("a.example", Pool.SAVE, 30.0)
    # A bucket of a pool older versions had is ignored, not an error.
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO buckets (pool, tokens, updated) VALUES (?, 1, 0)",
                      ("a.example|availability",))
    raw_before = _raw_buckets(path)
    states = limiter.states()
    assert _raw_buckets(path) == raw_before  # reading changed nothing
    assert [(s.key, s.pool) for s in states] == [
        ("a.example", Pool.PLAYBACK), ("a.example", Pool.SAVE), ("b.example", Pool.CDX)]
    playback, save, cdx = states
    assert playback.per_minute == 600.0 and 9.0 - 0.5 <= playback.tokens <= 10.0
    assert playback.paused_for == 0.0
    assert save.pool is Pool.SAVE and 29 < save.paused_for <= 30 and save.tokens == 0.0
    assert cdx.per_minute == 6.0 and 0.0 <= cdx.tokens < 0.1  # burst 1, just taken
    assert limiter.paused_for("a.example", Pool.SAVE) == pytest.approx(save.paused_for, abs=1)


def _raw_buckets(path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return sorted(conn.execute("SELECT * FROM buckets").fetchall())


def test_the_daily_save_budget_shares_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "rl.sqlite"
    RateLimiter(path, {Pool.SAVE: 5.0}).pause("h", Pool.SAVE, 1.0)
    one, other = DailyBudget(path, 3), DailyBudget(path, 3)
    assert [one.take(), other.take(), one.take(), other.take()] == [True, True, True, False]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"buckets", "save_daily"} <= tables


def test_spilled_bodies_go_to_the_configured_temp_dir(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, "http://127.0.0.1:9")

    async def go() -> tuple[Path, Path]:
        default, chosen = Transport(config), Transport(config, tmpdir=tmp_path / "mine")
        await default.aclose()
        await chosen.aclose()
        return default.tmpdir, chosen.tmpdir

    assert asyncio.run(go()) == (config.cache_path / "tmp", tmp_path / "mine")


def test_a_stats_snapshot_does_not_change_with_later_requests(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, "http://127.0.0.1:9")

    async def go() -> tuple[TransportStats, TransportStats]:
        transport = Transport(config)
        try:
            first = transport.stats_snapshot()
            transport.stats.requests["cdx"] += 2
            transport.stats.retries += 1
            return first, transport.stats_snapshot()
        finally:
            await transport.aclose()

    first, second = asyncio.run(go())
    assert first == TransportStats(requests={}, rate_limited=0, retries=0, pauses=0,
                                   firewall_pauses=0)
    assert second.requests == {"cdx": 2} and second.retries == 1
    with pytest.raises(TypeError):
        second.requests["cdx"] = 5  # type: ignore[index]
