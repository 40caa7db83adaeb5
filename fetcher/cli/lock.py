"""One batch run at a time per cache: the lock ``snapcache run`` takes.

The library's runs take no lock (a caller that wants one uses :class:`RunLock` itself); the
CLI holds it around ``run`` so two cron jobs on one cache never overlap.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

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
        """Take the lock, or raise :class:`RunLockedError` (``wait`` blocks instead)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fh = self.path.open("a+", encoding="utf-8")
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
