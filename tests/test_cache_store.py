"""diskcache-specific tests of SnapshotCache and SafeDisk on real folders (tmp_path).

What every store must do is in test_store_contract.py (which runs SnapshotCache too); here
is what only a diskcache folder has: its modes, its schema row, its SQLite rows (planted or
corrupt), SafeDisk, and rows written by older releases.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from diskcache.core import MODE_PICKLE, MODE_TEXT
from snapcache.cache import (
    SCHEMA_VERSION,
    CacheError,
    NotFoundError,
    RecordFormatError,
    SafeDisk,
    SnapcacheError,
    SnapshotCache,
    StableIdConflictError,
    UnsafeCacheEntryError,
)

from tests.storekit import EXAMPLE, NTIA, CountingMint, Touch, attempt, plant, rid


def test_resource_id_helper_matches_the_wiki_vectors() -> None:
    assert rid(EXAMPLE) == "100680ad546ce6a5"
    assert rid(NTIA) == "a6ec2c2fe408fea3"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SnapshotCache]:
    with SnapshotCache(tmp_path / "cache") as cache:
        yield cache


# ---------------------------------------------------------------------------------------------
# Opening


def test_new_cache_folder_is_private_0700(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cache"
    with SnapshotCache(path) as cache:
        assert cache.path == path and cache.directory == cache.location == str(path)
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


def test_history_limit_must_be_an_int_not_below_zero(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotCache(tmp_path / "cache", history_limit=-1)
    for bad in (True, 2.5, "3"):
        with pytest.raises(TypeError):
            SnapshotCache(tmp_path / "cache", history_limit=bad)  # type: ignore[arg-type]


def test_closed_cache_names_itself(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache")
    cache.close()
    with pytest.raises(CacheError, match=r"^SnapshotCache\('.*cache'\) is closed$"):
        cache.get(rid(EXAMPLE))


def test_errors_share_the_project_root() -> None:
    assert issubclass(CacheError, SnapcacheError)
    for error in (UnsafeCacheEntryError, StableIdConflictError, NotFoundError):
        assert issubclass(error, CacheError)
    assert issubclass(NotFoundError, KeyError)
    assert str(NotFoundError("no resource")) == "no resource"


def test_corrupt_stored_record_raises_naming_its_resource_id(store: SnapshotCache) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
    with diskcache.Cache(store.directory, disk=SafeDisk) as raw:
        raw.set(f"rec:{rid(NTIA)}", '{"resource_id": 5}')
    with pytest.raises(RecordFormatError, match=rid(NTIA)):
        store.get(rid(NTIA))
    with pytest.raises(RecordFormatError, match=rid(NTIA)):
        list(store)


@pytest.mark.parametrize(
    ("key", "value", "read"),
    [
        (f"url:{EXAMPLE}", "5", lambda c: c.by_url(EXAMPLE)),
        ("sid:sid_PC79HD2HUf", '["x"]', lambda c: c.by_stable_id("sid_PC79HD2HUf")),
        (f"hist:{rid(EXAMPLE)}", '{"n": 1}', lambda c: c.history(rid(EXAMPLE))),
        (f"hist:{rid(EXAMPLE)}", "[1, 2]", lambda c: c.history(rid(EXAMPLE))),
        (f"alias:{rid(EXAMPLE)}", '[1]', lambda c: c.aliases(rid(EXAMPLE))),
        (f"ident:{rid(EXAMPLE)}", '{"url": "x"}', lambda c: c.stable_id(rid(EXAMPLE))),
        (f"text:{rid(EXAMPLE)}", b"bytes", lambda c: c.get_text(rid(EXAMPLE))),
        (f"url:{EXAMPLE}", "{not json", lambda c: c.lookup(EXAMPLE)),
    ],
)
def test_corrupt_rows_raise_a_cache_error_rather_than_being_used(
    store: SnapshotCache, key: str, value: str | bytes, read: Any
) -> None:
    with diskcache.Cache(store.directory, disk=SafeDisk) as raw:
        raw.set(key, value)
    with pytest.raises(CacheError):
        read(store)


def test_a_record_without_an_identity_row_keeps_its_stable_id(store: SnapshotCache) -> None:
    # Older data may hold a record and no ident: row; its identity is the record's.
    saved = store.save_attempt(attempt(NTIA, "ok", sid="ZTI1Mjg0Zj"), text=None,
                               history_entry={})
    with diskcache.Cache(store.directory, disk=SafeDisk) as raw:
        assert raw.delete(f"ident:{rid(NTIA)}")
    assert store.stable_id(rid(NTIA)) == "ZTI1Mjg0Zj"
    mint = CountingMint("sid_AAAAAAAAAA")
    assert store.ensure_identity(rid(NTIA), NTIA, mint=mint) == "ZTI1Mjg0Zj"
    assert mint.calls == 0
    with diskcache.Cache(store.directory, disk=SafeDisk) as raw:  # adopted, and written down
        assert json.loads(raw.get(f"ident:{rid(NTIA)}")) == {
            "stable_id": "ZTI1Mjg0Zj", "url": NTIA, "created_at": saved.created_at
        }
    with pytest.raises(StableIdConflictError):
        store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_BBBBBBBBBB", mint=mint)


# ---------------------------------------------------------------------------------------------
# Planted rows (CVE-2025-69872): never unpickled, never followed outside the folder


def test_payload_is_live_so_the_refusal_tests_mean_something(tmp_path: Path) -> None:
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Touch(marker)))
    assert marker.exists()


def test_planted_pickled_index_and_text_entries_are_refused(
    store: SnapshotCache, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Touch(marker))
    plant(store.directory, f"url:{EXAMPLE}", mode=MODE_PICKLE, value=payload)
    plant(store.directory, f"text:{rid(EXAMPLE)}", mode=MODE_PICKLE, value=payload)
    with pytest.raises(UnsafeCacheEntryError):
        store.by_url(EXAMPLE)
    with pytest.raises(UnsafeCacheEntryError):
        store.get_text(rid(EXAMPLE))
    with pytest.raises(UnsafeCacheEntryError):
        store.save_attempt(attempt(EXAMPLE, "ok"), text="t", history_entry={})
    with (
        diskcache.Cache(store.directory, disk=SafeDisk) as raw,
        pytest.raises(UnsafeCacheEntryError, match="refusing a pickled entry"),
    ):
        raw.get(f"url:{EXAMPLE}")  # SafeDisk itself refuses, whoever reads through it
    assert not marker.exists()


def test_planted_pickled_key_is_refused_on_iteration(store: SnapshotCache, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    plant(
        store.directory,
        "",
        mode=MODE_TEXT,
        value=None,
        raw=False,
        key_bytes=pickle.dumps(Touch(marker)),
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
    plant(str(path), "meta:schema", mode=MODE_PICKLE, value=pickle.dumps(Touch(marker)))
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
