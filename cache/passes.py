"""Passes over every record of a diskcache store, in resource-ID order: what ``export``,
``list`` and status filters read.

A pass is a range scan of the ``rec:`` keys in diskcache's key index, :data:`BATCH` rows
per query, each query starting after the last key read: its cost is in proportion to the
records, whatever else the store holds. (diskcache's own key iterator asks SQLite for the
next 100 keys with a query SQLite answers by scanning the index from its start, so a pass
through it took time in proportion to the square of the store's rows.) The record summary
(:mod:`.summary`) is joined to each row: it lets status filters skip records, and lets an
export write the stored text of records it vouches for without parsing them.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from typing import Any, Final

from diskcache.core import MODE_RAW

from .errors import DamagedRecordError
from .records import Record
from .rows import REC, REC_END, Rows
from .summary import CANONICAL, record_rows_sql

__all__ = ["BATCH", "record_texts", "records"]

#: Record rows read per query: a few hundred KB of JSON, one round trip each.
BATCH: Final = 500

#: A row of a pass to read: ``(raw, mode, filename, value)`` as diskcache stored them.
_Row = tuple[Any, Any, Any, Any]


def records(
    rows: Rows, statuses: Collection[str] | None = None
) -> Iterator[tuple[str, Record | DamagedRecordError]]:
    """Yield ``(rid, record)`` for every ``rec:`` row in key (resource-ID) order, or
    ``(rid, error)`` for a record that cannot be read, in its place.

    With ``statuses``, the record summary skips records whose checked status and latest
    outcome are both elsewhere; the others all come (the caller filters them).
    """
    for key, item in _items(rows, statuses, texts=False):
        if isinstance(item, tuple):  # never the text: none was asked for
            record = _read(rows, key, item)
            if record is not None:
                yield key[len(REC) :], record


def record_texts(
    rows: Rows, statuses: Collection[str] | None = None
) -> Iterator[tuple[str, str | DamagedRecordError]]:
    """Yield ``(rid, text)`` for every record whose status or latest outcome is one of
    ``statuses`` (all without), ``text`` being its ``Record.to_json()``, or ``(rid, error)``
    for a record that cannot be read, in key order.

    A record the summary marks as stored in its own JSON is not parsed at all: the stored
    text is the answer. Others are parsed and written out again.
    """
    wanted = frozenset(statuses) if statuses else None
    for key, item in _items(rows, statuses, texts=True):
        rid = key[len(REC) :]
        if isinstance(item, str):
            yield rid, item
            continue
        if item is None:
            continue
        record = _read(rows, key, item)
        if isinstance(record, DamagedRecordError):
            yield rid, record
        elif record is not None and (
            wanted is None or record.status in wanted or record.last_outcome in wanted
        ):
            yield rid, record.to_json()


def _items(
    rows: Rows, statuses: Collection[str] | None, *, texts: bool
) -> Iterator[tuple[str, str | _Row | None]]:
    """``(key, what)`` of every record row, in key order: the stored text when ``texts``
    and the summary vouches for it (matching ``statuses``), else the row to read; ``None``
    for a row to leave out."""
    rows.refuse_pickled_keys()
    wanted = sorted(set(statuses)) if statuses else None
    after, op = REC, ">="
    while True:
        sql = record_rows_sql(op, None if wanted is None else len(wanted))
        batch = rows.query(sql, (after, REC_END, *(wanted or ()), *(wanted or ()), BATCH))
        now = time.time()
        for key, raw, mode, filename, value, expires, checked, status, last in batch:
            if expires is not None and expires <= now:
                yield key, None  # absent to diskcache's reads; never written by snapcache
            elif (texts and checked == CANONICAL and mode == MODE_RAW and filename is None
                    and isinstance(value, str)):
                matches = wanted is None or status in wanted or last in wanted
                yield key, value if matches else None
            else:
                yield key, (raw, mode, filename, value)
        if len(batch) < BATCH:
            return
        after, op = batch[-1][0], ">"


def _read(rows: Rows, key: str, row: _Row) -> Record | DamagedRecordError | None:
    """The record in one row of a pass, its error, or ``None`` if it is gone."""
    raw, mode, filename, value = row
    rid = key[len(REC) :]
    if raw != 1:
        rows.check_key(key, raw)  # SafeDisk refuses a pickled key: it raises
        return None
    try:
        if mode == MODE_RAW and filename is None and isinstance(value, str):
            return rows.parse_record(rid, value)
        # Anything diskcache itself must convert (bytes, a side file, a pickle): the checked
        # single read decides, refusing what is unsafe.
        return rows.record(rid)
    except DamagedRecordError as exc:
        return exc
