"""Runs over a source list: read the list, plan each line, fetch what is due with bounded
concurrency, defer when the archive pauses us or fails too often, stop cleanly when asked,
and summarise.

The run depends on :class:`~snapcache.protocols.FetchEngine` and a :class:`RunPolicy`; it
never changes the engine or its transport (the wait limit applies to the run's own tasks,
through :func:`~snapcache.transport.wait_at_most`).

Memory stays bounded whatever the list's length: the list is streamed, a bounded queue feeds
the workers, and finished records are handed to the callback and dropped. Only the resource
IDs seen so far are kept (to fetch duplicates once).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal, TypedDict

from snapcache.cache import Record, StableIdConflictError, read_ahead, utc_now_iso

from .config import Config
from .errors import ArchiveUnreachableError, DeferredError, InputError
from .ids import resource_id
from .protocols import FetchEngine, Plan
from .save import Saver, needs_poll, needs_save
from .sources import Format, SourceEntry, SourceError, parse_sources
from .transport import wait_at_most

#: How long in-flight URLs may finish after a stop request before they are abandoned.
STOP_GRACE_SECONDS: Final = 5.0
#: URLs planned together: their records are read from the store in one query and parsed
#: together (:func:`~snapcache.cache.read_ahead`); read one by one, they took a sixth of a
#: warm run's time, and parsed one by one nearly twice as long.
PLAN_BATCH: Final = 100
#: Until some attempt of a run has reached an archive, URLs are tried one at a time, and
#: after this many in a row could not connect at all (host unresolvable, connection
#: refused), the run stops: the archive cannot be reached, most likely we are offline.
PROBE_URLS: Final = 3

Verdict = Literal["ok", "failed", "deferred", "SIGINT", "SIGTERM"]

EventKind = Literal["fetched", "fresh", "would_fetch", "invalid", "duplicate", "deferred"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One line's fate, reported to ``on_result`` as soon as it is known."""

    kind: EventKind
    line: int
    url: str | None
    record: Record | None = None
    """The record, where there is one; for a ``fresh`` line, only when the run was asked
    for records of fresh lines (``fresh_records``, the default)."""
    reason: str = ""
    moved_to: str | None = None
    """When ``url`` is an old URL of a moved record: the record's current URL, the one
    fetched (see :attr:`~snapcache.protocols.Plan.alias`)."""


@dataclass(slots=True)
class RunSummary:
    """What a run did; :attr:`verdict` says how it ended."""

    started_at: str = ""
    elapsed: float = 0.0
    seen: int = 0
    invalid: int = 0
    duplicates: int = 0
    skipped_fresh: int = 0
    would_fetch: int = 0
    new: int = 0
    """Attempts that stored a first record with an outcome (not an error)."""
    refreshed: int = 0
    """Attempts that gave an existing record a new outcome (not an error)."""
    confirmed: int = 0
    """Of :attr:`refreshed`, those that found the stored capture still the newest and only
    confirmed it (one request, no body; the record's ``last_confirmed_at``)."""
    failed: int = 0
    """Attempts that ended in an error (recorded beside the record, or not stored)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    deferred: int = 0
    deferred_reason: str | None = None
    unreachable: str | None = None
    """Set when the run stopped because no archive could be connected to at all (before
    any URL got through): names the host and the cause."""
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
            "confirmed": self.confirmed,
            "failed": self.failed,
            "outcomes": dict(sorted(self.outcomes.items())),
            "deferred": self.deferred,
            "deferred_reason": self.deferred_reason,
            "unreachable": self.unreachable,
            "interrupted": self.interrupted,
            "requests": dict(sorted(self.requests.items())),
            "rate_limited": self.rate_limited,
            "saves": dict(sorted(self.saves.items())),
            "save_stopped": self.save_stopped,
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


@dataclass(frozen=True, slots=True)
class RunPolicy:
    """How a run paces itself and when it gives up for now."""

    concurrency: int = 4
    """URLs in flight at once."""
    max_wait: float = 600.0
    """Defer the rest when a pool is paused (or a token is) longer than this, seconds."""
    circuit_breaker: int = 8
    """This many URLs failing in a row (an outage) defer the rest instead of hammering."""
    grace: float = STOP_GRACE_SECONDS
    """How long in-flight URLs may finish after a stop request."""

    @classmethod
    def from_config(
        cls, config: Config, *, concurrency: int | None = None, max_wait: float | None = None
    ) -> RunPolicy:
        """The ``[run]`` section's policy, with the given overrides."""
        run = config.run
        return cls(
            concurrency=max(1, concurrency or run.concurrency),
            max_wait=run.max_wait if max_wait is None else max_wait,
            circuit_breaker=run.circuit_breaker,
        )


class CircuitBreaker:
    """Counts URLs failing in a row; trips once ``limit`` of them have."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0

    def record(self, failed: bool, detail: str | None) -> str | None:
        """Note one URL's outcome; returns the reason to defer when the breaker trips."""
        if not failed:
            self.in_a_row = 0
            return None
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            return f"circuit breaker: {self.limit} URLs failed in a row (latest: {detail})"
        return None


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
    """Keyword options of a run (``Fetcher.run``, ``AsyncFetcher.run``)."""

    fmt: Format | None
    """Force the source list's format (default: detected)."""
    force: bool
    """Fetch every URL, fresh or not."""
    full: bool
    """Fetch every URL in full, fresh or not, even where the stored capture is still the
    newest (without it a refresh only confirms an unchanged capture: one request, no body)."""
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
    fresh_records: bool
    """Give ``on_result`` the record of each fresh line (default True). Without them a
    fresh URL is judged from the store's facts of its record, not the record itself: a
    warm run over a long list then reads a small row per URL (what ``snapcache run``
    does). A run without ``on_result`` never reads them."""


def read_sources(sources: Sources, fmt: Format | None) -> Iterator[SourceEntry | SourceError]:
    """Each line of a source list, parsed: an entry, or an error naming the line."""
    return parse_sources(iter_source_lines(sources), fmt)


class Runner:
    """One run over a source list; use :meth:`run` once.

    ``saver``, when given, submits what the archive lacks after the fetches (``save``).
    """

    def __init__(
        self,
        engine: FetchEngine,
        policy: RunPolicy,
        *,
        force: bool = False,
        dry_run: bool = False,
        on_result: Callable[[RunEvent], None] | None = None,
        control: RunControl | None = None,
        save: SaveOptions | None = None,
        saver: Saver | None = None,
        full: bool = False,
        fresh_records: bool = True,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.force = force
        self.full = full
        self.dry_run = dry_run
        self.on_result = on_result
        self.control = control or RunControl()
        self.save = save if saver is not None and not dry_run else None
        self.saver = saver if self.save is not None else None
        #: Whether fresh lines need their records: for ``on_result``, and for the save
        #: pass, which picks its candidates from them (see :meth:`emit`).
        self.with_records = self.save is not None or (on_result is not None and fresh_records)
        self.summary = RunSummary(started_at=utc_now_iso())
        self.breaker = CircuitBreaker(policy.circuit_breaker)
        self.queue: asyncio.Queue[tuple[SourceEntry, Plan] | None] = asyncio.Queue(
            maxsize=policy.concurrency * 2
        )
        self.seen: set[str] = set()
        self.save_candidates: list[str] = []
        #: True once an attempt of this run got through to an archive.
        self.reached = False
        #: One URL at a time until then (the probe), so that offline a run stops after
        #: PROBE_URLS quick failures, not after every worker's retries.
        self.probe_gate = asyncio.Lock()
        #: URLs whose attempt could not connect at all before anything did: tried again
        #: once an archive answers, else deferred (nothing was stored for them).
        self.held: list[tuple[SourceEntry, Plan]] = []
        self.unreachable_error: ArchiveUnreachableError | None = None

    # -- reporting ---------------------------------------------------------------------

    def emit(self, event: RunEvent) -> None:
        """Report one line's fate; note it for the save pass when it needs saving."""
        record = event.record
        if self.save is not None and record is not None and (
            needs_poll(record)
            or needs_save(record, datetime.now(UTC), stale_days=self.save.stale_days)
        ):
            self.save_candidates.append(record.resource_id)
        if self.on_result is not None:
            self.on_result(event)

    def event(self, kind: EventKind, item: SourceEntry, plan: Plan | None,
              record: Record | None = None, reason: str = "") -> RunEvent:
        """The event of one listed URL, naming the URL fetched when it was moved."""
        moved_to = plan.target.given if plan is not None and plan.alias is not None else None
        return RunEvent(kind, item.line, item.url, record, reason, moved_to)

    def defer(self, reason: str) -> None:
        """Leave every URL not yet fetched for a later run; the first reason is kept."""
        if self.summary.deferred_reason is None:
            self.summary.deferred_reason = reason

    @property
    def deferring(self) -> bool:
        """True once the run has decided to defer the rest."""
        return self.summary.deferred_reason is not None

    # -- planning ----------------------------------------------------------------------

    def triage(self, item: SourceEntry | SourceError) -> Plan | None:
        """Decide one line without any request: report it now, or return the plan of a
        fetch to make."""
        s = self.summary
        if isinstance(item, SourceError):
            s.invalid += 1
            self.emit(RunEvent("invalid", item.line, None, reason=item.reason))
            return None
        s.seen += 1
        if self.deferring:
            s.deferred += 1
            self.emit(RunEvent("deferred", item.line, item.url, reason=s.deferred_reason or ""))
            return None
        try:
            plan = self.engine.plan(item.url, item.at, self.force, checked=True,
                                    full=self.full, with_record=self.with_records)
        except InputError as exc:
            s.invalid += 1
            self.emit(RunEvent("invalid", item.line, item.url, reason=str(exc)))
            return None
        if plan.resource_id in self.seen:
            s.duplicates += 1
            self.emit(self.event("duplicate", item, plan, reason="listed earlier"))
            return None
        self.seen.add(plan.resource_id)
        existing, facts = plan.existing, plan.facts
        if item.stable_id and facts is not None and facts.stable_id != item.stable_id:
            s.invalid += 1
            self.emit(RunEvent("invalid", item.line, item.url, reason=(
                f"stable_id {item.stable_id} conflicts with stored {facts.stable_id}")))
            return None
        if not plan.due:
            s.skipped_fresh += 1
            self.emit(self.event("fresh", item, plan, existing, plan.reason))
            return None
        if self.dry_run:
            s.would_fetch += 1
            self.emit(self.event("would_fetch", item, plan, existing, plan.reason))
            return None
        return plan

    async def produce(self, sources: Sources, fmt: Format | None) -> None:
        """Read the list and queue every fetch to make, until it ends or a stop.

        Lines are planned :data:`PLAN_BATCH` at a time, their records read together."""
        items = read_sources(sources, fmt)
        while batch := list(itertools.islice(items, PLAN_BATCH)):
            due: list[tuple[SourceEntry, Plan]] = []
            ids = [resource_id(i.url) for i in batch if isinstance(i, SourceEntry)]
            with read_ahead(self.engine.store, ids, only_facts=not self.with_records):
                for item in batch:
                    if self.control.stopped:
                        return
                    plan = self.triage(item)
                    if plan is not None and isinstance(item, SourceEntry):
                        due.append((item, plan))
            for job in due:
                await self.queue.put(job)

    # -- fetching ----------------------------------------------------------------------

    async def work(self) -> None:
        """A worker: fetch queued URLs one at a time until told to finish."""
        while True:
            job = await self.queue.get()
            if job is None:
                return
            item, plan = job
            if self.deferring:
                self.defer_one(item, plan)
                continue
            if self.control.stopped:
                continue
            await self.fetch_one(item, plan)

    def defer_one(self, item: SourceEntry, plan: Plan, reason: str | None = None) -> None:
        """Leave one URL as it is for a later run, and say why."""
        self.summary.deferred += 1
        self.emit(self.event("deferred", item, plan,
                             reason=reason or self.summary.deferred_reason or ""))

    async def fetch_one(self, item: SourceEntry, plan: Plan) -> None:
        """Fetch one planned URL and count its outcome; never raises for one URL.

        Until an attempt of this run reaches an archive, attempts go one at a time and one
        that cannot connect at all is held, not recorded (see :data:`PROBE_URLS`)."""
        probing = False
        if not self.reached:
            await self.probe_gate.acquire()
            if self.reached:
                self.probe_gate.release()
            else:
                probing = True
        try:
            if probing and self.deferring:  # the probe gave up while this one waited
                self.defer_one(item, plan)
                return
            reached = await self.attempt_one(item, plan, probing=probing)
        finally:
            if probing:
                self.probe_gate.release()
        if reached and not self.reached:
            self.reached = True
            held, self.held = self.held, []
            for held_item, held_plan in held:  # a blip, not an outage: try them for real
                if self.deferring:
                    self.defer_one(held_item, held_plan)
                elif not self.control.stopped:
                    await self.fetch_one(held_item, held_plan)

    async def attempt_one(self, item: SourceEntry, plan: Plan, *, probing: bool) -> bool:
        """Make and count one attempt; returns whether it got through to an archive."""
        s = self.summary
        try:
            record: Record = await self.engine.attempt(plan, item.stable_id,
                                                       defer_unreachable=probing)
        except ArchiveUnreachableError as exc:
            # Nothing answered, and nothing has in this run: say nothing about the URL yet.
            self.held.append((item, plan))
            self.unreachable_error = exc
            if len(self.held) >= PROBE_URLS:
                self.give_up_unreachable()
            return False
        except DeferredError as exc:
            self.defer(str(exc))
            self.defer_one(item, plan, str(exc))
            return False
        except StableIdConflictError as exc:
            s.invalid += 1
            self.emit(self.event("invalid", item, plan, reason=str(exc)))
            return False
        except Exception as exc:  # one URL's failure must not end the run
            # The attempt could not even be recorded (the store failed: locked too long by
            # another writer, a disk error; or a bug). A worker that died here would leave
            # the run waiting forever on its queue: count the URL as an error, report it,
            # and go on (the circuit breaker stops a run where all fail).
            reason = f"not stored: {type(exc).__name__}: {exc}"
            s.outcomes["error"] += 1
            s.failed += 1
            self.trip(self.breaker.record(True, reason))
            self.emit(self.event("fetched", item, plan, None, reason=reason))
            return False
        outcome = record.last_outcome or record.status
        s.outcomes[outcome] += 1
        if outcome == "error":
            s.failed += 1  # recorded beside the record, but nothing was fetched
        elif plan.existing is None:
            s.new += 1
        else:
            s.refreshed += 1
            if record.last_confirmed_at is not None and (
                    record.last_confirmed_at == record.last_attempt_at):
                s.confirmed += 1
        self.trip(self.breaker.record(outcome == "error", record.error))
        self.emit(self.event("fetched", item, plan, record))
        return True

    def give_up_unreachable(self) -> None:
        """No archive could be connected to: defer the held URLs and the rest of the run."""
        exc = self.unreachable_error
        if exc is None or not self.held:
            return
        reason = f"the archive cannot be reached: {exc.host}: {exc.cause}; are you offline?"
        self.defer(reason)
        if self.summary.unreachable is None:
            self.summary.unreachable = reason
        held, self.held = self.held, []
        for item, plan in held:
            self.defer_one(item, plan, reason)

    def trip(self, reason: str | None) -> None:
        """Defer the rest when the circuit breaker has tripped."""
        if reason is not None:
            self.defer(reason)

    # -- stopping ----------------------------------------------------------------------

    async def watch(self, producer: asyncio.Task[None], workers: list[asyncio.Task[None]]
                    ) -> None:
        """On a stop request: take no new URLs at once (the producer may be waiting on a
        full queue), let in-flight ones finish for the grace period, then abandon them.
        Nothing half-done is stored: each record write is one transaction after its fetch."""
        while not self.control.stopped:
            await asyncio.sleep(0.1)
        producer.cancel()
        await asyncio.sleep(self.policy.grace)
        for task in workers:
            task.cancel()

    async def finish(self, workers: list[asyncio.Task[None]]) -> None:
        """Tell every worker to finish once the queue drains, and wait for them."""
        pending = len(workers)
        while pending and not all(w.done() for w in workers):
            try:
                self.queue.put_nowait(None)
                pending -= 1
            except asyncio.QueueFull:
                await asyncio.sleep(0.05)
        await asyncio.gather(*workers, return_exceptions=True)

    # -- the run -----------------------------------------------------------------------

    async def run(self, sources: Sources, fmt: Format | None = None) -> RunSummary:
        """Run over ``sources``; then, with ``save``, the save pass; then summarise."""
        started = time.monotonic()
        before = self.engine.stats()
        with wait_at_most(self.policy.max_wait):
            await self.fetch_all(sources, fmt)
            summary = self.summary
            summary.interrupted = self.control.reason if self.control.stopped else None
            if self.saver is not None and self.save is not None and self.save_candidates \
                    and not self.control.stopped:
                try:
                    saved = await self.saver.run(self.save_candidates,
                                                 stale_days=self.save.stale_days,
                                                 budget=self.save.budget)
                    summary.saves = dict(saved.outcomes or {})
                    summary.save_stopped = saved.stopped
                except DeferredError as exc:
                    summary.save_stopped = str(exc)
        after = self.engine.stats()
        summary.requests = Counter(after.requests) - Counter(before.requests)
        summary.rate_limited = after.rate_limited - before.rate_limited
        summary.elapsed = time.monotonic() - started
        return summary

    async def fetch_all(self, sources: Sources, fmt: Format | None) -> None:
        """The fetching part of a run: a producer, the workers and a stop watcher."""
        workers = [asyncio.create_task(self.work()) for _ in range(self.policy.concurrency)]
        producer = asyncio.create_task(self.produce(sources, fmt))
        watcher = asyncio.create_task(self.watch(producer, workers))
        try:
            try:
                await producer
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the run itself is being cancelled, not just its producer
            await self.finish(workers)
            # Attempts that could not connect, with nothing else to tell (the list was
            # shorter than the probe, or the rest was deferred for another reason).
            self.give_up_unreachable()
        finally:
            watcher.cancel()
            producer.cancel()
            for task in workers:
                task.cancel()
