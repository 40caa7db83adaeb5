"""The diskcache store at scale: record passes are range scans (a query per batch, not per
key), ``stats`` counts from the record summary without parsing records, and the summary
stays right through many writes, rollbacks, killed writers, writes by other releases and
hand edits of the file.

The summary itself (``snapcache_summary``, kept by triggers) is described in
:mod:`snapcache.cache.summary`; ``tests/test_store_compat.py`` checks a 0.1.0 store gets one.
"""

from __future__ import annotations

import functools
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import diskcache
import pytest
from snapcache.cache import (
    CacheError,
    DamagedRecordError,
    Record,
    SafeDisk,
    SnapshotCache,
    StoreStats,
)
from snapcache.cache.records import STATUSES
from snapcache.cache.rows import Rows

from tests.storekit import EXAMPLE, attempt, rid

#: More records than one batch of a record pass (500), so passes cross batch boundaries.
MANY = 1100


def url(i: int) -> str:
    """The URL of test resource ``i``."""
    return f"{EXAMPLE}/scale/{i}"


def fill(store: SnapshotCache, n: int = MANY) -> None:
    """``n`` resources written the way a run writes them, every status among them, some
    with a later failed attempt, a pending save or a move."""
    for i in range(n):
        u = url(i)
        sid = store.ensure_identity(rid(u), u, mint=lambda i=i: f"sid_{i:010d}")
        status = STATUSES[i % len(STATUSES)]
        fetched = {"fetched_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z"} \
            if status == "ok" else {}
        store.save_attempt(attempt(u, status, sid=sid, **fetched), text=f"text {i}",
                           history_entry={"i": i})
        if i % 7 == 0:
            store.save_attempt(attempt(u, "error", sid=sid, error="timeout"), text=None,
                               history_entry={"i": i, "again": True})
        if i % 11 == 0:
            store.update_save(rid(u), job_id=f"job{i}", requested_at="2026-12-01T00:00:00Z",
                              status="pending")
        if i % 13 == 0:
            store.move(u, u + "/moved")
    # Identities without a record are not records, but they are rows the pass must skip.
    for i in range(n, n + 300):
        store.ensure_identity(rid(url(i)), url(i), mint=lambda i=i: f"sid_{i:010d}")


def expected_stats(records: list[Record]) -> StoreStats:
    """What stats must say about ``records``, worked out the plain way."""
    fetched = [r.fetched_at for r in records if r.fetched_at]
    return StoreStats(
        records=len(records),
        outcomes=dict(sorted(Counter(r.status for r in records).items())),
        oldest_fetch=min(fetched) if fetched else None,
        newest_fetch=max(fetched) if fetched else None,
    )


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts records parsed from their JSON (every read of a record goes through it)."""
    calls = [0]
    original = Record.from_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Record], text: str | bytes) -> Record:
        calls[0] += 1
        result: Record = original(cls, text)
        return result

    monkeypatch.setattr(Record, "from_json", classmethod(counting))
    return calls


class CountingConnection(sqlite3.Connection):
    """An SQLite connection that counts the statements run through it."""

    statements: ClassVar[list[str]] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        CountingConnection.statements.append(sql)
        return super().execute(sql, *args)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements of every SQLite connection opened from now on (diskcache's included)."""
    CountingConnection.statements = []
    monkeypatch.setattr(sqlite3, "connect",
                        functools.partial(sqlite3.connect, factory=CountingConnection))
    yield CountingConnection.statements


def test_passes_and_stats_stay_right_after_many_writes(tmp_path: Path) -> None:
    with SnapshotCache(tmp_path / "store") as store:
        fill(store)
        every = [store.get(rid(url(i))) for i in range(MANY)]
        assert all(r is not None for r in every)
        by_id = sorted((r for r in every if r is not None), key=lambda r: r.resource_id)
        for reader in (store, SnapshotCache(tmp_path / "store")):  # this handle, and reopened
            assert list(reader.records()) == by_id
            assert len(reader) == MANY
            assert reader.stats() == expected_stats(by_id)
            for status in STATUSES:
                assert list(reader.records(statuses={status})) == [
                    r for r in by_id if status in (r.status, r.last_outcome)
                ], status
            assert list(reader.records(statuses={"ok", "blocked"})) == [
                r for r in by_id if {r.status, r.last_outcome} & {"ok", "blocked"}
            ]
            # What export writes: each record's to_json(), filtered alike.
            assert list(reader.record_texts()) == [r.to_json() for r in by_id]
            for status in STATUSES:
                assert list(reader.record_texts(statuses={status})) == [
                    r.to_json() for r in by_id if status in (r.status, r.last_outcome)
                ], status
        assert by_id[0].status == "ok" and by_id[0].last_outcome in STATUSES


def test_a_record_pass_is_a_query_per_batch_and_stats_parses_nothing(
    tmp_path: Path, statements: list[str], parses: list[int]
) -> None:
    with SnapshotCache(tmp_path / "store") as store:
        fill(store)
    with SnapshotCache(tmp_path / "store") as store:
        statements.clear()
        parses[0] = 0
        assert sum(1 for _ in store.records()) == MANY
        # Three batches of up to 500 and one seek for planted pickled keys; diskcache's key
        # iterator made a query per 100 keys of every kind, then one read per record.
        assert len(statements) <= 6, statements
        assert parses[0] == MANY
        statements.clear()
        parses[0] = 0
        assert store.stats().records == MANY
        assert parses[0] == 0
        assert len(statements) <= 8, statements
        statements.clear()
        assert list(store.records(statuses={"no-such-status"})) == []
        assert parses[0] == 0 and len(statements) <= 3, statements
        # Export's texts: the stored text of every record this store wrote, none parsed.
        texts = list(store.record_texts())
        assert len(texts) == MANY and parses[0] == 0
        assert texts == [r.to_json() for r in store.records()]


def write_as_another_release(folder: Path, key: str, value: str) -> None:
    """Write a row the way snapcache 0.1.0 (or diskcache used directly) writes it."""
    with diskcache.Cache(str(folder), disk=SafeDisk) as other:
        other.set(key, value)


def test_a_record_another_release_writes_is_counted_while_open_and_after_reopening(
    tmp_path: Path, parses: list[int]
) -> None:
    folder = tmp_path / "store"
    with SnapshotCache(folder) as store:
        fill(store, 20)
        before = store.get(rid(url(0)))
        assert before is not None and before.status == "ok"
        changed = replace(before, status="blocked", last_outcome="blocked", fetched_at=None,
                          redirects=[])
        write_as_another_release(folder, f"rec:{before.resource_id}", changed.to_json())
        parses[0] = 0
        # Not checked by this store: read (once) by stats, found by a status filter.
        assert store.stats() == expected_stats(list(store.records()))
        assert store.stats().outcomes["blocked"] == 5
        assert store.get(before.resource_id) in store.records(statuses={"blocked"})
        assert before.resource_id not in {r.resource_id for r in store.records(statuses={"ok"})}
        assert list(store.record_texts()) == [r.to_json() for r in store.records()]
        assert changed.to_json() in store.record_texts(statuses={"blocked"})
    with SnapshotCache(folder) as store:  # checked on opening: stats parses nothing
        parses[0] = 0
        assert store.stats().outcomes["blocked"] == 5
        assert parses[0] == 0


def test_a_failed_write_rolls_its_summary_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SnapshotCache(tmp_path / "store") as store:
        fill(store, 20)
        stats = store.stats()
        u = url(1)  # not_archived, so an ok attempt replaces it and writes its text

        def failing(self: Rows, key: str, value: str) -> None:
            if key.startswith("text:"):
                raise OSError(28, "No space left on device")
            original(self, key, value)

        original = Rows.set
        monkeypatch.setattr(Rows, "set", failing)
        with pytest.raises(CacheError):
            store.save_attempt(attempt(u, "ok", sid="sid_0000000001"), text="t",
                               history_entry={})
        monkeypatch.undo()
        assert store.stats() == stats
        kept = store.get(rid(u))
        assert kept is not None and kept.status == "not_archived"
    with SnapshotCache(tmp_path / "store") as store:
        assert store.stats() == stats


WRITER = textwrap.dedent("""
    import sys
    from snapcache.cache import SnapshotCache
    from tests.storekit import attempt, rid
    statuses = ["ok", "error", "blocked", "not_archived", "archived_error"]
    with SnapshotCache(sys.argv[1]) as store:
        for i in range(100000):
            u = f"https://example.com/killed/{i % 40}"
            fields = {"fetched_at": f"2026-01-01T00:00:{i % 60:02d}Z"} if i % 5 == 0 else {}
            store.save_attempt(attempt(u, statuses[i % 5], sid=f"sid_{i % 40:010d}", **fields),
                               text=str(i), history_entry={"i": i})
            print(i, flush=True)
""")


def test_counts_survive_a_writer_killed_mid_write(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    SnapshotCache(folder).close()
    for rounds in (60, 137, 311):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)],
                                  stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
        assert writer.stdout is not None
        for _ in range(rounds):
            writer.stdout.readline()
        writer.send_signal(signal.SIGKILL)  # somewhere inside a transaction, most likely
        writer.wait()
        with SnapshotCache(folder) as store:
            records = [store.get(rid(f"https://example.com/killed/{i}")) for i in range(40)]
            kept = sorted((r for r in records if r is not None), key=lambda r: r.resource_id)
            assert list(store.records()) == kept
            assert store.stats() == expected_stats(kept)
            assert len(store) == len(kept) == 40


def summary_rows(folder: Path) -> dict[str, int]:
    """Each summary row's key and checked flag, read with plain sqlite3."""
    with sqlite3.connect(folder / "cache.db") as con:
        rows = dict(con.execute("SELECT key, checked FROM snapcache_summary").fetchall())
    con.close()
    return rows


def test_a_summary_left_incomplete_by_hand_is_rebuilt_on_opening(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with SnapshotCache(folder) as store:
        fill(store, 20)
        target = store.get(rid(url(0)))
    assert target is not None and target.status == "ok"
    with sqlite3.connect(folder / "cache.db") as con:
        con.execute("DROP TRIGGER snapcache_summary_update")
    con.close()
    # Without the trigger, this change would leave the summary saying "ok", checked.
    write_as_another_release(folder, f"rec:{target.resource_id}",
                             replace(target, status="blocked", last_outcome="blocked",
                                     redirects=[]).to_json())
    with SnapshotCache(folder) as store:
        assert store.stats() == expected_stats(list(store.records()))
        assert store.stats().outcomes["blocked"] == 5
    assert 0 not in summary_rows(folder).values()  # every record checked again


def test_a_damaged_record_stays_unchecked_and_is_reported_by_every_stats(
    tmp_path: Path
) -> None:
    folder = tmp_path / "store"
    with SnapshotCache(folder) as store:
        fill(store, 20)
    write_as_another_release(folder, f"rec:{rid(url(5))}", '{"resource_id": 5}')
    for _ in range(2):  # opening checks it, fails, and leaves it for stats to report
        with SnapshotCache(folder) as store:
            seen: list[Exception] = []
            assert store.stats(on_damaged=seen.append).records == 19
            assert [type(e) for e in seen] == [DamagedRecordError]
            with pytest.raises(DamagedRecordError, match=rid(url(5))):
                store.stats()
            assert len(list(store.record_texts(on_damaged=seen.append))) == 19
            assert len(seen) == 2
            with pytest.raises(DamagedRecordError, match=rid(url(5))):
                list(store.record_texts(statuses={"ok"}))
    assert summary_rows(folder)[f"rec:{rid(url(5))}"] == 0


def test_stats_still_count_every_record_when_summary_rows_were_deleted_by_hand(
    tmp_path: Path
) -> None:
    folder = tmp_path / "store"
    with SnapshotCache(folder) as store:
        fill(store, 20)
        expected = store.stats()
        with sqlite3.connect(folder / "cache.db") as con:
            con.execute("DELETE FROM snapcache_summary WHERE key = ?", (f"rec:{rid(url(0))}",))
        con.close()
        assert store.stats() == expected  # read record by record, since it lacks a row
        assert len(list(store.records(statuses={"ok"}))) == expected.outcomes["ok"]
        assert list(store.record_texts()) == [r.to_json() for r in store.records()]
    with SnapshotCache(folder) as store:
        assert store.stats() == expected
