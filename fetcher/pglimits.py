"""The rate-limit state in PostgreSQL: one polite budget for every worker on every host.

With the PostgreSQL store (``[cache] backend = "postgres"``), the token buckets, the pauses
after a 429 or a firewall block and the Save Page Now daily count live in the same database
(tables ``snapcache_rate_buckets`` and ``snapcache_save_daily``, made by the store's
migrations), so every process on every host using it shares them. The rules are the
transport's (:mod:`snapcache.transport.limits`); this module only keeps the numbers, as a
:class:`~snapcache.transport.state.LimiterState`.

Why here and not in the transport: the transport imports nothing of the store package but
its file helpers, while this state reuses the store's connection handling (timeouts,
messages that never show a password) and its migrations. The facade builds it and passes it
in (:func:`open_limiter_state`), so the transport sees only the interface, and psycopg (an
optional extra) is imported only when a PostgreSQL store is configured.

**Clock.** Every time stored here is read from the database server's clock,
``clock_timestamp()``, after the bucket's row lock is granted: the one clock every host
sees. Hosts' own clocks disagree (by milliseconds with NTP, by much more without), and a
bucket refilled on one host's clock and read on another's would credit (or withhold) the
difference at every take. ``now()`` would not do either: it is the transaction's start,
read before the lock wait, which is the over-credit bug the SQLite file had.

**Scope.** ``[rates] scope = "global"`` (the default) keys every bucket by archive host and
pool alone, so all hosts share one budget: right when they reach the archive through one
address (one NAT, one proxy), which the archive counts as one IP. ``"host"`` keys the
per-IP pools (cdx, playback) by this host's name as well, for hosts with addresses of
their own. The Save Page Now pools and the daily count stay shared whatever the scope: the
archive counts them per account.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from snapcache.cache.errors import CacheError
from snapcache.cache.postgres.dsn import connect, open_pool, scrub_dsn
from snapcache.cache.postgres.dsn import scrub_message as scrub
from snapcache.cache.postgres.schema import ensure_current

from .config import Config
from .transport import BucketRow, Pool, StateChange

__all__ = ["MAX_CONNECTIONS", "PostgresLimiterState", "open_limiter_state"]

T = TypeVar("T")

#: Connections one state keeps at most: every token taken is a short transaction, run on a
#: worker thread, so a few are plenty for a process's concurrency.
MAX_CONNECTIONS: Final = 4

#: How long a bucket's row lock is waited for before the take fails (as a store write does).
LOCK_TIMEOUT_SECONDS: Final = 30.0

_EPOCH: Final = "extract(epoch FROM {})::float8"
_COLUMNS: Final = ", ".join([
    "bucket", "tokens", _EPOCH.format("updated"), _EPOCH.format("paused_until"),
    _EPOCH.format("last_429"),
])
_CLOCK: Final = f"SELECT {_EPOCH.format('clock_timestamp()')}"


class PostgresLimiterState:
    """A :class:`~snapcache.transport.state.LimiterState` in a PostgreSQL database.

    ``scope`` is ``"global"`` or ``"host"`` (see the module), ``host`` the name this host's
    buckets are keyed by under ``"host"`` (default: :func:`socket.gethostname`). The schema
    is brought up to date on opening, as the store does. Safe to share between threads.
    Raises :class:`~snapcache.cache.CacheError` (never quoting a password) when the
    database cannot be used.
    """

    def __init__(self, dsn: str, *, scope: str = "global", host: str | None = None) -> None:
        if scope not in ("global", "host"):
            raise ValueError(f"scope must be 'global' or 'host', not {scope!r}")
        self._dsn = dsn
        self.location = scrub_dsn(dsn)
        self.scope = scope
        self.host = host if host is not None else socket.gethostname()
        with connect(dsn) as conn, self._errors():
            ensure_current(conn)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = open_pool(
            dsn, max_size=MAX_CONNECTIONS, timeout=LOCK_TIMEOUT_SECONDS,
            name="snapcache-limits", configure=_configure)
        self._closed = threading.Event()

    @property
    def description(self) -> str:
        """``rate-limit state in PostgreSQL at <DSN without its password>``."""
        return f"rate-limit state in PostgreSQL at {self.location}"

    def scope_of(self, name: str) -> str:
        """The ``scope`` column of bucket ``name`` (``host|pool``): '' when every host
        shares it, else this host's name."""
        pool = name.rpartition("|")[2]
        per_account = pool in (Pool.SAVE.value, Pool.SAVE_STATUS.value)
        return self.host if self.scope == "host" and not per_account else ""

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except CacheError:
            raise
        except PoolTimeout as exc:
            raise CacheError(
                f"{self.description}: no connection within {LOCK_TIMEOUT_SECONDS:g} s: "
                f"{scrub(str(exc), self._dsn)}"
            ) from None
        except psycopg.Error as exc:
            raise CacheError(
                f"{self.description} cannot be used: {scrub(str(exc), self._dsn).strip()}"
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed.is_set():
            raise CacheError(f"{self.description} is closed")
        with self._errors(), self._pool.connection() as conn, conn.transaction():
            yield conn

    def update(self, name: str, change: StateChange[T]) -> T:
        """See :meth:`LimiterState.update <snapcache.transport.state.LimiterState.update>`:
        the row is locked with ``SELECT ... FOR UPDATE``, then the server's clock read."""
        scope = self.scope_of(name)
        lock = (f"SELECT {_COLUMNS} FROM snapcache_rate_buckets"
                " WHERE scope = %s AND bucket = %s FOR UPDATE")
        with self._transaction() as conn:
            row = conn.execute(lock, (scope, name)).fetchone()
            if row is None:
                # A first taker creates the row empty, then locks it like everyone else: two
                # first takers at once queue on it instead of both starting a full bucket.
                conn.execute(
                    "INSERT INTO snapcache_rate_buckets (scope, bucket) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING", (scope, name))
                row = conn.execute(lock, (scope, name)).fetchone()
            clock = conn.execute(_CLOCK).fetchone()
            assert row is not None and clock is not None  # the row was just made, or found
            now = float(clock[0])
            new, answer = change(_bucket_row(row), now)
            if new is not None:
                conn.execute(
                    "UPDATE snapcache_rate_buckets SET tokens = %s, updated = to_timestamp(%s),"
                    " paused_until = to_timestamp(%s), last_429 = to_timestamp(%s)"
                    " WHERE scope = %s AND bucket = %s",
                    (new.tokens, new.updated, new.paused_until, new.last_429, scope, name))
            return answer

    def read(self, names: Collection[str] | None = None) -> tuple[float, dict[str, BucketRow]]:
        """See :meth:`LimiterState.read <snapcache.transport.state.LimiterState.read>`
        (this host's view: buckets of the scope each would be taken in)."""
        query = (f"SELECT scope, {_COLUMNS} FROM snapcache_rate_buckets"
                 " WHERE tokens IS NOT NULL AND scope IN ('', %s)")
        params: list[Any] = [self.host]
        if names is not None:
            query += " AND bucket = ANY(%s)"
            params.append(list(names))
        with self._transaction() as conn:
            rows = conn.execute(query, params).fetchall()
            clock = conn.execute(_CLOCK).fetchone()
        assert clock is not None
        found: dict[str, BucketRow] = {}
        for scope, *rest in rows:
            row = _bucket_row(rest)
            if row is not None and scope == self.scope_of(str(rest[0])):
                found[str(rest[0])] = row
        return float(clock[0]), found

    def count_daily(self, limit: int) -> bool:
        """See :meth:`LimiterState.count_daily
        <snapcache.transport.state.LimiterState.count_daily>`: one statement, atomic."""
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO snapcache_save_daily AS d (day, count)"
                " SELECT (clock_timestamp() AT TIME ZONE 'UTC')::date, 1 WHERE %s >= 1"
                " ON CONFLICT (day) DO UPDATE SET count = d.count + 1 WHERE d.count < %s"
                " RETURNING count", (limit, limit)).fetchone()
        return row is not None

    def close(self) -> None:
        """Close the connections."""
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresLimiterState({self.location!r}, scope={self.scope!r})"


def _configure(conn: psycopg.Connection[Any]) -> None:
    # A bucket locked longer than this fails the take (it is held for a few statements).
    conn.execute("SELECT set_config('lock_timeout', %s, false)",
                 (f"{int(LOCK_TIMEOUT_SECONDS * 1000)}ms",))


def _bucket_row(row: Any) -> BucketRow | None:
    """A stored row (``bucket, tokens, updated, paused_until, last_429``) as a
    :class:`BucketRow`; None for a row just created (tokens NULL: a new, full bucket)."""
    _, tokens, updated, paused_until, last_429 = row
    if tokens is None or updated is None:
        return None
    return BucketRow(float(tokens), float(updated), float(paused_until), float(last_429))


def open_limiter_state(config: Config, dsn: str) -> PostgresLimiterState:
    """The shared PostgreSQL rate-limit state of ``config`` at ``dsn`` (the store's), with
    ``[rates] scope``."""
    return PostgresLimiterState(dsn, scope=config.rates.scope)
