"""Batch runs over a source list: plan, fetch what is due with bounded concurrency, defer
when the archive pauses us, stop cleanly when asked, and summarise.

Memory stays bounded whatever the list's length: the list is streamed, a bounded queue
feeds the workers, and finished records are handed to the callback and dropped. Only the
resource IDs seen so far are kept (to fetch duplicates once).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal, TypedDict

from snapcache.cache.errors import StableIdConflictError
from snapcache.cache.records import Record

from .errors import DeferredError, InputError, SnapcacheError
from .save import Saver, needs_poll, needs_save
from .sources import Format, SourceEntry, SourceError, parse_sources

EXIT_OK: Final = 0
EXIT_SOME_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_DEFERRED: Final = 75
EXIT_SIGINT: Final = 130
EXIT_SIGTERM: Final = 143

#: How long in-flight URLs may finish after a stop request before they are abandoned.
STOP_GRACE_SECONDS: Final = 5.0

Verdict = Literal["ok", "failed", "deferred", "SIGINT", "SIGTERM"]

EventKind = Literal["fetched", "fresh", "would_fetch", "invalid", "duplicate", "deferred"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One line's fate, reported to ``on_result`` as soon as it is known."""

    kind: EventKind
    line: int
    url: str | None
    record: Record | None = None
    reason: str = ""


@dataclass(slots=True)
class RunSummary:
    """What a run did. ``exit_code`` follows the documented exit codes."""

    started_at: str = ""
    elapsed: float = 0.0
    seen: int = 0
    invalid: int = 0
    duplicates: int = 0
    skipped_fresh: int = 0
    would_fetch: int = 0
    new: int = 0
    refreshed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    deferred: int = 0
    deferred_reason: str | None = None
    interrupted: str | None = None
    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    saves: dict[str, int] = field(default_factory=dict)
    save_stopped: str | None = None

    @property
    def verdict(self) -> Verdict:
        """How the run ended, worst first: interrupted by a signal ("SIGINT", "SIGTERM"),
        "deferred" (some URLs left for a later run), "failed" (errors or invalid lines),
        else "ok". The CLI turns this into its exit code."""
        if self.interrupted == "SIGTERM":
            return "SIGTERM"
        if self.interrupted is not None:
            return "SIGINT"
        if self.deferred:
            return "deferred"
        if self.invalid or self.outcomes.get("error", 0):
            return "failed"
        return "ok"

    @property
    def exit_code(self) -> int:
        """0 all final; 1 errors or invalid lines; 75 deferred; 130/143 interrupted."""
        return {"ok": EXIT_OK, "failed": EXIT_SOME_FAILED, "deferred": EXIT_DEFERRED,
                "SIGINT": EXIT_SIGINT, "SIGTERM": EXIT_SIGTERM}[self.verdict]

    def to_json_dict(self) -> dict[str, Any]:
        """The summary as one JSON-ready object."""
        return {
            "started_at": self.started_at,
            "elapsed_seconds": round(self.elapsed, 3),
            "urls": self.seen,
            "invalid_lines": self.invalid,
            "duplicates": self.duplicates,
            "skipped_fresh": self.skipped_fresh,
            "would_fetch": self.would_fetch,
            "new": self.new,
            "refreshed": self.refreshed,
            "outcomes": dict(sorted(self.outcomes.items())),
            "deferred": self.deferred,
            "deferred_reason": self.deferred_reason,
            "interrupted": self.interrupted,
            "requests": dict(sorted(self.requests.items())),
            "rate_limited": self.rate_limited,
            "saves": dict(sorted(self.saves.items())),
            "save_stopped": self.save_stopped,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True, slots=True)
class SaveOptions:
    """``run --save-missing``: also ask the archive to capture what it lacks."""

    stale_days: float | None = None
    """Also save URLs whose newest good capture is older than this many days."""
    budget: float | None = None
    """Seconds the save pass may take (default ``save.poll_budget``)."""


class RunControl:
    """A thread-safe stop switch for a run (signal handlers call :meth:`stop`)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def stop(self, reason: str = "SIGINT") -> None:
        """Ask the run to stop taking new URLs; in-flight ones get a short grace period."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._event.is_set()


class RunLockedError(SnapcacheError):
    """Another batch run holds this cache. Exit 75 and let cron try later (or ``--wait``)."""


class RunLock:
    """One batch run at a time per cache, across processes.

    An ``flock`` on a file in the cache directory: the kernel drops it when the process
    dies, even by SIGKILL, so a crashed run never leaves the cache locked.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / "run.lock"
        self._fh: IO[str] | None = None

    def acquire(self, wait: bool = False) -> None:
        """Take the lock, or raise :class:`RunLockedError` (``wait`` blocks instead)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunLockedError(f"another run holds this cache ({holder})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        """Give the lock up."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


Sources = str | os.PathLike[str] | IO[bytes] | Iterable[str] | Iterable[bytes]


def iter_source_lines(sources: Sources) -> Iterator[bytes]:
    """Raw lines from a path, a binary file object, or an iterable of strings or bytes."""
    if isinstance(sources, str | os.PathLike):
        with Path(sources).open("rb") as fh:
            yield from fh
        return
    for item in sources:
        yield item.encode("utf-8", "surrogateescape") if isinstance(item, str) else item


class RunOptions(TypedDict, total=False):
    """Keyword options of a run (``Fetcher.run``, ``AsyncFetcher.run``, :func:`run_sources`)."""

    fmt: Format | None
    """Force the source list's format (default: detected)."""
    force: bool
    """Fetch every URL, fresh or not."""
    dry_run: bool
    """Report what would be fetched and why; send no request."""
    concurrency: int | None
    """URLs in flight at once (default ``run.concurrency``)."""
    max_wait: float | None
    """Defer the rest when a pool is paused longer than this (default ``run.max_wait``)."""
    on_result: Callable[[RunEvent], None] | None
    """Called with each line's :class:`RunEvent` as soon as it is known."""
    control: RunControl | None
    """A stop switch (signal handlers call its ``stop``)."""
    save: SaveOptions | None
    """Also submit URLs the archive lacks to Save Page Now, and poll pending jobs."""


async def run_sources(
    engine: Any,
    sources: Sources,
    *,
    fmt: Format | None = None,
    force: bool = False,
    dry_run: bool = False,
    concurrency: int | None = None,
    max_wait: float | None = None,
    on_result: Callable[[RunEvent], None] | None = None,
    control: RunControl | None = None,
    save: SaveOptions | None = None,
) -> RunSummary:
    """Run over a source list with an :class:`~fetcher.engine.AsyncFetcher` ``engine``.

    See the module docstring; the caller holds the :class:`RunLock` if it wants one.
    With ``save``, URLs the archive lacks are then submitted to Save Page Now and pending
    jobs from earlier runs are polled (see :mod:`fetcher.save`).
    """
    cfg = engine.config.run
    control = control or RunControl()
    summary = RunSummary(started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    started = time.monotonic()
    stats = engine.transport.stats
    requests_before = Counter(stats.requests)
    limited_before = stats.rate_limited
    old_wait = engine.transport.max_wait
    engine.transport.max_wait = cfg.max_wait if max_wait is None else max_wait
    workers_n = max(1, concurrency or cfg.concurrency)
    queue: asyncio.Queue[tuple[SourceEntry, Any] | None] = asyncio.Queue(maxsize=workers_n * 2)
    seen: set[str] = set()
    state = {"consecutive_errors": 0}
    deferral: list[str] = []

    saver = Saver(engine) if save is not None and not dry_run else None
    save_candidates: list[str] = []

    def emit(event: RunEvent) -> None:
        record = event.record
        if saver is not None and record is not None and save is not None and (
            needs_poll(record)
            or needs_save(record, datetime.now(UTC), stale_days=save.stale_days)
        ):
            save_candidates.append(record.resource_id)
        if on_result is not None:
            on_result(event)

    def defer(reason: str) -> None:
        if not deferral:
            deferral.append(reason)
            summary.deferred_reason = reason

    async def produce() -> None:
        for item in parse_sources(iter_source_lines(sources), fmt):
            if control.stopped:
                return
            if isinstance(item, SourceError):
                summary.invalid += 1
                emit(RunEvent("invalid", item.line, None, reason=item.reason))
                continue
            summary.seen += 1
            if deferral:
                summary.deferred += 1
                emit(RunEvent("deferred", item.line, item.url, reason=deferral[0]))
                continue
            try:
                plan = engine.plan(item.url, item.at, force, checked=True)
            except InputError as exc:
                summary.invalid += 1
                emit(RunEvent("invalid", item.line, item.url, reason=str(exc)))
                continue
            if plan.resource_id in seen:
                summary.duplicates += 1
                emit(RunEvent("duplicate", item.line, item.url, reason="listed earlier"))
                continue
            seen.add(plan.resource_id)
            existing = plan.existing
            if item.stable_id and existing is not None and existing.stable_id != item.stable_id:
                summary.invalid += 1
                emit(RunEvent("invalid", item.line, item.url, reason=(
                    f"stable_id {item.stable_id} conflicts with stored {existing.stable_id}")))
                continue
            if not plan.due:
                summary.skipped_fresh += 1
                emit(RunEvent("fresh", item.line, item.url, existing, plan.reason))
                continue
            if dry_run:
                summary.would_fetch += 1
                emit(RunEvent("would_fetch", item.line, item.url, existing, plan.reason))
                continue
            await queue.put((item, plan))

    async def work() -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            item, plan = job
            if deferral or control.stopped:
                if deferral:
                    summary.deferred += 1
                    emit(RunEvent("deferred", item.line, item.url, reason=deferral[0]))
                continue
            try:
                record: Record = await engine.attempt(plan, item.stable_id)
            except DeferredError as exc:
                defer(str(exc))
                summary.deferred += 1
                emit(RunEvent("deferred", item.line, item.url, reason=str(exc)))
                continue
            except StableIdConflictError as exc:
                summary.invalid += 1
                emit(RunEvent("invalid", item.line, item.url, reason=str(exc)))
                continue
            except Exception as exc:  # one URL's failure must not end the run
                # The attempt could not even be recorded (the store failed: locked too long
                # by another writer, a disk error; or a bug). A worker that died here would
                # leave the run waiting forever on its queue: count the URL as an error,
                # report it, and go on (the circuit breaker stops a run where all fail).
                reason = f"not stored: {type(exc).__name__}: {exc}"
                summary.outcomes["error"] += 1
                state["consecutive_errors"] += 1
                if state["consecutive_errors"] >= cfg.circuit_breaker:
                    defer(f"circuit breaker: {cfg.circuit_breaker} URLs failed in a row "
                          f"(latest: {reason})")
                emit(RunEvent("fetched", item.line, item.url, None, reason=reason))
                continue
            outcome = record.last_outcome or record.status
            summary.outcomes[outcome] += 1
            if plan.existing is None:
                summary.new += 1
            else:
                summary.refreshed += 1
            if outcome == "error":
                state["consecutive_errors"] += 1
                if state["consecutive_errors"] >= cfg.circuit_breaker:
                    defer(f"circuit breaker: {cfg.circuit_breaker} URLs failed in a row "
                          f"(latest: {record.error})")
            else:
                state["consecutive_errors"] = 0
            emit(RunEvent("fetched", item.line, item.url, record))

    async def watch(producer: asyncio.Task[None], tasks: list[asyncio.Task[None]]) -> None:
        while not control.stopped:
            await asyncio.sleep(0.1)
        # Stop taking new URLs at once (the producer may be waiting on a full queue), let
        # in-flight ones finish for a moment, then abandon them: nothing half-done is
        # stored, since each record write is one transaction made after its fetch.
        producer.cancel()
        await asyncio.sleep(STOP_GRACE_SECONDS)
        for task in tasks:
            task.cancel()

    async def finish_workers() -> None:
        pending = len(workers)
        while pending and not all(w.done() for w in workers):
            try:
                queue.put_nowait(None)
                pending -= 1
            except asyncio.QueueFull:
                await asyncio.sleep(0.05)
        await asyncio.gather(*workers, return_exceptions=True)

    workers = [asyncio.create_task(work()) for _ in range(workers_n)]
    producer = asyncio.create_task(produce())
    watcher = asyncio.create_task(watch(producer, workers))
    try:
        try:
            await producer
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the run itself is being cancelled, not just its producer
        await finish_workers()
    finally:
        watcher.cancel()
        producer.cancel()
        for task in workers:
            task.cancel()
        engine.transport.max_wait = old_wait
    summary.interrupted = control.reason if control.stopped else None
    if saver is not None and save is not None and save_candidates and not control.stopped:
        try:
            saved = await saver.run(save_candidates, stale_days=save.stale_days,
                                    budget=save.budget)
            summary.saves = dict(saved.outcomes or {})
            summary.save_stopped = saved.stopped
        except DeferredError as exc:
            summary.save_stopped = str(exc)
    summary.requests = Counter(stats.requests) - requests_before
    summary.rate_limited = stats.rate_limited - limited_before
    summary.elapsed = time.monotonic() - started
    return summary
