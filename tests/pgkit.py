"""The real PostgreSQL server for the tests: a schema or database of its own per test.

The server is ``$SNAPCACHE_TEST_DSN`` (default: ``postgresql://postgres@127.0.0.1:5432/test``,
trust authentication, as on the CI machines). Without it the PostgreSQL tests skip, printing
why; but when ``$CI`` is set they fail instead, so CI can never pass by skipping them.

Every schema made here is dropped after the test that made it (``tests/conftest.py`` calls
:func:`drop_created`); :func:`fresh_database` drops its database itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

TEST_DSN = os.environ.get("SNAPCACHE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")

#: Schemas made by this process and not dropped yet.
_created: set[str] = set()


def _connect(dsn: str = TEST_DSN) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


@functools.cache
def unreachable_reason() -> str | None:
    """Why the PostgreSQL tests cannot run here, or ``None`` when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with _connect():
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable ($SNAPCACHE_TEST_DSN): {str(exc).strip()}"
    return None


def require_postgres() -> None:
    """Skip the calling test without PostgreSQL; fail it instead when ``$CI`` is set."""
    reason = unreachable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the PostgreSQL tests must run", pytrace=False)
    pytest.skip(reason)


def with_schema(dsn: str, schema: str) -> str:
    """``dsn`` with its search_path set to ``schema`` (a URI or a key=value string)."""
    option = f"-csearch_path={schema}"
    if dsn.startswith(("postgresql://", "postgres://")):
        return f"{dsn}{'&' if '?' in dsn else '?'}options={quote(option, safe='')}"
    return f"{dsn} options='{option}'"


def schema_for(place: str) -> str:
    """The schema a contract-suite place maps to (the same in every process)."""
    return "sc_" + hashlib.sha256(place.encode("utf-8")).hexdigest()[:20]


def create_schema(schema: str) -> str:
    """Create ``schema`` (if needed) for this test; return a DSN whose tables live there."""
    require_postgres()
    if schema not in _created:
        with _connect() as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        _created.add(schema)
    return with_schema(TEST_DSN, schema)


def new_schema() -> str:
    """A DSN on a new, empty schema, dropped after the test."""
    return create_schema("sc_" + secrets.token_hex(8))


def drop_created() -> None:
    """Drop every schema this process made (after each test)."""
    if not _created:
        return
    with _connect() as conn:
        for schema in sorted(_created):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    _created.clear()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A DSN on a new, empty database (not even the public schema's tables), dropped after."""
    require_postgres()
    name = "sc_db_" + secrets.token_hex(6)
    with _connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = TEST_DSN.split("?", 1)[0].rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
