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

Beside diskcache's tables, the SQLite file holds ``snapcache_summary`` (:mod:`.summary`):
per record its status, latest outcome and the rest of its ``RecordFacts``, kept by triggers
in the same transaction as the record, so ``stats``, status filters, exports and the
planning of a warm run need not parse every record.
It was added after 0.1.0; that release ignores it (and its writes keep it right), and a
store without it gets it built when opened.

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
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import diskcache
from diskcache.core import MODE_RAW

from .ahead import ReadAhead, read_facts, read_rows
from .contract import HistoryEntry
from .disk import SafeDisk
from .errors import CacheError, DamagedRecordError, StoreDamagedError, StoreUnavailableError
from .files import diagnose
from .records import FIELD_ORDER, SCHEMA_VERSION, STATUSES, Record, RecordFacts, RecordFormatError
from .summary import (
    CANONICAL,
    CHECKED,
    Counts,
    Mark,
    counts,
    ensure,
    has_unchecked,
    is_current,
    mark,
    schema,
    unchecked_rows,
)

__all__ = [
    "ALIAS",
    "DB_NAME",
    "HIST",
    "IDENT",
    "REC",
    "REC_END",
    "SCHEMA_KEY",
    "SID",
    "TEXT",
    "URL",
    "Identity",
    "Rows",
    "dumps",
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
#: The first key after every ``rec:`` key (``;`` follows ``:``): record rows are the text
#: keys in ``[REC, REC_END)``, one range of diskcache's (key, raw) index.
REC_END: Final = REC[:-1] + chr(ord(REC[-1]) + 1)
#: Unchecked records checked per transaction when a store is opened: a few tens of ms of
#: parsing, so writers of other processes wait no longer than that.
_CHECK_BATCH: Final = 2000
#: One row by key, as diskcache's ``get`` reads it (an expired row is absent).
_GET: Final = (
    "SELECT mode, filename, value FROM Cache"
    " WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
)

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


#: The rules records are checked by, named in the summary's definition: a release whose
#: records have other fields, statuses or schema version rebuilds the summary and checks
#: every record again by its own rules.
_RECORD_FORMAT: Final = hashlib.sha256(
    repr((SCHEMA_VERSION, FIELD_ORDER, STATUSES)).encode("utf-8")
).hexdigest()[:16]
_SUMMARY: Final = schema(REC, REC_END, _RECORD_FORMAT)


def _mark_of(key: str, record: Record, checked: int) -> Mark:
    return (record.status, record.last_outcome, record.fetched_at, record.stable_id,
            record.url, record.last_attempt_at, record.requested_timestamp, checked, key)


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
        self._readers = threading.local()
        self._ahead = ReadAhead()
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
            self._prepare_summary()
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

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """File errors of the SQL run inside become typed errors (as in :meth:`_get`)."""
        try:
            yield
        except _MISUSE:
            raise
        except _FILE_ERRORS as exc:
            raise store_error(exc, self._directory) from exc

    def _execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        # diskcache has no public way to run a query of one's own: ``_con`` is its SQLite
        # connection for this thread (stable across diskcache 5.x, which pyproject pins), so
        # these statements join the transaction of :meth:`transaction`.
        cursor: sqlite3.Cursor = self._c._con.execute(sql, params)
        return cursor

    def _reader(self) -> sqlite3.Cursor:
        # One cursor per thread and connection for the lookups of :meth:`_get`: making a
        # new one per query cost a third of each lookup (a warm run makes one per URL).
        con = self._c._con
        cursor: sqlite3.Cursor | None = getattr(self._readers, "cursor", None)
        if cursor is None or cursor.connection is not con:
            cursor = self._readers.cursor = con.cursor()
        return cursor

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same state of the file (WAL
        readers never wait for writers, nor make them wait)."""
        con = self._c._con
        if con.in_transaction:  # already inside one of ours
            yield
            return
        with self._guard():
            con.execute("BEGIN")
        try:
            yield
        finally:
            with self._guard():
                con.execute("COMMIT")

    @contextlib.contextmanager
    def read_ahead(self, rids: Iterable[str], *, only_facts: bool = False) -> Iterator[None]:
        """Read the records of ``rids`` now, a few hundred per query, for this thread's
        next reads of them: inside the block, the first :meth:`record` (or :meth:`_get`)
        of each answers from what was read on entry (an absent row included), and later
        ones read the file. What was not asked for is dropped on exit (see :mod:`.ahead`).

        With ``only_facts``, for :meth:`facts` instead: the summary's row of each record
        (a few hundred bytes, not the record's few KB), and the record itself only where
        that row is not checked.
        """
        wanted = list(dict.fromkeys(REC + rid for rid in rids))
        with self._guard():
            known = read_facts(self._reader().execute, wanted, REC) if only_facts else {}
            rows = read_rows(self._reader().execute,
                             [key for key in wanted if key not in known], REC)
        with self._ahead.holding(rows, known):
            yield

    def facts(self, rid: str) -> RecordFacts | None:
        """The facts of the record of ``rid`` (None if there is none): from its summary
        row when that is checked, else from the record itself, read and checked as
        :meth:`record` reads it (a damaged one raises the same error)."""
        key = REC + rid
        held, found = self._ahead.take_facts(key)
        if not held:
            with self._guard():
                found = read_facts(self._reader().execute, [key], REC).get(key)
        if found is not None:
            return found
        record = self.record(rid)
        return None if record is None else RecordFacts.of(record)

    def _get(self, key: str) -> Any:
        """The raw value of one row (None if absent); file errors become typed errors."""
        held, row = self._ahead.take_row(key)
        if held:
            return None if row is None else row[0]
        try:
            # The query diskcache's own get makes, without its per-call overhead (about half
            # the cost of a warm run's lookups). A row diskcache stored as it is (every row
            # snapcache writes) is its value; any other (a side file, a pickle, bytes) goes
            # through diskcache and SafeDisk, which refuse what is unsafe.
            rows = self._reader().execute(_GET, (key, time.time())).fetchall()
            if not rows:
                return None
            ((mode, filename, value),) = rows
            if mode == MODE_RAW and filename is None and isinstance(value, str):
                return value
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

    def _prepare_summary(self) -> None:
        """Build the record summary if the file has none (a store of 0.1.0) or an outdated
        one, under the write lock, then check the records other writers left unchecked."""
        # Reads first: opening a store whose summary is in order takes no write lock for it.
        with self._guard():
            current = is_current(self._execute, _SUMMARY)
        if not current:
            with self.transaction():
                ensure(self._execute, _SUMMARY, REC, REC_END)  # checks again, under the lock
        with self._guard():
            unchecked = has_unchecked(self._execute)
        if unchecked:
            self.check_summary()

    def check_summary(self) -> None:
        """Mark as checked every unchecked record row that parses, a batch per transaction.

        Rows written by another release or by hand become countable by SQL; a damaged record
        stays unchecked, so ``stats`` keeps reading, and reporting, it.
        """
        after = ""
        while True:
            with self.transaction():
                rows = unchecked_rows(self._execute, after, _CHECK_BATCH)
                marks: list[Mark] = []
                for key, expire_time, mode, filename, value in rows:
                    if mode != MODE_RAW or filename is not None or not isinstance(value, str):
                        continue  # left to the checked single read, which refuses it
                    if expire_time is not None:
                        # Given an expiry by another writer: once past it the row reads as
                        # absent, which a checked summary row would contradict.
                        continue
                    try:
                        record = self.parse_record(key[len(REC) :], value)
                    except RecordFormatError:
                        continue
                    # Written by another release, the text may lack newer fields or order
                    # them otherwise: an export writes it as is only if it is the same.
                    canonical = record.to_json() == value
                    marks.append(_mark_of(key, record, CANONICAL if canonical else CHECKED))
                mark(self._c._con.executemany, marks)
            if len(rows) < _CHECK_BATCH:
                return
            after = rows[-1][0]

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

    def set_record(self, rid: str, record: Record, record_json: str) -> None:
        """Write the record row of ``rid`` and its summary (inside the caller's transaction).

        ``record_json`` must be ``record``'s checked JSON (``validated_json``): it is marked
        as the record's own text, which an export writes as it is.
        """
        self.set(REC + rid, record_json)
        with self._guard():
            mark(self._c._con.executemany, [_mark_of(REC + rid, record, CANONICAL)])

    def owner(self, key: str) -> str | None:
        """Return the resource ID an index entry (``sid:``/``url:``) points to."""
        value = self.json(key)
        if value is not None and not isinstance(value, str):
            raise CacheError(f"cache index entry {key!r} is not a resource ID")
        return value

    def record(self, rid: str) -> Record | None:
        """Return the record of ``rid``; :class:`DamagedRecordError` (a
        ``RecordFormatError``) naming ``rid`` if it cannot be read."""
        held, row = self._ahead.take_row(REC + rid)
        if held and row is not None and row[1] is not None:
            try:
                return Record.from_json_dict(row[1])  # its resource_id is rid: checked
            except RecordFormatError as exc:
                raise self._damaged(rid, str(exc)) from exc
        raw = (None if row is None else row[0]) if held else self._get(REC + rid)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise self._damaged(rid, f"stored as {type(raw).__name__}, not text")
        return self.parse_record(rid, raw)

    def parse_record(self, rid: str, raw: str) -> Record:
        """The record in ``raw``, the text of ``rid``'s record row, or DamagedRecordError."""
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

    def count_records(self) -> int:
        """The number of ``rec:`` rows (damaged ones included): one index range, counted."""
        with self._guard():
            (n,) = self._execute(
                "SELECT count(*) FROM Cache WHERE key >= ? AND key < ? AND raw = 1",
                (REC, REC_END),
            ).fetchone()
        return int(n)

    def summary(self) -> Counts:
        """What the record summary counts (see :func:`.summary.counts`); call it inside
        :meth:`snapshot` and read the unchecked records in the same snapshot."""
        with self._guard():
            return counts(self._execute)

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Every row ``sql`` selects, on this thread's connection (inside a transaction or
        snapshot of this object when one is open); file errors become typed errors."""
        with self._guard():
            return self._execute(sql, params).fetchall()

    def refuse_pickled_keys(self) -> None:
        """Raise :class:`UnsafeCacheEntryError` if a pickled key was planted anywhere.

        diskcache stores a pickled key as a blob, and blobs sort after every text key: one
        seek in the key index finds the first, and SafeDisk refuses it (never unpickled).
        """
        for key, raw in self.query(
            "SELECT key, raw FROM Cache WHERE key >= X'' AND raw = 0 LIMIT 1"
        ):
            self.check_key(key, raw)

    def check_key(self, key: Any, raw: int) -> Any:
        """The key of a row as SafeDisk reads it: a pickled one (``raw`` 0) raises."""
        with self._guard():
            return self._c.disk.get(key, bool(raw))
