"""Planning from a record's facts: a warm run judges a fresh URL from the small summary row
the diskcache store keeps beside each record (who it is, when it was last attempted, how it
ended), not from the record itself. Those facts must be the record's own whatever wrote the
row, and a run that reads no fresh records must decide exactly as one that does."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher, RunEvent
from snapcache.cache import (
    DamagedRecordError,
    Record,
    RecordFacts,
    SnapshotCache,
    TTLs,
    freshness,
    read_ahead,
    record_facts,
)
from snapcache.cache.summary import FACT_COLUMNS

from tests.docgen import html_page
from tests.store_backends import BACKENDS, Stores
from tests.storekit import EXAMPLE, attempt, rid
from tests.test_store_scale import fill, url, write_as_another_release

# -------------------------------------------------------------------------------------------
# The store's facts


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts records built from their JSON, one by one or read ahead together."""
    calls = [0]
    original = Record.from_json_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Record], data: dict[str, Any]) -> Record:
        calls[0] += 1
        result: Record = original(cls, data)
        return result

    monkeypatch.setattr(Record, "from_json_dict", classmethod(counting))
    return calls


def test_the_summary_columns_are_the_fields_of_record_facts_in_order() -> None:
    assert ("resource_id", *FACT_COLUMNS) == tuple(f.name for f in fields(RecordFacts))


def test_facts_are_those_of_the_stored_record_and_none_for_no_record(
    tmp_path: Path, parsed: list[int]
) -> None:
    with SnapshotCache(tmp_path / "store") as store:
        fill(store, 60)  # every status, failed retries, pending saves, moved URLs
        records = list(store.records())
        ids = [r.resource_id for r in records]
        absent = rid(f"{EXAMPLE}/never-cited")
        identity_only = rid(url(60))  # an identity without a record (fill's extra rows)
        parsed[0] = 0
        for record in records:
            assert store.facts(record.resource_id) == RecordFacts.of(record)
        assert store.facts(absent) is None and store.facts(identity_only) is None
        with store.read_ahead([*ids, absent, identity_only], only_facts=True):
            assert [store.facts(i) for i in ids] == [RecordFacts.of(r) for r in records]
            assert store.facts(absent) is None and store.facts(identity_only) is None
        assert parsed[0] == 0  # every one from the summary, none from its record
        moved = [r for r in records if r.url.endswith("/moved")]
        assert moved and all(store.facts(r.resource_id).url == r.url  # type: ignore[union-attr]
                             for r in moved)


def test_facts_read_ahead_answer_as_of_entry_once_then_from_the_file(tmp_path: Path) -> None:
    u = f"{EXAMPLE}/ahead"
    with SnapshotCache(tmp_path / "store") as store:
        sid = store.ensure_identity(rid(u), u, mint=lambda: "sid_AAAAAAAAAA")
        store.save_attempt(attempt(u, "ok", sid=sid), text="t", history_entry={})
        before = store.facts(rid(u))
        with store.read_ahead([rid(u)], only_facts=True):
            store.save_attempt(attempt(u, "error", sid=sid, error="timeout"), text=None,
                               history_entry={})
            assert store.facts(rid(u)) == before
            after = store.facts(rid(u))
        assert after is not None and after.last_outcome == "error" and after.status == "ok"
        assert after == store.facts(rid(u)) == RecordFacts.of(store.get(rid(u)))  # type: ignore[arg-type]


def test_facts_of_a_record_another_writer_changed_are_read_from_the_record(
    tmp_path: Path, parsed: list[int]
) -> None:
    folder = tmp_path / "store"
    with SnapshotCache(folder) as store:
        fill(store, 20)
        before = store.get(rid(url(0)))
        assert before is not None
        changed = replace(before, url=f"{EXAMPLE}/elsewhere", status="blocked",
                          last_outcome="blocked", last_attempt_at="2020-01-01T00:00:00Z")
        write_as_another_release(folder, f"rec:{before.resource_id}", changed.to_json())
        parsed[0] = 0
        assert store.facts(before.resource_id) == RecordFacts.of(changed)
        with store.read_ahead([before.resource_id], only_facts=True):
            assert store.facts(before.resource_id) == RecordFacts.of(changed)
        assert parsed[0] == 2  # the summary could not vouch for it: the record was read
    with SnapshotCache(folder) as store:  # checked on opening: from the summary again
        parsed[0] = 0
        assert store.facts(before.resource_id) == RecordFacts.of(changed)
        assert parsed[0] == 0


def test_a_damaged_record_raises_from_facts_as_from_get(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with SnapshotCache(folder) as store:
        fill(store, 5)
        victim = rid(url(1))
        damaged = json.dumps({"resource_id": victim, "url": 3})
        write_as_another_release(folder, f"rec:{victim}", damaged)
        with pytest.raises(DamagedRecordError) as from_get:
            store.get(victim)
        with pytest.raises(DamagedRecordError) as from_facts:
            store.facts(victim)
        with store.read_ahead([victim, rid(url(2))], only_facts=True):
            with pytest.raises(DamagedRecordError) as ahead:
                store.facts(victim)
            assert store.facts(rid(url(2))) is not None
    assert str(from_get.value) == str(from_facts.value) == str(ahead.value)
    assert victim in str(from_facts.value)


def test_a_record_row_another_writer_gave_an_expiry_is_never_vouched_for(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "store"
    with SnapshotCache(folder) as store:
        fill(store, 5)
    victim = f"rec:{rid(url(2))}"
    # diskcache's own way to expire a row; once past, every read finds no record.
    with sqlite3.connect(folder / "cache.db") as con:
        con.execute("UPDATE Cache SET expire_time = 1 WHERE key = ?", (victim,))
    with SnapshotCache(folder) as store:  # opening checks the rows others wrote
        assert store.get(rid(url(2))) is None
        assert store.facts(rid(url(2))) is None
        with store.read_ahead([rid(url(2))], only_facts=True):
            assert store.facts(rid(url(2))) is None
        assert store.facts(rid(url(3))) == RecordFacts.of(store.get(rid(url(3))))  # type: ignore[arg-type]


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    """Each backend of the store contract suite."""
    return Stores(BACKENDS[request.param], tmp_path / "stores")


def test_every_backend_gives_the_facts_of_its_records(backend: Stores) -> None:
    store = backend.open()
    try:
        u = f"{EXAMPLE}/contract-facts"
        assert record_facts(store, rid(u)) is None
        sid = store.ensure_identity(rid(u), u, mint=lambda: "sid_BBBBBBBBBB")
        assert record_facts(store, rid(u)) is None  # an identity is not a record
        store.save_attempt(attempt(u, "ok", sid=sid, requested_timestamp="20240101"),
                           text="t", history_entry={})
        store.save_attempt(attempt(u, "error", sid=sid, error="timeout"), text=None,
                           history_entry={})
        record = store.get(rid(u))
        assert record is not None
        with read_ahead(store, [rid(u)], only_facts=True):
            assert record_facts(store, rid(u)) == RecordFacts.of(record)
        assert record_facts(store, rid(u)) == RecordFacts.of(record)
    finally:
        store.close()


@pytest.mark.parametrize("status", ["ok", "not_archived", "archived_error", "blocked",
                                    "error"])
def test_freshness_of_the_facts_is_the_freshness_of_the_record(status: Any) -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    ttls = TTLs()
    for age in (timedelta(0), timedelta(hours=2), timedelta(days=8), timedelta(days=40),
                timedelta(minutes=-10)):
        stamp = (now - age).strftime("%Y-%m-%dT%H:%M:%SZ")
        for record in (attempt(f"{EXAMPLE}/f", status, last_attempt_at=stamp),
                       attempt(f"{EXAMPLE}/f", status, last_attempt_at=None,
                               fetched_at=stamp),
                       attempt(f"{EXAMPLE}/f", status, last_attempt_at="garbage")):
            assert freshness(RecordFacts.of(record), now, ttls) == freshness(record, now, ttls)


# -------------------------------------------------------------------------------------------
# Runs that read no fresh record


def _fill(path: Path, urls: list[str], **fields: Any) -> None:
    with SnapshotCache(path) as store:
        for i, u in enumerate(urls):
            sid = store.ensure_identity(rid(u), u, mint=lambda i=i: f"sid_{i:010d}")
            store.save_attempt(attempt(u, "ok", sid=sid, **fields), text="text",
                               history_entry={})


def test_a_run_without_fresh_records_decides_as_one_with_them_and_parses_none(
    config: Any, emulator: Any, parsed: list[int]
) -> None:
    fresh = [f"{EXAMPLE}/fresh/{i}" for i in range(40)]
    _fill(config.cache_path, fresh)
    entries: list[dict[str, str]] = [
        *({"url": u} for u in fresh[:25]),
        {"url": "not a url"},
        {"url": fresh[3]},  # listed twice
        {"url": fresh[25], "stable_id": "sid_0000000099"},  # not the stored stable ID
        *({"url": u} for u in fresh[26:]),
        {"url": fresh[26], "stable_id": "sid_0000000026"},  # the stored one: a duplicate
    ]
    lines = [json.dumps(e) for e in entries]
    runs: dict[str, tuple[Any, list[tuple[str, int, str]]]] = {}
    for name, options in (("with", {}), ("without", {"fresh_records": False})):
        events: list[RunEvent] = []
        with Fetcher(config) as f:
            parsed[0] = 0
            summary = f.run(lines, on_result=events.append, **options)
        runs[name] = (summary, sorted((e.kind, e.line, e.reason) for e in events))
        fresh_events = [e for e in events if e.kind == "fresh"]
        assert len(fresh_events) == len(fresh) - 1
        if name == "with":
            assert all(e.record is not None and e.record.url == e.url for e in fresh_events)
        else:
            assert all(e.record is None for e in fresh_events)
            assert parsed[0] == 0  # not one record read: every line judged from its facts
    (with_, kinds_with), (without, kinds_without) = runs["with"], runs["without"]
    assert kinds_with == kinds_without
    assert ("invalid", 28, "stable_id sid_0000000099 conflicts with stored sid_0000000025"
            ) in kinds_without
    for summary in (with_, without):
        assert (summary.skipped_fresh, summary.duplicates, summary.invalid, summary.new) == (
            len(fresh) - 1, 2, 2, 0)
    assert sum(emulator.counts.values()) == 0


def test_a_run_without_on_result_reads_no_fresh_record(
    config: Any, emulator: Any, parsed: list[int]
) -> None:
    fresh = [f"{EXAMPLE}/quiet/{i}" for i in range(30)]
    _fill(config.cache_path, fresh)
    with Fetcher(config) as f:
        parsed[0] = 0
        summary = f.run(fresh)
    assert summary.skipped_fresh == 30 and parsed[0] == 0
    assert sum(emulator.counts.values()) == 0


def test_a_stale_record_planned_from_its_facts_is_refreshed_with_its_record(
    config: Any, emulator: Any
) -> None:
    u = "https://stale.example/page"
    emulator.add_capture(u, "20240101000000", body=html_page("Stale", "stale text"))
    _fill(config.cache_path, [u], last_attempt_at="2020-01-01T00:00:00Z",
          capture_timestamp="20190101000000", title="Old")
    with Fetcher(config) as f:
        summary = f.run([u], fresh_records=False)
        record = f.cache.get(rid(u))
    # An existing record refreshed (not counted new): the plan held the stored record.
    assert (summary.refreshed, summary.new, summary.skipped_fresh) == (1, 0, 0)
    assert record is not None and record.title == "Stale"
    assert record.capture_timestamp == "20240101000000" and record.stable_id == "sid_0000000000"


def test_a_run_without_records_fetches_the_old_url_of_a_moved_record_by_its_new_one(
    config: Any, emulator: Any
) -> None:
    old, new = "https://example.org/typo", "https://example.org/fixed"
    emulator.add_capture(old, "20220101000000", body=html_page("Typo page", "typo"))
    emulator.add_capture(new, "20230101000000", body=html_page("Fixed page", "fixed"))
    events: list[RunEvent] = []
    with Fetcher(config) as f:
        f.fetch(old)
        f.move(old, new)
        fresh = f.run([old, new], on_result=events.append, fresh_records=False)
        forced = f.run([old], force=True, fresh_records=False)
        record = f.cache.get(rid(old))
    assert (fresh.skipped_fresh, fresh.duplicates) == (1, 1)
    assert events[0].kind == "fresh" and events[0].moved_to == new
    assert forced.refreshed == 1
    assert record is not None and record.url == new and record.title == "Fixed page"
