"""The background fetch queue behind ``POST /v1/fetch``.

Requests are planned at once (a bad URL refuses the whole request, nothing queued) and
answered before any fetching; a fixed set of worker tasks on the server's event loop then
fetches through :class:`~snapcache.api.AsyncFetcher`, whose engine extracts in a worker
thread, so the loop never waits on extraction. The usual budgets hold: the shared rate
limits of every process on the machine, ``rates.max_wait`` (a longer pause leaves the URL
``deferred``) and ``run.concurrency`` fetches at once.

The queue lives in memory: queued URLs are lost when the server stops (their records stay
as they were; submit again). Job reports are kept for the last :data:`KEEP_JOBS` jobs.
A queue shared by several servers, kept in the store, is for the PostgreSQL backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from snapcache.api import AsyncFetcher
from snapcache.cache import utc_now_iso
from snapcache.errors import DeferredError, InputError, SnapcacheError
from snapcache.protocols import Plan
from starlette.concurrency import run_in_threadpool

from .errors import ApiError

__all__ = ["KEEP_JOBS", "MAX_PENDING_URLS", "FetchQueue", "ItemState", "Job", "JobItem"]

log = logging.getLogger("snapcache.serve")

#: The most URLs waiting at once; a request that would pass it gets 429 queue_full.
MAX_PENDING_URLS: Final = 10_000
#: Reports of this many recent jobs are kept for ``GET /v1/jobs/{id}``.
KEEP_JOBS: Final = 1000
#: Seconds in-flight fetches get to finish when the server stops.
STOP_GRACE: Final = 5.0

ItemState = Literal["queued", "running", "done", "fresh", "deferred", "failed"]
_FINISHED: Final = frozenset({"done", "fresh", "deferred", "failed"})


@dataclass(slots=True)
class JobItem:
    """One URL of a job and where it stands."""

    url: str
    resource_id: str
    state: ItemState
    #: Why it was (or was not) fetched: "missing", "stale since …", "fresh until …" …
    reason: str
    #: The record's status after the attempt (state "done").
    outcome: str | None = None
    #: Why the attempt did not happen or failed (states "deferred", "failed").
    error: str | None = None

    def to_json_dict(self) -> dict[str, object]:
        """The item as the API shows it."""
        return {
            "url": self.url,
            "resource_id": self.resource_id,
            "href": f"/v1/resources/{self.resource_id}",
            "state": self.state,
            "reason": self.reason,
            "outcome": self.outcome,
            "error": self.error,
        }


@dataclass(slots=True)
class Job:
    """The URLs of one ``POST /v1/fetch``."""

    id: str
    created_at: str
    force: bool
    items: list[JobItem] = field(default_factory=list)

    @property
    def state(self) -> str:
        """"done" when every URL is finished, "running" while one is fetched, else "queued"."""
        if all(item.state in _FINISHED for item in self.items):
            return "done"
        if any(item.state == "running" for item in self.items):
            return "running"
        return "queued"

    def to_json_dict(self) -> dict[str, object]:
        """The job as the API shows it."""
        return {
            "id": self.id,
            "href": f"/v1/jobs/{self.id}",
            "created_at": self.created_at,
            "state": self.state,
            "force": self.force,
            "items": [item.to_json_dict() for item in self.items],
        }


@dataclass(slots=True)
class _Entry:
    url: str
    resource_id: str
    force: bool
    items: list[JobItem]


class FetchQueue:
    """Plans submitted URLs, queues the due ones and fetches them with ``workers`` tasks."""

    def __init__(self, fetcher: AsyncFetcher, workers: int) -> None:
        self._fetcher = fetcher
        self._workers = max(1, workers)
        self._queue: asyncio.Queue[_Entry] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: dict[str, _Entry] = {}
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    @property
    def pending(self) -> int:
        """URLs queued and not yet taken by a worker."""
        return len(self._waiting)

    def job(self, job_id: str) -> Job | None:
        """A recent job's report, or ``None``."""
        return self._jobs.get(job_id)

    async def submit(self, urls: Sequence[str], force: bool) -> Job:
        """Plan every URL (``invalid_url`` names the first unusable one; nothing is queued
        then), queue the due ones and return the job. Never waits for a fetch."""
        plans: list[Plan] = []
        for index, url in enumerate(urls):
            try:
                plans.append(await run_in_threadpool(
                    functools.partial(self._fetcher.plan, url, None, force)))
            except InputError as exc:
                raise ApiError("invalid_url", f"urls[{index}]: {exc}") from None
        due = {p.resource_id for p in plans if p.due and p.resource_id not in self._waiting}
        if self.pending + len(due) > MAX_PENDING_URLS:
            raise ApiError("queue_full", f"{self.pending} URLs are waiting to be fetched",
                           headers={"Retry-After": "60"})
        self._start()
        assert self._queue is not None
        job = Job(id="job_" + secrets.token_urlsafe(12), created_at=utc_now_iso(), force=force)
        for plan in plans:
            item = JobItem(plan.target.given, plan.resource_id,
                           "queued" if plan.due else "fresh", plan.reason)
            job.items.append(item)
            if not plan.due:
                continue
            waiting = self._waiting.get(plan.resource_id)
            if waiting is not None:
                # Already queued: fetch it once for both jobs.
                waiting.items.append(item)
                waiting.force = waiting.force or force
                continue
            entry = _Entry(plan.target.given, plan.resource_id, force, [item])
            self._waiting[plan.resource_id] = entry
            self._queue.put_nowait(entry)
        self._jobs[job.id] = job
        while len(self._jobs) > KEEP_JOBS:
            self._jobs.popitem(last=False)
        return job

    def _start(self) -> None:
        # Started on first use, so the queue and the workers belong to the serving loop.
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [asyncio.create_task(self._work(), name=f"snapcache-fetch-{i}")
                           for i in range(self._workers)]

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            entry = await self._queue.get()
            self._waiting.pop(entry.resource_id, None)
            try:
                await self._fetch(entry)
            finally:
                self._queue.task_done()

    def _finish(self, entry: _Entry, state: ItemState, *, outcome: str | None = None,
                error: str | None = None, reason: str | None = None) -> None:
        for item in entry.items:
            item.state, item.outcome, item.error = state, outcome, error
            if reason is not None:
                item.reason = reason

    async def _fetch(self, entry: _Entry) -> None:
        for item in entry.items:
            item.state = "running"
        try:
            # Planned again now: an earlier job may have fetched the URL meanwhile.
            plan = await run_in_threadpool(
                functools.partial(self._fetcher.plan, entry.url, None, entry.force))
            if not plan.due:
                self._finish(entry, "fresh", reason=plan.reason)
                return
            record = await self._fetcher.attempt(plan)
        except DeferredError as exc:
            self._finish(entry, "deferred", error=str(exc))
        except SnapcacheError as exc:
            self._finish(entry, "failed", error=str(exc))
        except asyncio.CancelledError:
            self._finish(entry, "failed", error="the server stopped before the fetch ended")
            raise
        except Exception:
            log.exception("fetch of resource %s failed", entry.resource_id)
            self._finish(entry, "failed", error="internal error (see the server log)")
        else:
            self._finish(entry, "done", outcome=record.status)

    async def close(self) -> None:
        """Stop: in-flight fetches get :data:`STOP_GRACE` seconds, queued ones are dropped."""
        if not self._tasks:
            return
        assert self._queue is not None
        for entry in list(self._waiting.values()):
            self._finish(entry, "failed", error="the server stopped before the fetch began")
        self._waiting.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), STOP_GRACE)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
