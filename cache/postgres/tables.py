"""The tables of the PostgreSQL store, and checked access to their rows.

The schema is created by ``sql/0001_initial.sql`` (see :mod:`.schema`):

========================  ======================================================================
``snapcache_resources``   identity: resource ID, stable ID (unique), current URL, created_at;
                          the row every write locks (``SELECT ... FOR UPDATE``)
``snapcache_urls``        every URL (current or alias) bound to a resource, keyed by the
                          SHA-256 of its UTF-8 bytes
``snapcache_aliases``     earlier URLs of a resource, oldest first
``snapcache_records``     the record, ``Record.to_json()`` as jsonb
``snapcache_texts``       the extracted text of the stored capture
``snapcache_history``     attempt summaries (jsonb objects), oldest first, bounded
========================  ======================================================================

Functions here run one statement or two on a connection the caller holds, inside the
caller's transaction when it writes; what is written when is decided by
:class:`~snapcache.cache.postgres.store.PostgresStore`. Every read checks the shape of what
it got, as the diskcache store does: a record that does not parse raises
:class:`~snapcache.cache.records.RecordFormatError` naming its resource ID. jsonb is read
back with :func:`json.loads` (psycopg's loader): nothing stored can build an object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any, Final

import psycopg

from ..contract import HistoryEntry
from ..errors import CacheError, StableIdConflictError
from ..records import Record, RecordFormatError
from ..rows import Identity

__all__ = [
    "PAGE_SIZE",
    "Conn",
    "add_alias",
    "aliases",
    "append_history",
    "bind_url",
    "check_sid_free",
    "check_url_free",
    "count_records",
    "dump_entry",
    "has_record",
    "history",
    "identity",
    "insert_identity",
    "parse_record",
    "record",
    "record_by_stable_id",
    "record_by_url",
    "record_page",
    "remove_alias",
    "replace_aliases",
    "replace_history",
    "set_identity_url",
    "set_text",
    "sid_owner",
    "text",
    "url_hash",
    "url_owner",
    "write_record",
]

Conn = psycopg.Connection[Any]

#: Records read per query when iterating (keyset pagination: no cursor stays open between
#: pages, so a caller that writes while iterating needs no second connection for long).
PAGE_SIZE: Final = 500


def url_hash(url: str) -> bytes:
    """The key of a URL in ``snapcache_urls``: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(url.encode("utf-8")).digest()


def dump_entry(entry: Mapping[str, object]) -> str:
    """A history entry as JSON text; ``TypeError`` for one JSON cannot hold.

    NaN and infinities are refused too: jsonb has no spelling for them.
    """
    if not isinstance(entry, Mapping):
        raise TypeError(f"history_entry must be a mapping, not {type(entry).__name__}")
    try:
        return json.dumps(dict(entry), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)
    except ValueError as exc:
        raise TypeError(f"history_entry is not JSON-serialisable: {exc}") from exc


def parse_record(rid: str, data: object) -> Record:
    """Check a record read from ``snapcache_records``; ``RecordFormatError`` naming ``rid``."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise RecordFormatError(f"record {rid}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordFormatError(f"record {rid}: stored as {type(data).__name__}, not an object")
    try:
        found = Record.from_json_dict(data)
    except (RecordFormatError, TypeError) as exc:
        raise RecordFormatError(f"record {rid}: {exc}") from exc
    if found.resource_id != rid:
        raise RecordFormatError(
            f"record {rid}: stored under the wrong key (its resource_id is {found.resource_id})"
        )
    return found


def _one(conn: Conn, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(query, params).fetchone()
    return row


def _owner(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise CacheError(f"{what} points to {value!r}, not a resource ID")
    return value


# ---------------------------------------------------------------------------------------------
# Reads


def identity(conn: Conn, rid: str, *, lock: bool = False) -> Identity | None:
    """The identity row of ``rid``; with ``lock``, held ``FOR UPDATE`` until the caller's
    transaction ends (every write to ``rid`` takes this lock first)."""
    query = (
        "SELECT stable_id, url, created_at FROM snapcache_resources WHERE resource_id = %s"
        + (" FOR UPDATE" if lock else "")
    )
    row = _one(conn, query, (rid,))
    if row is None:
        return None
    sid, url, created = row
    if not isinstance(sid, str) or not isinstance(url, str) or not isinstance(created, str | None):
        raise CacheError(f"identity row of resource {rid} is corrupt")
    return Identity(sid, url, created)


def record(conn: Conn, rid: str) -> Record | None:
    """The record of ``rid``, or ``None``."""
    row = _one(conn, "SELECT record FROM snapcache_records WHERE resource_id = %s", (rid,))
    return None if row is None else parse_record(rid, row[0])


def url_owner(conn: Conn, key: str) -> str | None:
    """The resource ID the URL ``key`` (stripped) is bound to, or ``None``."""
    row = _one(
        conn,
        "SELECT resource_id FROM snapcache_urls WHERE url_sha256 = %s AND url = %s",
        (url_hash(key), key),
    )
    return None if row is None else _owner(row[0], f"URL index entry {key!r}")


def sid_owner(conn: Conn, sid: str) -> str | None:
    """The resource ID holding stable ID ``sid``, or ``None``."""
    row = _one(conn, "SELECT resource_id FROM snapcache_resources WHERE stable_id = %s", (sid,))
    return None if row is None else _owner(row[0], f"stable ID {sid}")


def record_by_url(conn: Conn, key: str) -> Record | None:
    """The record of the resource the URL ``key`` is bound to, or ``None``."""
    row = _one(
        conn,
        "SELECT r.resource_id, r.record FROM snapcache_urls u"
        " JOIN snapcache_records r ON r.resource_id = u.resource_id"
        " WHERE u.url_sha256 = %s AND u.url = %s",
        (url_hash(key), key),
    )
    return None if row is None else parse_record(row[0], row[1])


def record_by_stable_id(conn: Conn, sid: str) -> Record | None:
    """The record of the resource holding stable ID ``sid``, or ``None``."""
    row = _one(
        conn,
        "SELECT r.resource_id, r.record FROM snapcache_resources i"
        " JOIN snapcache_records r ON r.resource_id = i.resource_id"
        " WHERE i.stable_id = %s",
        (sid,),
    )
    return None if row is None else parse_record(row[0], row[1])


def text(conn: Conn, rid: str) -> str | None:
    """The extracted text of ``rid``'s stored capture, or ``None``."""
    row = _one(conn, "SELECT body FROM snapcache_texts WHERE resource_id = %s", (rid,))
    if row is None:
        return None
    if not isinstance(row[0], str):
        raise CacheError(f"text of resource {rid} is corrupt")
    return row[0]


def history(conn: Conn, rid: str) -> list[HistoryEntry]:
    """The attempt summaries of ``rid``, oldest first."""
    rows = conn.execute(
        "SELECT entry FROM snapcache_history WHERE resource_id = %s ORDER BY seq", (rid,)
    ).fetchall()
    entries = [row[0] for row in rows]
    if not all(isinstance(e, dict) for e in entries):
        raise CacheError(f"history of resource {rid} is corrupt")
    return entries


def aliases(conn: Conn, rid: str) -> list[str]:
    """The earlier URLs of ``rid``, oldest first."""
    rows = conn.execute(
        "SELECT url FROM snapcache_aliases WHERE resource_id = %s ORDER BY seq", (rid,)
    ).fetchall()
    found = [row[0] for row in rows]
    if not all(isinstance(a, str) for a in found):
        raise CacheError(f"alias list of resource {rid} is corrupt")
    return found


def has_record(conn: Conn, rid: str) -> bool:
    """True when ``rid`` has a record."""
    return _one(conn, "SELECT 1 FROM snapcache_records WHERE resource_id = %s", (rid,)) is not None


def count_records(conn: Conn) -> int:
    """The number of records."""
    row = _one(conn, "SELECT count(*) FROM snapcache_records", ())
    return 0 if row is None else int(row[0])


def record_page(
    conn: Conn, after: str, statuses: Collection[str] | None
) -> list[tuple[str, Record | RecordFormatError]]:
    """Up to :data:`PAGE_SIZE` records with a resource ID greater than ``after``, in order.

    With ``statuses``, only records whose status or latest outcome is one of them. A row
    that is not a record comes back as its :class:`RecordFormatError`, in its place, so the
    caller decides whether it stops the read.
    """
    if statuses is None:
        rows = conn.execute(
            "SELECT resource_id, record FROM snapcache_records WHERE resource_id > %s"
            " ORDER BY resource_id LIMIT %s",
            (after, PAGE_SIZE),
        ).fetchall()
    else:
        wanted = sorted(statuses)
        rows = conn.execute(
            "SELECT resource_id, record FROM snapcache_records WHERE resource_id > %s"
            " AND (status = ANY(%s) OR last_outcome = ANY(%s))"
            " ORDER BY resource_id LIMIT %s",
            (after, wanted, wanted, PAGE_SIZE),
        ).fetchall()
    return [(row[0], _parsed_or_error(row[0], row[1])) for row in rows]


def _parsed_or_error(rid: str, value: object) -> Record | RecordFormatError:
    try:
        return parse_record(rid, value)
    except RecordFormatError as exc:
        return exc


def check_url_free(conn: Conn, key: str, rid: str) -> None:
    """Raise :class:`CacheError` if the URL ``key`` is bound to a resource other than ``rid``."""
    owner = url_owner(conn, key)
    if owner is not None and owner != rid:
        raise CacheError(
            f"URL {key!r} already belongs to resource {owner}, not {rid}; "
            f"look it up with by_url()"
        )


def check_sid_free(conn: Conn, sid: str, rid: str) -> None:
    """Raise :class:`StableIdConflictError` if another resource than ``rid`` holds ``sid``."""
    owner = sid_owner(conn, sid)
    if owner is not None and owner != rid:
        raise StableIdConflictError(
            f"stable ID {sid} is already held by resource {owner}; "
            f"it cannot also identify {rid}",
            resource_id=rid,
            existing=None,
            requested=sid,
            other_resource_id=owner,
        )


# ---------------------------------------------------------------------------------------------
# Writes (inside the caller's transaction)


def insert_identity(conn: Conn, rid: str, ident: Identity) -> None:
    """Bind a new resource's identity. A resource or stable ID already present raises
    ``UniqueViolation`` (a concurrent first sighting: the caller's transaction retries)."""
    conn.execute(
        "INSERT INTO snapcache_resources (resource_id, stable_id, url, created_at)"
        " VALUES (%s, %s, %s, %s)",
        (rid, ident.stable_id, ident.url, ident.created_at),
    )


def set_identity_url(conn: Conn, rid: str, url: str) -> None:
    """Make ``url`` the current URL of ``rid``'s identity."""
    conn.execute(
        "UPDATE snapcache_resources SET url = %s WHERE resource_id = %s", (url, rid)
    )


def bind_url(conn: Conn, key: str, rid: str) -> None:
    """Bind the URL ``key`` to ``rid`` (nothing if it already is).

    A URL bound to another resource meanwhile raises ``UniqueViolation``.
    """
    conn.execute(
        "INSERT INTO snapcache_urls (url_sha256, url, resource_id) VALUES (%s, %s, %s)"
        " ON CONFLICT (url_sha256) DO NOTHING",
        (url_hash(key), key, rid),
    )
    owner = url_owner(conn, key)
    if owner != rid:
        raise CacheError(
            f"URL {key!r} already belongs to resource {owner}, not {rid}; "
            f"look it up with by_url()"
        )


def write_record(conn: Conn, rid: str, record_json: str) -> None:
    """Store ``rid``'s record (already validated JSON)."""
    conn.execute(
        "INSERT INTO snapcache_records (resource_id, record) VALUES (%s, %s::jsonb)"
        " ON CONFLICT (resource_id) DO UPDATE SET record = EXCLUDED.record, updated_at = now()",
        (rid, record_json),
    )


def set_text(conn: Conn, rid: str, body: str | None) -> None:
    """Store ``rid``'s text, or delete it for ``None``."""
    if body is None:
        conn.execute("DELETE FROM snapcache_texts WHERE resource_id = %s", (rid,))
        return
    conn.execute(
        "INSERT INTO snapcache_texts (resource_id, body) VALUES (%s, %s)"
        " ON CONFLICT (resource_id) DO UPDATE SET body = EXCLUDED.body",
        (rid, body),
    )


def append_history(conn: Conn, rid: str, entry_json: str, limit: int) -> None:
    """Append one entry and keep only the newest ``limit`` of ``rid``'s history."""
    if limit > 0:
        conn.execute(
            "INSERT INTO snapcache_history (resource_id, entry) VALUES (%s, %s::jsonb)",
            (rid, entry_json),
        )
    conn.execute(
        "DELETE FROM snapcache_history WHERE resource_id = %s AND seq NOT IN ("
        " SELECT seq FROM snapcache_history WHERE resource_id = %s"
        " ORDER BY seq DESC LIMIT %s)",
        (rid, rid, limit),
    )


def replace_history(conn: Conn, rid: str, entries: list[str]) -> None:
    """Make ``entries`` (JSON texts, oldest first) the whole history of ``rid``."""
    conn.execute("DELETE FROM snapcache_history WHERE resource_id = %s", (rid,))
    for entry in entries:
        conn.execute(
            "INSERT INTO snapcache_history (resource_id, entry) VALUES (%s, %s::jsonb)",
            (rid, entry),
        )


def add_alias(conn: Conn, rid: str, url: str) -> None:
    """Append ``url`` to ``rid``'s aliases (the newest)."""
    conn.execute(
        "INSERT INTO snapcache_aliases (resource_id, url) VALUES (%s, %s)", (rid, url)
    )


def remove_alias(conn: Conn, rid: str, url: str) -> None:
    """Drop ``url`` from ``rid``'s aliases (it stays bound to ``rid`` in the URL index)."""
    conn.execute(
        "DELETE FROM snapcache_aliases WHERE resource_id = %s AND url = %s", (rid, url)
    )


def replace_aliases(conn: Conn, rid: str, urls: list[str]) -> None:
    """Make ``urls`` (oldest first) the whole alias list of ``rid``, each bound to it."""
    conn.execute("DELETE FROM snapcache_aliases WHERE resource_id = %s", (rid,))
    for url in urls:
        bind_url(conn, url, rid)
        add_alias(conn, rid, url)
