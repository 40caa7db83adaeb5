"""The PostgreSQL store beyond the shared contract: its migrations, several hosts starting
and writing at once, its constraints, secrets kept out of messages, and rows it refuses.

Every test runs against the real server (tests/pgkit.py) in a schema or database of its own,
dropped afterwards; without PostgreSQL they skip, and under ``$CI`` they fail.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from snapcache.cache import CacheError, RecordFormatError, Status
from snapcache.cache.postgres import (
    PostgresStore,
    latest_version,
    migrate,
    migrations,
    schema_version,
    scrub_dsn,
)

from tests import pgkit
from tests.store_backends import random_sid
from tests.storekit import EXAMPLE, NTIA, attempt, rid

TABLES = {
    "snapcache_migrations", "snapcache_resources", "snapcache_urls", "snapcache_aliases",
    "snapcache_records", "snapcache_texts", "snapcache_history",
}


@pytest.fixture
def dsn() -> str:
    """A DSN on a new, empty schema of the test server (dropped after the test)."""
    return pgkit.new_schema()


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresStore]:
    with PostgresStore(dsn) as opened:
        yield opened


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on ``dsn`` as an operator (or an attacker) would."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params or None)
        return cur.fetchall() if cur.description else []


def tables_of(dsn: str) -> set[str]:
    rows = sql(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {r[0] for r in rows}


# ---------------------------------------------------------------------------------------------
# Migrations


def test_migrations_build_an_empty_database_and_applying_again_changes_nothing() -> None:
    with pgkit.fresh_database() as dsn:
        assert not tables_of(dsn) & TABLES
        first = migrate(dsn)
        assert first.version == latest_version() == len(migrations()) >= 1
        assert [m.version for m in first.applied] == list(range(1, latest_version() + 1))
        assert tables_of(dsn) >= TABLES
        recorded = sql(dsn, "SELECT version, name FROM snapcache_migrations ORDER BY version")
        assert recorded == [(m.version, m.name) for m in migrations()]
        again = migrate(dsn)
        assert again.version == first.version and again.applied == ()
        assert sql(dsn, "SELECT count(*) FROM snapcache_migrations") == [(len(migrations()),)]
        with PostgresStore(dsn, migrate=False) as store:
            assert store.schema_version == latest_version()
            store.save_attempt(attempt(NTIA, "ok"), text="t", history_entry={})
        migrate(dsn)  # a store with records is migrated again just as harmlessly
        with PostgresStore(dsn) as store:
            assert store.get_text(rid(NTIA)) == "t" and len(store) == 1


def test_the_first_store_opened_migrates_and_a_store_may_refuse_to(dsn: str) -> None:
    with pytest.raises(CacheError, match="db upgrade"):
        PostgresStore(dsn, migrate=False)
    assert not tables_of(dsn) & TABLES
    with PostgresStore(dsn) as store:
        assert store.schema_version == latest_version()
    assert tables_of(dsn) >= TABLES


def test_a_database_migrated_by_a_newer_snapcache_is_refused(dsn: str) -> None:
    migrate(dsn)
    newer = latest_version() + 1
    sql(dsn, "INSERT INTO snapcache_migrations (version, name) VALUES (%s, 'future')", newer)
    for opening in (lambda: PostgresStore(dsn), lambda: migrate(dsn)):
        with pytest.raises(CacheError, match=f"schema version {newer}, newer"):
            opening()


def test_a_search_path_naming_no_schema_is_a_clear_error() -> None:
    pgkit.require_postgres()
    dsn = pgkit.with_schema(pgkit.TEST_DSN, "sc_does_not_exist")
    with pytest.raises(CacheError, match="no schema to keep the store in"):
        PostgresStore(dsn)


def test_a_role_without_create_rights_uses_a_migrated_store_and_is_told_otherwise() -> None:
    schema = "sc_" + secrets.token_hex(8)
    dsn = pgkit.create_schema(schema)
    role = f"{schema}_role"
    as_role = dsn.replace("//postgres@", f"//{role}@", 1)
    sql(dsn, f'CREATE ROLE "{role}" LOGIN')
    try:
        sql(dsn, f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        with pytest.raises(CacheError, match="cannot open the PostgreSQL store") as info:
            PostgresStore(as_role)  # the schema is empty and the role may not create in it
        assert "permission denied" in str(info.value)
        migrate(dsn)  # an operator migrates it
        sql(dsn, f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}"'
                 f' TO "{role}"')
        with PostgresStore(as_role) as store:  # up to date: only read, no lock, no DDL
            saved = store.save_attempt(attempt(NTIA, "ok"), text="t", history_entry={"n": 1})
            assert store.get(rid(NTIA)) == saved and store.history(rid(NTIA)) == [{"n": 1}]
    finally:
        sql(dsn, f'DROP OWNED BY "{role}"')
        sql(dsn, f'DROP ROLE IF EXISTS "{role}"')


def test_schema_version_of_an_empty_schema_is_zero(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert schema_version(conn) == 0


# ---------------------------------------------------------------------------------------------
# Two hosts (processes) starting on an empty database at once and racing on one URL

RACE_ROUNDS = 15


def race_on_one_url(dsn: str, worker: int, start: Any) -> list[str]:
    """Open the store (migrating it, if first) as soon as every worker is ready, then bind
    and save the same URL over and over; the stable IDs ensure_identity returned."""
    start.wait(timeout=30)
    seen = []
    with PostgresStore(dsn) as store:
        for n in range(RACE_ROUNDS):
            sid = store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=random_sid)
            seen.append(sid)
            status: Status = "ok" if (n + worker) % 3 == 0 else "error"
            store.save_attempt(
                attempt(EXAMPLE, status, sid=random_sid(),
                        capture_timestamp=f"2026{worker:02d}{n:02d}000000"),
                text=f"text {worker}/{n}" if status == "ok" else None,
                history_entry={"worker": worker, "n": n},
            )
    return seen


def test_two_processes_starting_at_once_lose_no_update_and_mint_one_stable_id(
    dsn: str,
) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(2)
        with context.Pool(2) as pool:
            results = pool.starmap(race_on_one_url, [(dsn, w, start) for w in range(2)])
    assert sql(dsn, "SELECT count(*) FROM snapcache_migrations") == [(latest_version(),)]
    with PostgresStore(dsn) as store:
        record = store.get(rid(EXAMPLE))
        assert record is not None
        assert record.attempts == 2 * RACE_ROUNDS  # no update lost
        assert {sid for seen in results for sid in seen} == {record.stable_id}
        assert record.status == "ok"
        stamp = record.capture_timestamp or ""
        assert store.get_text(rid(EXAMPLE)) == f"text {int(stamp[4:6])}/{int(stamp[6:8])}"
        assert len(store.history(rid(EXAMPLE))) == store.history_limit
    assert sql(dsn, "SELECT count(*) FROM snapcache_resources") == [(1,)]


# ---------------------------------------------------------------------------------------------
# Constraints and bounds held by the database itself


def test_stable_ids_are_unique_by_constraint(store: PostgresStore, dsn: str) -> None:
    store.save_attempt(attempt(NTIA, "ok", sid="sid_AAAAAAAAAA"), text=None, history_entry={})
    with pytest.raises(psycopg.errors.UniqueViolation):
        sql(dsn, "INSERT INTO snapcache_resources (resource_id, stable_id, url)"
                 " VALUES (%s, 'sid_AAAAAAAAAA', 'https://other.example')", rid(EXAMPLE))


def test_history_rows_are_bounded_in_the_table(dsn: str) -> None:
    with PostgresStore(dsn, history_limit=3) as store:
        for n in range(10):
            store.save_attempt(attempt(NTIA, "error"), text=None, history_entry={"n": n})
        store.update_save(rid(NTIA), job_id="j", requested_at=None, status="pending",
                          history_entry={"n": 10})
    assert sql(dsn, "SELECT count(*) FROM snapcache_history") == [(3,)]
    with PostgresStore(dsn) as store:
        assert store.history(rid(NTIA)) == [{"n": 8}, {"n": 9}, {"n": 10}]


def test_an_attempt_for_a_url_moved_away_changes_nothing(store: PostgresStore) -> None:
    # The rule the diskcache store keeps too (main's contract suite checks both): an attempt
    # made for the old URL holds that URL's content, and merged in it would undo the move.
    store.save_attempt(attempt(EXAMPLE, "ok"), text="the good text", history_entry={"n": 1})
    moved = store.move(EXAMPLE, "https://example.org")
    statuses: tuple[Status, ...] = ("ok", "error")
    for status in statuses:
        late = attempt(EXAMPLE, status, title="The old URL's page",
                       capture_timestamp="20270101000000", original_url=EXAMPLE)
        assert store.save_attempt(late, text="the old URL's text",
                                  history_entry={"n": 2}) == moved
    assert store.get(rid(EXAMPLE)) == moved
    assert store.get_text(rid(EXAMPLE)) == "the good text"
    assert store.history(rid(EXAMPLE)) == [{"n": 1}]


def test_a_url_longer_than_a_btree_entry_round_trips(store: PostgresStore) -> None:
    # A btree index entry holds about 2.7 kB: URLs are keyed by their hash, not themselves.
    url = f"{EXAMPLE}/?q=" + "x" * 10_000
    saved = store.save_attempt(attempt(url, "ok"), text=None, history_entry={})
    moved = store.move(url, url + "&y")
    assert store.by_url(url) == moved == store.by_url(url + "&y") != saved
    assert store.aliases(rid(url)) == [url]


def test_a_row_locked_too_long_fails_the_write_instead_of_hanging(dsn: str) -> None:
    with PostgresStore(dsn, timeout=0.5) as store:
        store.save_attempt(attempt(NTIA, "ok"), text="t", history_entry={})
        with psycopg.connect(dsn) as other:  # a transaction holding the row
            other.execute("SELECT 1 FROM snapcache_resources WHERE resource_id = %s FOR UPDATE",
                          (rid(NTIA),))
            with pytest.raises(CacheError, match="stayed locked"):
                store.save_attempt(attempt(NTIA, "error"), text=None, history_entry={})
        record = store.get(rid(NTIA))
        assert record is not None and record.attempts == 1


def test_connections_cut_by_the_server_are_replaced(dsn: str) -> None:
    name = "sc_" + rid(dsn)  # marks this store's connections, and no one else's
    with PostgresStore(f"{dsn}&application_name={name}") as store:
        store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
        cut = sql(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE application_name = %s", name)
        assert cut and all(ok for (ok,) in cut)  # a server restart, as the pool sees it
        saved = store.save_attempt(attempt(NTIA, "error"), text=None, history_entry={})
        assert saved.attempts == 2


# ---------------------------------------------------------------------------------------------
# Secrets and planted rows


def test_location_repr_and_errors_never_show_the_password() -> None:
    pgkit.require_postgres()
    secret = "s3cr3t-Pa55"
    schema_dsn = pgkit.new_schema()
    with_secret = schema_dsn.replace("//postgres@", f"//postgres:{secret}@", 1)
    assert secret in with_secret, "the test DSN must be postgresql://postgres@host/..."
    with PostgresStore(with_secret) as store:  # trust authentication ignores the password
        assert secret not in store.location and secret not in repr(store)
        assert store.location.startswith("postgresql://postgres@")
        store.close()
        with pytest.raises(CacheError) as closed:
            store.get(rid(NTIA))
        assert secret not in str(closed.value)
    with pytest.raises(CacheError) as info:
        PostgresStore(f"postgresql://postgres:{secret}@127.0.0.1:1/test?connect_timeout=2")
    assert secret not in str(info.value) and "127.0.0.1:1" in str(info.value)
    with pytest.raises(CacheError) as bad:
        PostgresStore(f"postgresql://postgres:{secret}@127.0.0.1:5432/test x=")
    assert secret not in str(bad.value)
    assert scrub_dsn(f"host=/run/pg password={secret} dbname=snap user=me") == (
        "postgresql://me@/snap?host=%2Frun%2Fpg"
    )
    assert scrub_dsn(f"postgresql://me:{secret}@[::1]:6543/snap?sslpassword=x&sslmode=require") \
        == "postgresql://me@[::1]:6543/snap?sslmode=require"


def test_a_planted_or_corrupt_record_row_is_refused_naming_it(
    store: PostgresStore, dsn: str
) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
    store.save_attempt(attempt(EXAMPLE, "ok", sid="sid_BBBBBBBBBB"), text=None, history_entry={})
    sql(dsn, "UPDATE snapcache_records SET record = record || '{\"attempts\": \"many\"}'"
             " WHERE resource_id = %s", rid(NTIA))
    for read in (lambda: store.get(rid(NTIA)), lambda: list(store.records()),
                 lambda: store.stats(), lambda: store.lookup(NTIA)):
        with pytest.raises(RecordFormatError, match=rid(NTIA)):
            read()
    sql(dsn, "UPDATE snapcache_records SET record = jsonb_set(record, '{resource_id}',"
             " to_jsonb(%s::text)) WHERE resource_id = %s", rid(NTIA), rid(EXAMPLE))
    with pytest.raises(RecordFormatError, match="wrong key"):
        store.get(rid(EXAMPLE))


def test_nul_characters_are_unknown_to_lookups_and_refused_by_writes(
    store: PostgresStore,
) -> None:
    # PostgreSQL text cannot hold U+0000: such a key can never have been stored.
    for ident in (f"{EXAMPLE}\x00", "sid_AAAAA\x00AAAA", "a6ec2c2fe408fea\x00"):
        assert store.lookup(ident) is None and store.by_url(ident) is None
        assert store.resource_id_for_url(ident) is None and store.get(ident) is None
        assert store.get_text(ident) is None and store.history(ident) == []
        assert store.aliases(ident) == [] and store.stable_id(ident) is None
        assert ident not in store and store.by_stable_id(ident) is None
    with pytest.raises(CacheError):
        store.save_attempt(attempt(NTIA, "ok"), text="a\x00b", history_entry={})
    with pytest.raises(CacheError):
        store.save_attempt(attempt(NTIA, "ok", title="a\x00b"), text=None, history_entry={})
    assert store.get(rid(NTIA)) is None and store.stable_id(rid(NTIA)) is None


def test_no_pickle_anywhere_in_the_postgres_store() -> None:
    import snapcache.cache.postgres as package

    folder = Path(package.__file__).parent
    sources = [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.py"))]
    assert sources and not any(re.search(r"\bpickle\b|\bmarshal\b|\bshelve\b", s)
                               for s in sources)


# ---------------------------------------------------------------------------------------------
# Without a server: skipped with the reason, except under CI


@pytest.mark.parametrize("ci", [False, True])
def test_without_a_server_the_tests_skip_with_the_reason_but_fail_under_ci(ci: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["SNAPCACHE_TEST_DSN"] = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"
    if ci:
        env["CI"] = "true"
    test = "tests/test_pg_store.py::test_schema_version_of_an_empty_schema_is_zero"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test],
        capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parent.parent,
    )
    assert "PostgreSQL is not reachable" in out.stdout, out.stdout + out.stderr
    if ci:
        assert out.returncode == 1 and "1 failed" in out.stdout
        assert "CI is set, so the PostgreSQL tests must run" in out.stdout
    else:
        assert out.returncode == 0 and "1 skipped" in out.stdout
