"""The one place that touches httpx: host allow-list, per-pool rate limits shared across
processes, 429 pauses, bounded body reads, the gzip quirk, and retries.

It knows nothing of captures; the archive layer classifies what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sqlite3
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from .capture import header_map, netloc_of
from .config import Config
from .errors import DeferredError, DisallowedHostError, RateLimitedError, TransientError

T = TypeVar("T")

#: Bodies up to this size stay in memory; larger ones spill to a temporary file so that an
#: 80 MB PDF is never held in Python memory (pypdfium2 reads it from the path).
SPILL_BYTES: Final = 8 * 1024 * 1024
#: How much of a body to read when only its opening matters (redirects, error pages).
HEAD_BYTES: Final = 8192
#: Read limit meaning "the whole body, up to the configured cap".
FULL: Final = -1
_GZIP_MAGIC: Final = b"\x1f\x8b"
_GZIP_TYPES: Final = ("application/gzip", "application/x-gzip", "application/x-tar")

POOLS: Final = ("cdx", "playback", "availability", "save")

#: A connection that fails (refused, reset, or a connect timeout: no answer at all)
#: within this many ``pause_on_429`` periods after a 429 pause ended is taken for the
#: archive's firewall block (pitfall 1: 429s ignored for a minute get the IP dropped).
FIREWALL_SUSPECT_FACTOR: Final = 5.0
#: Such a block pauses every pool of that archive host for this many ``pause_on_429``
#: periods (10 min at the defaults), instead of retrying within seconds.
FIREWALL_PAUSE_FACTOR: Final = 10.0
#: Failures that mean "no connection": refused, reset or dropped before any answer. A slow
#: answer (a read timeout) is not one: the host is there.
_NO_CONNECTION: Final = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
    httpx.RemoteProtocolError,
)


class RateLimiter:
    """Token buckets per pool, kept in a small SQLite file so every process on the machine
    that uses the same file shares one budget (the archive counts per IP, not per process).

    A pool paused after a 429 stays paused for everyone until the pause ends.
    """

    def __init__(
        self,
        path: Path,
        per_minute: dict[str, float],
        per_host: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.path = path
        self.per_minute = dict(per_minute)
        #: Budgets of one archive host (``host[:port]``), overriding ``per_minute`` per pool.
        self.per_host = {host: dict(rates) for host, rates in (per_host or {}).items()}
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.closing(self._connect()) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS buckets (pool TEXT PRIMARY KEY, tokens REAL NOT NULL,"
                " updated REAL NOT NULL, paused_until REAL NOT NULL DEFAULT 0,"
                " last_429 REAL NOT NULL DEFAULT 0)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    @staticmethod
    def burst(per_minute: float) -> float:
        """Bucket capacity: one second's worth, at least one token.

        Small on purpose: with capacity C the most sent in any minute is C + rate, so a
        large burst would let a cold start overshoot the archive's per-minute window.
        """
        return max(1.0, per_minute / 60.0)

    def _take(self, key: str, rate_per_minute: float) -> float:
        """Take a token if one is there; return 0, or the seconds to wait before retrying."""
        capacity = self.burst(rate_per_minute)
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            # The clock is read under the write lock: read before it, a process that waited
            # for the lock would write an ``updated`` older than the one it replaces, and the
            # next taker would be credited that interval's tokens a second time (measured:
            # four processes got 80% more than the budget).
            now = time.time()
            try:
                row = conn.execute(
                    "SELECT tokens, updated, paused_until FROM buckets WHERE pool = ?", (key,)
                ).fetchone()
                if row is None:
                    tokens, updated, paused_until = capacity, now, 0.0
                    conn.execute(
                        "INSERT INTO buckets (pool, tokens, updated) VALUES (?, ?, ?)",
                        (key, tokens, now),
                    )
                else:
                    tokens, updated, paused_until = float(row[0]), float(row[1]), float(row[2])
                # Never move ``updated`` backwards (another host's clock, a clock step).
                now = max(now, updated)
                if paused_until > now:
                    conn.execute("COMMIT")
                    return paused_until - now
                rate = rate_per_minute / 60.0
                tokens = min(capacity, tokens + max(0.0, now - updated) * rate)
                if tokens >= 1.0:
                    conn.execute(
                        "UPDATE buckets SET tokens = ?, updated = ? WHERE pool = ?",
                        (tokens - 1.0, now, key),
                    )
                    conn.execute("COMMIT")
                    return 0.0
                conn.execute(
                    "UPDATE buckets SET tokens = ?, updated = ? WHERE pool = ?", (tokens, now, key)
                )
                conn.execute("COMMIT")
                return (1.0 - tokens) / rate
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def acquire(self, key: str, pool: str, max_wait: float) -> None:
        """Wait for a token of ``pool`` (under the archive ``key``), at most ``max_wait`` s.

        Raises :class:`DeferredError` when the wait would be longer (the pool is paused
        beyond it), so a caller defers instead of sleeping for an hour.
        """
        rate = self.per_host.get(key, {}).get(pool, self.per_minute.get(pool))
        if rate is None or math.isinf(rate):
            return
        deadline = time.monotonic() + max_wait
        while True:
            wait = await asyncio.to_thread(self._take, f"{key}|{pool}", rate)
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise DeferredError(
                    f"{pool} pool of {key} is paused or out of budget for {wait:.0f} s more"
                )
            await asyncio.sleep(min(wait, 5.0))

    def pause(self, key: str, pool: str, seconds: float) -> None:
        """Stop every request of ``pool`` for ``seconds``, in every process."""
        full = f"{key}|{pool}"
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()  # under the lock, as in _take
            conn.execute(
                "INSERT INTO buckets (pool, tokens, updated, paused_until, last_429)"
                " VALUES (?, 0, ?, ?, ?) ON CONFLICT(pool) DO UPDATE SET tokens = 0,"
                " updated = excluded.updated,"
                " paused_until = MAX(paused_until, excluded.paused_until),"
                " last_429 = excluded.last_429",
                (full, now, now + seconds, now),
            )
            conn.execute("COMMIT")

    def recently_paused(self, key: str, within: float) -> bool:
        """True if some pool of ``key`` is paused, or its pause ended less than ``within``
        seconds ago (what a connection failure right after a 429 is judged by)."""
        names = [f"{key}|{pool}" for pool in POOLS]
        marks = ",".join("?" * len(names))
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute(
                f"SELECT MAX(paused_until) FROM buckets WHERE pool IN ({marks})", names
            ).fetchone()
        until = float(row[0]) if row and row[0] is not None else 0.0
        return until > 0 and time.time() < until + within

    def paused_for(self, key: str, pool: str) -> float:
        """Seconds left on a pause of ``pool`` (0 when it is not paused)."""
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT paused_until FROM buckets WHERE pool = ?", (f"{key}|{pool}",)
            ).fetchone()
        return max(0.0, float(row[0]) - time.time()) if row else 0.0


@dataclass(slots=True)
class Response:
    """A response whose body was read (fully, or its head only) and closed."""

    url: str
    status: int
    headers: dict[str, str]
    head: bytes
    """The first bytes of the decoded body (always set)."""
    body: bytes | None = None
    """The whole decoded body when it was asked for and stayed small."""
    body_path: Path | None = None
    """The whole decoded body in a temporary file when it was large; caller removes it."""
    size: int = 0
    """Decoded body bytes received (the whole body when it was read)."""
    capped: bool = False
    """The body was longer than the size cap and was cut there."""

    def discard(self) -> None:
        """Remove the temporary file, if any."""
        if self.body_path is not None:
            with contextlib.suppress(OSError):
                self.body_path.unlink()
            self.body_path = None


@dataclass(slots=True)
class Stats:
    """Requests made by this transport, per pool."""

    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    retries: int = 0
    #: Connection failures right after a 429, taken for a firewall block (long pause).
    firewall_pauses: int = 0


class _BodySink:
    """Collects a body up to a cap, spilling to a temp file past SPILL_BYTES."""

    def __init__(self, cap: int, tmpdir: Path | None, head_bytes: int = HEAD_BYTES) -> None:
        self.cap = cap
        self.head_bytes = head_bytes
        self.tmpdir = tmpdir
        self.buffer = bytearray()
        self.file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.size = 0
        self.capped = False
        self.head = b""

    def write(self, data: bytes) -> bool:
        """Add data; return False once the cap is reached (stop reading)."""
        room = self.cap - self.size
        if len(data) > room:
            data = data[:room]
            self.capped = True
        if len(self.head) < self.head_bytes:
            self.head += data[: self.head_bytes - len(self.head)]
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
        else:
            self.buffer += data
            if len(self.buffer) > SPILL_BYTES:
                if self.tmpdir is not None:
                    self.tmpdir.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finish
                    prefix="body-", dir=self.tmpdir, delete=False
                )
                self.file.write(self.buffer)
                self.buffer = bytearray()
        return not self.capped

    def finish(self) -> tuple[bytes | None, Path | None]:
        if self.file is not None:
            self.file.close()
            return None, Path(self.file.name)
        return bytes(self.buffer), None

    def abandon(self) -> None:
        if self.file is not None:
            self.file.close()
            with contextlib.suppress(OSError):
                os.unlink(self.file.name)


class _Inflater:
    """Undoes the archive's double content-encoding quirk: gzip bytes delivered although we
    asked for identity (edgi web-monitoring-processing#309). Output is bounded by the cap, so
    a gzip bomb inflates to at most ``cap`` bytes."""

    def __init__(self) -> None:
        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes, limit: int) -> bytes:
        out = self.decoder.decompress(data, max(1, limit))
        return out

    @property
    def pending(self) -> bool:
        return bool(self.decoder.unconsumed_tail)

    def more(self, limit: int) -> bytes:
        tail = self.decoder.unconsumed_tail
        return self.decoder.decompress(tail, max(1, limit))


def _wants_inflate(headers: dict[str, str], first: bytes) -> bool:
    encoding = headers.get("content-encoding", "").lower()
    content_type = headers.get("content-type", "").lower()
    if not first.startswith(_GZIP_MAGIC):
        return False
    if "gzip" in encoding:
        return True
    # A raw gzip payload with no encoding header: inflate unless the capture *is* a gzip file.
    return not any(t in content_type for t in _GZIP_TYPES)


def per_host_budgets(config: Config) -> dict[str, dict[str, float]]:
    """Each archive's cdx and playback budgets, keyed by its host (the rate-limit key).

    Two archives on one host (two pywb collections, say) share its buckets, so the stricter
    budget of the two applies to both.
    """
    budgets: dict[str, dict[str, float]] = {}
    for entry in config.chain:
        mine = {"cdx": entry.cdx_per_minute, "playback": entry.playback_per_minute}
        known = budgets.setdefault(entry.netloc, mine)
        for pool, rate in mine.items():
            known[pool] = min(known[pool], rate)
    return budgets


class Transport:
    """Sends GET requests to the configured archive hosts, politely."""

    def __init__(
        self,
        config: Config,
        *,
        limiter: RateLimiter | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.allowed = config.allowed_hosts
        self.limiter = limiter or RateLimiter(
            config.rate_state_path,
            {
                "cdx": config.rates.cdx_per_minute,
                "playback": config.rates.playback_per_minute,
                "availability": config.rates.availability_per_minute,
                "save": config.save.per_minute,
            },
            per_host_budgets(config),
        )
        a = config.archive
        self.client = client or httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(a.read_timeout, connect=a.connect_timeout),
            headers={"User-Agent": a.user_agent, "Accept-Encoding": "identity"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            trust_env=False,
        )
        self.stats = Stats()
        self.tmpdir: Path | None = None
        #: Longest wait for a token or a pause; a batch run sets its --max-wait here.
        self.max_wait = config.rates.max_wait

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    def _check_host(self, url: str) -> str:
        netloc = netloc_of(url)
        if netloc not in self.allowed:
            raise DisallowedHostError(f"refusing to contact {netloc or url!r}: not an archive host")
        return netloc

    async def get(
        self,
        url: str,
        pool: str,
        *,
        want_body: Callable[[int, dict[str, str]], int],
        params: dict[str, str] | None = None,
        method: str = "GET",
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request, no retries: take a rate token, send, read the body. It is a GET
        unless ``method`` says otherwise; ``data`` is sent form-encoded and ``headers`` are
        added. ``want_body(status, headers)`` says how many bytes to read: :data:`FULL` for
        all of it up to the cap (then ``body``/``body_path`` hold it), else that many (only
        ``head`` holds them).

        Raises :class:`TransientError` for network failures, truncated bodies and the
        archive's own 429 (after pausing the pool), :class:`DeferredError` for a connection
        that fails right after a 429 (a firewall block: every pool of the host is paused
        ``pause_on_429 * 10``), :class:`DisallowedHostError` for hosts outside the allow-list.
        """
        key = self._check_host(url)
        await self.limiter.acquire(key, pool, self.max_wait)
        self.stats.requests[pool] += 1
        answered: list[bool] = []
        try:
            async with asyncio.timeout(self.config.archive.request_timeout):
                return await self._exchange(
                    url, pool, key, want_body, params, method, data, headers, answered
                )
        except TimeoutError as exc:
            raise TransientError(f"{pool} request timed out: {url}") from exc
        except httpx.TransportError as exc:
            if not answered and isinstance(exc, _NO_CONNECTION):
                self._check_firewall(key, exc)
            raise TransientError(f"{type(exc).__name__} from the archive: {exc}") from exc

    def _check_firewall(self, key: str, exc: BaseException) -> None:
        """A connection that failed before any answer, right after a 429 pause: the archive
        escalates ignored 429s to a firewall block (pitfall 1), so stop every pool of that
        host for much longer than a 429 pause and raise :class:`DeferredError` instead of
        retrying in seconds."""
        pause = self.config.rates.pause_on_429
        if not self.limiter.recently_paused(key, pause * FIREWALL_SUSPECT_FACTOR):
            return
        seconds = pause * FIREWALL_PAUSE_FACTOR
        for pool in POOLS:
            self.limiter.pause(key, pool, seconds)
        self.stats.firewall_pauses += 1
        # Deferred, not retried: knocking again, even after the pause, would only meet the
        # block again while it lasts (an hour at the Internet Archive). A run defers the
        # rest of its URLs; cron tries later.
        raise DeferredError(
            f"no connection to {key} right after a 429 ({type(exc).__name__}): taken for a "
            f"firewall block; every pool of {key} is paused for {seconds:.0f} s"
        ) from exc

    async def _exchange(
        self,
        url: str,
        pool: str,
        key: str,
        want_body: Callable[[int, dict[str, str]], int],
        params: dict[str, str] | None,
        method: str = "GET",
        data: dict[str, str] | None = None,
        extra_headers: dict[str, str] | None = None,
        answered: list[bool] | None = None,
    ) -> Response:
        async with self.client.stream(
            method, url, params=params, data=data, headers=extra_headers
        ) as resp:
            if answered is not None:
                answered.append(True)  # a response head arrived: the host is reachable
            headers = header_map(resp.headers.multi_items())
            if resp.status_code == 429 and "memento-datetime" not in headers:
                # The archive's own limit, not an archived 429: stop the whole pool for
                # everyone (pitfall 1); never retry it fast.
                self.stats.rate_limited += 1
                self.limiter.pause(key, pool, self.config.rates.pause_on_429)
                raise RateLimitedError(f"the archive answered 429 for the {pool} pool")
            limit = want_body(resp.status_code, headers)
            full = limit == FULL
            cap = self.config.archive.max_body_bytes if full else max(0, limit)
            sink = _BodySink(cap, self.tmpdir, head_bytes=cap if not full else HEAD_BYTES)
            raw_received = 0
            inflater: _Inflater | None = None
            first = True
            try:
                async for chunk in resp.aiter_raw():
                    raw_received += len(chunk)
                    if first:
                        first = False
                        if _wants_inflate(headers, chunk):
                            inflater = _Inflater()
                    piece = chunk if inflater is None else inflater.feed(chunk, cap - sink.size)
                    if not sink.write(piece):
                        break
                    while inflater is not None and inflater.pending and sink.size < cap:
                        if not sink.write(inflater.more(cap - sink.size)):
                            break
                    if sink.capped:
                        break
                    if not full and sink.size >= cap:
                        break
                    if inflater is not None and inflater.pending:
                        sink.capped = True
                        break
            except BaseException:
                sink.abandon()
                raise
            declared = headers.get("content-length", "")
            complete_read = full and not sink.capped
            if complete_read and declared.isdigit() and raw_received < int(declared):
                sink.abandon()
                raise TransientError(
                    f"body cut short: {raw_received} of {declared} bytes from {url}"
                )
            body, path = sink.finish() if full else (None, None)
            if not full:
                sink.abandon()
            return Response(
                url=str(resp.url),
                status=resp.status_code,
                headers=headers,
                head=sink.head,
                body=body,
                body_path=path,
                size=sink.size,
                capped=sink.capped,
            )

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it does not raise :class:`TransientError`, with exponential
        backoff and jitter, bounded in count and total time. A 429 is not retried fast: the
        limiter holds the next attempt until the pool's pause ends."""
        r = self.config.retry
        backoff = wait_exponential_jitter(
            multiplier=r.initial_backoff, max=r.max_backoff, jitter=r.initial_backoff
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimitedError):
                return 0.0
            return float(backoff(state))

        def count(state: RetryCallState) -> None:
            self.stats.retries += 1

        retryer = AsyncRetrying(
            stop=stop_after_attempt(r.max_attempts) | stop_after_delay(r.max_total_seconds),
            wait=wait,
            # A DeferredError ("not now") is not a TransientError, so it is never retried.
            retry=retry_if_exception_type(TransientError),
            before_sleep=count,
            reraise=True,
        )
        async for trial in retryer:
            with trial:
                return await attempt()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
