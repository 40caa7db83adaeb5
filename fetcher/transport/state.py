"""Where the shared rate-limit state lives: the small interface every backend implements.

:class:`~snapcache.transport.limits.RateLimiter` and
:class:`~snapcache.transport.limits.DailyBudget` keep the rules (refills, pauses, times not
to be trusted); a :class:`LimiterState` only keeps the numbers, shared by everyone who uses
the same place, and offers the three operations the rules need:

* :meth:`~LimiterState.update`: read one bucket with its row locked, read the clock *under
  the lock*, and write back what the rule decided, in one transaction (taking a token and
  pausing a pool are both this);
* :meth:`~LimiterState.read`: the buckets as they stand, with the clock, changing nothing;
* :meth:`~LimiterState.count_daily`: count one Save Page Now submission today, unless the
  day's budget is spent.

Two backends: an SQLite file on one machine
(:class:`~snapcache.transport.statefile.SqliteLimiterState`, the default), and PostgreSQL
(:class:`snapcache.pglimits.PostgresLimiterState`, used with the PostgreSQL store, so that
workers on several hosts share one budget). Each backend reads its own clock: the SQLite
file the machine's, PostgreSQL the database server's, so that every process writing a
bucket measures time on the same clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol, TypeVar

__all__ = ["BucketRow", "LimiterState", "StateChange"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One bucket as a backend stores it; times are seconds since the epoch on the
    backend's clock."""

    tokens: float
    updated: float
    """When ``tokens`` was last computed (the refill runs from here)."""
    paused_until: float = 0.0
    """When the pool's pause ends (0: never paused)."""
    last_429: float = 0.0
    """When the pool was last paused (kept for people reading the state)."""


StateChange = Callable[[BucketRow | None, float], tuple[BucketRow | None, T]]
"""A rule applied under a bucket's lock: given the stored row (None: no such bucket yet) and
the clock read under the lock, it returns the row to store (None: leave it as it is) and
its answer."""


class LimiterState(Protocol):
    """Buckets and the daily save count, shared by every process using the same place."""

    @property
    def description(self) -> str:
        """What the state is, for messages and warnings: ``rate-limit state file
        '/path'`` or ``rate-limit state in PostgreSQL at postgresql://host/db``."""
        ...

    def update(self, name: str, change: StateChange[T]) -> T:
        """Apply ``change`` to bucket ``name`` (``host[:port]|pool``) in one transaction:
        the row locked, the clock read after the lock was granted (a clock read before it
        would let a process that waited write an older time, and the next taker would be
        credited the same interval twice). Returns ``change``'s answer."""
        ...

    def read(self, names: Collection[str] | None = None) -> tuple[float, dict[str, BucketRow]]:
        """The clock now and the stored buckets (those named, or every one), unchanged."""
        ...

    def count_daily(self, limit: int) -> bool:
        """Count one submission today (UTC, on the backend's clock); False, counting
        nothing, when ``limit`` are already counted."""
        ...

    def close(self) -> None:
        """Release connections (the state stays where it is)."""
        ...
