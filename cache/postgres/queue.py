"""The job queue of ``snapcache enqueue`` and ``snapcache worker``, in the PostgreSQL store's
database (table ``snapcache_jobs``, made by migration 2).

A job is one URL to fetch, at most one per resource. Workers on any host claim jobs with
``SELECT ... FOR UPDATE SKIP LOCKED`` (each claim skips the rows another worker is claiming
at that moment, so two workers never take the same job and never wait for each other) and
hold them under a *lease*: a time on the database server's clock, renewed while the worker
lives. A worker that dies stops renewing; once its lease has expired, the next claim takes
the job over, and ``attempts`` (counted at every claim) shows it. A job whose workers were
lost ``max_attempts`` times fails instead of being taken again (a URL that kills its worker
must not kill them all in turn).

Every finishing write names the worker and checks its lease is still held: a worker that
lost its lease (stopped for longer than the lease, then woke up) changes nothing.

Nothing here knows what a fetch is: the queue stores URLs, states and outcomes as text.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import CacheError
from .dsn import connect, open_pool, scrub_dsn, scrub_message
from .schema import ensure_current

__all__ = ["DEFAULT_MAX_ATTEMPTS", "Job", "JobQueue", "NewJob", "PendingJob", "QueueCounts"]

#: A job whose workers were lost this many times (leases expired) fails.
DEFAULT_MAX_ATTEMPTS: Final = 5

#: Seconds to wait for a pooled connection.
_POOL_TIMEOUT: Final = 30.0

_JOB_COLUMNS: Final = ", ".join(
    f"j.{column}" for column in
    ("resource_id", "url", "at_timestamp", "stable_id", "forced", "line", "attempts", "seq"))


@dataclass(frozen=True, slots=True)
class NewJob:
    """A URL to queue: its resource, the URL as listed, the capture time asked for, a
    stable ID to bind, whether freshness is ignored, and its source line."""

    resource_id: str
    url: str
    at: str | None = None
    stable_id: str | None = None
    force: bool = False
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A job a worker holds: what :class:`NewJob` said, how many times it was claimed
    (this claim included) and its place in the queue."""

    resource_id: str
    url: str
    at: str | None
    stable_id: str | None
    force: bool
    line: int | None
    attempts: int
    seq: int


@dataclass(frozen=True, slots=True)
class PendingJob:
    """The oldest pending job, as ``snapcache queue`` shows it."""

    url: str
    enqueued_at: str
    """ISO 8601 UTC."""
    waiting_seconds: float
    attempts: int


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Jobs per state, and the oldest pending one."""

    pending: int
    leased: int
    done: int
    failed: int
    expired: int
    """Of the leased jobs, those whose lease has expired (their worker is gone): the next
    claim takes them over."""
    oldest_pending: PendingJob | None

    def to_json_dict(self) -> dict[str, object]:
        """The counts as one JSON-ready object (``snapcache queue --json``)."""
        oldest = self.oldest_pending
        return {
            "pending": self.pending,
            "leased": self.leased,
            "done": self.done,
            "failed": self.failed,
            "expired_leases": self.expired,
            "oldest_pending": None if oldest is None else {
                "url": oldest.url,
                "enqueued_at": oldest.enqueued_at,
                "waiting_seconds": round(oldest.waiting_seconds, 1),
                "attempts": oldest.attempts,
            },
        }


class JobQueue:
    """The job queue at ``dsn`` (the PostgreSQL store's database); safe to share between
    threads. Raises :class:`CacheError` (without the password) when it cannot be used."""

    def __init__(self, dsn: str, *, max_connections: int = 4) -> None:
        self._dsn = dsn
        self.location = scrub_dsn(dsn)
        with connect(dsn) as conn, self._errors():
            ensure_current(conn)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = open_pool(
            dsn, max_size=max_connections, timeout=_POOL_TIMEOUT, name="snapcache-queue")
        self._closed = threading.Event()

    def close(self) -> None:
        """Close the connections."""
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JobQueue({self.location!r})"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except CacheError:
            raise
        except PoolTimeout as exc:
            raise CacheError(
                f"no connection to the job queue at {self.location} within "
                f"{_POOL_TIMEOUT:g} s: {scrub_message(str(exc), self._dsn)}"
            ) from None
        except psycopg.Error as exc:
            raise CacheError(
                f"job queue at {self.location}: {scrub_message(str(exc), self._dsn).strip()}"
            ) from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed.is_set():
            raise CacheError(f"{self!r} is closed")
        with self._errors(), self._pool.connection() as conn:
            yield conn

    # -- enqueueing --------------------------------------------------------------------

    def add(self, jobs: Sequence[NewJob]) -> int:
        """Queue ``jobs`` in one statement; returns how many were queued. A resource whose
        job is pending or leased keeps it (that job already fetches it); one whose job is
        finished is queued again, at the end."""
        if not jobs:
            return 0
        columns = list(zip(*(
            (j.resource_id, j.url, j.at, j.stable_id, j.force, j.line) for j in jobs
        ), strict=True))
        with self._connection() as conn:
            cursor = conn.execute(
                "INSERT INTO snapcache_jobs AS j"
                " (resource_id, url, at_timestamp, stable_id, forced, line)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::boolean[], %s::integer[])"
                " ON CONFLICT (resource_id) DO UPDATE SET"
                " seq = excluded.seq, url = excluded.url, at_timestamp = excluded.at_timestamp,"
                " stable_id = excluded.stable_id, forced = excluded.forced,"
                " line = excluded.line, state = 'pending', attempts = 0,"
                " enqueued_at = excluded.enqueued_at, leased_by = NULL, lease_until = NULL,"
                " finished_at = NULL, outcome = NULL, capture_timestamp = NULL, error = NULL"
                " WHERE j.state IN ('done', 'failed')",
                [list(column) for column in columns],
            )
            return max(0, cursor.rowcount)

    # -- working -----------------------------------------------------------------------

    def claim(self, worker: str, limit: int, *, lease: float,
              max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> list[Job]:
        """Lease up to ``limit`` jobs to ``worker`` for ``lease`` seconds, in queue order:
        pending ones, and leased ones whose lease expired (their worker is gone). Rows
        other workers are claiming at this moment are skipped, never waited for."""
        with self._connection() as conn, conn.transaction():
            # A job whose workers keep dying fails rather than take down every worker.
            conn.execute(
                "UPDATE snapcache_jobs SET state = 'failed', lease_until = NULL,"
                " finished_at = clock_timestamp(), outcome = 'error',"
                " error = format('its worker was lost %%s times (last: %%s)', attempts,"
                " leased_by)"
                " WHERE resource_id IN (SELECT resource_id FROM snapcache_jobs"
                "  WHERE state = 'leased' AND lease_until < clock_timestamp()"
                "  AND attempts >= %s FOR UPDATE SKIP LOCKED)",
                (max_attempts,),
            )
            rows = conn.execute(
                "WITH picked AS (SELECT resource_id FROM snapcache_jobs"
                "  WHERE state = 'pending'"
                "   OR (state = 'leased' AND lease_until < clock_timestamp())"
                "  ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED)"
                " UPDATE snapcache_jobs AS j SET state = 'leased', attempts = j.attempts + 1,"
                " leased_by = %s, lease_until = clock_timestamp() + make_interval(secs => %s)"
                f" FROM picked WHERE j.resource_id = picked.resource_id RETURNING {_JOB_COLUMNS}",
                (limit, worker, float(lease)),
            ).fetchall()
        return sorted((Job(*row) for row in rows), key=lambda job: job.seq)

    def renew(self, worker: str, resource_ids: Sequence[str], *, lease: float) -> int:
        """Extend ``worker``'s leases on these jobs by ``lease`` seconds from now; returns
        how many it still held."""
        if not resource_ids:
            return 0
        with self._connection() as conn:
            cursor = conn.execute(
                "UPDATE snapcache_jobs SET lease_until = clock_timestamp()"
                " + make_interval(secs => %s)"
                " WHERE state = 'leased' AND leased_by = %s AND resource_id = ANY(%s)",
                (float(lease), worker, list(resource_ids)),
            )
            return max(0, cursor.rowcount)

    def finish(self, worker: str, resource_id: str, *, failed: bool, outcome: str,
               capture_timestamp: str | None = None, error: str | None = None) -> bool:
        """Mark ``worker``'s job done (or failed) with its outcome; False when the lease was
        lost meanwhile (another worker has the job, and its result will count)."""
        with self._connection() as conn:
            cursor = conn.execute(
                "UPDATE snapcache_jobs SET state = %s, lease_until = NULL,"
                " finished_at = clock_timestamp(), outcome = %s, capture_timestamp = %s,"
                " error = %s"
                " WHERE resource_id = %s AND state = 'leased' AND leased_by = %s",
                ("failed" if failed else "done", outcome, capture_timestamp, error,
                 resource_id, worker),
            )
            return cursor.rowcount == 1

    def release(self, worker: str, resource_ids: Sequence[str]) -> int:
        """Give ``worker``'s jobs back, pending, as if never claimed (a worker stopping, or
        deferring: nothing was stored for them); returns how many it still held."""
        if not resource_ids:
            return 0
        with self._connection() as conn:
            cursor = conn.execute(
                "UPDATE snapcache_jobs SET state = 'pending', lease_until = NULL,"
                " attempts = greatest(attempts - 1, 0)"
                " WHERE state = 'leased' AND leased_by = %s AND resource_id = ANY(%s)",
                (worker, list(resource_ids)),
            )
            return max(0, cursor.rowcount)

    # -- reading -----------------------------------------------------------------------

    def live(self) -> bool:
        """True while some job is pending or leased (a leased job may come back, if its
        worker is gone)."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM snapcache_jobs"
                " WHERE state IN ('pending', 'leased'))"
            ).fetchone()
        return bool(row and row[0])

    def counts(self) -> QueueCounts:
        """Jobs per state, expired leases, and the oldest pending job."""
        with self._connection() as conn, conn.transaction():
            by_state = dict(conn.execute(
                "SELECT state, count(*) FROM snapcache_jobs GROUP BY state").fetchall())
            expired_row = conn.execute(
                "SELECT count(*) FROM snapcache_jobs"
                " WHERE state = 'leased' AND lease_until < clock_timestamp()").fetchone()
            oldest = conn.execute(
                "SELECT url, to_char(enqueued_at AT TIME ZONE 'UTC',"
                " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                " extract(epoch FROM clock_timestamp() - enqueued_at)::float8, attempts"
                " FROM snapcache_jobs WHERE state = 'pending'"
                " ORDER BY enqueued_at, seq LIMIT 1").fetchone()
        return QueueCounts(
            pending=int(by_state.get("pending", 0)),
            leased=int(by_state.get("leased", 0)),
            done=int(by_state.get("done", 0)),
            failed=int(by_state.get("failed", 0)),
            expired=int(expired_row[0]) if expired_row else 0,
            oldest_pending=None if oldest is None else PendingJob(
                str(oldest[0]), str(oldest[1]), float(oldest[2]), int(oldest[3])),
        )

    def job(self, resource_id: str) -> dict[str, Any] | None:
        """One job's row as a mapping (for tests and diagnostics), or None."""
        with self._connection() as conn:
            cursor = conn.execute(
                "SELECT * FROM snapcache_jobs WHERE resource_id = %s", (resource_id,))
            row = cursor.fetchone()
            names = [c.name for c in cursor.description or ()]
        return None if row is None else dict(zip(names, row, strict=True))
