"""The one place that touches httpx: host allow-list, per-pool rate limits, 429 pauses and
firewall blocks, bounded body reads, and retries.

It knows nothing of captures; the archive layer classifies what comes back.
"""

from __future__ import annotations

import asyncio
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

from ..capture import header_map, netloc_of
from ..config import Config
from ..errors import DeferredError, DisallowedHostError, RateLimitedError, TransientError
from .body import FULL, HEAD_BYTES, BodySink, Inflater, Response, wants_inflate
from .limits import POOLS, RateLimiter, per_host_budgets

T = TypeVar("T")

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



@dataclass(slots=True)
class Stats:
    """Requests made by this transport, per pool."""

    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    retries: int = 0
    #: Connection failures right after a 429, taken for a firewall block (long pause).
    firewall_pauses: int = 0



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
            sink = BodySink(cap, self.tmpdir, head_bytes=cap if not full else HEAD_BYTES)
            raw_received = 0
            inflater: Inflater | None = None
            first = True
            try:
                async for chunk in resp.aiter_raw():
                    raw_received += len(chunk)
                    if first:
                        first = False
                        if wants_inflate(headers, chunk):
                            inflater = Inflater()
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
