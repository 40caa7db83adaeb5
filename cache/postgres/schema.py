"""Versioned SQL migrations of the PostgreSQL store, applied once, under an advisory lock.

Migrations are the files ``sql/NNNN_name.sql`` shipped in this package, numbered from 1
without gaps. The table ``snapcache_migrations`` records each version applied. Applying runs
in one transaction that first takes a transaction-level advisory lock
(``pg_advisory_xact_lock``) keyed on the schema: two hosts starting at once queue on the
lock, and the second finds the work done. PostgreSQL's DDL is transactional, so a migration
that fails leaves nothing behind.

Every store applies pending migrations when it opens; :func:`upgrade` does it explicitly
(``snapcache db upgrade``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import psycopg

from ..errors import CacheError
from .dsn import connect, scrub_dsn, scrub_message

__all__ = [
    "MIGRATIONS_TABLE",
    "Migration",
    "Upgrade",
    "ensure_current",
    "latest_version",
    "migrate",
    "migrations",
    "schema_version",
    "upgrade",
]

MIGRATIONS_TABLE: Final = "snapcache_migrations"

_FILE_RE: Final = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

# The advisory lock's key: one per schema (database-wide keys would make stores in two
# schemas of one database wait for each other's migrations, which is harmless but pointless).
_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtextextended('snapcache.migrate:' || %s, 0))"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name and SQL."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What :func:`upgrade` did: the schema version now, and the migrations it applied."""

    version: int
    applied: tuple[Migration, ...]


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with snapcache, in version order (read once).

    Raises :class:`CacheError` if the files are not numbered 1, 2, ... without gaps: a
    broken installation must not half-migrate a database.
    """
    folder = resources.files(__package__).joinpath("sql")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_RE.fullmatch(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise CacheError(
            "the PostgreSQL migrations shipped with snapcache are not numbered 1, 2, ... "
            "without gaps; reinstall snapcache"
        )
    return tuple(found)


def latest_version() -> int:
    """The schema version this snapcache writes (the number of its last migration)."""
    return len(migrations())


def _current_schema(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise CacheError(
            "no schema to keep the store in: none of the schemas on the connection's "
            "search_path exists; create it, or fix the DSN's search_path option"
        )
    return str(row[0])


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The version recorded in the connection's current schema (0 for an empty one)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)).fetchone()
    if row is None or not row[0]:
        return 0
    found = conn.execute(f"SELECT coalesce(max(version), 0) FROM {MIGRATIONS_TABLE}").fetchone()
    return 0 if found is None else int(found[0])


def upgrade(conn: psycopg.Connection[Any]) -> Upgrade:
    """Apply every pending migration in one transaction, under the advisory lock.

    Safe to call again (nothing to do then) and from several hosts at once. Raises
    :class:`CacheError` when the database was migrated by a newer snapcache.
    """
    with conn.transaction():
        conn.execute(_LOCK, (_current_schema(conn),))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = schema_version(conn)
        _refuse_newer(current)
        applied = tuple(m for m in migrations() if m.version > current)
        for migration in applied:
            # bytes: the file's text goes to the server as is (several statements, no
            # parameters), which psycopg runs with the simple query protocol.
            conn.execute(migration.sql.encode("utf-8"))
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
    return Upgrade(max(current, latest_version()), applied)


def ensure_current(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema to :func:`latest_version` if it is behind; return the version.

    An up-to-date schema is only read (no lock, no DDL: a role without the right to create
    tables can use a store someone else migrated).
    """
    version = schema_version(conn)
    _refuse_newer(version)
    if version == latest_version():
        return version
    return upgrade(conn).version


def _refuse_newer(version: int) -> None:
    latest = latest_version()
    if version > latest:
        raise CacheError(
            f"the PostgreSQL store has schema version {version}, newer than this "
            f"snapcache's schema version {latest}; upgrade snapcache"
        )


def migrate(dsn: str) -> Upgrade:
    """Apply every pending migration to the database at ``dsn`` (``snapcache db upgrade``).

    Safe to run again and from several hosts at once (see :mod:`.schema`). Raises
    :class:`CacheError` without the password when the server cannot be reached or the
    migration fails.
    """
    with connect(dsn) as conn:
        try:
            return upgrade(conn)
        except psycopg.Error as exc:
            raise CacheError(
                f"migrating the PostgreSQL store at {scrub_dsn(dsn)} failed: "
                f"{scrub_message(str(exc), dsn).strip()}"
            ) from None
