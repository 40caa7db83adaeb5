"""One batch run at a time per cache: the lock ``snapcache run`` takes.

The library's runs take no lock (a caller that wants one uses :class:`RunLock` itself); the
CLI holds it around ``run`` so two cron jobs on one cache never overlap.

The lock file lives in the cache folder, which must be the user's alone
(:func:`~snapcache.cache.files.check_private_directory`), and is opened with ``O_NOFOLLOW``:
a ``run.lock`` planted as a symbolic link (dangling or not), or anything but a regular file
of one link, is refused rather than written through.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from snapcache.cache.errors import UnsafeLocationError
from snapcache.cache.files import check_private_directory, file_kind

from ..errors import SnapcacheError


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


__all__ = ["RunLock", "RunLockedError"]
