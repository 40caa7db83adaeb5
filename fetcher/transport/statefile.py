"""The rate-limit state in one SQLite file (``[rates] state_path``): every process on the
machine that uses the same file shares its buckets, pauses and daily save count.

:class:`StateFile` is the file itself (opened safely, one transaction at a time);
:class:`SqliteLimiterState` is the :class:`~snapcache.transport.state.LimiterState` kept in
it, the default when the store is a diskcache folder.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from snapcache.cache.files import diagnose, file_kind

from ..errors import StateFileError
from .state import BucketRow, StateChange

__all__ = ["SqliteLimiterState", "StateFile"]

T = TypeVar("T")


class StateFile:
    """The shared SQLite state file: one way to open it, create a table and run a
    transaction, for every budget kept in it.

    A connection is opened per operation (they run in worker threads) in WAL mode with a
    long busy timeout, so processes queue for the write lock instead of failing. The file
    (and its ``-wal``/``-shm`` companions) must be regular files: a symbolic link is never
    followed, and the file is created ``O_EXCL | O_NOFOLLOW`` with mode 0600. Every problem
    with the file (damaged, a directory or link in its place, read-only, full disk) raises
    :class:`StateFileError` naming it and saying what to do.
    """

    def __init__(self, path: Path, schema: str) -> None:
        """Create the file's directory and ``schema`` (one ``CREATE TABLE IF NOT EXISTS``)."""
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._error(exc) from exc
        self._check_file()
        with self.reading() as conn:
            conn.execute(schema)

    def _error(self, exc: BaseException) -> StateFileError:
        problem = diagnose(exc, self.path)
        advice = (
            "it holds only rate-limit counters: move it away (a new one is created) or set "
            "[rates] state_path to another file"
            if problem.damaged
            else f"{problem.advice} ([rates] state_path)"
        )
        return StateFileError(
            f"rate-limit state file {str(self.path)!r} {problem.reason}; {advice}",
            path=str(self.path),
        )

    def _check_file(self) -> None:
        """Refuse links and non-files at the path (and its WAL files); create it if absent."""
        for place in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                info = os.lstat(place)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._error(exc) from exc
            if not stat.S_ISREG(info.st_mode):
                # SQLite would follow a link (and write where it points) or fail obscurely.
                kind = file_kind(info.st_mode)
                why = ", which snapcache does not follow" if stat.S_ISLNK(info.st_mode) else ""
                raise StateFileError(
                    f"rate-limit state file {str(place)!r} is {kind}{why}, not a regular "
                    f"file; move it away (a new file is created) or set [rates] state_path "
                    f"to another file",
                    path=str(place),
                )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            os.close(os.open(self.path, flags, 0o600))
        except FileExistsError:
            pass  # already there (checked above), or another process just created it
        except OSError as exc:
            raise self._error(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _file_errors(self) -> Iterator[None]:
        """SQLite errors about the file become one :class:`StateFileError`."""
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except (sqlite3.DatabaseError, OSError) as exc:
            raise self._error(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock is taken at once, so a
        read-modify-write is never interleaved with another process's); committed when the
        block ends, rolled back if it raises."""
        with self._file_errors(), contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads that change nothing."""
        with self._file_errors(), contextlib.closing(self._connect()) as conn:
            yield conn


BUCKETS_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS buckets (pool TEXT PRIMARY KEY, tokens REAL NOT NULL,"
    " updated REAL NOT NULL, paused_until REAL NOT NULL DEFAULT 0,"
    " last_429 REAL NOT NULL DEFAULT 0)"
)
DAILY_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS save_daily (day TEXT PRIMARY KEY, count INTEGER)"
)


class SqliteLimiterState(StateFile):
    """The :class:`~snapcache.transport.state.LimiterState` in an SQLite file, on the
    machine's clock: the table ``buckets`` (one row per ``host|pool``) and ``save_daily``.

    The write lock of ``BEGIN IMMEDIATE`` is the row lock: one process at a time changes
    any bucket, which is plenty for one machine.
    """

    def __init__(self, path: Path) -> None:
        """Open (creating it if needed, safely: see :class:`StateFile`) the file at
        ``path``."""
        super().__init__(path, BUCKETS_SCHEMA)
        with self.reading() as conn:
            conn.execute(DAILY_SCHEMA)

    @property
    def description(self) -> str:
        """``rate-limit state file '<path>'``."""
        return f"rate-limit state file {str(self.path)!r}"

    def update(self, name: str, change: StateChange[T]) -> T:
        """See :meth:`LimiterState.update <snapcache.transport.state.LimiterState.update>`."""
        with self.transaction() as conn:
            # Read under the write lock (BEGIN IMMEDIATE took it): see LimiterState.update.
            now = time.time()
            row = conn.execute(
                "SELECT tokens, updated, paused_until, last_429 FROM buckets WHERE pool = ?",
                (name,),
            ).fetchone()
            stored = None if row is None else BucketRow(*(float(v) for v in row))
            new, answer = change(stored, now)
            if new is not None:
                conn.execute(
                    "INSERT INTO buckets (pool, tokens, updated, paused_until, last_429)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(pool) DO UPDATE SET"
                    " tokens = excluded.tokens, updated = excluded.updated,"
                    " paused_until = excluded.paused_until, last_429 = excluded.last_429",
                    (name, new.tokens, new.updated, new.paused_until, new.last_429),
                )
            return answer

    def read(self, names: Collection[str] | None = None) -> tuple[float, dict[str, BucketRow]]:
        """See :meth:`LimiterState.read <snapcache.transport.state.LimiterState.read>`."""
        query = "SELECT pool, tokens, updated, paused_until, last_429 FROM buckets"
        wanted = list(names) if names is not None else None
        with self.reading() as conn:
            if wanted is None:
                rows = conn.execute(query).fetchall()
            else:
                marks = ",".join("?" * len(wanted))
                rows = conn.execute(f"{query} WHERE pool IN ({marks})", wanted).fetchall()
        now = time.time()
        return now, {
            str(name): BucketRow(float(tokens), float(updated), float(paused), float(last))
            for name, tokens, updated, paused, last in rows
        }

    def count_daily(self, limit: int) -> bool:
        """See :meth:`LimiterState.count_daily
        <snapcache.transport.state.LimiterState.count_daily>`."""
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        with self.transaction() as conn:
            row = conn.execute("SELECT count FROM save_daily WHERE day = ?", (day,)).fetchone()
            used = int(row[0]) if row else 0
            if used >= limit:
                return False
            conn.execute(
                "INSERT INTO save_daily (day, count) VALUES (?, 1) ON CONFLICT(day) DO UPDATE"
                " SET count = count + 1",
                (day,),
            )
            return True

    def close(self) -> None:
        """Nothing to release: a connection is opened per operation."""
