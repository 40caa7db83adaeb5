"""The on-disk layout of a snapcache diskcache folder, and checked access to its rows.

Built on diskcache (SQLite), opened with :class:`~snapcache.cache.disk.SafeDisk` so nothing
is ever pickled or unpickled. Every key is a ``str`` and every value is text (JSON, or the
extracted text itself):

==================  ==============================================================
``meta:schema``     JSON int: the schema version that wrote the cache
``rec:<rid>``       the record, ``Record.to_json()``
``ident:<rid>``     JSON ``{"stable_id", "url", "created_at"}``: written before the first
                    attempt finishes so the stable ID is minted once
``sid:<sid>``       JSON string: the resource ID holding that stable ID
``url:<url>``       JSON string: the resource ID for a URL (current or alias)
``alias:<rid>``     JSON list of earlier URLs of the resource, oldest first
``text:<rid>``      the extracted text of the stored capture (plain ``str``)
``hist:<rid>``      JSON list of attempt summaries, oldest first, at most ``history_limit``
==================  ==============================================================

Beside ``cache.db`` the folder may hold ``run.lock`` (the CLI's run lock) and ``tmp/``
(bodies the fetcher spills to disk), and exports in progress may not be written there:
temporary files name their writer and are removed at open once it is gone
(:mod:`.files`).

This layout is the on-disk format: stores written by earlier releases must keep reading
(``tests/test_store_compat.py``). :class:`Rows` reads each kind of row and checks its shape;
what is written when is decided by :class:`~snapcache.cache.store.SnapshotCache`.
Values are kept inside the SQLite file (never as side files) so that rollback covers them too.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import diskcache

from .contract import HistoryEntry
from .disk import SafeDisk
from .errors import CacheError, DamagedRecordError, StoreDamagedError, StoreUnavailableError
from .files import SPILL_DIR, check_private_directory, diagnose, sweep_temp_files
from .records import SCHEMA_VERSION, Record, RecordFormatError

__all__ = [
    "ALIAS",
    "DB_NAME",
    "HIST",
    "IDENT",
    "REC",
    "SCHEMA_KEY",
    "SID",
    "TEXT",
    "URL",
    "Identity",
    "Rows",
    "dumps",
    "prepare_directory",
]

#: The SQLite file diskcache keeps in the folder.
DB_NAME: Final = "cache.db"
SCHEMA_KEY: Final = "meta:schema"
REC: Final = "rec:"
IDENT: Final = "ident:"
SID: Final = "sid:"
URL: Final = "url:"
ALIAS: Final = "alias:"
TEXT: Final = "text:"
HIST: Final = "hist:"

#: diskcache's size limit and side-file threshold. This is a record store, not a cache that
#: may forget: nothing is ever evicted, and no value is big enough to go to a side file
#: (side files are written outside the SQLite transaction, so a rollback would not cover them).
_UNLIMITED: Final = 2**62


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is: the form of every JSON value in the cache."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Identity:
    """A resource's stable ID, URL and creation time (its ``ident:`` row)."""

    stable_id: str
    url: str
    created_at: str | None

    def to_json(self) -> str:
        """The row's JSON value."""
        return dumps({"stable_id": self.stable_id, "url": self.url, "created_at": self.created_at})


def prepare_directory(directory: Path) -> None:
    """Create the cache folder private to the user (0700), or check the existing one, and
    remove temporary files left by writers that are gone.

    Raises :class:`~snapcache.cache.errors.UnsafeLocationError` for a folder of another
    user or one writable by others (see :func:`~snapcache.cache.files.check_private_directory`).
    """
    check_private_directory(directory)
    # Spill files and exports of killed writers (up to the body cap each) would otherwise
    # stay forever; the folder is ours alone, so names of older releases go too.
    sweep_temp_files(directory, legacy=True)
    sweep_temp_files(directory / SPILL_DIR, legacy=True)


def store_error(exc: BaseException, directory: Path) -> CacheError:
    """The typed error for ``exc``, an SQLite or OS error met using the store in ``directory``:
    :class:`StoreDamagedError` for a damaged file, else :class:`StoreUnavailableError`."""
    db = directory / DB_NAME
    problem = diagnose(exc, db)
    if problem.damaged:
        return StoreDamagedError(
            f"the store file {str(db)!r} {problem.reason}; restore the store folder from a "
            f"backup, or move the folder {str(directory)!r} away and snapcache starts a new "
            f"store there",
            path=str(db),
        )
    return StoreUnavailableError(
        f"the store {str(db)!r} {problem.reason}; {problem.advice}", path=str(db)
    )


#: Errors that describe the file (sqlite3's DatabaseError family, OS errors), unless they
#: are a misuse of the connection (:data:`_MISUSE`, re-raised as they are: a bug).
_FILE_ERRORS: Final = (sqlite3.DatabaseError, OSError)
_MISUSE: Final = (sqlite3.ProgrammingError, sqlite3.InterfaceError)


class Rows:
    """The rows of one snapcache cache folder, each kind read back and checked.

    Opening checks the schema entry (creating it in an empty folder). Every read raises
    :class:`CacheError` for a row of the wrong shape (and ``RecordFormatError`` for a bad
    record) rather than returning it.
    """

    def __init__(self, directory: Path, *, timeout: float, label: str) -> None:
        """Open the diskcache in ``directory`` (which must exist) and check its schema.

        ``label`` names the cache in the error raised after :meth:`close`. Raises
        :class:`CacheError` for a cache written by a newer schema version, or a folder
        holding some other diskcache.
        """
        self._directory = directory
        self._label = label
        self._timeout = timeout
        self._closed = False
        try:
            self._cache: Any = diskcache.Cache(
                str(directory),
                disk=SafeDisk,
                timeout=timeout,
                statistics=False,
                eviction_policy="none",
                size_limit=_UNLIMITED,
                cull_limit=0,
                disk_min_file_size=_UNLIMITED,
            )
        except _MISUSE:
            raise
        except _FILE_ERRORS as exc:
            # A truncated or overwritten cache.db, a directory in its place, a read-only
            # mount or a full disk: one typed error saying which, never a traceback.
            raise store_error(exc, directory) from exc
        try:
            self._check_schema()
        except BaseException:
            self._cache.close()
            raise

    @property
    def directory(self) -> str:
        """The folder as diskcache reports it."""
        return str(self._cache.directory)

    def close(self) -> None:
        """Close this thread's SQLite connection; every later use raises :class:`CacheError`."""
        self._closed = True
        self._cache.close()

    @property
    def _c(self) -> Any:
        if self._closed:
            raise CacheError(f"{self._label} is closed")
        return self._cache

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite write transaction; a lock held too long becomes a CacheError, and a
        damaged or unwritable file a :class:`StoreDamagedError` or
        :class:`StoreUnavailableError`."""
        try:
            with self._c.transact():
                yield
        except diskcache.Timeout as exc:
            raise CacheError(
                f"cache {str(self._directory)!r} stayed locked by another writer for more "
                f"than {self._timeout:g} s; retry later"
            ) from exc
        except _MISUSE:
            raise
        except _FILE_ERRORS as exc:
            raise store_error(exc, self._directory) from exc

    def _get(self, key: str) -> Any:
        """The raw value of one row (None if absent); file errors become typed errors."""
        try:
            return self._c.get(key)
        except _MISUSE:
            raise
        except _FILE_ERRORS as exc:
            raise store_error(exc, self._directory) from exc

    def _check_schema(self) -> None:
        where = str(self._directory)
        with self.transaction():
            raw = self.text(SCHEMA_KEY)
            if raw is None:
                # An empty folder becomes a snapcache cache; someone else's diskcache must
                # not be silently adopted (its rows would be read as ours).
                if len(self._cache) > 0:
                    raise CacheError(
                        f"{where!r} holds a diskcache that is not a snapcache cache "
                        f"(no {SCHEMA_KEY!r} entry); choose another folder"
                    )
                self.set(SCHEMA_KEY, dumps(SCHEMA_VERSION))
                return
            try:
                version = json.loads(raw)
            except ValueError:
                version = raw
            if isinstance(version, bool) or not isinstance(version, int):
                raise CacheError(f"cache {where!r} has an invalid schema entry {raw!r}")
            if version > SCHEMA_VERSION:
                raise CacheError(
                    f"cache {where!r} was written by schema version {version}, newer "
                    f"than this snapcache's schema version {SCHEMA_VERSION}; upgrade snapcache"
                )
            if version < SCHEMA_VERSION:
                # No older schema exists yet; a future bump adds its migration here.
                raise CacheError(
                    f"cache {where!r} has schema version {version}, and no migration "
                    f"to schema version {SCHEMA_VERSION} exists"
                )

    # ---------------------------------------------------------------------------------------
    # Any row

    def text(self, key: str) -> str | None:
        """Return the text stored under ``key`` or ``None``; other value types are corrupt."""
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise CacheError(f"cache entry {key!r} holds {type(value).__name__}, not text")
        return value

    def json(self, key: str) -> Any:
        """Return the JSON value stored under ``key``, or ``None`` if there is no row."""
        raw = self.text(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise CacheError(f"cache entry {key!r} is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # planted or damaged: [[[[... a hundred thousand deep
            raise CacheError(f"cache entry {key!r} is nested too deep to parse") from exc

    def set(self, key: str, value: str) -> None:
        """Write one row (inside the caller's transaction)."""
        try:
            self._c.set(key, value)
        except _MISUSE:
            raise
        except _FILE_ERRORS as exc:
            raise store_error(exc, self._directory) from exc

    def delete(self, key: str) -> None:
        """Delete one row if it exists (inside the caller's transaction)."""
        try:
            self._c.delete(key)
        except _MISUSE:
            raise
        except _FILE_ERRORS as exc:
            raise store_error(exc, self._directory) from exc

    # ---------------------------------------------------------------------------------------
    # Each kind of row

    def owner(self, key: str) -> str | None:
        """Return the resource ID an index entry (``sid:``/``url:``) points to."""
        value = self.json(key)
        if value is not None and not isinstance(value, str):
            raise CacheError(f"cache index entry {key!r} is not a resource ID")
        return value

    def record(self, rid: str) -> Record | None:
        """Return the record of ``rid``; :class:`DamagedRecordError` (a
        ``RecordFormatError``) naming ``rid`` if it cannot be read."""
        raw = self._get(REC + rid)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise self._damaged(rid, f"stored as {type(raw).__name__}, not text")
        try:
            record = Record.from_json(raw)
        except RecordFormatError as exc:
            raise self._damaged(rid, str(exc)) from exc
        if record.resource_id != rid:
            raise self._damaged(
                rid, f"stored under the wrong key (its resource_id is {record.resource_id})"
            )
        return record

    def _damaged(self, rid: str, what: str) -> DamagedRecordError:
        return DamagedRecordError(
            f"record {rid} is damaged ({what}); restore the store folder "
            f"{str(self._directory)!r} from a backup to recover it",
            resource_id=rid,
        )

    def identity(self, rid: str) -> Identity | None:
        """Return the ``ident:`` row of ``rid``, or ``None``."""
        data = self.json(IDENT + rid)
        if data is None:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("stable_id"), str)
            or not isinstance(data.get("url"), str)
            or not isinstance(data.get("created_at"), str | None)
        ):
            raise CacheError(f"identity entry of resource {rid} is corrupt: {data!r}")
        return Identity(data["stable_id"], data["url"], data.get("created_at"))

    def history(self, rid: str) -> list[HistoryEntry]:
        """Return the attempt summaries of ``rid``, oldest first."""
        data = self.json(HIST + rid)
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise CacheError(f"history of resource {rid} is corrupt")
        return data

    def aliases(self, rid: str) -> list[str]:
        """Return the earlier URLs of ``rid``, oldest first."""
        data = self.json(ALIAS + rid)
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(a, str) for a in data):
            raise CacheError(f"alias list of resource {rid} is corrupt")
        return data

    def record_ids(self) -> Iterator[str]:
        """Yield the resource ID of every ``rec:`` row, in ascending order."""
        # Keys only, in diskcache's key order (SQLite sorts text keys bytewise, so the rec:
        # rows come in resource-ID order); values are read (and checked) one at a time.
        try:
            for key in self._c.iterkeys():
                if isinstance(key, str) and key.startswith(REC):
                    yield key[len(REC) :]
        except _MISUSE:
            raise
        except _FILE_ERRORS as exc:
            raise store_error(exc, self._directory) from exc
