"""Reads made ahead for one thread: the record rows, or the facts, of a batch of resources,
read a few hundred per query and held for that thread's next read of each.

A warm run plans every URL of its list from the store, one record per URL. Read one by one,
a query each cost more than the SQL itself (binding, stepping, a cursor per call), and
parsing each text on its own took nearly twice as long as parsing them together
(:func:`parse_together`). What is held answers one read per key (an absent row included),
as of when it was read; later reads go to the file.

The rows are diskcache's (:mod:`.rows` describes the layout); the facts come from the
record summary (:mod:`.summary`). Nothing here opens or writes the file: the caller runs
the queries given here on its own connection and turns its errors into the store's.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Final, TypeAlias

from diskcache.core import MODE_RAW

from .records import RecordFacts
from .summary import Execute, facts

__all__ = ["BATCH", "Held", "ReadAhead", "parse_together", "read_facts", "read_rows"]

#: Keys per query (far below SQLite's limit on parameters).
BATCH: Final = 250

Held: TypeAlias = tuple[str, Any] | None
"""A record row read ahead: its text and, where it parsed as the record of its own key,
its JSON value (else None, and the text is parsed alone when read); None for no row."""

def parse_together(texts: list[str]) -> list[Any]:
    """The JSON value of each of ``texts``, parsed as one array: one call of the parser
    for them all, its keys made once (about half the time of a call each). Where that fails
    or gives another count of values (a damaged text among them), a list of None.

    Only a text that is not JSON on its own could join its neighbours into values that
    look right; an accident (a text cut short, a flipped byte) cannot. The caller keeps a
    value only where it names its own row, and parses any other text alone.
    """
    try:
        values = json.loads("[" + ",".join(texts) + "]")
    except (ValueError, RecursionError):
        values = None
    if isinstance(values, list) and len(values) == len(texts):
        return values
    return [None] * len(texts)


def read_rows(execute: Execute, keys: list[str], prefix: str) -> dict[str, Held]:
    """The record rows of ``keys`` (each ``prefix`` + a resource ID) as diskcache's own
    ``get`` finds them: an expired row is absent, and a row not stored as text is left out
    (its read goes to the file, which refuses it)."""
    rows: dict[str, Held] = dict.fromkeys(keys)
    now = time.time()
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        query = (
            f"SELECT key, mode, filename, value FROM Cache WHERE key IN"
            f" ({','.join('?' * len(chunk))}) AND raw = 1"
            " AND (expire_time IS NULL OR expire_time > ?)"
        )
        for key, mode, filename, value in execute(query, (*chunk, now)):
            if mode == MODE_RAW and filename is None and isinstance(value, str):
                rows[key] = (value, None)
            else:
                del rows[key]
    found = [(key, row[0]) for key, row in rows.items() if row is not None]
    for (key, raw), value in zip(found, parse_together([raw for _, raw in found]),
                                 strict=True):
        # A value is kept only where it is the record of its own key; any other text is
        # parsed on its own when read, and named if damaged, as always.
        if type(value) is dict and value.get("resource_id") == key[len(prefix) :]:
            rows[key] = (raw, value)
    return rows


def read_facts(execute: Execute, keys: list[str], prefix: str) -> dict[str, RecordFacts]:
    """The facts of those of ``keys`` whose summary row is checked, a query per batch."""
    known: dict[str, RecordFacts] = {}
    for start in range(0, len(keys), BATCH):
        for key, *fields in facts(execute, keys[start : start + BATCH]):
            known[key] = RecordFacts(key[len(prefix) :], *fields)
    return known


class ReadAhead:
    """What each thread holds of its current read-ahead block (nothing outside one)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def holding(self, rows: dict[str, Held], known: dict[str, RecordFacts]) -> Iterator[None]:
        """Hold ``rows`` and ``known`` facts for this thread's reads inside the block; an
        enclosing block's are held again after it."""
        local = self._local
        outer = getattr(local, "rows", None), getattr(local, "facts", None)
        local.rows, local.facts = rows, known
        try:
            yield
        finally:
            local.rows, local.facts = outer

    def take_row(self, key: str) -> tuple[bool, Held]:
        """Whether a row of ``key`` is held, and what (taken: the next read goes to the
        file)."""
        rows: dict[str, Held] | None = getattr(self._local, "rows", None)
        if rows is None or key not in rows:
            return False, None
        return True, rows.pop(key)

    def take_facts(self, key: str) -> tuple[bool, RecordFacts | None]:
        """``(True, facts)`` when facts of ``key`` are held (taken); ``(True, None)`` when
        its record row is held instead (its facts are the record's); ``(False, None)`` when
        ``key`` was not read ahead."""
        known: dict[str, RecordFacts] | None = getattr(self._local, "facts", None)
        if known is not None and key in known:
            return True, known.pop(key)
        rows: dict[str, Held] | None = getattr(self._local, "rows", None)
        return rows is not None and key in rows, None
