"""Tests of cache.store.SnapshotCache and cache.disk.SafeDisk on real folders (tmp_path)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pathlib
import pickle
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from diskcache.core import MODE_PICKLE, MODE_TEXT
from snapcache.cache import (
    SCHEMA_VERSION,
    CacheError,
    NotFoundError,
    Record,
    RecordFormatError,
    SafeDisk,
    SnapcacheError,
    SnapshotCache,
    StableIdConflictError,
    Status,
    UnsafeCacheEntryError,
    utc_now_iso,
)

NTIA = "https://www.ntia.gov/sites/default/files/publications/ntia-ai-open-model-report.pdf"
EXAMPLE = "https://example.com"


def rid(url: str) -> str:
    """The wiki's resource ID: first 16 hex digits of SHA-256 over the URL as given."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def test_resource_id_helper_matches_the_wiki_vectors() -> None:
    assert rid(EXAMPLE) == "100680ad546ce6a5"
    assert rid(NTIA) == "a6ec2c2fe408fea3"


def attempt(
    url: str,
    status: Status,
    *,
    sid: str = "sid_PC79HD2HUf",
    resource_id: str | None = None,
    **fields: Any,
) -> Record:
    """A record describing one attempt, as the fetcher would build it."""
    now = utc_now_iso()
    values: dict[str, Any] = {
        "resource_id": resource_id or rid(url),
        "stable_id": sid,
        "url": url,
        "status": status,
        "last_attempt_at": now,
        "attempts": 1,
    }
    if status == "ok":
        values.update(
            archived_status=200,
            capture_timestamp="20260408194323",
            archive_url=f"https://web.archive.org/web/20260408194323/{url}",
            raw_url=f"https://web.archive.org/web/20260408194323id_/{url}",
            fetched_at=now,
            content_type="application/pdf",
            content_length=1234,
            title="Dual-Use Foundation Models",
            preview="The report finds ...",
            text_length=5000,
        )
    elif status == "archived_error":
        values.update(archived_status=404, capture_timestamp="20260101000000")
    values.update(fields)
    return Record(**values)


def counter_mint(*ids: str) -> Callable[[], str]:
    """A mint that returns ``ids`` in turn and records how often it was called."""
    it: Iterator[str] = iter(ids)

    def mint() -> str:
        mint.calls += 1  # type: ignore[attr-defined]
        return next(it)

    mint.calls = 0  # type: ignore[attr-defined]
    return mint


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SnapshotCache]:
    with SnapshotCache(tmp_path / "cache") as cache:
        yield cache


# ---------------------------------------------------------------------------------------------
# Opening


def test_new_cache_folder_is_private_0700(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cache"
    with SnapshotCache(path) as cache:
        assert cache.path == path and cache.directory == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_existing_folder_of_ours_is_tightened_to_0700(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    SnapshotCache(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_folder_is_0700_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        SnapshotCache(tmp_path / "cache").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700


def test_a_file_in_place_of_the_folder_is_a_cache_error(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("x")
    with pytest.raises(CacheError):
        SnapshotCache(tmp_path / "cache")


def test_cache_written_by_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    SnapshotCache(path).close()
    with diskcache.Cache(str(path), disk=SafeDisk) as raw:
        raw.set("meta:schema", json.dumps(SCHEMA_VERSION + 1))
    with pytest.raises(CacheError) as info:
        SnapshotCache(path)
    message = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"schema version {SCHEMA_VERSION}" in message


def test_folder_holding_another_diskcache_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other"
    with diskcache.Cache(str(path), disk=SafeDisk) as raw:
        raw.set("something", "else")
    with pytest.raises(CacheError, match="not a snapcache cache"):
        SnapshotCache(path)


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    with SnapshotCache(path) as cache:
        saved = cache.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={"n": 1})
    with SnapshotCache(path) as cache:
        assert cache.get(rid(NTIA)) == saved
        assert cache.get_text(rid(NTIA)) == "full text"
        assert cache.history(rid(NTIA)) == [{"n": 1}]
        assert len(cache) == 1


def test_closed_cache_refuses_use(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache")
    cache.close()
    with pytest.raises(CacheError, match="closed"):
        cache.get(rid(EXAMPLE))


def test_history_limit_must_not_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotCache(tmp_path / "cache", history_limit=-1)


def test_errors_share_the_project_root() -> None:
    assert issubclass(CacheError, SnapcacheError)
    for error in (UnsafeCacheEntryError, StableIdConflictError, NotFoundError):
        assert issubclass(error, CacheError)
    assert issubclass(NotFoundError, KeyError)
    assert str(NotFoundError("no resource")) == "no resource"


# ---------------------------------------------------------------------------------------------
# Round trip and lookups


def test_saved_record_round_trips_with_identity_text_and_history(store: SnapshotCache) -> None:
    saved = store.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={"s": "ok"})
    assert saved.attempts == 1 and saved.last_outcome == "ok" and saved.created_at
    assert store.get(rid(NTIA)) == saved
    assert store.get_text(rid(NTIA)) == "full text"
    assert store.history(rid(NTIA)) == [{"s": "ok"}]
    assert store.stable_id(rid(NTIA)) == "sid_PC79HD2HUf"
    assert rid(NTIA) in store and rid(EXAMPLE) not in store


def test_unknown_ids_return_none(store: SnapshotCache) -> None:
    assert store.get(rid(EXAMPLE)) is None
    assert store.by_stable_id("sid_AAAAAAAAAA") is None
    assert store.by_url(EXAMPLE) is None
    assert store.lookup(EXAMPLE) is None
    assert store.lookup("   ") is None
    assert store.get_text(rid(EXAMPLE)) is None
    assert store.history(rid(EXAMPLE)) == []
    assert store.aliases(rid(EXAMPLE)) == []


def test_lookup_finds_a_record_by_resource_id_stable_id_and_url(store: SnapshotCache) -> None:
    saved = store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
    assert store.lookup("a6ec2c2fe408fea3") == saved
    assert store.lookup("sid_PC79HD2HUf") == saved
    assert store.lookup(NTIA) == saved
    assert store.lookup(f"  {NTIA}\n") == saved
    assert store.by_stable_id("sid_PC79HD2HUf") == saved
    assert store.by_url(NTIA) == saved


def test_lookup_accepts_a_bare_stable_id_from_older_data(store: SnapshotCache) -> None:
    bare = attempt(EXAMPLE, "ok", sid="ZTI1Mjg0Zj")
    saved = store.save_attempt(bare, text=None, history_entry={})
    assert store.lookup("ZTI1Mjg0Zj") == saved
    assert store.by_stable_id("ZTI1Mjg0Zj") == saved


def test_lookup_finds_a_record_by_an_alias_after_a_move(store: SnapshotCache) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, "https://example.org/")
    assert store.lookup(EXAMPLE) is not None
    assert store.lookup(EXAMPLE) == store.lookup("https://example.org/")
    assert store.by_url(EXAMPLE) == store.get(rid(EXAMPLE))


def test_lookups_are_exact_no_url_normalisation(store: SnapshotCache) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    assert store.by_url("https://example.com/") is None
    assert store.by_url("https://EXAMPLE.com") is None


def test_records_iterates_every_record_and_len_counts_them(store: SnapshotCache) -> None:
    urls = [f"{EXAMPLE}/{i}" for i in range(5)]
    for i, url in enumerate(urls):
        store.save_attempt(attempt(url, "ok", sid=f"sid_{i:010d}"), text="t", history_entry={})
    store.ensure_identity(rid(NTIA), NTIA, mint=lambda: "sid_NoRecord00")  # identity only
    assert len(store) == 5
    assert sorted(r.url for r in store) == sorted(urls)
    assert sorted(r.url for r in store.records()) == sorted(urls)


# ---------------------------------------------------------------------------------------------
# The core promise: a worse attempt never overwrites a good record


def test_failed_attempt_after_a_good_one_keeps_the_capture_and_sets_error(
    store: SnapshotCache,
) -> None:
    good = store.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={"s": "ok"})
    stored = store.save_attempt(
        attempt(NTIA, "error", error="archive timed out"), text=None, history_entry={"s": "error"}
    )
    assert stored.status == "ok"
    assert stored.preview == good.preview and stored.capture_timestamp == good.capture_timestamp
    assert stored.error == "archive timed out" and stored.last_outcome == "error"
    assert stored.attempts == 2
    assert store.get(rid(NTIA)) == stored
    assert store.get_text(rid(NTIA)) == "full text"


@pytest.mark.parametrize("status", ["not_archived", "archived_error", "blocked"])
def test_final_non_ok_attempt_after_a_good_one_keeps_capture_and_text(
    store: SnapshotCache, status: Status
) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={})
    stored = store.save_attempt(attempt(NTIA, status), text="junk", history_entry={})
    assert stored.status == "ok" and stored.last_outcome == status
    assert stored.error is not None and stored.error.startswith(f"latest attempt: {status}")
    assert store.get_text(rid(NTIA)) == "full text"


def test_ok_attempt_replaces_capture_and_text(store: SnapshotCache) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text="old text", history_entry={})
    stored = store.save_attempt(
        attempt(NTIA, "ok", capture_timestamp="20261101000000", preview="newer"),
        text="new text",
        history_entry={},
    )
    assert stored.capture_timestamp == "20261101000000" and stored.preview == "newer"
    assert store.get_text(rid(NTIA)) == "new text"


def test_replacing_capture_without_text_deletes_the_old_text(store: SnapshotCache) -> None:
    store.save_attempt(attempt(NTIA, "not_archived"), text="stale", history_entry={})
    store.save_attempt(attempt(NTIA, "archived_error"), text=None, history_entry={})
    assert store.get_text(rid(NTIA)) is None


def test_first_attempt_that_failed_is_stored_with_status_error(store: SnapshotCache) -> None:
    stored = store.save_attempt(attempt(NTIA, "error", error="dns"), text=None, history_entry={})
    assert stored.status == "error" and stored.error == "dns" and stored.attempts == 1
    assert store.get(rid(NTIA)) == stored


def test_history_is_bounded_to_the_newest_entries(tmp_path: Path) -> None:
    with SnapshotCache(tmp_path / "cache", history_limit=3) as cache:
        for n in range(7):
            cache.save_attempt(attempt(NTIA, "error"), text=None, history_entry={"n": n})
        assert cache.history(rid(NTIA)) == [{"n": 4}, {"n": 5}, {"n": 6}]
        assert cache.get(rid(NTIA)).attempts == 7  # type: ignore[union-attr]


def test_history_limit_zero_keeps_no_history(tmp_path: Path) -> None:
    with SnapshotCache(tmp_path / "cache", history_limit=0) as cache:
        cache.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={"n": 1})
        assert cache.history(rid(NTIA)) == []


def test_unserialisable_history_entry_writes_nothing(store: SnapshotCache) -> None:
    good = store.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={"n": 1})
    with pytest.raises(TypeError):
        store.save_attempt(attempt(NTIA, "ok"), text="other", history_entry={"bad": object()})
    assert store.get(rid(NTIA)) == good
    assert store.get_text(rid(NTIA)) == "full text"
    assert store.history(rid(NTIA)) == [{"n": 1}]


def test_record_that_would_not_read_back_is_refused_and_nothing_written(
    store: SnapshotCache,
) -> None:
    bad = attempt(NTIA, "ok", archived_status="200")  # wrong type
    with pytest.raises(RecordFormatError, match=rid(NTIA)):
        store.save_attempt(bad, text="t", history_entry={})
    assert store.get(rid(NTIA)) is None and store.get_text(rid(NTIA)) is None
    assert store.stable_id(rid(NTIA)) is None and store.by_url(NTIA) is None


def test_malformed_resource_id_is_refused(store: SnapshotCache) -> None:
    with pytest.raises(ValueError):
        store.save_attempt(attempt(NTIA, "ok", resource_id="XYZ"), text=None, history_entry={})


def test_corrupt_stored_record_raises_naming_its_resource_id(store: SnapshotCache) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
    with diskcache.Cache(store.directory, disk=SafeDisk) as raw:
        raw.set(f"rec:{rid(NTIA)}", '{"resource_id": 5}')
    with pytest.raises(RecordFormatError, match=rid(NTIA)):
        store.get(rid(NTIA))
    with pytest.raises(RecordFormatError, match=rid(NTIA)):
        list(store)


# ---------------------------------------------------------------------------------------------
# Identity


def test_ensure_identity_mints_once_and_returns_the_same_id_again(store: SnapshotCache) -> None:
    mint = counter_mint("sid_AAAAAAAAAA", "sid_BBBBBBBBBB")
    first = store.ensure_identity(rid(NTIA), NTIA, mint=mint)
    second = store.ensure_identity(rid(NTIA), NTIA, mint=mint)
    assert first == second == "sid_AAAAAAAAAA"
    assert mint.calls == 1  # type: ignore[attr-defined]


def test_first_record_takes_the_stable_id_bound_before_it(store: SnapshotCache) -> None:
    sid = store.ensure_identity(rid(NTIA), NTIA, mint=lambda: "sid_AAAAAAAAAA")
    stored = store.save_attempt(
        attempt(NTIA, "ok", sid="sid_ClientSent"), text=None, history_entry={}
    )
    assert stored.stable_id == sid
    assert store.by_stable_id("sid_ClientSent") is None


def test_later_attempts_never_change_the_stable_id(store: SnapshotCache) -> None:
    store.save_attempt(attempt(NTIA, "ok", sid="sid_PC79HD2HUf"), text=None, history_entry={})
    stored = store.save_attempt(
        attempt(NTIA, "ok", sid="sid_Regenerat"), text=None, history_entry={}
    )
    assert stored.stable_id == "sid_PC79HD2HUf"
    assert store.ensure_identity(rid(NTIA), NTIA, mint=lambda: "sid_Regenerat") == (
        "sid_PC79HD2HUf"
    )


def test_ensure_identity_keeps_the_id_after_a_move(store: SnapshotCache) -> None:
    mint = counter_mint("sid_AAAAAAAAAA", "sid_BBBBBBBBBB")
    sid = store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=mint)
    store.save_attempt(attempt(EXAMPLE, "ok", sid=sid), text=None, history_entry={})
    store.move(EXAMPLE, "https://example.org")
    assert store.ensure_identity(rid(EXAMPLE), "https://example.org", mint=mint) == sid
    assert store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=mint) == sid
    assert mint.calls == 1  # type: ignore[attr-defined]


def test_ensure_identity_binds_a_supplied_stable_id(store: SnapshotCache) -> None:
    mint = counter_mint()
    assert store.ensure_identity(rid(NTIA), NTIA, stable_id="ZTI1Mjg0Zj", mint=mint) == (
        "ZTI1Mjg0Zj"
    )
    assert store.ensure_identity(rid(NTIA), NTIA, stable_id="ZTI1Mjg0Zj", mint=mint) == (
        "ZTI1Mjg0Zj"
    )
    assert mint.calls == 0  # type: ignore[attr-defined]


def test_supplying_a_different_stable_id_for_a_known_resource_raises_naming_both(
    store: SnapshotCache,
) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="ZTI1Mjg0Zj", mint=counter_mint())
    with pytest.raises(StableIdConflictError) as info:
        store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_PC79HD2HUf", mint=counter_mint())
    assert "ZTI1Mjg0Zj" in str(info.value) and "sid_PC79HD2HUf" in str(info.value)
    assert (info.value.existing, info.value.requested) == ("ZTI1Mjg0Zj", "sid_PC79HD2HUf")
    assert store.stable_id(rid(NTIA)) == "ZTI1Mjg0Zj"


def test_supplying_a_stable_id_held_by_another_resource_raises(store: SnapshotCache) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_PC79HD2HUf", mint=counter_mint())
    with pytest.raises(StableIdConflictError) as info:
        store.ensure_identity(
            rid(EXAMPLE), EXAMPLE, stable_id="sid_PC79HD2HUf", mint=counter_mint()
        )
    assert info.value.other_resource_id == rid(NTIA)
    assert store.stable_id(rid(EXAMPLE)) is None


def test_save_attempt_refuses_a_stable_id_held_by_another_resource(store: SnapshotCache) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
    with pytest.raises(StableIdConflictError):
        store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    assert store.get(rid(EXAMPLE)) is None


def test_mint_is_called_until_it_returns_an_unused_id(store: SnapshotCache) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_AAAAAAAAAA", mint=counter_mint())
    mint = counter_mint("sid_AAAAAAAAAA", "sid_AAAAAAAAAA", "sid_CCCCCCCCCC")
    assert store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=mint) == "sid_CCCCCCCCCC"
    assert mint.calls == 3  # type: ignore[attr-defined]


def test_mint_that_only_returns_taken_ids_gives_up(store: SnapshotCache) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_AAAAAAAAAA", mint=counter_mint())
    with pytest.raises(CacheError, match="already in use"):
        store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=lambda: "sid_AAAAAAAAAA")


def test_malformed_stable_ids_are_refused(store: SnapshotCache) -> None:
    with pytest.raises(ValueError):
        store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_short", mint=counter_mint())
    with pytest.raises(ValueError):
        store.ensure_identity(rid(NTIA), NTIA, mint=lambda: "not-an-id!")


def test_ensure_identity_refuses_a_url_owned_by_another_resource(store: SnapshotCache) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, NTIA)
    with pytest.raises(CacheError, match="already belongs"):
        store.ensure_identity(rid(NTIA), NTIA, mint=lambda: "sid_AAAAAAAAAA")


# ---------------------------------------------------------------------------------------------
# Moving a resource to a corrected URL


def test_move_keeps_both_ids_and_makes_the_old_url_an_alias(store: SnapshotCache) -> None:
    before = store.save_attempt(attempt(EXAMPLE, "ok"), text="text", history_entry={"n": 1})
    moved = store.move(EXAMPLE, "https://example.org")
    assert moved.url == "https://example.org"
    assert (moved.resource_id, moved.stable_id) == (before.resource_id, before.stable_id)
    assert moved.resource_id != rid("https://example.org")
    assert store.get(rid(EXAMPLE)) == moved
    assert store.aliases(rid(EXAMPLE)) == [EXAMPLE]
    assert store.by_url(EXAMPLE) == moved == store.by_url("https://example.org")
    assert store.get_text(rid(EXAMPLE)) == "text"
    assert store.history(rid(EXAMPLE)) == [{"n": 1}]


def test_resource_id_for_url_answers_for_identities_aliases_and_moved_urls(
    store: SnapshotCache,
) -> None:
    assert store.resource_id_for_url(EXAMPLE) is None
    store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=lambda: "sid_AAAAAAAAAA")
    assert store.resource_id_for_url(f" {EXAMPLE} ") == rid(EXAMPLE)  # before any record
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, "https://example.org")
    assert store.resource_id_for_url("https://example.org") == rid(EXAMPLE)
    assert store.resource_id_for_url(EXAMPLE) == rid(EXAMPLE)


def test_move_twice_and_back_to_an_alias(store: SnapshotCache) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, "https://b.example")
    store.move("https://b.example", "https://c.example")
    assert store.aliases(rid(EXAMPLE)) == [EXAMPLE, "https://b.example"]
    back = store.move(EXAMPLE, EXAMPLE)  # found through the alias, moved back to it
    assert back.url == EXAMPLE
    assert store.aliases(rid(EXAMPLE)) == ["https://b.example", "https://c.example"]
    assert store.by_url("https://c.example") == back


def test_move_to_the_current_url_changes_nothing(store: SnapshotCache) -> None:
    saved = store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    assert store.move(EXAMPLE, f" {EXAMPLE} ") == saved
    assert store.aliases(rid(EXAMPLE)) == []


def test_move_to_a_url_of_another_resource_raises(store: SnapshotCache) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok", sid="sid_AAAAAAAAAA"), text=None, history_entry={})
    store.save_attempt(attempt(NTIA, "ok", sid="sid_BBBBBBBBBB"), text=None, history_entry={})
    with pytest.raises(CacheError, match="already belongs"):
        store.move(EXAMPLE, NTIA)
    assert store.get(rid(EXAMPLE)).url == EXAMPLE  # type: ignore[union-attr]


def test_move_of_an_unknown_url_raises_not_found(store: SnapshotCache) -> None:
    with pytest.raises(NotFoundError):
        store.move(EXAMPLE, "https://example.org")
    with pytest.raises(KeyError):
        store.move(EXAMPLE, "https://example.org")


def test_later_attempts_after_a_move_keep_the_new_url(store: SnapshotCache) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, "https://example.org")
    stored = store.save_attempt(
        attempt(EXAMPLE, "error", resource_id=rid(EXAMPLE)), text=None, history_entry={}
    )
    assert stored.url == "https://example.org"


# ---------------------------------------------------------------------------------------------
# Planted rows (CVE-2025-69872): never unpickled, never followed outside the folder


class _Touch:
    """Unpickling this creates ``path``: stands in for arbitrary code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def plant(
    directory: str,
    key: str,
    *,
    mode: int,
    value: bytes | None,
    filename: str | None = None,
    raw: bool = True,
    key_bytes: bytes | None = None,
) -> None:
    """Insert a row straight into the cache's SQLite file, as an attacker would."""
    with sqlite3.connect(os.path.join(directory, "cache.db")) as con:
        con.execute(
            "INSERT OR REPLACE INTO Cache (key, raw, store_time, expire_time, access_time,"
            " access_count, tag, size, mode, filename, value)"
            " VALUES (?, ?, 0, NULL, 0, 0, NULL, 0, ?, ?, ?)",
            (key_bytes if key_bytes is not None else key, int(raw), mode, filename, value),
        )
    con.close()


def test_payload_is_live_so_the_refusal_tests_mean_something(tmp_path: Path) -> None:
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Touch(marker)))
    assert marker.exists()


def test_planted_pickled_record_is_refused_and_never_unpickled(
    store: SnapshotCache, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    plant(store.directory, f"rec:{rid(NTIA)}", mode=MODE_PICKLE, value=pickle.dumps(_Touch(marker)))
    with pytest.raises(UnsafeCacheEntryError, match="refusing a pickled entry"):
        store.get(rid(NTIA))
    with pytest.raises(UnsafeCacheEntryError):
        store.lookup(rid(NTIA))
    with pytest.raises(UnsafeCacheEntryError):
        list(store)
    with (
        diskcache.Cache(store.directory, disk=SafeDisk) as raw,
        pytest.raises(UnsafeCacheEntryError),
    ):
        raw.get(f"rec:{rid(NTIA)}")
    assert not marker.exists()


def test_planted_pickled_index_and_text_entries_are_refused(
    store: SnapshotCache, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Touch(marker))
    plant(store.directory, f"url:{EXAMPLE}", mode=MODE_PICKLE, value=payload)
    plant(store.directory, f"text:{rid(EXAMPLE)}", mode=MODE_PICKLE, value=payload)
    with pytest.raises(UnsafeCacheEntryError):
        store.by_url(EXAMPLE)
    with pytest.raises(UnsafeCacheEntryError):
        store.get_text(rid(EXAMPLE))
    with pytest.raises(UnsafeCacheEntryError):
        store.save_attempt(attempt(EXAMPLE, "ok"), text="t", history_entry={})
    assert not marker.exists()


def test_planted_pickled_key_is_refused_on_iteration(store: SnapshotCache, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    plant(
        store.directory,
        "",
        mode=MODE_TEXT,
        value=None,
        raw=False,
        key_bytes=pickle.dumps(_Touch(marker)),
    )
    with pytest.raises(UnsafeCacheEntryError, match="pickled cache key"):
        list(store)
    with (
        diskcache.Cache(store.directory, disk=SafeDisk) as raw,
        pytest.raises(UnsafeCacheEntryError),
    ):
        list(raw)
    assert not marker.exists()


def test_planted_schema_pickle_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    SnapshotCache(path).close()
    marker = tmp_path / "pwned"
    plant(str(path), "meta:schema", mode=MODE_PICKLE, value=pickle.dumps(_Touch(marker)))
    with pytest.raises(UnsafeCacheEntryError):
        SnapshotCache(path)
    assert not marker.exists()


def test_planted_file_path_outside_the_folder_is_neither_read_nor_deleted(
    store: SnapshotCache, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    key = f"text:{rid(EXAMPLE)}"
    for filename in (str(victim), os.path.join("..", "victim.txt")):
        plant(store.directory, key, mode=MODE_TEXT, value=None, filename=filename)
        with pytest.raises(UnsafeCacheEntryError, match="outside the cache folder"):
            store.get_text(rid(EXAMPLE))
        # Overwriting the row would make diskcache delete its old file: refused too.
        with pytest.raises(UnsafeCacheEntryError):
            store.save_attempt(attempt(EXAMPLE, "ok"), text="t", history_entry={})
        assert victim.read_text() == "precious"
    assert store.get(rid(EXAMPLE)) is None  # the refused save rolled back entirely


def test_unknown_row_mode_is_refused(store: SnapshotCache) -> None:
    plant(store.directory, f"text:{rid(EXAMPLE)}", mode=99, value=b"x")
    with pytest.raises(UnsafeCacheEntryError, match="unknown mode"):
        store.get_text(rid(EXAMPLE))


# ---------------------------------------------------------------------------------------------
# SafeDisk on its own


def test_safedisk_stores_only_str_keys_and_text_or_bytes_values(tmp_path: Path) -> None:
    with diskcache.Cache(str(tmp_path / "c"), disk=SafeDisk) as raw:
        raw.set("k", "v")
        raw.set("b", b"\x00\x01")
        assert raw.get("k") == "v" and raw.get("b") == b"\x00\x01"
        for bad_key in (1, 1.5, b"k", ("t",), None):
            with pytest.raises(TypeError):
                raw.set(bad_key, "v")
        for bad_value in (1, 1.5, None, {"a": 1}, ["x"], object()):
            with pytest.raises(TypeError):
                raw.set("k", bad_value)
        with (tmp_path / "x").open("wb+") as handle, pytest.raises(TypeError):
            raw.set("k", handle, read=True)
        assert raw.get("k") == "v"


def test_safedisk_cache_reopens_with_its_persisted_settings_and_side_files(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "c")
    big_text = "é" * 100_000  # beyond disk_min_file_size: stored as a side file
    big_bytes = os.urandom(100_000)
    with diskcache.Cache(path, disk=SafeDisk) as raw:
        raw.set("text", big_text)
        raw.set("bytes", big_bytes)
    with diskcache.Cache(path, disk=SafeDisk) as raw:
        assert isinstance(raw.disk, SafeDisk)
        assert raw.get("text") == big_text and raw.get("bytes") == big_bytes
        assert sorted(raw) == ["bytes", "text"]
        raw.set("text", "small")  # replacing removes the old side file inside the folder
        assert raw.get("text") == "small"


def test_snapshot_cache_keeps_large_values_inside_sqlite(store: SnapshotCache) -> None:
    # Side files are written outside the SQLite transaction; keeping values inline means a
    # rolled-back write cannot leave a record pointing at a missing or foreign file.
    big = "x" * 300_000
    store.save_attempt(attempt(NTIA, "ok", preview="p" * 60_000), text=big, history_entry={})
    assert store.get_text(rid(NTIA)) == big
    files = [p for p in Path(store.directory).rglob("*.val")]
    assert files == []


# ---------------------------------------------------------------------------------------------
# Several processes at once


SHARED_URLS = [f"{EXAMPLE}/shared/{i}" for i in range(3)]
STATUS_CYCLE: tuple[Status, ...] = (
    "ok",
    "error",
    "not_archived",
    "ok",
    "archived_error",
    "blocked",
)
WORKERS = 4
ROUNDS = 12


def _hammer(path: str, worker: int, rounds: int) -> dict[str, str]:
    """Worker process: ensure identities and save attempts on shared and own resources."""
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits

    def mint() -> str:
        return "sid_" + "".join(secrets.choice(alphabet) for _ in range(10))

    seen: dict[str, str] = {}
    urls = [*SHARED_URLS, f"{EXAMPLE}/own/{worker}"]
    with SnapshotCache(path) as cache:
        for n in range(rounds):
            for url in urls:
                sid = cache.ensure_identity(rid(url), url, mint=mint)
                if seen.setdefault(url, sid) != sid:
                    raise AssertionError(f"stable ID of {url} changed")
                status = STATUS_CYCLE[(n + worker) % len(STATUS_CYCLE)]
                stamp = f"2026{worker:02d}{n:02d}000000"
                fields: dict[str, Any] = {"capture_timestamp": stamp} if status == "ok" else {}
                cache.save_attempt(
                    attempt(url, status, sid=mint(), **fields),
                    text=f"text of {stamp}" if status == "ok" else None,
                    history_entry={"worker": worker, "round": n, "status": status},
                )
    return seen


def test_several_processes_lose_no_update_and_agree_on_stable_ids(tmp_path: Path) -> None:
    path = str(tmp_path / "cache")
    SnapshotCache(path).close()
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        results = pool.starmap(_hammer, [(path, w, ROUNDS) for w in range(WORKERS)])

    with SnapshotCache(path) as cache:
        records = {r.url: r for r in cache}  # every record parses
        assert len(cache) == len(records) == len(SHARED_URLS) + WORKERS
        for url in SHARED_URLS:
            assert records[url].attempts == WORKERS * ROUNDS
            assert {result[url] for result in results} == {records[url].stable_id}
        for worker in range(WORKERS):
            url = f"{EXAMPLE}/own/{worker}"
            assert records[url].attempts == ROUNDS
            assert records[url].stable_id == results[worker][url]
        for record in records.values():
            # Some worker saved "ok" for every resource, so a good capture must be stored,
            # and its text must be the text of that very capture.
            assert record.status == "ok"
            assert cache.get_text(record.resource_id) == f"text of {record.capture_timestamp}"
            assert cache.by_stable_id(record.stable_id) == record
            assert len(cache.history(record.resource_id)) == min(
                cache.history_limit, record.attempts
            )
