"""``snapcache enqueue``: read a source list exactly as a run does, and queue every URL that
is due as a job for the workers (:mod:`snapcache.worker`).

The list is read and judged by the runner's own code (:class:`~snapcache.runner.Runner`'s
:meth:`~snapcache.runner.Runner.triage`): the same formats, the same line-numbered errors,
duplicates listed once, fresh records skipped, a ``stable_id`` checked against the stored
one. One thing is done earlier than in a run: a listed ``stable_id`` is bound to its
resource when the job is queued, so a conflict with one bound meanwhile is reported here,
with its line number, instead of surfacing later in a worker's log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from snapcache.cache import StableIdConflictError
from snapcache.cache.postgres.queue import JobQueue, NewJob

from .ids import mint_stable_id
from .protocols import FetchEngine
from .runner import RunEvent, Runner, RunPolicy, RunSummary, Sources, read_sources
from .sources import Format, SourceEntry

__all__ = ["BATCH", "EnqueueSummary", "Enqueuer"]

#: Jobs written per statement.
BATCH: Final = 500


@dataclass(slots=True)
class EnqueueSummary:
    """What ``enqueue`` did with a list."""

    seen: int = 0
    invalid: int = 0
    duplicates: int = 0
    skipped_fresh: int = 0
    queued: int = 0
    """Jobs queued (new, or a finished job of the resource started again)."""
    already_queued: int = 0
    """Due URLs whose job was still pending or leased: left as they are."""
    elapsed: float = 0.0

    @property
    def verdict(self) -> str:
        """"failed" when some line was invalid (the CLI exits 1), else "ok"."""
        return "failed" if self.invalid else "ok"

    def to_json_dict(self) -> dict[str, Any]:
        """The summary as one JSON-ready object."""
        return {
            "urls": self.seen,
            "invalid_lines": self.invalid,
            "duplicates": self.duplicates,
            "skipped_fresh": self.skipped_fresh,
            "queued": self.queued,
            "already_queued": self.already_queued,
            "elapsed_seconds": round(self.elapsed, 3),
        }


class Enqueuer(Runner):
    """A run that queues instead of fetching: :meth:`enqueue` once.

    It is a :class:`~snapcache.runner.Runner` so that every line is judged by the same
    :meth:`~snapcache.runner.Runner.triage` (events go to ``on_result`` as in a run).
    """

    def __init__(
        self,
        engine: FetchEngine,
        queue: JobQueue,
        *,
        force: bool = False,
        on_result: Callable[[RunEvent], None] | None = None,
    ) -> None:
        super().__init__(engine, RunPolicy(), force=force, on_result=on_result)
        self.jobs = queue

    def enqueue(self, sources: Sources, fmt: Format | None = None) -> EnqueueSummary:
        """Read ``sources`` and queue every due URL; returns the summary."""
        started = time.monotonic()
        result = EnqueueSummary()
        batch: list[NewJob] = []
        due = 0
        for item in read_sources(sources, fmt):
            plan = self.triage(item)
            if plan is None or not isinstance(item, SourceEntry):
                continue
            if item.stable_id is not None and not self._bind(item, plan.resource_id,
                                                             plan.target.given):
                continue
            due += 1
            batch.append(NewJob(plan.resource_id, item.url, item.at, item.stable_id,
                                self.force, item.line))
            if len(batch) >= BATCH:
                result.queued += self.jobs.add(batch)
                batch = []
        result.queued += self.jobs.add(batch)
        result.already_queued = due - result.queued
        _copy_counts(self.summary, result)
        result.elapsed = time.monotonic() - started
        return result

    def _bind(self, item: SourceEntry, resource_id: str, url: str) -> bool:
        """Bind the line's stable ID to its resource now; False (the line reported as
        invalid) when the resource holds another one."""
        try:
            self.engine.store.ensure_identity(resource_id, url, stable_id=item.stable_id,
                                              mint=mint_stable_id)
        except StableIdConflictError as exc:
            self.summary.invalid += 1
            self.emit(RunEvent("invalid", item.line, item.url, reason=str(exc)))
            return False
        return True


def _copy_counts(summary: RunSummary, result: EnqueueSummary) -> None:
    result.seen = summary.seen
    result.invalid = summary.invalid
    result.duplicates = summary.duplicates
    result.skipped_fresh = summary.skipped_fresh
