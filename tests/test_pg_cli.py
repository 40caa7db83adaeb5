"""Choosing the store (``[cache] backend``), the facade and the CLI on PostgreSQL:
``snapcache db upgrade``, ``snapcache copy-store`` both ways, and a fetch end to end.

The CLI runs as a real subprocess; the archive is the loopback emulator; PostgreSQL is the
real server (tests/pgkit.py), one schema per test.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.cache import SnapshotCache, Store
from snapcache.config import Config, config_from_mapping
from snapcache.errors import ConfigError
from snapcache.stores import ENV_DSN, StoreAddress, open_store, parse_address

from tests import pgkit
from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.storekit import EXAMPLE, NTIA, attempt, constant_mint, fill_six_records, rid
from tests.test_cli import snapcache_exe

SECRET = "pw-Never-Shown-42"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in (ENV_DSN, "SNAPCACHE_CONFIG")}
    full.update(env or {})
    return subprocess.run([snapcache_exe(), *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=full)


def write_config(path: Path, cache: dict[str, str]) -> Path:
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in cache.items())
    path.write_text(f"[cache]\n{lines}", encoding="utf-8")
    return path


def with_password(dsn: str) -> str:
    """The same DSN with a password (ignored by the test server's trust authentication)."""
    assert "//postgres@" in dsn, "the test DSN must be postgresql://postgres@host/..."
    return dsn.replace("//postgres@", f"//postgres:{SECRET}@", 1)


# ---------------------------------------------------------------------------------------------
# [cache] backend and dsn


@pytest.mark.parametrize(
    ("cache", "named"),
    [
        ({"backend": "sqlite"}, "cache.backend"),
        ({"backend": 3}, "cache.backend"),
        ({"dsn": f"mysql://root:{SECRET}@db/x"}, "cache.dsn"),
        ({"dsn": ["postgresql://x"]}, "cache.dsn"),
    ],
)
def test_bad_cache_backend_or_dsn_names_the_key_and_never_the_password(
    cache: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"cache": cache}, source="t.toml")
    assert named in str(info.value) and SECRET not in str(info.value)


def test_the_default_backend_is_diskcache_and_the_dsn_is_kept_out_of_repr() -> None:
    assert Config().cache.backend == "diskcache" and Config().cache.dsn == ""
    config = config_from_mapping(
        {"cache": {"backend": "postgres", "dsn": f"postgresql://u:{SECRET}@db/snap"}}
    )
    assert config.cache.backend == "postgres" and SECRET in config.cache.dsn
    assert SECRET not in repr(config)


def test_open_store_opens_the_diskcache_folder_by_default(tmp_path: Path) -> None:
    config = config_from_mapping({"cache": {"path": str(tmp_path / "s"), "history_limit": 3}})
    with open_store(config) as store:
        assert isinstance(store, SnapshotCache) and store.history_limit == 3
        assert store.location == str(tmp_path / "s")


def test_postgres_without_a_dsn_is_a_config_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_DSN, raising=False)
    with pytest.raises(ConfigError, match=r"cache\.dsn.*SNAPCACHE_DSN"):
        open_store(config_from_mapping({"cache": {"backend": "postgres"}}))
    out = run("--config", str(write_config(tmp_path / "c.toml", {"backend": "postgres"})),
              "stats")
    assert out.returncode == 2 and "cache.dsn" in out.stderr


def test_the_dsn_comes_from_the_config_else_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = pgkit.new_schema()
    monkeypatch.setenv(ENV_DSN, dsn)
    from snapcache.cache.postgres import PostgresStore

    with open_store(config_from_mapping({"cache": {"backend": "postgres",
                                                    "history_limit": 4}})) as store:
        assert isinstance(store, PostgresStore) and store.history_limit == 4
        store.ensure_identity(rid(NTIA), NTIA, mint=constant_mint("sid_AAAAAAAAAA"))
    monkeypatch.setenv(ENV_DSN, "postgresql://postgres@127.0.0.1:1/unused")
    config = config_from_mapping({"cache": {"backend": "postgres", "dsn": dsn}})
    with open_store(config) as store:  # the config's DSN wins
        assert store.stable_id(rid(NTIA)) == "sid_AAAAAAAAAA"


def test_store_addresses_and_refusals_that_never_echo_a_dsn() -> None:
    assert parse_address("diskcache:/tmp/x") == StoreAddress("diskcache", "/tmp/x")
    assert parse_address(" postgresql://h/db ") == StoreAddress("postgres", "postgresql://h/db")
    for bad in ("diskcache:", "/tmp/x", f"host=h password={SECRET}", f"mysql://u:{SECRET}@h"):
        with pytest.raises(ConfigError) as info:
            parse_address(bad)
        assert SECRET not in str(info.value)


def test_the_facade_uses_the_store_it_is_given_even_an_empty_one(
    tmp_path: Path, config: Config
) -> None:
    # An empty store has length 0, so it is falsy: `cache or open_store(...)` replaced it.
    given = SnapshotCache(tmp_path / "given")
    with Fetcher(config, cache=given) as fetcher:
        assert fetcher.cache is given


# ---------------------------------------------------------------------------------------------
# The facade end to end on PostgreSQL


def test_fetcher_with_the_postgres_backend_fetches_stores_and_answers_from_the_store(
    tmp_path: Path, emulator: Any
) -> None:
    dsn = pgkit.new_schema()
    url = "https://pg.example/page"
    emulator.add_capture(url, "20250102030405", body=html_page("Shared", "kept in PostgreSQL"))
    config = emulator_config(tmp_path, emulator.base_url,
                             cache={"backend": "postgres", "dsn": with_password(dsn)})
    with Fetcher(config) as fetcher:
        record = fetcher.fetch(url)
        assert record.status == "ok" and record.title == "Shared"
        assert SECRET not in fetcher.cache.location
        assert "kept in PostgreSQL" in (fetcher.cache.get_text(record.resource_id) or "")
    requests = dict(emulator.counts)
    with Fetcher(config) as again:  # another process or host would see the same
        assert again.fetch(url) == record
        assert again.lookup(record.stable_id) == record
    assert dict(emulator.counts) == requests  # fresh: answered from PostgreSQL
    assert not (tmp_path / "store" / "cache.db").exists()  # nothing went to the folder


# ---------------------------------------------------------------------------------------------
# snapcache db upgrade


def test_db_upgrade_applies_the_migrations_once_and_prints_the_version(tmp_path: Path) -> None:
    dsn = pgkit.new_schema()
    config = write_config(tmp_path / "c.toml", {"backend": "postgres"})
    first = run("--config", str(config), "db", "upgrade", env={ENV_DSN: with_password(dsn)})
    assert first.returncode == 0, first.stderr
    assert first.stdout == ("applied migration 0001_initial\napplied migration 0002_workers\n"
                            "schema version 2\n")
    again = run("db", "upgrade", "--dsn", with_password(dsn))
    assert (again.returncode, again.stdout) == (0, "schema version 2\n")
    for out in (first, again):
        assert SECRET not in out.stdout + out.stderr


def test_db_upgrade_without_a_dsn_or_a_server_fails_without_the_password(tmp_path: Path) -> None:
    none = run("--config", str(write_config(tmp_path / "c.toml", {})), "db", "upgrade")
    assert none.returncode == 2 and "no PostgreSQL DSN" in none.stderr
    down = run("db", "upgrade", "--dsn", f"postgresql://postgres:{SECRET}@127.0.0.1:1/test")
    assert down.returncode == 1 and "cannot connect" in down.stderr
    assert SECRET not in down.stdout + down.stderr


# ---------------------------------------------------------------------------------------------
# snapcache copy-store


def fill_store(store: Store) -> None:
    """Records of every outcome, with texts, histories, a moved URL, save fields and a
    legacy stable ID: everything a copy must keep."""
    fill_six_records(store)
    store.save_attempt(attempt(NTIA, "ok", sid="ZTI1Mjg0Zj"), text="Überblick — 概要 \U0001f4c4",
                       history_entry={"at": "2026-11-29T11:27:55Z", "ratio": 0.5, "n": [1, None]})
    store.save_attempt(attempt(NTIA, "error", error="timeout"), text=None,
                       history_entry={"outcome": "error"})
    store.update_save(rid(NTIA), job_id="spn2-0123abcd", requested_at="2026-11-29T11:00:00Z",
                      status="pending", history_entry={"save_status": "pending"})
    store.save_attempt(attempt(EXAMPLE, "ok", sid="sid_CCCCCCCCCC"), text="example text",
                       history_entry={})
    store.move(EXAMPLE, "https://example.org/")
    store.move("https://example.org/", "https://example.net/")


def export(*config_args: str, env: dict[str, str] | None = None) -> str:
    out = run(*config_args, "export", env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def same_contents(a: Store, b: Store) -> None:
    records = list(a.records())
    assert records == list(b.records()) and len(records) == len(b) == 8
    for record in records:
        r = record.resource_id
        assert (a.get_text(r), a.history(r), a.aliases(r), a.stable_id(r)) == (
            b.get_text(r), b.history(r), b.aliases(r), b.stable_id(r))
        for url in (record.url, *a.aliases(r)):
            assert b.resource_id_for_url(url) == r


def test_copy_store_both_ways_gives_the_same_export_and_can_be_run_again(tmp_path: Path) -> None:
    from snapcache.cache.postgres import PostgresStore

    dsn = pgkit.new_schema()
    source, back = tmp_path / "source", tmp_path / "back"
    with SnapshotCache(source) as store:
        fill_store(store)
    original = export("--config", str(write_config(tmp_path / "a.toml", {"path": str(source)})))
    assert len(original.splitlines()) == 8

    to_pg = run("copy-store", f"diskcache:{source}", with_password(dsn))
    assert to_pg.returncode == 0, to_pg.stderr
    assert "copied 8 records" in to_pg.stdout and SECRET not in to_pg.stdout + to_pg.stderr
    pg_config = write_config(tmp_path / "pg.toml", {"backend": "postgres"})
    assert export("--config", str(pg_config), env={ENV_DSN: dsn}) == original

    from_pg = run("copy-store", dsn, f"diskcache:{back}")
    assert from_pg.returncode == 0, from_pg.stderr
    assert export("--config", str(write_config(tmp_path / "b.toml", {"path": str(back)}))) == (
        original
    )
    with SnapshotCache(source) as a, PostgresStore(dsn) as p, SnapshotCache(back) as b:
        same_contents(a, p)
        same_contents(a, b)

    for again in (run("copy-store", f"diskcache:{source}", dsn),
                  run("copy-store", dsn, f"diskcache:{back}")):
        assert again.returncode == 0, again.stderr
        assert "copied 8 records" in again.stdout and "8 records there" in again.stdout
    assert export("--config", str(pg_config), env={ENV_DSN: dsn}) == original
    with SnapshotCache(source) as a, PostgresStore(dsn) as p:
        same_contents(a, p)


def test_copy_store_refuses_a_conflicting_target_and_a_missing_source(tmp_path: Path) -> None:
    dsn = pgkit.new_schema()
    source = tmp_path / "source"
    with SnapshotCache(source) as store:
        store.save_attempt(attempt(NTIA, "ok", sid="sid_AAAAAAAAAA"), text=None,
                           history_entry={})
    from snapcache.cache.postgres import PostgresStore

    with PostgresStore(dsn) as target:  # another resource already holds that stable ID
        target.save_attempt(attempt(EXAMPLE, "ok", sid="sid_AAAAAAAAAA"), text=None,
                            history_entry={})
    out = run("copy-store", f"diskcache:{source}", with_password(dsn))
    assert out.returncode == 1 and "sid_AAAAAAAAAA" in out.stderr
    assert SECRET not in out.stdout + out.stderr
    missing = run("copy-store", f"diskcache:{tmp_path / 'nope'}", dsn)
    assert missing.returncode == 2 and "no diskcache store" in missing.stderr
    same = run("copy-store", f"diskcache:{source}", f"diskcache:{source}")
    assert same.returncode == 2 and "same store" in same.stderr
