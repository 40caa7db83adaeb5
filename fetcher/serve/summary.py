"""What the dashboard and ``/v1/stats`` show about the whole store, computed in one place.

A :class:`Summary` needs a pass over every record, so :class:`SummaryCache` keeps the last
one for a few seconds and lets one thread rebuild it while the others wait for that result
(a burst of dashboard or stats requests costs one pass, not one each).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import quote

from snapcache.cache import Record, RecordFormatError, Store, StoreStats, parse_timestamp14
from snapcache.config import Config

_log = logging.getLogger(__name__)

__all__ = [
    "AGE_BUCKETS",
    "COST_FACTOR",
    "Bucket",
    "FailingRow",
    "IndexRow",
    "Summary",
    "SummaryCache",
    "archive_link",
    "build_summary",
    "failure_reason",
    "is_failing",
    "stats_document",
]

_DAY: Final = 86400.0
_YEAR: Final = 365.25 * _DAY
#: Age buckets of the newest good capture (upper bound in seconds, label).
AGE_BUCKETS: Final[tuple[tuple[float, str], ...]] = (
    (30 * _DAY, "< 1 month"),
    (182 * _DAY, "1-6 months"),
    (_YEAR, "6-12 months"),
    (2 * _YEAR, "1-2 years"),
    (5 * _YEAR, "2-5 years"),
    (10 * _YEAR, "5-10 years"),
    (float("inf"), "≥ 10 years"),
)

_STATUS_REASONS: Final[dict[str, str]] = {
    "not_archived": "the archive holds no capture",
    "blocked": "the archive refuses to replay it",
    "archived_error": "the archive holds only error captures",
    "error": "the latest attempt failed",
}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar of the age histogram."""

    label: str
    count: int


@dataclass(frozen=True, slots=True)
class FailingRow:
    """A source without a good capture, or whose latest attempt failed."""

    resource_id: str
    url: str
    title: str | None
    status: str
    last_outcome: str | None
    reason: str
    archive_link: str | None
    last_attempt_at: str | None


@dataclass(frozen=True, slots=True)
class IndexRow:
    """What search needs of one record (and shows of it)."""

    resource_id: str
    url: str
    title: str | None
    status: str
    capture_timestamp: str | None


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts, capture ages and failing sources over every record, as of ``built_at``."""

    built_at: datetime
    stats: StoreStats
    cache_bytes: int
    location: str
    ages: tuple[Bucket, ...]
    no_good_capture: int
    failing: tuple[FailingRow, ...]
    index: tuple[IndexRow, ...] = field(repr=False)


#: The order of the failing sources' table, by status.
_FAILING_ORDER: Final[dict[str, int]] = {
    "error": 0, "archived_error": 1, "blocked": 2, "not_archived": 3, "ok": 4}


def is_failing(record: Record) -> bool:
    """A source fails when it has no good capture or its latest attempt did not succeed."""
    return record.status != "ok" or record.last_outcome not in (None, "ok")


def failure_reason(record: Record) -> str:
    """Why a failing source fails, in one line: the recorded error, else its outcome."""
    if record.error:
        return record.error
    reason = _STATUS_REASONS.get(record.status, record.status)
    if record.status == "archived_error" and record.archived_status:
        reason += f" (HTTP {record.archived_status})"
    return reason


def archive_link(record: Record, config: Config) -> str | None:
    """Where a person can look at the source in the archive: its capture, else the
    archive's list of captures of the URL (the archive that answered, else the first)."""
    if record.archive_url:
        return record.archive_url
    entry = next((e for e in config.chain if e.name == record.archive), config.primary)
    prefix = "web" if entry.dialect == "ia" else entry.collection
    return f"{entry.base_url}/{prefix}/*/{quote(record.url, safe=':/?&=%#@+,;~')}"


def _age_bucket(capture_timestamp: str, now: datetime) -> int | None:
    try:
        captured = parse_timestamp14(capture_timestamp)
    except ValueError:
        return None
    age = max(0.0, (now - captured).total_seconds())
    return next(i for i, (limit, _) in enumerate(AGE_BUCKETS) if age < limit)


def _folder_bytes(location: str) -> int:
    """Bytes under the store's folder, as ``snapcache stats`` counts them (0 when the store
    is not a folder, e.g. a database server)."""
    folder = Path(location)
    if not folder.is_dir():
        return 0
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:  # removed meanwhile (SQLite's log files come and go)
            continue
    return total


def _log_damaged(exc: RecordFormatError) -> None:
    _log.warning("damaged record left out: %s", exc)


def build_summary(store: Store, config: Config, now: datetime | None = None) -> Summary:
    """One pass over every record of the store: the counts of ``snapcache stats``
    (:class:`StoreStats`, as the store contract defines them), the ages of good captures,
    the failing sources and the search index."""
    now = now or datetime.now(UTC)
    outcomes: Counter[str] = Counter()
    fetched: list[str] = []
    counts = [0] * len(AGE_BUCKETS)
    no_good = 0
    failing: list[FailingRow] = []
    index: list[IndexRow] = []
    # A damaged record is left out (and logged), as `snapcache stats` leaves it out: one
    # unreadable row must not take the dashboard down.
    for record in store.records(on_damaged=_log_damaged):
        outcomes[record.status] += 1
        if record.fetched_at:
            fetched.append(record.fetched_at)
        index.append(IndexRow(record.resource_id, record.url, record.title, record.status,
                              record.capture_timestamp))
        bucket = (_age_bucket(record.capture_timestamp, now)
                  if record.status == "ok" and record.capture_timestamp else None)
        if bucket is None:
            no_good += 1
        else:
            counts[bucket] += 1
        if is_failing(record):
            failing.append(FailingRow(
                record.resource_id, record.url, record.title, record.status,
                record.last_outcome, failure_reason(record), archive_link(record, config),
                record.last_attempt_at,
            ))
    # Transient errors first (the next run may fix them), then what the archive lacks.
    failing.sort(key=lambda row: (_FAILING_ORDER.get(row.status, len(_FAILING_ORDER)), row.url))
    # Counted in the same pass rather than by Store.stats(), which would read every record
    # a second time; the contract defines these counts exactly, and a test compares them.
    stats = StoreStats(records=sum(outcomes.values()), outcomes=dict(sorted(outcomes.items())),
                       oldest_fetch=min(fetched) if fetched else None,
                       newest_fetch=max(fetched) if fetched else None)
    return Summary(
        built_at=now,
        stats=stats,
        cache_bytes=_folder_bytes(store.location),
        location=store.location,
        ages=tuple(Bucket(label, n) for (_, label), n in zip(AGE_BUCKETS, counts, strict=True)),
        no_good_capture=no_good,
        failing=tuple(failing),
        index=tuple(index),
    )


def stats_document(summary: Summary) -> dict[str, object]:
    """The fields of ``snapcache stats --json``, in its order."""
    s = summary.stats
    return {
        "records": s.records,
        "outcomes": dict(sorted(s.outcomes.items())),
        "oldest_fetch": s.oldest_fetch,
        "newest_fetch": s.newest_fetch,
        "cache_bytes": summary.cache_bytes,
        "cache_path": summary.location,
    }


#: A summary is reused for at least this many times as long as it took to build, so that
#: counting a large store takes at most a tenth of the server's time however busy it is.
COST_FACTOR: Final = 10.0


class SummaryCache:
    """The latest :class:`Summary`, rebuilt when older than ``ttl`` seconds, or than
    :data:`COST_FACTOR` times its last build took. Thread-safe; call :meth:`get` from a
    worker thread (a rebuild reads the whole store)."""

    def __init__(self, store: Store, config: Config, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._config = config
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._summary: Summary | None = None
        self._built: float = 0.0
        self._cost: float = 0.0

    @property
    def max_age(self) -> float:
        """Seconds the current summary may be reused."""
        return max(self._ttl, COST_FACTOR * self._cost)

    def get(self) -> Summary:
        """The cached summary, or a new one when it is missing or too old."""
        with self._lock:
            if self._summary is None or self._clock() - self._built >= self.max_age:
                started = self._clock()
                self._summary = build_summary(self._store, self._config)
                self._built = self._clock()
                self._cost = self._built - started
            return self._summary
