"""A store written by release 0.1.0 reads back the same with today's SnapshotCache.

``tests/data/store-0.1.0/`` (see its README.md) holds the store and ``expected.json``, what
0.1.0 itself read back. The committed fixture is never opened by snapcache: every test works
on a copy, and the fixture's files are hashed before and after to prove it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache.cache import Record, SnapshotCache, StoreStats

from tests.storekit import attempt

FIXTURE = Path(__file__).parent / "data" / "store-0.1.0"
STORE = FIXTURE / "store"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURE / "expected.json").read_text("utf-8"))


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def rows(folder: Path) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Every Cache row (all columns but the rowid) and the Settings of a closed diskcache."""
    with sqlite3.connect(folder / "cache.db") as con:
        cache = con.execute(
            "SELECT key, raw, store_time, expire_time, access_time, access_count, tag, size,"
            " mode, filename, value FROM Cache ORDER BY key, raw"
        ).fetchall()
        settings = dict(con.execute("SELECT key, value FROM Settings").fetchall())
    con.close()
    return cache, settings


@pytest.fixture(scope="module", autouse=True)
def fixture_is_never_written() -> Iterator[None]:
    """Fail the module if any test wrote to the committed fixture (or left files in it)."""
    before = digests(FIXTURE)
    assert set(before) == {"README.md", "expected.json", "store/cache.db"}
    yield
    assert digests(FIXTURE) == before


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    """A private copy of the 0.1.0 store."""
    copy = tmp_path / "store-0.1.0"
    shutil.copytree(STORE, copy)
    return copy


#: Record fields added after 0.1.0, with the value a 0.1.0 record reads back with.
ADDED_SINCE: dict[str, object] = {"last_confirmed_at": None, "extractor_version": None,
                                  "content_flag": None, "skipped": []}


def test_expected_json_covers_the_cases_the_readme_describes() -> None:
    # Guards the fixture itself: if it lost a case, the tests below would check less.
    statuses = sorted(entry["record"]["status"] for entry in EXPECTED.values())
    assert statuses == ["archived_error", "not_archived", "ok", "ok"]
    assert any(e["record"]["error"] and e["record"]["status"] == "ok" for e in EXPECTED.values())
    assert any(e["record"]["save_status"] == "pending" for e in EXPECTED.values())
    assert any(e["aliases"] for e in EXPECTED.values())
    assert any(e["text"] for e in EXPECTED.values())


def test_every_record_text_history_and_alias_reads_back_as_0_1_0_read_it(old_store: Path) -> None:
    with SnapshotCache(old_store) as store:
        assert len(store) == len(EXPECTED)
        assert [r.resource_id for r in store.records()] == sorted(EXPECTED)
        for rid, expected in EXPECTED.items():
            record = store.get(rid)
            assert record is not None, rid
            # Fields added since 0.1.0 read back as their documented "unknown" values:
            # nothing confirmed, extractor unknown (so fetched in full once), no flag.
            assert {k: v for k, v in record.to_json_dict().items()
                    if k not in ADDED_SINCE} == expected["record"], rid
            assert {k: getattr(record, k) for k in ADDED_SINCE} == ADDED_SINCE, rid
            assert record == Record.from_json_dict(expected["record"])
            assert store.get_text(rid) == expected["text"], rid
            assert store.history(rid) == expected["history"], rid
            assert store.aliases(rid) == expected["aliases"], rid
            assert store.stable_id(rid) == expected["record"]["stable_id"]


def test_every_name_of_every_record_finds_it(old_store: Path) -> None:
    with SnapshotCache(old_store) as store:
        for rid, expected in EXPECTED.items():
            record = store.get(rid)
            sid, url = expected["record"]["stable_id"], expected["record"]["url"]
            assert store.lookup(rid) == record
            assert store.lookup(sid) == record == store.by_stable_id(sid)
            for name in (url, *expected["aliases"]):
                assert store.lookup(name) == record == store.by_url(name)
                assert store.resource_id_for_url(name) == rid


def test_stats_of_the_old_store(old_store: Path) -> None:
    records = [e["record"] for e in EXPECTED.values()]
    fetched = sorted(r["fetched_at"] for r in records if r["fetched_at"])
    with SnapshotCache(old_store) as store:
        assert store.stats() == StoreStats(
            records=4,
            outcomes={"archived_error": 1, "not_archived": 1, "ok": 2},
            oldest_fetch=fetched[0],
            newest_fetch=fetched[-1],
        )


def test_opening_builds_the_record_summary_once_and_stats_then_parses_no_record(
    old_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tables(folder: Path) -> set[str]:
        with sqlite3.connect(folder / "cache.db") as con:
            names = {name for (name,) in con.execute("SELECT name FROM sqlite_master")}
        con.close()
        return names

    assert not any(name.startswith("snapcache_") for name in tables(old_store))  # 0.1.0 has none
    SnapshotCache(old_store).close()
    assert {"snapcache_summary", "snapcache_summary_insert"} <= tables(old_store)
    with sqlite3.connect(old_store / "cache.db") as con:
        summary = con.execute("SELECT key, status, checked > 0 FROM snapcache_summary").fetchall()
    con.close()
    assert sorted(summary) == sorted(
        (f"rec:{rid}", e["record"]["status"], 1) for rid, e in EXPECTED.items()
    )
    parsed: list[object] = []
    original = Record.from_json.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Record, "from_json", classmethod(
        lambda cls, text: parsed.append(text) or original(cls, text)))
    with SnapshotCache(old_store) as store:
        assert store.stats().records == len(EXPECTED)
    assert parsed == []
    with SnapshotCache(old_store) as store:  # what export writes of 0.1.0's records
        assert list(store.record_texts()) == [
            Record.from_json_dict(EXPECTED[rid]["record"]).to_json() for rid in sorted(EXPECTED)
        ]


def test_opening_and_reading_changes_no_stored_row(old_store: Path, tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    shutil.copytree(STORE, pristine)
    with SnapshotCache(old_store) as store:
        for rid in EXPECTED:
            store.lookup(rid)
            store.get_text(rid)
            store.history(rid)
            store.aliases(rid)
            store.stable_id(rid)
        list(store.records())
        store.stats()
    # diskcache rewrites its Settings rows whenever a cache is opened (same values, so the
    # file's bytes change but not its content); every row of ours must be untouched, and no
    # side file may be left behind.
    assert sorted(p.name for p in old_store.iterdir()) == ["cache.db"]
    assert rows(old_store) == rows(pristine)


def test_new_attempts_merge_into_old_records(old_store: Path) -> None:
    ok_rid = next(rid for rid, e in EXPECTED.items() if e["record"]["status"] == "ok"
                  and not e["aliases"])
    old = EXPECTED[ok_rid]
    with SnapshotCache(old_store, history_limit=3) as store:
        stored = store.save_attempt(
            attempt(old["record"]["url"], "error", sid="sid_NewMinted0", error="timeout"),
            text=None,
            history_entry={"at": "2026-12-01T00:00:00Z", "outcome": "error"},
        )
        # The old good capture, identity and text stay; the attempt is counted and kept.
        assert stored.status == "ok" and stored.error == "timeout"
        assert stored.stable_id == old["record"]["stable_id"]
        assert stored.capture_timestamp == old["record"]["capture_timestamp"]
        assert stored.attempts == old["record"]["attempts"] + 1
        assert store.get_text(ok_rid) == old["text"]
        assert store.history(ok_rid) == [*old["history"][1:], {"at": "2026-12-01T00:00:00Z",
                                                               "outcome": "error"}]
    with SnapshotCache(old_store) as reopened:
        assert reopened.get(ok_rid) == stored
