"""One batch run at a time per cache: the lock ``snapcache run`` takes.

The library's runs take no lock (a caller that wants one uses :class:`RunLock` itself); the
CLI holds it around ``run`` so two cron jobs on one cache never overlap. Which lock depends
on the store (:func:`run_lock_for`):

* a diskcache folder: :class:`RunLock`, a kernel ``flock`` on ``run.lock`` in the folder.
  The folder must be the user's alone
  (:func:`~snapcache.cache.files.check_private_directory`), and the file is opened with
  ``O_NOFOLLOW``: a ``run.lock`` planted as a symbolic link (dangling or not), or anything
  but a regular file of one link, is refused rather than written through;
* a PostgreSQL store: :class:`AdvisoryRunLock`, a session advisory lock in the database.
  A file lock means nothing to a store other hosts write: the lock must live where the
  store does. The server drops it when the session ends, so a run killed on any host (even
  by SIGKILL: its connection closes) never leaves the store locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.util
import os
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from snapcache.cache.errors import UnsafeLocationError
from snapcache.cache.files import check_private_directory, file_kind

from ..config import Config
from ..errors import ConfigError, SnapcacheError
from ..stores import ENV_DSN, configured_dsn

if TYPE_CHECKING:
    import psycopg


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

    @property
    def where(self) -> str:
        """The cache the lock guards, for messages."""
        return str(self.path.parent)

    def acquire(self, wait: bool = False) -> None:
        """Take the lock, or raise :class:`RunLockedError` (``wait`` blocks instead).

        Raises :class:`~snapcache.cache.errors.UnsafeLocationError` for a cache folder
        others could write, or a ``run.lock`` that is a link or not a regular file.
        """
        check_private_directory(self.path.parent)
        fh = self._open()
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

    def _open(self) -> IO[str]:
        """Open (creating, mode 0600) the lock file itself, never what a link points to."""
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        where = str(self.path)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                problem = "it is a symbolic link, and snapcache would write where it points"
            elif exc.errno == errno.EISDIR:
                problem = "it is a directory, not a regular file"
            else:
                raise
            raise UnsafeLocationError(
                f"refusing the run lock {where!r}: {problem}; remove it (`rm {where}`)",
                path=where,
            ) from None
        info = os.fstat(fd)
        wrong = None
        if not stat.S_ISREG(info.st_mode):
            wrong = f"it is {file_kind(info.st_mode)}, not a regular file"
        elif info.st_nlink != 1:
            wrong = "it has other hard links, and snapcache would write through them"
        if wrong is not None:
            os.close(fd)
            raise UnsafeLocationError(
                f"refusing the run lock {where!r}: {wrong}; remove it (`rm {where}`)",
                path=where,
            )
        # O_NONBLOCK only kept a FIFO from blocking the open; a regular file ignores it.
        return os.fdopen(fd, "r+", encoding="utf-8")

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


#: The advisory lock's key: one per schema, as the migrations' (two stores in two schemas of
#: one database are two stores).
_KEY: Final = "hashtextextended('snapcache.run:' || current_schema(), 0)"


class AdvisoryRunLock:
    """One batch run at a time per PostgreSQL store, across hosts: a session-level
    ``pg_advisory_lock`` keyed on the store's schema, held on a connection of its own for
    as long as the run lasts.

    The connection's ``application_name`` says who holds it (``snapcache run pid N on
    HOST``), which a second run reads back from ``pg_stat_activity`` for its message.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def where(self) -> str:
        """The store the lock guards (without the password), for messages."""
        from snapcache.cache.postgres.dsn import scrub_dsn

        return scrub_dsn(self.dsn)

    def acquire(self, wait: bool = False) -> None:
        """Take the lock, or raise :class:`RunLockedError` naming the run holding it
        (``wait`` blocks until it is free instead). Raises
        :class:`~snapcache.cache.CacheError` when the database cannot be reached."""
        from snapcache.cache.postgres.dsn import connect

        me = f"snapcache run pid {os.getpid()} on {socket.gethostname()}"
        conn = connect(self.dsn, {"application_name": me[:63]})
        try:
            if wait:
                conn.execute(f"SELECT pg_advisory_lock({_KEY})")
            else:
                row = conn.execute(f"SELECT pg_try_advisory_lock({_KEY})").fetchone()
                if not (row and row[0]):
                    holder = self._holder(conn)
                    raise RunLockedError(f"another run holds this cache ({holder})")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @staticmethod
    def _holder(conn: psycopg.Connection[Any]) -> str:
        """Who holds the lock, as its session named itself, and since when."""
        row = conn.execute(
            "SELECT a.application_name, to_char(a.backend_start AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            f" FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, (SELECT {_KEY} AS k) key"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = ((key.k >> 32) & 4294967295)::oid"
            " AND l.objid = (key.k & 4294967295)::oid LIMIT 1"
        ).fetchone()
        if row is None or not row[0]:
            return "another process"
        return f"{row[0]} since {row[1]}"

    def release(self) -> None:
        """Give the lock up (closing the session releases it)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(f"SELECT pg_advisory_unlock({_KEY})")
            self._conn.close()
            self._conn = None

    def __enter__(self) -> AdvisoryRunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def run_lock_for(config: Config) -> RunLock | AdvisoryRunLock:
    """The run lock of the configured store: the folder's ``flock``, or the PostgreSQL
    store's advisory lock. Raises :class:`ConfigError` for a PostgreSQL store without a
    DSN."""
    if config.cache.backend != "postgres":
        return RunLock(config.cache_path)
    dsn = configured_dsn(config)
    if not dsn:
        raise ConfigError(
            f'cache.dsn: required when cache.backend is "postgres" (or set ${ENV_DSN})')
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigError("the postgres cache backend needs psycopg: "
                          "pip install 'snapcache[postgres]'")
    return AdvisoryRunLock(dsn)


__all__ = ["AdvisoryRunLock", "RunLock", "RunLockedError", "run_lock_for"]
