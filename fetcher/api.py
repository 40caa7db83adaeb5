"""The public facade: :class:`AsyncFetcher` and its synchronous twin :class:`Fetcher`.

They own the store, the transport and the engine, and offer one fetch, many, a run over a
source list (:mod:`snapcache.runner`) and Save Page Now (:mod:`snapcache.save`). Nothing in
the library imports this module; it sits on top.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from snapcache.cache import Record, Store, read_ahead

from .config import Config, load_config
from .engine import Engine
from .errors import FetcherClosedError, SnapcacheError, WrongEventLoopError
from .ids import parse_target, resource_id
from .protocols import Plan
from .runner import (
    PLAN_BATCH,
    RunControl,
    RunEvent,
    Runner,
    RunOptions,
    RunPolicy,
    RunSummary,
    Sources,
)
from .save import Saver, SaveStats
from .sources import Format
from .stores import configured_dsn, open_store
from .transport import PoolState, RateLimiter, Transport, TransportStats

if TYPE_CHECKING:
    from snapcache.cache.postgres.queue import JobQueue

    from .enqueue import EnqueueSummary
    from .worker import JobEvent, WorkerPolicy, WorkerSummary

T = TypeVar("T")


def _probable_ids(urls: Iterable[str]) -> Iterator[str]:
    """The resource ID each of ``urls`` has unless it was moved (then the store knows
    another), for reading their records ahead; a URL no ID can be made of is left out
    (planning it says why)."""
    for url in urls:
        try:
            yield resource_id(url)
        except UnicodeError:  # a lone surrogate: no URL
            continue


def shared_limiter(config: Config) -> RateLimiter | None:
    """The rate limiter a transport for ``config`` uses when its default would not do: with
    the PostgreSQL store, one whose buckets, pauses and daily save count live in that
    database (:mod:`snapcache.pglimits`), so that every worker on every host shares one
    budget. None for the diskcache store: the transport's default, the machine's SQLite
    state file, is the right one there."""
    if config.cache.backend != "postgres":
        return None
    from .pglimits import open_limiter_state  # psycopg: only for a PostgreSQL store

    return RateLimiter.from_config(config, open_limiter_state(config, configured_dsn(config)))


class AsyncFetcher:
    """Resolve, fetch, extract and store, asynchronously.

    Use as ``async with AsyncFetcher(config) as f: record = await f.fetch(url)``. One
    instance serves one event loop (its HTTP connections belong to it).
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        cache: Store | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.config = config if isinstance(config, Config) else load_config(config)
        #: The record store (usable directly for reads): ``[cache] backend`` chooses it.
        # ``is not None``, not ``or``: a store is falsy while it is empty (it has a length).
        self.cache: Store = cache if cache is not None else open_store(self.config)
        self._owns_transport = transport is None
        if transport is None:
            try:
                transport = Transport(self.config, limiter=shared_limiter(self.config))
            except BaseException:
                if cache is None:
                    self.cache.close()
                raise
        self._transport = transport
        self._engine = Engine(self.config, self.cache, self._transport)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def __aenter__(self) -> AsyncFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check(self) -> None:
        """Refuse use after close, and use from a second event loop."""
        if self._closed:
            raise FetcherClosedError("this fetcher is closed; make a new one")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise WrongEventLoopError(
                "this AsyncFetcher is bound to another event loop; make one per loop"
            )

    async def aclose(self) -> None:
        """Stop the extraction workers, close the HTTP client (when this fetcher made it)
        and the store."""
        if self._closed:
            return
        self._closed = True
        try:
            self._engine.close()
            if self._owns_transport:
                await self._transport.aclose()
                self._transport.limiter.close()
        finally:
            self.cache.close()

    @property
    def stats(self) -> TransportStats:
        """Requests made so far per pool, 429s met and pauses taken (a snapshot)."""
        return self._engine.stats()

    def rate_limits(self) -> list[PoolState]:
        """The shared rate-limit state of every pool this machine has used (with the
        PostgreSQL store: every host sharing it), read only: tokens left and seconds of
        pause remaining, per archive host."""
        return self._transport.limiter.states()

    def enqueue(
        self, sources: Sources, queue: JobQueue, *, fmt: Format | None = None,
        force: bool = False, on_result: Callable[[RunEvent], None] | None = None,
    ) -> EnqueueSummary:
        """Read a source list as :meth:`run` does and queue every due URL as a job for the
        workers (:mod:`snapcache.enqueue`); no request is made. Runs on the caller's
        thread (it only reads the store and writes the queue)."""
        if self._closed:
            raise FetcherClosedError("this fetcher is closed; make a new one")
        from .enqueue import Enqueuer

        return Enqueuer(self._engine, queue, force=force, on_result=on_result).enqueue(
            sources, fmt)

    async def work(
        self, queue: JobQueue, policy: WorkerPolicy | None = None, *,
        control: RunControl | None = None, on_result: Callable[[JobEvent], None] | None = None,
    ) -> WorkerSummary:
        """Take jobs from ``queue`` and fetch them until stopped (see
        :class:`~snapcache.worker.Worker`); ``policy`` defaults to the ``[run]`` pace."""
        self._check()
        from .worker import Worker, WorkerPolicy

        chosen = policy if policy is not None else WorkerPolicy.from_config(self.config)
        worker = Worker(self._engine, queue, chosen, control=control, on_result=on_result)
        return await worker.run()

    def plan(
        self, url: str, at: str | None = None, force: bool = False, *, full: bool = False
    ) -> Plan:
        """Decide from the store alone, on the caller's thread, whether ``url`` needs
        fetching and why (see :meth:`~snapcache.protocols.FetchEngine.plan`)."""
        if self._closed:
            raise FetcherClosedError("this fetcher is closed; make a new one")
        return self._engine.plan(url, at, force, full=full)

    async def attempt(self, plan: Plan) -> Record:
        """Fetch and store a planned URL, fresh or not (:meth:`plan` then this is
        :meth:`fetch`)."""
        self._check()
        return await self._engine.attempt(plan)

    async def fetch(
        self, url: str, at: str | None = None, force: bool = False, *, full: bool = False
    ) -> Record:
        """Return the record for ``url``: from the store when fresh (no request at all),
        else resolved and fetched anew. ``at`` (YYYYMMDD[hhmmss]) asks for the capture
        closest to that time. A stale good record whose capture is still the newest is
        only confirmed (one request, no body; ``last_confirmed_at``); ``full`` fetches it
        in full anyway (and implies ``force``). Never raises for archive failures: they
        are recorded on the record (``status`` "error", or ``error`` beside a kept good
        capture). Raises :class:`~snapcache.errors.InputError` for a URL or timestamp
        that is not usable, and :class:`~snapcache.errors.DeferredError` when the archive
        has paused us for longer than ``rates.max_wait`` (nothing is stored then: try
        later).
        """
        self._check()
        plan = self._engine.plan(url, at, force, full=full)
        if not plan.due and plan.existing is not None:
            return plan.existing
        return await self._engine.attempt(plan)

    async def fetch_many(
        self,
        urls: Iterable[str],
        *,
        at: str | None = None,
        force: bool = False,
        concurrency: int = 4,
        full: bool = False,
    ) -> list[Record | SnapcacheError]:
        """Fetch several URLs with bounded concurrency, in input order. A URL that cannot
        be used gives its :class:`SnapcacheError` in its place instead of a record."""
        self._check()
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(u: str) -> Record | SnapcacheError:
            async with gate:
                try:
                    # Planned again when its turn comes: an attempt made meanwhile (the
                    # same URL listed twice) may have left it fresh.
                    return await self.fetch(u, at=at, force=force, full=full)
                except SnapcacheError as exc:
                    return exc

        # A fresh record is answered here, without a task of its own: over a warm list the
        # tasks took a fifth of the time. A URL that needs a request gets its task
        # at once; URLs are planned in batches (their records read together), and the loop
        # runs the fetches in flight between batches.
        slots: list[Record | SnapcacheError | asyncio.Task[Record | SnapcacheError]] = []
        tasks: list[asyncio.Task[Record | SnapcacheError]] = []
        pending = iter(urls)
        try:
            while batch := list(itertools.islice(pending, PLAN_BATCH)):
                with read_ahead(self.cache, _probable_ids(batch)):
                    for url in batch:
                        try:
                            plan = self._engine.plan(url, at, force, full=full)
                        except SnapcacheError as exc:
                            slots.append(exc)
                            continue
                        if not plan.due and plan.existing is not None:
                            slots.append(plan.existing)
                        else:
                            tasks.append(asyncio.ensure_future(one(url)))
                            slots.append(tasks[-1])
                await asyncio.sleep(0)
            if tasks:
                await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # cancelled, or failed: no fetch outlives the call
                task.cancel()
            raise
        return [slot.result() if isinstance(slot, asyncio.Task) else slot for slot in slots]

    async def run(self, sources: Sources, **options: Unpack[RunOptions]) -> RunSummary:
        """Run over a source list (a path, a binary file, or an iterable of lines): fetch
        only what is missing or stale, with bounded concurrency under the shared rate
        limits. See :class:`~snapcache.runner.RunOptions` for the options (``force``,
        ``on_result``, ``dry_run``, ``save`` …). The caller may hold the CLI's run lock."""
        self._check()
        policy = RunPolicy.from_config(
            self.config, concurrency=options.get("concurrency"),
            max_wait=options.get("max_wait"),
        )
        save = options.get("save")
        dry_run = options.get("dry_run", False)
        runner = Runner(
            self._engine, policy,
            force=options.get("force", False),
            full=options.get("full", False),
            fresh_records=options.get("fresh_records", True),
            dry_run=dry_run,
            on_result=options.get("on_result"),
            control=options.get("control"),
            save=save,
            saver=Saver(self._engine, self._transport) if save is not None and not dry_run
            else None,
        )
        return await runner.run(sources, options.get("fmt"))

    async def save(
        self, urls: Iterable[str], *, budget: float | None = None
    ) -> tuple[list[Record | SnapcacheError], SaveStats]:
        """Ask the archive to capture each URL (Save Page Now 2), then follow the jobs for
        up to ``budget`` seconds. Each URL is fetched first (a fresh record costs nothing);
        a URL with a capture newer than ``save.if_not_archived_within_days`` is not
        submitted, and a pending job is polled, never resubmitted. Raises
        :class:`~snapcache.errors.ConfigError` when saving is disabled or has no keys."""
        self._check()
        saver = Saver(self._engine, self._transport)
        results: list[Record | SnapcacheError] = []
        ids: list[str] = []
        for url in urls:
            try:
                record = await self.fetch(url)
            except SnapcacheError as exc:
                results.append(exc)
                continue
            ids.append(record.resource_id)
            results.append(record)
        await saver.run(ids, stale_days=self.config.save.if_not_archived_within_days,
                        budget=budget)
        final: list[Record | SnapcacheError] = [
            (self.cache.get(item.resource_id) or item) if isinstance(item, Record) else item
            for item in results
        ]
        return final, saver.stats

    def lookup(self, ident: str) -> Record | None:
        """A stored record by resource ID, stable ID or URL (alias included); no network."""
        if self._closed:
            raise FetcherClosedError("this fetcher is closed; make a new one")
        return self.cache.lookup(ident.strip())

    def move(self, old_url: str, new_url: str) -> Record:
        """Rebind a resource to a corrected URL; its IDs stay, the old URL stays an alias."""
        if self._closed:
            raise FetcherClosedError("this fetcher is closed; make a new one")
        return self.cache.move(old_url.strip(), parse_target(new_url).given)


class Fetcher:
    """Synchronous facade over :class:`AsyncFetcher`.

    It runs the async fetcher on a private event loop thread, so it also works where a loop
    is already running (notebooks, other async frameworks). ``Fetcher(config).fetch(url)``
    returns a :class:`~snapcache.cache.Record`. Close it (or use it as a context manager)
    to release the HTTP client and the store.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        cache: Store | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="snapcache-loop", daemon=True
        )
        self._thread.start()
        try:
            self._async = self._call(self._make(config, cache))
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _make(
        config: Config | str | os.PathLike[str] | None, cache: Store | None
    ) -> AsyncFetcher:
        # Built on the loop thread so httpx binds its client to that loop.
        return AsyncFetcher(config, cache=cache)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise FetcherClosedError("this fetcher is closed; make a new one")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    @property
    def config(self) -> Config:
        """The configuration in use."""
        return self._async.config

    @property
    def cache(self) -> Store:
        """The record store (usable directly for reads)."""
        return self._async.cache

    @property
    def stats(self) -> TransportStats:
        """See :attr:`AsyncFetcher.stats`."""
        return self._async.stats

    def rate_limits(self) -> list[PoolState]:
        """See :meth:`AsyncFetcher.rate_limits`."""
        return self._async.rate_limits()

    def fetch(
        self, url: str, at: str | None = None, force: bool = False, *, full: bool = False
    ) -> Record:
        """See :meth:`AsyncFetcher.fetch`. A fresh record is answered on the caller's
        thread, without waking the engine's loop (a store read takes microseconds)."""
        if self._loop.is_closed():
            raise FetcherClosedError("this fetcher is closed; make a new one")
        plan = self._async.plan(url, at, force, full=full)
        if not plan.due and plan.existing is not None:
            return plan.existing
        return self._call(self._async.attempt(plan))

    def fetch_many(
        self, urls: Iterable[str], *, at: str | None = None, force: bool = False,
        concurrency: int = 4, full: bool = False,
    ) -> list[Record | SnapcacheError]:
        """See :meth:`AsyncFetcher.fetch_many`."""
        return self._call(
            self._async.fetch_many(list(urls), at=at, force=force, concurrency=concurrency,
                                   full=full)
        )

    def run(self, sources: Sources, **options: Unpack[RunOptions]) -> RunSummary:
        """See :meth:`AsyncFetcher.run`. ``on_result`` is called on the engine's thread."""
        return self._call(self._async.run(sources, **options))

    def enqueue(
        self, sources: Sources, queue: JobQueue, *, fmt: Format | None = None,
        force: bool = False, on_result: Callable[[RunEvent], None] | None = None,
    ) -> EnqueueSummary:
        """See :meth:`AsyncFetcher.enqueue` (on the caller's thread)."""
        if self._loop.is_closed():
            raise FetcherClosedError("this fetcher is closed; make a new one")
        return self._async.enqueue(sources, queue, fmt=fmt, force=force, on_result=on_result)

    def work(
        self, queue: JobQueue, policy: WorkerPolicy | None = None, *,
        control: RunControl | None = None, on_result: Callable[[JobEvent], None] | None = None,
    ) -> WorkerSummary:
        """See :meth:`AsyncFetcher.work`. ``on_result`` is called on the engine's thread."""
        return self._call(self._async.work(queue, policy, control=control,
                                           on_result=on_result))

    def save(
        self, urls: Iterable[str], *, budget: float | None = None
    ) -> tuple[list[Record | SnapcacheError], SaveStats]:
        """See :meth:`AsyncFetcher.save`."""
        return self._call(self._async.save(list(urls), budget=budget))

    def lookup(self, ident: str) -> Record | None:
        """See :meth:`AsyncFetcher.lookup`."""
        return self._async.lookup(ident)

    def move(self, old_url: str, new_url: str) -> Record:
        """See :meth:`AsyncFetcher.move`."""
        return self._async.move(old_url, new_url)

    def close(self) -> None:
        """Release the HTTP client, the store and the loop thread."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._async.aclose())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
