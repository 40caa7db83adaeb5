"""The record summary of a diskcache store: what ``stats`` counts and ``--status`` filters
on, one small row per record, kept in the same SQLite file and the same transaction as the
record itself.

``snapcache_summary`` holds one row per ``rec:`` row of diskcache's ``Cache`` table: its
key, and (once checked) the record's :class:`~snapcache.cache.records.RecordFacts`
(``status``, ``last_outcome`` and ``fetched_at`` among them), and whether the stored text is
exactly the record's ``Record.to_json()`` (then an export writes it as it is, unparsed).
SQLite triggers on ``Cache`` insert a row for every new record row, reset it to *unchecked*
whenever the record row is written, and delete it with the record row. They fire for every
writer of the file: this release, an older one (0.1.0 has no summary, but keeps it right
once it exists), diskcache used directly, or a row planted by hand. A row is *checked*
only by this store, in the transaction that wrote or read the record and parsed it with
:meth:`~snapcache.cache.records.Record.from_json`, so:

* checked rows are counted by SQL alone (partial indexes on ``status`` and on
  ``fetched_at``, for the oldest and newest fetch);
* a checked row answers what planning a URL needs (:func:`facts`): a warm run reads one
  small row per URL, not its record;
* unchecked rows (a record another writer changed, or one that cannot be read) are read and
  parsed by the caller, so a damaged record is still reported, never counted or skipped.

The triggers know nothing of JSON: whatever a row holds, writing it cannot fail because of
them. A store without the summary (written by 0.1.0), with only part of it (a trigger
dropped by hand) or with one of another definition gets it rebuilt on opening (see
:func:`ensure`); the store then checks the unchecked rows in batches. The definition names
the record format it was checked against (fields, statuses, schema version): a release
whose records differ rebuilds it, so no record is counted as read by rules it does not
follow. Nothing else in the file changes, so 0.1.0 still reads and writes such a store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CANONICAL",
    "CHECKED",
    "FACT_COLUMNS",
    "TABLE",
    "UNCHECKED",
    "Counts",
    "Execute",
    "Mark",
    "counts",
    "ensure",
    "facts",
    "has_unchecked",
    "is_current",
    "mark",
    "record_rows_sql",
    "schema",
    "unchecked_rows",
]

#: The summary table; its indexes and triggers are named after it.
TABLE: Final = "snapcache_summary"

#: ``checked`` of a row whose record nobody has read since it was last written.
UNCHECKED: Final = 0
#: ``checked`` of a record that parses, its fields in the row.
CHECKED: Final = 1
#: ``checked`` of a record that parses and whose stored text is its ``Record.to_json()``.
CANONICAL: Final = 2

Execute = Callable[..., sqlite3.Cursor]
"""``sqlite3.Connection.execute`` of the connection diskcache uses in this thread."""


def schema(first: str, end: str, record_format: str) -> dict[str, tuple[str, str]]:
    """Every object of the summary: name -> (type, the exact SQL that creates it).

    Record rows are the text keys in ``[first, end)`` with ``raw = 1`` (diskcache's mark of
    a key stored as it is; a pickled key is a blob, and never a record). ``record_format``
    names the rules records were checked by; it is kept in the table's definition.
    """

    def is_record(row: str) -> str:
        return (f"typeof({row}.key) = 'text' AND {row}.key >= '{first}'"
                f" AND {row}.key < '{end}' AND {row}.raw = 1")

    unchecked = f"INSERT OR REPLACE INTO {TABLE} (key, checked)"
    return {
        TABLE: ("table", (
            f"CREATE TABLE {TABLE} /* records checked as format {record_format} */"
            f" (key TEXT PRIMARY KEY, status TEXT, last_outcome TEXT, fetched_at TEXT,"
            f" stable_id TEXT, url TEXT, last_attempt_at TEXT, requested_timestamp TEXT,"
            f" checked INTEGER NOT NULL DEFAULT {UNCHECKED}) WITHOUT ROWID")),
        # Partial indexes: counting reads only checked rows, and finding the unchecked ones
        # (normally none) costs nothing however many records there are.
        f"{TABLE}_status": ("index", (
            f"CREATE INDEX {TABLE}_status ON {TABLE} (status, checked)"
            f" WHERE checked > {UNCHECKED}")),
        f"{TABLE}_fetched": ("index", (
            f"CREATE INDEX {TABLE}_fetched ON {TABLE} (fetched_at, checked)"
            f" WHERE checked > {UNCHECKED}")),
        f"{TABLE}_unchecked": ("index", (
            f"CREATE INDEX {TABLE}_unchecked ON {TABLE} (key) WHERE checked = {UNCHECKED}")),
        f"{TABLE}_insert": ("trigger", (
            f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON Cache WHEN {is_record('NEW')}"
            f" BEGIN {unchecked} VALUES (NEW.key, {UNCHECKED}); END")),
        # One trigger for every UPDATE, its two statements in order: diskcache never changes
        # a row's key, but a hand-made UPDATE may, and two triggers would fire in no set order.
        f"{TABLE}_update": ("trigger", (
            f"CREATE TRIGGER {TABLE}_update AFTER UPDATE ON Cache"
            f" WHEN ({is_record('OLD')}) OR ({is_record('NEW')})"
            f" BEGIN DELETE FROM {TABLE} WHERE key = OLD.key AND {is_record('OLD')};"
            f" {unchecked} SELECT NEW.key, {UNCHECKED} WHERE {is_record('NEW')}; END")),
        f"{TABLE}_delete": ("trigger", (
            f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON Cache WHEN {is_record('OLD')}"
            f" BEGIN DELETE FROM {TABLE} WHERE key = OLD.key; END")),
    }


def _found(execute: Execute, wanted: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    names = list(wanted)
    return {
        name: (kind, sql)
        for kind, name, sql in execute(
            f"SELECT type, name, sql FROM sqlite_master WHERE name IN"
            f" ({', '.join('?' * len(names))})", names,
        ).fetchall()
    }


def is_current(execute: Execute, wanted: Mapping[str, tuple[str, str]]) -> bool:
    """True when the summary exists exactly as ``wanted`` (:func:`schema`) (a read only)."""
    return _found(execute, wanted) == wanted


def ensure(execute: Execute, wanted: Mapping[str, tuple[str, str]], first: str,
           end: str) -> bool:
    """Create the summary as ``wanted`` (:func:`schema` of record rows in ``[first, end)``)
    if it is missing, partial or differently defined; True if it was (re)built.

    Must run inside a write transaction (the store's lock): the check, the rebuild and the
    filling of one row per record row, all unchecked, commit together or not at all.
    """
    found = _found(execute, wanted)
    if found == wanted:
        return False
    # Dropping the table drops its indexes; the triggers live on Cache and go one by one.
    for name, (kind, _) in found.items():
        if kind in ("table", "trigger"):
            execute(f"DROP {kind.upper()} IF EXISTS {name}")
    for _, sql in wanted.values():
        execute(sql)
    execute(
        f"INSERT INTO {TABLE} (key, checked) SELECT key, {UNCHECKED} FROM Cache"
        f" WHERE key >= ? AND key < ? AND raw = 1",
        (first, end),
    )
    return True


def has_unchecked(execute: Execute) -> bool:
    """True when some record row is unchecked (one seek in the partial index)."""
    return execute(
        f"SELECT 1 FROM {TABLE} WHERE checked = {UNCHECKED} LIMIT 1"
    ).fetchone() is not None


def unchecked_rows(execute: Execute, after: str, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` unchecked record rows with keys after ``after``, in key order:
    ``(key, expire_time, mode, filename, value)`` as diskcache stored them."""
    # CROSS JOIN keeps the summary as the outer loop (SQLite never reorders it): the
    # partial index of unchecked keys gives them in order, and only those rows of Cache,
    # values and all, are read.
    return execute(
        f"SELECT c.key, c.expire_time, c.mode, c.filename, c.value FROM {TABLE} s"
        f" CROSS JOIN Cache c ON c.key = s.key AND c.raw = 1"
        f" WHERE s.checked = {UNCHECKED} AND s.key > ? ORDER BY s.key LIMIT ?",
        (after, limit),
    ).fetchall()


Mark = tuple[str | None, str | None, str | None, str, str, str | None, str | None, int, str]
"""What :func:`mark` records: ``(status, last_outcome, fetched_at, stable_id, url,
last_attempt_at, requested_timestamp, checked, key)``."""

#: The columns of :func:`facts` rows after the key, in the order of ``RecordFacts``.
FACT_COLUMNS: Final = ("stable_id", "url", "status", "last_outcome", "last_attempt_at",
                       "fetched_at", "requested_timestamp")


def mark(execute_many: Callable[[str, list[Mark]], object], marks: list[Mark]) -> None:
    """Record the fields of records just written (or read) and how they were checked.

    Must run in the transaction that wrote or read the records: a later write by anyone
    resets a row to unchecked.
    """
    execute_many(
        f"UPDATE {TABLE} SET status = ?, last_outcome = ?, fetched_at = ?, stable_id = ?,"
        f" url = ?, last_attempt_at = ?, requested_timestamp = ?, checked = ? WHERE key = ?",
        marks,
    )


def facts(execute: Execute, keys: list[str]) -> list[tuple[Any, ...]]:
    """``(key, *FACT_COLUMNS)`` of those of ``keys`` (record row keys, at most a few
    hundred) whose row is checked, so holds the fields of the record stored now.

    A key missing from the answer has no record row, or one not checked (written by
    another writer, or damaged): the caller reads that record itself.
    """
    # A checked row exists only beside its record row (the delete trigger drops it with
    # the row) and is reset by any write of that row, so it needs no look at Cache.
    return execute(
        f"SELECT key, {', '.join(FACT_COLUMNS)} FROM {TABLE}"
        f" WHERE key IN ({', '.join('?' * len(keys))}) AND checked > {UNCHECKED}",
        keys,
    ).fetchall()


def record_rows_sql(op: str, statuses: int | None) -> str:
    """The query of up to ``?`` record rows after (``op`` ``>``) or from (``>=``) one key and
    before another, in key order, with their summary.

    Columns: ``key, raw, mode, filename, value, expire_time, checked, status,
    last_outcome`` (the last three ``NULL`` for a row the summary lacks). With
    ``statuses`` (how many are given), only rows whose checked status or latest outcome is
    one of them, and every row not checked (its fields are unknown). Parameters: the two
    keys, the statuses twice (if any), the limit.
    """
    # Cache drives, the summary only annotates: a record row is never missed, even one the
    # summary should have and does not. The filter uses index columns and the summary
    # alone, so SQLite reads the value only of the rows it keeps.
    where = ""
    if statuses is not None:
        marks = ", ".join("?" * statuses)
        where = (f" AND (s.checked IS NULL OR s.checked = {UNCHECKED}"
                 f" OR s.status IN ({marks}) OR s.last_outcome IN ({marks}))")
    return (
        f"SELECT c.key, c.raw, c.mode, c.filename, c.value, c.expire_time, s.checked,"
        f" s.status, s.last_outcome FROM Cache c"
        f" LEFT JOIN {TABLE} s ON s.key = c.key AND c.raw = 1"
        f" WHERE c.key {op} ? AND c.key < ?{where} ORDER BY c.key, c.raw LIMIT ?"
    )


@dataclass(frozen=True, slots=True)
class Counts:
    """What the summary says: counts and fetch range of the checked records, and the keys
    of the unchecked ones (in key order), which the caller reads itself."""

    outcomes: Mapping[str, int]
    oldest_fetch: str | None
    newest_fetch: str | None
    unchecked: list[str]
    rows: int
    """How many rows the summary has (one per record row, unless edited by hand)."""


def counts(execute: Execute) -> Counts:
    """Count the checked records per status, find their oldest and newest fetch, and list
    the unchecked ones. Run inside one read transaction, so the figures agree."""
    checked = f"checked > {UNCHECKED}"
    outcomes = dict(execute(
        f"SELECT status, count(*) FROM {TABLE} WHERE {checked} GROUP BY status"
    ).fetchall())
    # An empty fetched_at counts as none, as in Python (``if record.fetched_at``); each of
    # min and max is one seek in the partial index on fetched_at.
    (oldest,) = execute(
        f"SELECT min(fetched_at) FROM {TABLE} WHERE {checked} AND fetched_at > ''"
    ).fetchone()
    (newest,) = execute(
        f"SELECT max(fetched_at) FROM {TABLE} WHERE {checked} AND fetched_at > ''"
    ).fetchone()
    unchecked = [key for (key,) in execute(
        f"SELECT key FROM {TABLE} WHERE checked = {UNCHECKED} ORDER BY key"
    ).fetchall()]
    rows = sum(outcomes.values()) + len(unchecked)
    return Counts(outcomes, oldest, newest, unchecked, rows)
