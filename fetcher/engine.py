"""One fetch, and many: freshness check, resolution, extraction, storage.

:class:`AsyncFetcher` is the engine; :class:`Fetcher` is its synchronous facade, which runs
the engine on a private event loop thread so it also works where a loop is already running
(notebooks, other async frameworks).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import threading
from collections.abc import Coroutine, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, Unpack

from snapcache.cache import SnapshotCache, TTLs, freshness
from snapcache.cache.records import Record, Status

from .archive import ArchiveChain, Resolution, WaybackArchive
from .config import Config, load_config
from .errors import (
    ArchiveError,
    DeferredError,
    DisallowedHostError,
    SnapcacheError,
    TransientError,
)
from .extract import Extraction, ExtractLimits, extract
from .ids import Target, mint_stable_id, normalize_timestamp, parse_target, resource_id
from .runner import RunOptions, RunSummary, Sources, run_sources
from .save import Saver, SaveStats
from .transport import Response, Transport

T = TypeVar("T")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ttls_from_config(config: Config) -> TTLs:
    """The per-outcome freshness periods of the configuration, in seconds."""
    c = config.cache
    day = 86400.0
    return TTLs(
        ok=c.ttl_ok_days * day,
        blocked=c.ttl_blocked_days * day,
        not_archived=c.ttl_not_archived_days * day,
        archived_error=c.ttl_archived_error_days * day,
        error=c.ttl_error_hours * 3600.0,
    )


def limits_from_config(config: Config) -> ExtractLimits:
    """Extraction bounds from the ``[preview]`` section."""
    p = config.preview
    return ExtractLimits(
        preview_chars=p.max_chars,
        text_chars=p.max_text_chars,
        pdf_max_pages=p.pdf_max_pages,
        pdf_max_seconds=p.pdf_max_seconds,
        html_max_bytes=p.html_max_bytes,
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """What :meth:`AsyncFetcher.plan` decided for one URL (no request made)."""

    target: Target
    at: str | None
    resource_id: str
    existing: Record | None
    due: bool
    """True when the URL must be fetched."""
    reason: str
    """Why: "missing", "forced", "stale since …", "fresh until …"."""


@dataclass(frozen=True, slots=True)
class _Extracted:
    content_type: str | None
    title: str | None
    preview: str
    text: str
    note: str | None
    sha256: str


def _extract_response(response: Response, limits: ExtractLimits) -> _Extracted:
    declared = response.headers.get("content-type")
    source: bytes | Path = (
        response.body_path if response.body_path is not None else (response.body or b"")
    )
    try:
        result = extract(source, declared, limits)
    except Exception as exc:
        # extract() promises not to raise on any content; should a library still fail on
        # some document, the capture fields are good and are kept, with the reason noted.
        result = Extraction(
            kind="other",
            content_type=(declared or "application/octet-stream").split(";")[0].strip(),
            title=None,
            text="",
            preview="",
            note=f"extraction failed: {type(exc).__name__}",
            charset=None,
            pages=None,
        )
    digest = hashlib.sha256()
    if isinstance(source, Path):
        with source.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(source)
    return _Extracted(
        content_type=result.content_type,
        title=result.title,
        preview=result.preview,
        text=result.text,
        note=result.note,
        sha256=digest.hexdigest(),
    )


class AsyncFetcher:
    """Resolve, fetch, extract and store, asynchronously.

    Use as ``async with AsyncFetcher(config) as f: record = await f.fetch(url)``.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        cache: SnapshotCache | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.config = config if isinstance(config, Config) else load_config(config)
        self.cache = cache or SnapshotCache(
            self.config.cache_path, history_limit=self.config.cache.history_limit
        )
        self.transport = transport or Transport(self.config)
        self.transport.tmpdir = self.config.cache_path / "tmp"
        #: Every configured archive, in the order they are tried.
        self.chain = ArchiveChain(self.config, self.transport)
        #: The primary archive (``[archive]``).
        self.archive: WaybackArchive = self.chain.archives[0]
        self.ttls = ttls_from_config(self.config)
        self.limits = limits_from_config(self.config)

    async def __aenter__(self) -> AsyncFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client and the cache."""
        await self.transport.aclose()
        self.cache.close()

    def plan(
        self, url: str, at: str | None = None, force: bool = False, *, checked: bool = False
    ) -> Plan:
        """Decide, without any request, whether ``url`` needs fetching and why.

        Synchronous on purpose: it only reads the local cache (microseconds), so callers on
        any thread can answer a fresh record without a hop onto the engine's loop.

        Raises :class:`~fetcher.errors.InputError` for a URL or timestamp that is not usable.
        """
        target = parse_target(url, self.transport.allowed, checked=checked)
        wanted_at = normalize_timestamp(at) if at else target.at
        # Local SQLite reads take microseconds and never wait on writers (WAL), so they run
        # on the caller's thread: a hop per read would cost more than the read (warm runs).
        rid = resource_id(target.given)
        existing = self.cache.get(rid)
        if existing is None or existing.url != target.given:
            # After a move, a corrected URL belongs to a resource whose ID is the hash of
            # the URL it was first cited with (the ID is a key, not a function of the URL),
            # and a moved-away URL is an alias: the URL index knows both.
            owner = self.cache.resource_id_for_url(target.given)
            if owner is not None and owner != rid:
                rid, existing = owner, self.cache.get(owner)
        if existing is None:
            return Plan(target, wanted_at, rid, None, True, "missing")
        if force:
            return Plan(target, wanted_at, rid, existing, True, "forced")
        # A record answers the question only if it was asked the same way: newest (None)
        # or closest to the same time.
        if existing.requested_timestamp != wanted_at:
            return Plan(target, wanted_at, rid, existing, True, "asked for another time")
        fresh = freshness(existing, datetime.now(UTC), self.ttls)
        return Plan(target, wanted_at, rid, existing, not fresh.fresh, fresh.reason)

    async def fetch(self, url: str, at: str | None = None, force: bool = False) -> Record:
        """Return the record for ``url``: from the cache when fresh (no request at all),
        else resolved and fetched anew. ``at`` (YYYYMMDD[hhmmss]) asks for the capture
        closest to that time. Never raises for archive failures: they are recorded on the
        record (``status`` "error", or ``error`` beside a kept good capture). Raises
        :class:`~fetcher.errors.InputError` for a URL or timestamp that is not usable, and
        :class:`~fetcher.errors.DeferredError` when the archive has paused us for longer
        than ``rates.max_wait`` (nothing is stored then: try later).
        """
        plan = self.plan(url, at, force)
        if not plan.due and plan.existing is not None:
            return plan.existing
        return await self.attempt(plan)

    async def attempt(self, plan: Plan, stable_id: str | None = None) -> Record:
        """Resolve, fetch, extract and store one planned URL, whatever its freshness.

        ``stable_id`` binds a supplied ID when the resource has none yet (a conflict with a
        stored one raises :class:`~cache.errors.StableIdConflictError`).
        """
        target, wanted_at, rid = plan.target, plan.at, plan.resource_id
        sid = await asyncio.to_thread(
            functools.partial(
                self.cache.ensure_identity, rid, target.given, stable_id=stable_id,
                mint=mint_stable_id,
            )
        )
        started = datetime.now(UTC)
        resolution: Resolution | None = None
        extracted: _Extracted | None = None
        error: str | None
        try:
            resolution = await self.chain.resolve(target.original, wanted_at)
            if resolution.response is not None:
                extracted = await asyncio.to_thread(
                    _extract_response, resolution.response, self.limits
                )
        except DeferredError:
            raise
        except (TransientError, ArchiveError, DisallowedHostError) as exc:
            resolution = None
            error = str(exc) or type(exc).__name__
        else:
            error = resolution.error
        finally:
            if resolution is not None and resolution.response is not None:
                resolution.response.discard()
        record = self._new_record(rid, sid, target.given, wanted_at, started, resolution,
                                  extracted, error)
        entry = {
            "at": record.last_attempt_at,
            "outcome": record.status,
            "capture_timestamp": record.capture_timestamp,
            "archived_status": record.archived_status,
            "error": record.error,
        }
        text = extracted.text if extracted is not None else None
        return await asyncio.to_thread(
            self.cache.save_attempt, record, text=text, history_entry=entry
        )

    def _new_record(
        self,
        rid: str,
        sid: str,
        url: str,
        at: str | None,
        started: datetime,
        resolution: Resolution | None,
        extracted: _Extracted | None,
        error: str | None,
    ) -> Record:
        now = _iso(datetime.now(UTC))
        status: Status = resolution.status if resolution is not None else "error"
        record = Record(
            resource_id=rid,
            stable_id=sid,
            url=url,
            status=status,
            error=error if status == "error" else None,
            last_attempt_at=now,
            attempts=1,
            last_outcome=status,
            requested_timestamp=at,
            # The configured name of the archive that gave the result.
            archive=(resolution.archive if resolution is not None else None)
            or self.config.archive.name,
            created_at=_iso(started),
        )
        if resolution is None:
            return record
        record.archived_status = resolution.archived_status
        record.capture_timestamp = resolution.capture_timestamp
        record.archive_url = resolution.archive_url
        record.raw_url = resolution.raw_url
        record.original_url = resolution.original_url
        record.redirects = list(resolution.redirects)
        record.preview_note = resolution.note
        response = resolution.response
        if response is not None and extracted is not None:
            record.fetched_at = now
            record.content_type = extracted.content_type
            record.orig_content_type = response.headers.get(
                "x-archive-orig-content-type", response.headers.get("content-type")
            )
            record.content_length = response.size
            record.body_truncated = response.capped
            record.title = extracted.title
            record.preview = extracted.preview
            record.text_length = len(extracted.text)
            record.sha256 = extracted.sha256
            record.preview_note = extracted.note
        return record

    async def fetch_many(
        self,
        urls: Iterable[str],
        *,
        at: str | None = None,
        force: bool = False,
        concurrency: int = 4,
    ) -> list[Record | SnapcacheError]:
        """Fetch several URLs with bounded concurrency, in input order. A URL that cannot
        be used gives its :class:`SnapcacheError` in its place instead of a record."""
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(u: str) -> Record | SnapcacheError:
            async with gate:
                try:
                    return await self.fetch(u, at=at, force=force)
                except SnapcacheError as exc:
                    return exc

        return list(await asyncio.gather(*(one(u) for u in urls)))

    async def run(self, sources: Sources, **options: Unpack[RunOptions]) -> RunSummary:
        """Run over a source list (a path, a binary file, or an iterable of lines): fetch
        only what is missing or stale, with bounded concurrency under the shared rate
        limits. See :mod:`fetcher.runner` for the options (``force``, ``on_result``,
        ``dry_run``, ``save`` …). The caller may hold a :class:`RunLock`."""
        return await run_sources(self, sources, **options)

    async def save(
        self, urls: Iterable[str], *, budget: float | None = None
    ) -> tuple[list[Record | SnapcacheError], SaveStats]:
        """Ask the archive to capture each URL (Save Page Now 2), then follow the jobs for
        up to ``budget`` seconds. Each URL is fetched first (a fresh record costs nothing);
        a URL with a capture newer than ``save.if_not_archived_within_days`` is not
        submitted, and a pending job is polled, never resubmitted. Raises
        :class:`~fetcher.errors.ConfigError` when saving is disabled or has no keys."""
        saver = Saver(self)
        results: list[Record | SnapcacheError] = []
        ids: list[str] = []
        window = self.config.save.if_not_archived_within_days
        for url in urls:
            try:
                record = await self.fetch(url)
            except SnapcacheError as exc:
                results.append(exc)
                continue
            ids.append(record.resource_id)
            results.append(record)
        await saver.run(ids, stale_days=window, budget=budget)
        final: list[Record | SnapcacheError] = []
        for item in results:
            if isinstance(item, Record):
                final.append(self.cache.get(item.resource_id) or item)
            else:
                final.append(item)
        return final, saver.stats

    def lookup(self, ident: str) -> Record | None:
        """A stored record by resource ID, stable ID or URL (alias included); no network."""
        return self.cache.lookup(ident.strip())

    def move(self, old_url: str, new_url: str) -> Record:
        """Rebind a resource to a corrected URL; its IDs stay, the old URL stays an alias."""
        return self.cache.move(old_url.strip(), parse_target(new_url).given)


class Fetcher:
    """Synchronous facade over :class:`AsyncFetcher`.

    ``Fetcher(config).fetch(url)`` returns a :class:`~cache.records.Record`. Close it (or
    use it as a context manager) to release the HTTP client and the cache.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        cache: SnapshotCache | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="snapcache-loop", daemon=True
        )
        self._thread.start()
        try:
            self._engine = self._run(self._make(config, cache))
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _make(
        config: Config | str | os.PathLike[str] | None, cache: SnapshotCache | None
    ) -> AsyncFetcher:
        # Built on the loop thread so httpx binds its client to that loop.
        return AsyncFetcher(config, cache=cache)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    @property
    def config(self) -> Config:
        """The configuration in use."""
        return self._engine.config

    @property
    def cache(self) -> SnapshotCache:
        """The record store (usable directly for reads)."""
        return self._engine.cache

    def fetch(self, url: str, at: str | None = None, force: bool = False) -> Record:
        """See :meth:`AsyncFetcher.fetch`. A fresh record is answered on the caller's
        thread, without waking the engine's loop."""
        plan = self._engine.plan(url, at, force)
        if not plan.due and plan.existing is not None:
            return plan.existing
        return self._run(self._engine.attempt(plan))

    def fetch_many(
        self, urls: Iterable[str], *, at: str | None = None, force: bool = False,
        concurrency: int = 4,
    ) -> list[Record | SnapcacheError]:
        """See :meth:`AsyncFetcher.fetch_many`."""
        return self._run(
            self._engine.fetch_many(list(urls), at=at, force=force, concurrency=concurrency)
        )

    def run(self, sources: Sources, **options: Unpack[RunOptions]) -> RunSummary:
        """See :meth:`AsyncFetcher.run`. ``on_result`` is called on the engine's thread."""
        return self._run(self._engine.run(sources, **options))

    def save(
        self, urls: Iterable[str], *, budget: float | None = None
    ) -> tuple[list[Record | SnapcacheError], SaveStats]:
        """See :meth:`AsyncFetcher.save`."""
        return self._run(self._engine.save(list(urls), budget=budget))

    def lookup(self, ident: str) -> Record | None:
        """See :meth:`AsyncFetcher.lookup`."""
        return self._engine.lookup(ident)

    def move(self, old_url: str, new_url: str) -> Record:
        """See :meth:`AsyncFetcher.move`."""
        return self._engine.move(old_url, new_url)

    def close(self) -> None:
        """Release the HTTP client, the cache and the loop thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._engine.aclose())
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
