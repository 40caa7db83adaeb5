"""A diskcache ``Disk`` that never pickles and never unpickles.

diskcache's default ``Disk`` pickles every value it does not store natively, and its
``fetch`` unpickles any row whose mode is ``MODE_PICKLE``. Whoever can write the cache's
SQLite file can therefore plant a row that runs code when it is read (CVE-2025-69872,
unfixed upstream). ``JSONDisk`` does not help: its ``fetch`` calls ``Disk.fetch`` first, which
unpickles before any JSON is parsed. :class:`SafeDisk` refuses pickled keys and values in
both directions, and refuses file names that point outside the cache folder (a planted
``filename`` would otherwise be read, or deleted when the row is overwritten).
"""

from __future__ import annotations

import os
from typing import Any

from diskcache import Disk
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW, MODE_TEXT, UNKNOWN

from .errors import CacheError, UnsafeCacheEntryError

__all__ = ["CacheError", "SafeDisk", "UnsafeCacheEntryError"]

#: Row modes SafeDisk reads. MODE_PICKLE is refused; anything else was never written by
#: diskcache and is treated as planted.
_READABLE_MODES = frozenset({MODE_RAW, MODE_BINARY, MODE_TEXT})


# diskcache ships no type information, so Disk is ``Any`` to mypy.
class SafeDisk(Disk):  # type: ignore[misc]
    """Serialise ``str`` keys and ``str``/``bytes`` values only; refuse pickled rows.

    Use as ``diskcache.Cache(directory, disk=SafeDisk)``. The constructor is ``Disk``'s, so
    the ``disk_min_file_size`` and ``disk_pickle_protocol`` settings diskcache persists in its
    Settings table keep working when a cache is reopened (the pickle protocol is simply never
    used).
    """

    def put(self, key: Any) -> tuple[Any, bool]:
        """Convert a key for the Cache table; only ``str`` keys are accepted.

        Any other type would be pickled by ``Disk.put``, so it raises ``TypeError``.
        """
        if type(key) is not str:
            raise TypeError(f"SafeDisk stores str keys only, not {type(key).__name__}")
        result: tuple[Any, bool] = super().put(key)
        return result

    def get(self, key: Any, raw: bool) -> Any:
        """Convert a key read from the Cache table; a pickled key (``raw`` false) is refused."""
        if not raw:
            raise UnsafeCacheEntryError(
                "refusing a pickled cache key: snapcache never writes one, so it was planted"
            )
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, Any, Any]:
        """Convert a value for the Cache table; only ``bytes`` and ``str`` are accepted.

        Anything else (and the file-reading mode) raises ``TypeError`` rather than reaching
        ``Disk.store``, which would pickle it.
        """
        if read:
            raise TypeError("SafeDisk does not store values read from files")
        if type(value) not in (bytes, str):
            raise TypeError(
                f"SafeDisk stores bytes and str values only, not {type(value).__name__}"
            )
        result: tuple[int, int, Any, Any] = super().store(value, read, key=key)
        return result

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        """Convert a value read from the Cache table; pickled rows are refused, never loaded."""
        if mode == MODE_PICKLE:
            raise UnsafeCacheEntryError(
                "refusing a pickled entry: snapcache never writes pickles, so this row was "
                "planted in the cache file; it was not unpickled"
            )
        if mode not in _READABLE_MODES:
            raise UnsafeCacheEntryError(f"refusing a cache entry with unknown mode {mode!r}")
        if filename is not None:
            self._check_contained(filename)
        return super().fetch(mode, filename, value, read)

    def remove(self, file_path: str) -> None:
        """Delete a value file, refusing paths that leave the cache folder.

        diskcache calls this with the old row's ``filename`` when a row is overwritten or
        deleted, so a planted absolute or ``..`` path would delete an arbitrary file.
        """
        self._check_contained(file_path)
        super().remove(file_path)

    def _check_contained(self, filename: str) -> None:
        """Raise unless ``filename`` names a file strictly inside the cache folder."""
        base = os.path.realpath(self._directory)
        target = os.path.realpath(os.path.join(base, filename))
        try:
            inside = os.path.commonpath([base, target]) == base and target != base
        except ValueError:  # different drives on Windows
            inside = False
        if os.path.isabs(filename) or not inside:
            raise UnsafeCacheEntryError(
                f"refusing a cache entry whose file {filename!r} lies outside the cache folder"
            )
