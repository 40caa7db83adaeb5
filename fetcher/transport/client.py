"""The one place that touches httpx: host allow-list, the paths each pool may request,
per-pool rate limits, 429 pauses and firewall blocks, bounded body reads, and retries.

It knows nothing of captures; the archive layer classifies what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import types
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from ..capture import header_map, netloc_of
from ..config import Config
from ..errors import (
    ArchiveProtocolError,
    ArchiveUnreachableError,
    DeadlineExceededError,
    DeferredError,
    DisallowedHostError,
    DisallowedRequestError,
    RateLimitedError,
    TransientError,
)
from .body import Response, read_body
from .environment import build_client
from .limits import FIREWALL_PAUSE_FACTOR as FIREWALL_PAUSE_FACTOR
from .limits import PathRule, Pool, RateLimiter, as_pool

T = TypeVar("T")

#: A connection that fails (refused, reset, or a connect timeout: no answer at all)
#: within this many ``pause_on_429`` periods after a 429 pause ended is taken for the
#: archive's firewall block (pitfall 1: 429s ignored for a minute get the IP dropped).
FIREWALL_SUSPECT_FACTOR: Final = 5.0
# FIREWALL_PAUSE_FACTOR (how many ``pause_on_429`` periods such a block pauses every pool
# of the host) lives with the limiter, which also caps every pause at it; re-exported here.
#: Failures that mean "no connection": refused, reset or dropped before any answer. A slow
#: answer (a read timeout) is not one: the host is there.
_NO_CONNECTION: Final = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
    httpx.RemoteProtocolError,
)
#: The part of those that happens before a connection exists: the host name does not
#: resolve, or the host refuses or ignores the connection. Nothing of the archive answered,
#: so it says nothing about the URL (offline, every URL fails this way).
_CONNECT_FAILED: Final = (httpx.ConnectError, httpx.ConnectTimeout)

#: What httpx raises on an answer it cannot take apart, besides its transport errors: a
#: ``Location`` that is no URL (``mailto:...`` fails while httpx prepares the redirect it
#: would follow), a cookie or header it chokes on. None of it may pass to be retried or
#: to escape as a traceback: each becomes :class:`ArchiveProtocolError`.
_UNUSABLE_ANSWER: Final = (
    httpx.InvalidURL, httpx.DecodingError, httpx.TooManyRedirects, httpx.CookieConflict,
    httpx.StreamError, ValueError, OverflowError, UnicodeError, LookupError,
)

WantBody = Callable[[int, dict[str, str]], int]
"""``want_body(status, headers)``: how many body bytes to read (:data:`FULL`: all of it)."""

# --- how long a request may wait ---------------------------------------------------------

_MAX_WAIT: ContextVar[float | None] = ContextVar("snapcache_max_wait", default=None)


@contextlib.contextmanager
def wait_at_most(seconds: float) -> Iterator[None]:
    """Within this block, a request waits at most ``seconds`` for a rate token or for a 429
    pause to end, then raises :class:`DeferredError` instead of sleeping on.

    The scope belongs to the current task: asyncio tasks created inside the block inherit
    it, other tasks are not affected, and no transport changes. The innermost block wins.
    Outside any block a transport waits at most its ``rates.max_wait``.
    """
    if not seconds >= 0:  # also refuses NaN
        raise ValueError(f"wait_at_most needs a number of seconds >= 0, got {seconds!r}")
    token = _MAX_WAIT.set(float(seconds))
    try:
        yield
    finally:
        _MAX_WAIT.reset(token)


# --- how long one URL may take -----------------------------------------------------------


@dataclass(slots=True)
class Deadline:
    """The time one URL may spend on requests, hops and retries: ``seconds`` from when it
    started, not counting the time spent waiting for rate tokens or 429 pauses (a busy run
    waits its turn; that is not the archive being slow)."""

    seconds: float
    started: float = field(default_factory=time.monotonic)
    waited: float = 0.0

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.seconds - (time.monotonic() - self.started - self.waited)

    def exceeded(self) -> DeadlineExceededError:
        """The error to raise once it has passed."""
        return DeadlineExceededError(
            f"took longer than {self.seconds:g} s (archive.url_deadline); no archive "
            "answered in time")


_DEADLINE: ContextVar[Deadline | None] = ContextVar("snapcache_url_deadline", default=None)


@contextlib.contextmanager
def url_deadline(seconds: float) -> Iterator[Deadline]:
    """Within this block, requests of the current task (and of tasks it starts) share one
    :class:`Deadline` of ``seconds``: a request that would start after it raises
    :class:`DeadlineExceededError`, and one in flight is cut when it passes (its timeout is
    the smaller of ``request_timeout`` and what is left)."""
    if not seconds > 0:
        raise ValueError(f"url_deadline needs a number of seconds > 0, got {seconds!r}")
    deadline = Deadline(float(seconds))
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


# --- counting --------------------------------------------------------------------------


@dataclass(slots=True)
class Stats:
    """What this transport did so far (counters it updates as it goes).

    Read a consistent copy with :meth:`Transport.stats_snapshot`.
    """

    requests: Counter[str] = field(default_factory=Counter)
    """Requests sent (or attempted), per pool name."""
    rate_limited: int = 0
    """The archive's own 429s met."""
    retries: int = 0
    pauses: int = 0
    """Pauses this transport started: one per 429 met, one per firewall block."""
    firewall_pauses: int = 0
    """Connection failures right after a 429, taken for a firewall block (long pause)."""


@dataclass(frozen=True, slots=True)
class TransportStats:
    """A snapshot of :class:`Stats` that later requests do not change."""

    requests: Mapping[str, int]
    """Requests per pool name (``cdx``, ``playback``, ``save``, ``save_status``)."""
    rate_limited: int
    retries: int
    pauses: int
    firewall_pauses: int


# --- the client ------------------------------------------------------------------------


class Transport:
    """Sends requests to the configured archive hosts, politely: each one on a declared
    :class:`Pool`, after taking that pool's rate token."""

    def __init__(
        self,
        config: Config,
        *,
        limiter: RateLimiter | None = None,
        client: httpx.AsyncClient | None = None,
        tmpdir: Path | None = None,
    ) -> None:
        self.config = config
        self.allowed = config.allowed_hosts
        #: What each pool may request (checked on every request as it will be sent).
        self.path_rules: dict[Pool, tuple[PathRule, ...]] = {
            pool: pool.path_rules(config) for pool in Pool
        }
        self.limiter = limiter or RateLimiter.from_config(config)
        # Proxies and CA certificates come from the environment, read explicitly
        # (never .netrc): see snapcache.transport.environment.
        self.client = client or build_client(config)
        self.stats = Stats()
        #: Archive hosts (``host[:port]``) this transport has connected to at least once.
        self.reached: set[str] = set()
        #: Where bodies too large for memory spill (see :data:`SPILL_BYTES`).
        self.tmpdir: Path = tmpdir if tmpdir is not None else config.cache_path / "tmp"

    @property
    def max_wait(self) -> float:
        """Longest a request made now waits for a token or a pause: the innermost
        :func:`wait_at_most` of this task, else ``rates.max_wait``."""
        scoped = _MAX_WAIT.get()
        return self.config.rates.max_wait if scoped is None else scoped

    def stats_snapshot(self) -> TransportStats:
        """What this transport has done so far, frozen."""
        s = self.stats
        return TransportStats(
            requests=types.MappingProxyType(dict(s.requests)),
            rate_limited=s.rate_limited,
            retries=s.retries,
            pauses=s.pauses,
            firewall_pauses=s.firewall_pauses,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    def _check_host(self, url: str) -> str:
        netloc = netloc_of(url)
        if netloc not in self.allowed:
            raise DisallowedHostError(f"refusing to contact {netloc or url!r}: not an archive host")
        return netloc

    def check_request(self, request: httpx.Request, pool: Pool) -> None:
        """Refuse ``request`` unless ``pool`` may send it: its host is an archive host and
        its path, as httpx will send it (dot segments already resolved), is one the pool's
        :meth:`Pool.path_rules` allow. Raises :class:`DisallowedRequestError` (or
        :class:`DisallowedHostError` for a foreign host): the last wall before a citation
        URL reaches another endpoint, or another pool's budget."""
        url = request.url
        netloc = self._check_host(str(url))
        path = url.raw_path.split(b"?", 1)[0].decode("ascii", errors="replace")
        if any(rule.allows(netloc, path) for rule in self.path_rules[pool]):
            return
        shown = path if len(path) <= 200 else path[:200] + "..."
        raise DisallowedRequestError(
            f"refusing to send {request.method} {shown!r} to {netloc} on the {pool} pool: "
            f"outside the paths that pool may request"
        )

    async def request(
        self,
        method: str,
        url: str,
        pool: Pool,
        *,
        want_body: WantBody,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> Response:
        """One request, no retries: take a rate token of ``pool``, send, read the body.
        ``data`` is sent form-encoded and ``headers`` are added. ``want_body(status,
        headers)`` says how many bytes to read: :data:`FULL` for all of it up to the cap
        (``max_bytes``, else ``archive.max_body_bytes``; then ``body``/``body_path`` hold
        it), else that many (only ``head`` holds them).

        Raises :class:`TransientError` for network failures, truncated bodies and the
        archive's own 429 (after pausing the pool); its subclass
        :class:`ArchiveUnreachableError` when no connection could be made at all (the host
        name does not resolve, the host refuses or ignores connections);
        :class:`DeferredError` when the token or a pause is further off than the task's
        :func:`wait_at_most` (``rates.max_wait`` by default) and for a connection that
        fails right after a 429 (a firewall block: every pool of the host is paused
        ``pause_on_429 * 10``);
        :class:`ArchiveProtocolError` for an answer the HTTP client cannot take apart (a
        ``Location`` that is no URL, say); :class:`DeadlineExceededError` once the
        task's :func:`url_deadline` has passed;
        :class:`DisallowedHostError` for hosts outside the allow-list,
        :class:`DisallowedRequestError` for a path the pool may not request (checked on
        the request as httpx will send it: nothing is sent, no token taken), and
        :class:`UsageError` for a pool :class:`Pool` does not declare.
        """
        pool = as_pool(pool)
        key = self._check_host(url)
        try:
            request = self.client.build_request(method, url, params=params, data=data,
                                                headers=headers)
        except (httpx.InvalidURL, UnicodeError) as exc:
            raise DisallowedRequestError(f"refusing an unusable URL: {exc}") from exc
        self.check_request(request, pool)
        deadline = _DEADLINE.get()
        if deadline is not None and deadline.remaining() <= 0:
            raise deadline.exceeded()
        waiting = time.monotonic()
        try:
            await self.limiter.acquire(key, pool, self.max_wait)
        finally:
            if deadline is not None:  # waiting for our turn is not the archive's time
                deadline.waited += time.monotonic() - waiting
        self.stats.requests[pool.value] += 1
        timeout = self.config.archive.request_timeout
        if deadline is not None:
            if deadline.remaining() <= 0:
                raise deadline.exceeded()
            timeout = min(timeout, deadline.remaining())
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(request, url, pool, key, want_body, max_bytes)
        except TimeoutError as exc:
            if deadline is not None and deadline.remaining() <= 0:
                raise deadline.exceeded() from exc
            raise TransientError(f"{pool} request timed out: {url}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__} from the archive: {exc}") from exc
        except _UNUSABLE_ANSWER as exc:
            # The one boundary for what the HTTP client raises on the archive's bytes.
            raise ArchiveProtocolError(
                f"unusable answer from the archive ({type(exc).__name__}: {exc}) for {url}"
            ) from exc

    async def _exchange(
        self, request: httpx.Request, url: str, pool: Pool, key: str, want_body: WantBody,
        max_bytes: int | None,
    ) -> Response:
        """Send ``request`` and read its answer (the caller bounds the time and maps the
        exceptions)."""
        try:
            resp = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            # No response head arrived: the host did not answer at all.
            if isinstance(exc, _NO_CONNECTION):
                self._check_firewall(key, exc)
            if isinstance(exc, _CONNECT_FAILED):
                raise self._unreachable(key, exc) from exc
            self.reached.add(key)  # connected, then lost: the host is there
            raise
        self.reached.add(key)
        try:
            return await self._read(url, pool, key, resp, want_body, max_bytes)
        finally:
            await resp.aclose()

    def _check_firewall(self, key: str, exc: BaseException) -> None:
        """A connection that failed before any answer, right after a 429 pause: the archive
        escalates ignored 429s to a firewall block (pitfall 1), so stop every pool of that
        host for much longer than a 429 pause and raise :class:`DeferredError` instead of
        retrying in seconds."""
        pause = self.config.rates.pause_on_429
        if not self.limiter.recently_paused(key, pause * FIREWALL_SUSPECT_FACTOR):
            return
        seconds = pause * FIREWALL_PAUSE_FACTOR
        for pool in Pool:
            self.limiter.pause(key, pool, seconds)
        self.stats.firewall_pauses += 1
        self.stats.pauses += 1
        # Deferred, not retried: knocking again, even after the pause, would only meet the
        # block again while it lasts (an hour at the Internet Archive). A run defers the
        # rest of its URLs; cron tries later.
        raise DeferredError(
            f"no connection to {key} right after a 429 ({type(exc).__name__}): taken for a "
            f"firewall block; every pool of {key} is paused for {seconds:.0f} s"
        ) from exc

    def _unreachable(self, key: str, exc: httpx.TransportError) -> ArchiveUnreachableError:
        """The typed error for a connection that could not be made to ``key``."""
        cause = connect_failure_cause(exc)
        return ArchiveUnreachableError(
            f"the archive cannot be reached: {key}: {cause}",
            host=key, cause=cause, first_contact=key not in self.reached,
        )

    async def _read(
        self, url: str, pool: Pool, key: str, resp: httpx.Response, want_body: WantBody,
        max_bytes: int | None = None,
    ) -> Response:
        """The answer to a request: the archive's own 429 pauses ``pool``; anything else is
        read as ``want_body`` asks."""
        headers = header_map(resp.headers.multi_items())
        if resp.status_code == 429 and "memento-datetime" not in headers:
            # The archive's own limit, not an archived 429: stop the whole pool for
            # everyone (pitfall 1); never retry it fast.
            self.stats.rate_limited += 1
            self.stats.pauses += 1
            self.limiter.pause(key, pool, self.config.rates.pause_on_429)
            raise RateLimitedError(f"the archive answered 429 for the {pool} pool")
        return await read_body(
            url, resp, headers, want_body(resp.status_code, headers),
            max_body_bytes=self.config.archive.max_body_bytes if max_bytes is None
            else max_bytes,
            tmpdir=self.tmpdir,
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
            seconds = float(backoff(state))
            deadline = _DEADLINE.get()
            if deadline is not None:  # no sleeping past the URL's deadline
                seconds = max(0.0, min(seconds, deadline.remaining()))
            return seconds

        def count(state: RetryCallState) -> None:
            self.stats.retries += 1

        def worth_retrying(exc: BaseException) -> bool:
            # A host this process has never reached is not knocked on again: that is the
            # network being down far more often than a blip, and the full backoff ladder
            # would cost ~15 s a URL to learn nothing (a run's next URLs are the retries).
            if isinstance(exc, ArchiveUnreachableError) and exc.first_contact:
                return False
            if isinstance(exc, DeadlineExceededError):
                return False  # the URL's time is up
            return isinstance(exc, TransientError)

        retryer = AsyncRetrying(
            stop=stop_after_attempt(r.max_attempts) | stop_after_delay(r.max_total_seconds),
            wait=wait,
            # A DeferredError ("not now") is not a TransientError, so it is never retried.
            retry=retry_if_exception(worth_retrying),
            before_sleep=count,
            reraise=True,
        )
        async for trial in retryer:
            with trial:
                return await attempt()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


def connect_failure_cause(exc: BaseException) -> str:
    """What stopped a connection, in words, from the exception chain httpx raised: "the
    host name cannot be resolved", "connection refused", "no answer (connect timeout)"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "the host name cannot be resolved"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        current = current.__cause__ or current.__context__
    if isinstance(exc, httpx.ConnectTimeout):
        return "no answer to the connection (connect timeout)"
    return f"no connection ({str(exc) or type(exc).__name__})"
