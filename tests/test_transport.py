"""The transport: rate limits shared across processes, 429 pauses, cut bodies, host
allow-list. Real sockets on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.errors import DeferredError, DisallowedHostError, RateLimitedError, TransientError
from snapcache.transport import Pool, RateLimiter, Transport

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
