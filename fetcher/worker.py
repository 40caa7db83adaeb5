"""``snapcache worker``: take jobs from the queue (:mod:`snapcache.cache.postgres.queue`) and
fetch them through the engine, on as many hosts as you like.

A worker is a layer like the runner: it depends on :class:`~snapcache.protocols.FetchEngine`,
never on the engine itself, and every request still goes through the transport's shared
rate limits (with the PostgreSQL store, one budget for every worker: see
:mod:`snapcache.pglimits`).

* **Claiming.** Up to ``concurrency`` jobs are held at once, each under a lease renewed
  every third of its length while the worker lives. Until an attempt has reached an archive,
  one job at a time (the probe): offline, a worker stops after three quick failures.
* **Each job.** Planned again from the store when it starts: a URL that became fresh since
  it was queued (another worker, a run, a fetch) is completed without any request. Else it
  is fetched and its record written, and the job is done (a final outcome) or failed (an
  error, recorded on the record as in a run).
* **Stopping.** On SIGINT or SIGTERM (:meth:`RunControl.stop`) no new job is claimed;
  in-flight jobs get the grace period to finish, and the rest are released (pending again,
  as if never claimed). A pause longer than ``max_wait``, the circuit breaker, or an archive
  that cannot be reached at all also stop the claiming; the jobs stay queued for later.
* **Dying.** A worker killed outright stops renewing; its leases expire and other workers
  take the jobs over (their ``attempts`` count shows it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from snapcache.cache import Record, StableIdConflictError, utc_now_iso
from snapcache.cache.postgres.queue import DEFAULT_MAX_ATTEMPTS, Job, JobQueue

from .config import Config
from .errors import ArchiveUnreachableError, ConfigError, DeferredError, InputError, SnapcacheError
from .protocols import FetchEngine
from .runner import PROBE_URLS, STOP_GRACE_SECONDS, CircuitBreaker, RunControl, Verdict
from .stores import ENV_DSN, configured_dsn
from .transport import wait_at_most

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "JobEvent",
    "Worker",
    "WorkerPolicy",
    "WorkerSummary",
    "open_queue",
    "worker_name",
]

#: How long a claimed job stays a worker's without a renewal. A dead worker's jobs are
#: taken over this long after it died; a live one renews every third of it.
DEFAULT_LEASE_SECONDS: Final = 60.0

_log = logging.getLogger(__name__)

JobEventKind = Literal["fetched", "fresh", "failed", "released"]


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One job's fate, reported to ``on_result`` as soon as it is known."""

    kind: JobEventKind
    """``fetched`` (an attempt stored; its outcome may be an error), ``fresh`` (nothing to
    do), ``failed`` (the job could not be attempted: an invalid URL, a stable ID conflict,
    a store failure) or ``released`` (given back, pending: deferred or stopping)."""
    job: Job
    record: Record | None = None
    reason: str = ""
    lost: bool = False
    """The lease had expired and another worker holds the job: its result counts."""


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    """How a worker paces itself and when it stops."""

    concurrency: int = 4
    """Jobs in flight at once."""
    max_wait: float = 600.0
    """Stop claiming (exit 75) when a pool is paused (or a token is) longer than this."""
    lease: float = DEFAULT_LEASE_SECONDS
    until_empty: bool = False
    """Stop once no job is pending or leased (instead of waiting for more)."""
    circuit_breaker: int = 8
    grace: float = STOP_GRACE_SECONDS
    idle_wait: float = 2.0
    """Seconds between looks at a queue with nothing to claim."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @classmethod
    def from_config(cls, config: Config, *, concurrency: int | None = None,
                    max_wait: float | None = None, lease: float | None = None,
                    until_empty: bool = False) -> WorkerPolicy:
        """The ``[run]`` section's pace (concurrency, max_wait, circuit breaker), with the
        given overrides."""
        run = config.run
        return cls(
            concurrency=max(1, concurrency or run.concurrency),
            max_wait=run.max_wait if max_wait is None else max_wait,
            lease=DEFAULT_LEASE_SECONDS if lease is None else lease,
            until_empty=until_empty,
            circuit_breaker=run.circuit_breaker,
        )


@dataclass(slots=True)
class WorkerSummary:
    """What a worker did; :attr:`verdict` says how it ended."""

    worker: str = ""
    started_at: str = ""
    elapsed: float = 0.0
    claimed: int = 0
    taken_over: int = 0
    """Claimed jobs that had been claimed before (a worker was lost, or released them)."""
    fetched: int = 0
    fresh: int = 0
    failed: int = 0
    """Jobs finished as failed: an error outcome, or no attempt possible."""
    released: int = 0
    lost: int = 0
    """Jobs whose lease expired before they finished (another worker took them over)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    deferred_reason: str | None = None
    unreachable: str | None = None
    interrupted: str | None = None
    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0

    @property
    def verdict(self) -> Verdict:
        """"SIGTERM"/"SIGINT" when stopped by a signal, "deferred" when it stopped claiming
        for a later try, else "ok" (the CLI's exit code follows it)."""
        if self.interrupted == "SIGTERM":
            return "SIGTERM"
        if self.interrupted is not None:
            return "SIGINT"
        return "deferred" if self.deferred_reason is not None else "ok"

    def to_json_dict(self) -> dict[str, Any]:
        """The summary as one JSON-ready object."""
        return {
            "worker": self.worker,
            "started_at": self.started_at,
            "elapsed_seconds": round(self.elapsed, 3),
            "claimed": self.claimed,
            "taken_over": self.taken_over,
            "fetched": self.fetched,
            "fresh": self.fresh,
            "failed": self.failed,
            "released": self.released,
            "lost": self.lost,
            "outcomes": dict(sorted(self.outcomes.items())),
            "deferred_reason": self.deferred_reason,
            "unreachable": self.unreachable,
            "interrupted": self.interrupted,
            "requests": dict(sorted(self.requests.items())),
            "rate_limited": self.rate_limited,
        }


def open_queue(config: Config) -> JobQueue:
    """The job queue of the PostgreSQL store ``config`` names. Raises :class:`ConfigError`
    for another backend (the queue lives beside the records, so every worker shares it)."""
    if config.cache.backend != "postgres":
        raise ConfigError(
            'the job queue needs the PostgreSQL store: set [cache] backend = "postgres" '
            f"and dsn (or ${ENV_DSN})"
        )
    dsn = configured_dsn(config)
    if not dsn:
        raise ConfigError(
            f'cache.dsn: required when cache.backend is "postgres" (or set ${ENV_DSN})')
    return JobQueue(dsn)


def worker_name() -> str:
    """A name no other worker has: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Takes jobs from ``queue`` and fetches them through ``engine``; :meth:`run` once."""

    def __init__(
        self,
        engine: FetchEngine,
        queue: JobQueue,
        policy: WorkerPolicy,
        *,
        name: str | None = None,
        control: RunControl | None = None,
        on_result: Callable[[JobEvent], None] | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.policy = policy
        self.name = name or worker_name()
        self.control = control or RunControl()
        self.on_result = on_result
        self.summary = WorkerSummary(worker=self.name, started_at=utc_now_iso())
        self.breaker = CircuitBreaker(policy.circuit_breaker)
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        #: The job of each task in flight (by resource ID), to give back if abandoned.
        self.jobs: dict[str, Job] = {}
        #: True once an attempt got through to an archive (until then: one job at a time).
        self.reached = False
        self.unreachable_in_a_row = 0
        #: What ended a job's task unexpectedly (the queue's database failing, say): the
        #: worker stops claiming and raises it once the rest is wound down.
        self.crash: BaseException | None = None

    # -- the loop ----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once the worker claims no more: a stop request, or a reason to defer."""
        return (self.control.stopped or self.summary.deferred_reason is not None
                or self.crash is not None)

    async def run(self) -> WorkerSummary:
        """Claim and fetch until stopped (or, with ``until_empty``, until the queue has
        nothing pending or leased); returns the summary."""
        started = time.monotonic()
        before = self.engine.stats()
        with wait_at_most(self.policy.max_wait):
            heartbeat = asyncio.create_task(self.heartbeat())
            try:
                await self.claim_and_fetch()
                await self.wind_down()
            finally:
                heartbeat.cancel()
                await self.abandon()
        if self.crash is not None:
            raise self.crash
        s = self.summary
        s.interrupted = self.control.reason if self.control.stopped else None
        after = self.engine.stats()
        s.requests = Counter(after.requests) - Counter(before.requests)
        s.rate_limited = after.rate_limited - before.rate_limited
        s.elapsed = time.monotonic() - started
        return s

    async def claim_and_fetch(self) -> None:
        """Keep ``concurrency`` jobs in flight (one until an archive was reached)."""
        while not self.stopping:
            room = (self.policy.concurrency if self.reached else 1) - len(self.in_flight)
            if room > 0:
                jobs = await asyncio.to_thread(
                    self.queue.claim, self.name, room, lease=self.policy.lease,
                    max_attempts=self.policy.max_attempts)
                for job in jobs:
                    self.start(job)
                if jobs:
                    continue
                if self.policy.until_empty and not self.in_flight \
                        and not await asyncio.to_thread(self.queue.live):
                    return
            await self.wait(self.policy.idle_wait if room > 0 else 3600.0)

    def start(self, job: Job) -> None:
        """Fetch ``job`` in a task of its own."""
        s = self.summary
        s.claimed += 1
        if job.attempts > 1:
            s.taken_over += 1
        task = asyncio.create_task(self.guarded(job))
        self.in_flight[job.resource_id] = task
        self.jobs[job.resource_id] = job

        def done(_: asyncio.Task[None]) -> None:
            self.in_flight.pop(job.resource_id, None)
            self.jobs.pop(job.resource_id, None)

        task.add_done_callback(done)

    async def wait(self, seconds: float) -> None:
        """Until a job in flight finishes, a stop is requested, or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            tasks = set(self.in_flight.values())
            step = min(0.1, max(0.0, deadline - time.monotonic()))
            if tasks:
                done, _ = await asyncio.wait(tasks, timeout=step,
                                             return_when=asyncio.FIRST_COMPLETED)
                if done:
                    return
            else:
                await asyncio.sleep(step)

    async def wind_down(self) -> None:
        """After the loop: in-flight jobs finish (on a stop request, within the grace
        period only; :meth:`abandon` releases the rest)."""
        tasks = set(self.in_flight.values())
        if not tasks:
            return
        timeout = self.policy.grace if self.control.stopped else None
        await asyncio.wait(tasks, timeout=timeout)

    async def abandon(self) -> None:
        """Cancel what is still in flight and give those jobs back, pending."""
        held = {rid: (self.jobs[rid], task) for rid, task in self.in_flight.items()
                if not task.done()}
        for _, task in held.values():
            task.cancel()
        await asyncio.gather(*(task for _, task in held.values()), return_exceptions=True)
        if not held:
            return
        try:
            # A job whose finishing write got through before the cancel is not released
            # (it is no longer leased): the count says how many were given back.
            given_back = await asyncio.to_thread(self.queue.release, self.name, list(held))
        except SnapcacheError as exc:  # their leases expire: another worker takes them
            _log.warning("worker %s: could not release %d jobs: %s", self.name, len(held), exc)
            return
        self.summary.released += given_back
        reason = "the worker stopped before this job finished; given back to the queue"
        for job, _ in held.values():
            self.emit(JobEvent("released", job, reason=reason))

    async def heartbeat(self) -> None:
        """Renew the leases of the jobs in flight, every third of the lease."""
        every = max(0.2, self.policy.lease / 3.0)
        while True:
            await asyncio.sleep(every)
            held = list(self.in_flight)
            if not held:
                continue
            try:
                await asyncio.to_thread(self.queue.renew, self.name, held,
                                        lease=self.policy.lease)
            except SnapcacheError as exc:  # the next beat tries again; the lease may expire
                _log.warning("worker %s: renewing leases failed: %s", self.name, exc)

    # -- one job -----------------------------------------------------------------------

    def emit(self, event: JobEvent) -> None:
        """Report one job's fate."""
        if self.on_result is not None:
            self.on_result(event)

    async def finish(self, job: Job, *, failed: bool, outcome: str,
                     record: Record | None = None, error: str | None = None) -> bool:
        """Finish ``job`` in the queue; False when its lease was lost meanwhile."""
        held = await asyncio.to_thread(
            self.queue.finish, self.name, job.resource_id, failed=failed, outcome=outcome,
            capture_timestamp=record.capture_timestamp if record is not None else None,
            error=error)
        if not held:
            self.summary.lost += 1
        return held

    async def release(self, job: Job, reason: str) -> None:
        """Give ``job`` back, pending, with nothing stored for it."""
        await asyncio.to_thread(self.queue.release, self.name, [job.resource_id])
        self.summary.released += 1
        self.emit(JobEvent("released", job, reason=reason))

    async def fail(self, job: Job, reason: str, *, outcome: str = "error") -> None:
        """Finish ``job`` as failed without an attempt stored."""
        held = await self.finish(job, failed=True, outcome=outcome, error=reason)
        self.summary.failed += 1
        self.summary.outcomes[outcome] += 1
        self.emit(JobEvent("failed", job, reason=reason, lost=not held))

    def defer(self, reason: str) -> None:
        """Claim nothing more: the jobs left stay queued for a later try."""
        if self.summary.deferred_reason is None:
            self.summary.deferred_reason = reason

    async def guarded(self, job: Job) -> None:
        """:meth:`handle`, with anything it did not expect kept to stop the worker."""
        try:
            await self.handle(job)
        except Exception as exc:
            if self.crash is None:
                self.crash = exc

    async def handle(self, job: Job) -> None:
        """Plan, fetch and finish one job; never raises for one job."""
        s = self.summary
        try:
            plan = await asyncio.to_thread(self.engine.plan, job.url, job.at, job.force)
        except InputError as exc:
            await self.fail(job, str(exc), outcome="invalid")
            return
        if not plan.due:
            held = await self.finish(job, failed=False, outcome="fresh", record=plan.existing)
            s.fresh += 1
            self.emit(JobEvent("fresh", job, plan.existing, plan.reason, lost=not held))
            return
        try:
            record = await self.engine.attempt(plan, job.stable_id,
                                               defer_unreachable=not self.reached)
        except ArchiveUnreachableError as exc:
            await self.release(job, str(exc))
            self.unreachable_in_a_row += 1
            if self.unreachable_in_a_row >= PROBE_URLS:
                reason = (f"the archive cannot be reached: {exc.host}: {exc.cause}; "
                          "are you offline?")
                s.unreachable = reason
                self.defer(reason)
            return
        except DeferredError as exc:
            await self.release(job, str(exc))
            self.defer(str(exc))
            return
        except StableIdConflictError as exc:
            await self.fail(job, str(exc), outcome="invalid")
            return
        except Exception as exc:  # one job's failure must not end the worker
            reason = f"not stored: {type(exc).__name__}: {exc}"
            await self.fail(job, reason)
            self.trip(self.breaker.record(True, reason))
            return
        self.reached = True
        self.unreachable_in_a_row = 0
        outcome = record.last_outcome or record.status
        failed = outcome == "error"
        held = await self.finish(job, failed=failed, outcome=outcome, record=record,
                                 error=record.error if failed else None)
        s.fetched += 1
        s.outcomes[outcome] += 1
        if failed:
            s.failed += 1
        self.trip(self.breaker.record(failed, record.error))
        self.emit(JobEvent("fetched", job, record, lost=not held))

    def trip(self, reason: str | None) -> None:
        """Stop claiming when the circuit breaker has tripped."""
        if reason is not None:
            self.defer(reason)

