"""The warm path: planning many URLs whose records are fresh (no request), with the store's
records read ahead a batch at a time, and fetch_many answering fresh records without a task
each. Timings live in bench/; these are the behaviours the short cuts must keep."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from diskcache.core import MODE_PICKLE, MODE_RAW
from snapcache import Fetcher, RunEvent
from snapcache.cache import (
    DamagedRecordError,
    Record,
    SnapshotCache,
    UnsafeCacheEntryError,
    read_ahead,
)
from snapcache.errors import InputError
from snapcache.runner import PLAN_BATCH

from tests.docgen import html_page
from tests.storekit import EXAMPLE, Touch, attempt, fill_six_records, plant, rid

# -------------------------------------------------------------------------------------------
# The store's read-ahead


def test_records_read_ahead_are_those_get_reads_and_absent_ones_are_none(
    tmp_path: Path,
) -> None:
    with SnapshotCache(tmp_path / "store") as store:
        stored = fill_six_records(store)
        ids = [rid(url) for url in stored] + [rid(f"{EXAMPLE}/never-stored")]
        expected = [store.get(i) for i in ids]
        assert expected[-1] is None and all(expected[:-1])
        with store.read_ahead(ids):
            assert [store.get(i) for i in ids] == expected
        with read_ahead(store, reversed(ids)):  # the store-agnostic form, any order
            assert [store.get(i) for i in ids] == expected


def test_a_record_read_ahead_answers_once_as_of_entry_then_from_the_file(
    tmp_path: Path,
) -> None:
    url = f"{EXAMPLE}/ok"
    with SnapshotCache(tmp_path / "store") as store, \
            SnapshotCache(tmp_path / "store") as other:
        fill_six_records(store)
        before = store.get(rid(url))
        assert before is not None
        seen_by_thread: list[Record | None] = []
        with store.read_ahead([rid(url)]):
            # Another writer (a second handle: another connection, as another process has)
            # records an attempt after the block began.
            other.save_attempt(attempt(url, "error", sid=before.stable_id, error="x"),
                               text=None, history_entry={})
            reader = threading.Thread(target=lambda: seen_by_thread.append(store.get(rid(url))))
            reader.start()
            reader.join()
            first, second = store.get(rid(url)), store.get(rid(url))
        after = store.get(rid(url))
    assert first == before  # the row as it was on entry ...
    assert second is not None and second.last_outcome == "error"  # ... once only
    assert after == second
    assert seen_by_thread == [second]  # other threads never see this thread's rows


def test_rows_read_ahead_are_checked_and_refused_as_get_checks_them(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    planted, damaged = rid(f"{EXAMPLE}/planted"), rid(f"{EXAMPLE}/damaged")
    with SnapshotCache(tmp_path / "store") as store:
        fill_six_records(store)
    plant(str(tmp_path / "store"), f"rec:{planted}", mode=MODE_PICKLE,
          value=pickle.dumps(Touch(marker)))
    plant(str(tmp_path / "store"), f"rec:{damaged}", mode=MODE_RAW,  # text, as records are
          value='{"resource_id": "cut in the mid')  # type: ignore[arg-type]
    with SnapshotCache(tmp_path / "store") as store:
        good = store.get(rid(f"{EXAMPLE}/ok"))
        with store.read_ahead([planted, damaged, rid(f"{EXAMPLE}/ok")]):
            with pytest.raises(UnsafeCacheEntryError):
                store.get(planted)
            with pytest.raises(DamagedRecordError, match=damaged):
                store.get(damaged)
            assert store.get(rid(f"{EXAMPLE}/ok")) == good
    assert not marker.exists()


def test_records_parsed_together_are_checked_one_by_one_as_get_checks_them(
    tmp_path: Path,
) -> None:
    # Every text is JSON, so the batch parses together; two are no record of their key.
    wrong_key, odd_field = rid(f"{EXAMPLE}/wrong-key"), rid(f"{EXAMPLE}/odd-field")
    with SnapshotCache(tmp_path / "store") as store:
        stored = fill_six_records(store)
    ok = stored[f"{EXAMPLE}/ok"]
    data = ok.to_json_dict()
    plant(str(tmp_path / "store"), f"rec:{wrong_key}", mode=MODE_RAW,
          value=ok.to_json())  # type: ignore[arg-type]
    plant(str(tmp_path / "store"), f"rec:{odd_field}", mode=MODE_RAW,  # type: ignore[arg-type]
          value=json.dumps({**data, "resource_id": odd_field, "bogus": 1}))
    ids = [rid(url) for url in stored] + [wrong_key, odd_field]
    with SnapshotCache(tmp_path / "store") as store:
        alone: list[Record | str] = []
        for i in ids:
            try:
                alone.append(store.get(i))  # type: ignore[arg-type]
            except DamagedRecordError as exc:
                alone.append(str(exc))
        together: list[Record | str] = []
        with store.read_ahead(ids):
            for i in ids:
                try:
                    together.append(store.get(i))  # type: ignore[arg-type]
                except DamagedRecordError as exc:
                    together.append(str(exc))
    assert together == alone
    assert "stored under the wrong key" in str(alone[-2])
    assert "unknown field 'bogus'" in str(alone[-1])


# -------------------------------------------------------------------------------------------
# fetch_many and run over fresh records


def _fill_fresh(path: Path, urls: list[str]) -> None:
    """Fresh ok records for ``urls``, written as the engine writes them (no request)."""
    with SnapshotCache(path) as store:
        for i, url in enumerate(urls):
            sid = store.ensure_identity(rid(url), url, mint=lambda i=i: f"sid_{i:010d}")
            store.save_attempt(attempt(url, "ok", sid=sid), text="text", history_entry={})


def test_fetch_many_answers_fresh_records_in_order_with_bad_urls_in_place(
    config: Any, emulator: Any
) -> None:
    fresh = [f"{EXAMPLE}/fresh/{i}" for i in range(PLAN_BATCH + 30)]
    _fill_fresh(config.cache_path, fresh)
    listed: list[str] = [*fresh[:5], "not a url", fresh[3], " \t", *fresh[5:]]
    with Fetcher(config) as f:
        results = f.fetch_many(listed)
    assert sum(emulator.counts.values()) == 0
    assert len(results) == len(listed)
    for url, result in zip(listed, results, strict=True):
        if url.strip().startswith("https://"):
            assert isinstance(result, Record) and result.url == url
        else:
            assert isinstance(result, InputError)


def test_a_url_listed_twice_is_fetched_once_when_fetched_one_at_a_time(
    config: Any, emulator: Any
) -> None:
    # Planned again when its turn comes: the first fetch has left it fresh.
    for path in ("twice", "once"):
        emulator.add_capture(f"https://{path}.example/", "20240101000000",
                             body=html_page(path, path))
    with Fetcher(config) as f:
        f.fetch("https://once.example/")
        once = dict(emulator.counts)
        emulator.reset_counters()
        first, second = f.fetch_many(["https://twice.example/"] * 2, concurrency=1)
    assert emulator.counts == once
    assert isinstance(first, Record) and first.status == "ok"
    assert second == first


def test_a_run_across_batches_sees_fresh_records_duplicates_and_new_urls(
    config: Any, emulator: Any
) -> None:
    fresh = [f"{EXAMPLE}/fresh/{i}" for i in range(2 * PLAN_BATCH + 20)]
    _fill_fresh(config.cache_path, fresh)
    new = "https://new.example/page"
    emulator.add_capture(new, "20240101000000", body=html_page("New", "new"))
    lines = [*fresh[: PLAN_BATCH + 10], new, "ftp://not.example/", fresh[2],
             *fresh[PLAN_BATCH + 10 :], new]
    events: list[RunEvent] = []
    with Fetcher(config) as f:
        summary = f.run(lines, on_result=events.append)
    assert (summary.skipped_fresh, summary.new, summary.duplicates, summary.invalid) == (
        len(fresh), 1, 2, 1)
    assert sorted(e.line for e in events) == list(range(1, len(lines) + 1))
    kinds = {e.line: e.kind for e in events}
    assert kinds[lines.index(new) + 1] == "fetched" and kinds[len(lines)] == "duplicate"
    assert kinds[lines.index(fresh[2], 10) + 1] == "duplicate"
    assert all(e.record is not None and e.record.url == e.url
               for e in events if e.kind == "fresh")
