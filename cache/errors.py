"""Exceptions raised by the store (``snapcache.cache``), and the project's root exception.

:class:`SnapcacheError` is the root of every snapcache error. It lives here, at the bottom of
the dependency graph, because the fetching layers import the store and never the reverse;
:mod:`snapcache.errors` re-exports it and draws the whole tree. :class:`CacheError` roots
everything the store raises; each subclass says when it is raised and what to do.
:class:`~snapcache.cache.records.RecordFormatError` (a ``ValueError``) stays in ``records``
because it also describes records that never touched the disk; a stored record that cannot
be read raises :class:`DamagedRecordError`, which is both.
"""

from __future__ import annotations

from .records import RecordFormatError


class SnapcacheError(Exception):
    """Root of every error snapcache raises on purpose (cache and fetcher alike)."""


class CacheError(SnapcacheError):
    """Root of every error the cache raises on purpose.

    Raised as is for a cache that cannot be used: written by a newer schema, not a snapcache
    cache, locked for longer than the timeout, or holding a corrupt index entry.
    """


class StoreDamagedError(CacheError):
    """The store's database file is damaged: truncated, overwritten with something that is
    not a database, corrupt inside, or replaced by a directory or another kind of file.

    Retrying will not help. Restore the store folder from a backup, or move it away and let
    snapcache start a new one. ``path`` is the damaged file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class StoreUnavailableError(CacheError):
    """The store cannot be opened or written where it is: a read-only file system, a folder
    or file the user may not write, or a full disk. Its contents are not known to be damaged.

    Fix the place (free space, remount read-write, fix the permissions) or choose another
    cache path. ``path`` is the folder or file that could not be used.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class UnsafeLocationError(CacheError):
    """A store folder, or a file snapcache keeps in it, could be controlled by someone else:
    the folder belongs to another user or is writable by its group or by others, or a
    symbolic link (or other non-regular file) stands where snapcache keeps a file.

    Nothing was read or written there. The message says how to fix it (``chmod``/``chown``,
    removing the link) or to choose another path. ``path`` is the refused path.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class DamagedRecordError(CacheError, RecordFormatError):
    """A stored record cannot be read: not JSON, nested too deep to parse, or not a record
    of the current schema. The message names its resource ID.

    Also a :class:`~snapcache.cache.records.RecordFormatError`. Commands that go over every
    record (export, list, stats) report it and go on with the others; to recover the record,
    restore the store from a backup. ``resource_id`` is the damaged record's key.
    """

    def __init__(self, message: str, *, resource_id: str) -> None:
        super().__init__(message)
        self.resource_id = resource_id


class UnsafeCacheEntryError(CacheError):
    """A row in the cache's SQLite file would need unpickling (or escapes the cache folder).

    snapcache never writes such rows, so one was planted by someone with write access to the
    cache folder. Nothing was unpickled. Do not retry: inspect or delete the cache folder.
    """


class StableIdConflictError(CacheError):
    """A stable ID would change or be shared, which the identity rules forbid.

    Raised when a caller supplies a stable ID that differs from the one already bound to the
    resource, or one already bound to another resource. The stored ID wins; fix the input.
    """

    def __init__(
        self,
        message: str,
        *,
        resource_id: str,
        existing: str | None,
        requested: str,
        other_resource_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.existing = existing
        self.requested = requested
        self.other_resource_id = other_resource_id


class NotFoundError(CacheError, KeyError):
    """The URL, resource or stable ID asked for is not in the cache.

    Also a ``KeyError`` so mapping-style callers can catch it as one.
    """

    def __str__(self) -> str:
        # KeyError.__str__ repr-quotes its argument; a message reads better plain.
        return str(self.args[0]) if self.args else ""
