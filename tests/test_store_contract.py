"""The store contract (:class:`snapcache.cache.Store`), checked against every backend.

Every test takes the ``store`` fixture, which runs once per backend in
``tests.store_backends.BACKENDS`` (tests that need a second handle, another history limit or
other processes also take ``backend``, the factory ``store`` is built from). To check a new
backend, add a factory and one entry there (see that module); nothing here changes.
Guarantees only some backends have (a diskcache row that would need unpickling) are
capabilities of the backend; tests needing one skip elsewhere.

diskcache-only behaviour (folder modes, schema rows, SafeDisk, corrupt rows) is tested in
``test_cache_store.py``.
"""

from __future__ import annotations

import multiprocessing
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache.cache import (
    CacheError,
    NotFoundError,
    RecordFormatError,
    StableIdConflictError,
    Status,
    Store,
    StoreStats,
    UnsafeCacheEntryError,
)

from tests.store_backends import (
    BACKENDS,
    ROUNDS,
    WORKERS,
    Stores,
    check_nothing_lost,
    hammer,
    hammer_in_process,
    in_threads,
    random_sid,
)
from tests.storekit import (
    EXAMPLE,
    NTIA,
    CountingMint,
    Touch,
    attempt,
    constant_mint,
    fill_six_records,
    rid,
)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    """The backend under test (the one parametrisation of this module)."""
    return Stores(BACKENDS[request.param], tmp_path / "stores")


@pytest.fixture
def store(backend: Stores) -> Iterator[Store]:
    """An empty store of the backend under test, closed after the test."""
    with backend.open() as opened:
        yield opened


# ---------------------------------------------------------------------------------------------
# Lifecycle


def test_store_says_where_it_lives_and_its_history_limit(backend: Stores) -> None:
    with backend.open(history_limit=7) as store:
        assert isinstance(store.location, str) and store.location
        assert store.history_limit == 7


def test_everything_written_is_there_for_another_handle(backend: Stores) -> None:
    with backend.open() as first:
        saved = first.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={"n": 1})
        first.move(NTIA, "https://example.org/report.pdf")
        moved = first.get(rid(NTIA))
        second = backend.open()  # open at the same time: nothing waits for close
        assert second.get(rid(NTIA)) == moved
        second.close()
    with backend.open() as reopened:
        assert reopened.get(rid(NTIA)) == moved != saved
        assert reopened.get_text(rid(NTIA)) == "full text"
        assert reopened.history(rid(NTIA)) == [{"n": 1}]
        assert reopened.aliases(rid(NTIA)) == [NTIA]
        assert reopened.stable_id(rid(NTIA)) == "sid_PC79HD2HUf"
        assert len(reopened) == 1


def test_a_closed_store_refuses_every_use_and_closing_again_is_harmless(backend: Stores) -> None:
    store = backend.open()
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.close()
    store.close()
    uses: list[Callable[[], object]] = [
        lambda: store.get(rid(EXAMPLE)),
        lambda: store.lookup(EXAMPLE),
        lambda: store.get_text(rid(EXAMPLE)),
        lambda: list(store.records()),
        lambda: len(store),
        lambda: store.save_attempt(attempt(EXAMPLE, "error"), text=None, history_entry={}),
        lambda: store.ensure_identity(rid(NTIA), NTIA, mint=constant_mint("sid_AAAAAAAAAA")),
    ]
    for use in uses:
        with pytest.raises(CacheError, match="closed"):
            use()


def test_with_block_closes_the_store(backend: Stores) -> None:
    with backend.open() as store:
        assert store.get(rid(EXAMPLE)) is None
    with pytest.raises(CacheError):
        store.get(rid(EXAMPLE))


# ---------------------------------------------------------------------------------------------
# Lookups


def test_unknown_keys_return_none_or_empty_and_write_nothing(store: Store) -> None:
    assert store.get(rid(EXAMPLE)) is None
    assert store.by_stable_id("sid_AAAAAAAAAA") is None
    assert store.by_stable_id("ZTI1Mjg0Zj") is None
    assert store.by_url(EXAMPLE) is None
    assert store.by_url("   ") is None
    assert store.resource_id_for_url(EXAMPLE) is None
    assert store.resource_id_for_url("") is None
    for ident in (EXAMPLE, rid(EXAMPLE), "sid_AAAAAAAAAA", "ZTI1Mjg0Zj", "   ", ""):
        assert store.lookup(ident) is None
    assert store.get_text(rid(EXAMPLE)) is None
    assert store.history(rid(EXAMPLE)) == []
    assert store.aliases(rid(EXAMPLE)) == []
    assert store.stable_id(rid(EXAMPLE)) is None
    assert rid(EXAMPLE) not in store and 42 not in store
    assert len(store) == 0 and list(store) == [] and list(store.records()) == []
    assert store.stats() == StoreStats(records=0, outcomes={})


def test_saved_record_round_trips_with_identity_text_and_history(store: Store) -> None:
    saved = store.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={"s": "ok"})
    assert saved.attempts == 1 and saved.last_outcome == "ok" and saved.created_at
    assert store.get(rid(NTIA)) == saved
    assert store.get_text(rid(NTIA)) == "full text"
    assert store.history(rid(NTIA)) == [{"s": "ok"}]
    assert store.stable_id(rid(NTIA)) == "sid_PC79HD2HUf"
    assert rid(NTIA) in store and rid(EXAMPLE) not in store


def test_lookup_finds_a_record_by_resource_id_stable_id_and_url(store: Store) -> None:
    saved = store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
    assert store.lookup("a6ec2c2fe408fea3") == saved
    assert store.lookup("sid_PC79HD2HUf") == saved
    assert store.lookup(" sid_PC79HD2HUf\t") == saved
    assert store.lookup(NTIA) == saved
    assert store.lookup(f"  {NTIA}\n") == saved
    assert store.by_stable_id("sid_PC79HD2HUf") == saved
    assert store.by_url(NTIA) == saved
    assert store.by_url(f" {NTIA} ") == saved
    assert store.resource_id_for_url(NTIA) == rid(NTIA)


def test_lookup_finds_a_legacy_bare_10_character_stable_id(store: Store) -> None:
    saved = store.save_attempt(attempt(EXAMPLE, "ok", sid="ZTI1Mjg0Zj"), text=None,
                               history_entry={})
    assert store.lookup("ZTI1Mjg0Zj") == saved
    assert store.by_stable_id("ZTI1Mjg0Zj") == saved
    assert store.lookup("sid_ZTI1Mjg0Zj") is None  # stored bare, found bare: no guessing
    assert store.lookup("zti1mjg0zj") is None  # case-sensitive


def test_lookup_finds_a_record_by_an_alias_after_a_move(store: Store) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    moved = store.move(EXAMPLE, "https://example.org/")
    assert store.lookup(EXAMPLE) == moved == store.lookup("https://example.org/")
    assert store.by_url(EXAMPLE) == moved == store.get(rid(EXAMPLE))


def test_url_keys_are_exact_no_normalisation(store: Store) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    for variant in ("https://example.com/", "https://EXAMPLE.com", "http://example.com"):
        assert store.by_url(variant) is None
        assert store.lookup(variant) is None
        assert store.resource_id_for_url(variant) is None


# ---------------------------------------------------------------------------------------------
# Merge: a failed or worse attempt never replaces a good record


def test_failed_attempt_after_a_good_one_keeps_the_capture_and_records_the_error(
    store: Store,
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
    assert store.history(rid(NTIA)) == [{"s": "ok"}, {"s": "error"}]


@pytest.mark.parametrize("status", ["not_archived", "archived_error", "blocked"])
def test_final_non_ok_attempt_after_a_good_one_keeps_capture_and_text(
    store: Store, status: Status
) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={})
    stored = store.save_attempt(attempt(NTIA, status), text="junk", history_entry={})
    assert stored.status == "ok" and stored.last_outcome == status
    assert stored.error is not None and stored.error.startswith(f"latest attempt: {status}")
    assert store.get_text(rid(NTIA)) == "full text"
    assert store.get(rid(NTIA)) == stored


def test_ok_attempt_replaces_capture_and_text_and_clears_the_error(store: Store) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text="old text", history_entry={})
    store.save_attempt(attempt(NTIA, "error", error="timeout"), text=None, history_entry={})
    stored = store.save_attempt(
        attempt(NTIA, "ok", capture_timestamp="20261101000000", preview="newer"),
        text="new text",
        history_entry={},
    )
    assert stored.capture_timestamp == "20261101000000" and stored.preview == "newer"
    assert stored.error is None and stored.attempts == 3
    assert store.get_text(rid(NTIA)) == "new text"


def confirmation(url: str, capture_timestamp: str = "20260408194323") -> Any:
    """An attempt that confirmed a stored capture (no bytes fetched), as the engine builds it."""
    return attempt(url, "ok", fetched_at=None, content_type=None, content_length=None,
                   title=None, preview="", text_length=0, original_url=url,
                   capture_timestamp=capture_timestamp, last_confirmed_at="2026-12-07T01:02:03Z")


def test_a_confirmation_keeps_the_capture_and_its_text_and_sets_last_confirmed_at(
    store: Store
) -> None:
    good = store.save_attempt(attempt(NTIA, "ok", original_url=NTIA), text="full text",
                              history_entry={})
    store.save_attempt(attempt(NTIA, "error", error="timeout"), text=None, history_entry={})
    stored = store.save_attempt(confirmation(NTIA), text=None,
                                history_entry={"outcome": "ok", "confirmed": True})
    for name in ("capture_timestamp", "fetched_at", "title", "preview", "content_length",
                 "text_length", "content_type", "archived_status", "stable_id"):
        assert getattr(stored, name) == getattr(good, name), name
    assert stored.last_confirmed_at == "2026-12-07T01:02:03Z"
    assert stored.error is None and stored.last_outcome == "ok" and stored.attempts == 3
    assert store.get_text(rid(NTIA)) == "full text"
    assert store.history(rid(NTIA))[-1]["confirmed"] is True
    assert store.get(rid(NTIA)) == stored


def test_a_confirmation_of_a_capture_no_longer_stored_only_counts_the_attempt(
    store: Store
) -> None:
    # Another process stored a newer capture between the plan and the confirmation.
    store.save_attempt(attempt(NTIA, "ok", original_url=NTIA), text="old", history_entry={})
    newer = store.save_attempt(
        attempt(NTIA, "ok", original_url=NTIA, capture_timestamp="20261101000000",
                preview="newer"), text="newer text", history_entry={})
    stored = store.save_attempt(confirmation(NTIA), text=None, history_entry={})
    assert stored.capture_timestamp == newer.capture_timestamp and stored.preview == "newer"
    assert stored.last_confirmed_at is None and stored.attempts == 3
    assert store.get_text(rid(NTIA)) == "newer text"


def test_replacing_a_capture_without_text_removes_the_old_text(store: Store) -> None:
    store.save_attempt(attempt(NTIA, "not_archived"), text="stale", history_entry={})
    stored = store.save_attempt(attempt(NTIA, "archived_error"), text=None, history_entry={})
    assert stored.status == "archived_error"
    assert store.get_text(rid(NTIA)) is None


def test_first_attempt_that_failed_is_stored_with_status_error(store: Store) -> None:
    stored = store.save_attempt(attempt(NTIA, "error", error="dns"), text=None, history_entry={})
    assert stored.status == "error" and stored.error == "dns" and stored.attempts == 1
    assert store.get(rid(NTIA)) == stored


def test_large_unicode_text_round_trips(store: Store) -> None:
    text = "Überblick — 概要 — \U0001f4c4 " * 20_000
    store.save_attempt(attempt(NTIA, "ok"), text=text, history_entry={})
    assert store.get_text(rid(NTIA)) == text


# ---------------------------------------------------------------------------------------------
# Each write is one transaction: a refused write leaves nothing behind


def test_unserialisable_history_entry_writes_nothing(store: Store) -> None:
    good = store.save_attempt(attempt(NTIA, "ok"), text="full text", history_entry={"n": 1})
    with pytest.raises(TypeError):
        store.save_attempt(attempt(NTIA, "ok"), text="other", history_entry={"bad": object()})
    assert store.get(rid(NTIA)) == good
    assert store.get_text(rid(NTIA)) == "full text"
    assert store.history(rid(NTIA)) == [{"n": 1}]


def test_history_entry_that_is_not_a_mapping_is_refused(store: Store) -> None:
    with pytest.raises(TypeError):
        store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry=[1, 2])  # type: ignore[arg-type]
    assert store.get(rid(NTIA)) is None


def test_record_that_would_not_read_back_is_refused_and_nothing_written(store: Store) -> None:
    bad = attempt(NTIA, "ok", archived_status="200")  # wrong type
    with pytest.raises(RecordFormatError, match=rid(NTIA)):
        store.save_attempt(bad, text="t", history_entry={})
    assert store.get(rid(NTIA)) is None and store.get_text(rid(NTIA)) is None
    assert store.stable_id(rid(NTIA)) is None and store.by_url(NTIA) is None
    assert store.history(rid(NTIA)) == [] and len(store) == 0


def test_malformed_resource_ids_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.save_attempt(attempt(NTIA, "ok", resource_id="XYZ"), text=None, history_entry={})
    with pytest.raises(ValueError):
        store.ensure_identity("A6EC2C2FE408FEA3", NTIA, mint=constant_mint("sid_AAAAAAAAAA"))
    assert len(store) == 0 and store.by_url(NTIA) is None


def test_update_save_with_an_unserialisable_entry_writes_nothing(store: Store) -> None:
    saved = store.save_attempt(attempt(NTIA, "not_archived"), text=None, history_entry={"n": 1})
    with pytest.raises(TypeError):
        store.update_save(rid(NTIA), job_id="j", requested_at="2026-11-29T11:00:00Z",
                          status="pending", history_entry={"bad": {1, 2}})
    assert store.get(rid(NTIA)) == saved
    assert store.history(rid(NTIA)) == [{"n": 1}]


# ---------------------------------------------------------------------------------------------
# History: the newest entries, at most history_limit


def test_history_is_bounded_to_the_newest_entries_and_attempts_still_counted(
    backend: Stores,
) -> None:
    with backend.open(history_limit=3) as store:
        for n in range(7):
            store.save_attempt(attempt(NTIA, "error"), text=None, history_entry={"n": n})
        assert store.history(rid(NTIA)) == [{"n": 4}, {"n": 5}, {"n": 6}]
        record = store.get(rid(NTIA))
        assert record is not None and record.attempts == 7


def test_history_limit_zero_keeps_no_history(backend: Stores) -> None:
    with backend.open(history_limit=0) as store:
        store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={"n": 1})
        store.update_save(rid(NTIA), job_id=None, requested_at=None, status="deferred",
                          history_entry={"n": 2})
        assert store.history(rid(NTIA)) == []


def test_save_entries_share_the_history_and_its_bound(backend: Stores) -> None:
    with backend.open(history_limit=2) as store:
        store.save_attempt(attempt(NTIA, "not_archived"), text=None, history_entry={"n": 0})
        store.update_save(rid(NTIA), job_id="j1", requested_at=None, status="pending",
                          history_entry={"n": 1})
        store.update_save(rid(NTIA), job_id="j1", requested_at=None, status="done",
                          history_entry={"n": 2})
        store.update_save(rid(NTIA), job_id="j1", requested_at=None, status="done")  # no entry
        assert store.history(rid(NTIA)) == [{"n": 1}, {"n": 2}]


def test_history_entries_read_back_as_json(store: Store) -> None:
    entry: dict[str, object] = {
        "at": "2026-11-29T11:27:55Z", "outcome": "ok", "archived_status": 200,
        "error": None, "ratio": 0.5, "flags": [True, False], "nested": {"é": "ü"},
    }
    store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry=entry)
    store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={"tuple": (1, 2)})
    assert store.history(rid(NTIA)) == [entry, {"tuple": [1, 2]}]


# ---------------------------------------------------------------------------------------------
# Stable IDs: minted once, never re-minted or changed


def test_ensure_identity_mints_once_and_returns_the_same_id_again(store: Store) -> None:
    mint = CountingMint("sid_AAAAAAAAAA", "sid_BBBBBBBBBB")
    first = store.ensure_identity(rid(NTIA), NTIA, mint=mint)
    second = store.ensure_identity(rid(NTIA), NTIA, mint=mint)
    assert first == second == "sid_AAAAAAAAAA" == store.stable_id(rid(NTIA))
    assert mint.calls == 1
    assert store.resource_id_for_url(NTIA) == rid(NTIA)
    assert store.get(rid(NTIA)) is None and len(store) == 0  # an identity is not a record


def test_first_record_takes_the_stable_id_bound_before_it(store: Store) -> None:
    sid = store.ensure_identity(rid(NTIA), NTIA, mint=constant_mint("sid_AAAAAAAAAA"))
    stored = store.save_attempt(attempt(NTIA, "ok", sid="sid_ZZZZZZZZZZ"), text=None,
                                history_entry={})
    assert stored.stable_id == sid == "sid_AAAAAAAAAA"
    assert store.by_stable_id("sid_AAAAAAAAAA") == stored
    assert store.by_stable_id("sid_ZZZZZZZZZZ") is None


def test_later_attempts_never_change_the_stable_id(store: Store) -> None:
    first = store.save_attempt(attempt(NTIA, "ok", sid="sid_AAAAAAAAAA"), text=None,
                               history_entry={})
    for sid in ("sid_BBBBBBBBBB", "ZTI1Mjg0Zj"):
        stored = store.save_attempt(attempt(NTIA, "error", sid=sid), text=None, history_entry={})
        assert stored.stable_id == first.stable_id
        assert store.by_stable_id(sid) is None
    mint = CountingMint("sid_CCCCCCCCCC")
    assert store.ensure_identity(rid(NTIA), NTIA, mint=mint) == "sid_AAAAAAAAAA"
    assert mint.calls == 0


def test_stable_id_survives_a_move(store: Store) -> None:
    mint = CountingMint("sid_AAAAAAAAAA", "sid_BBBBBBBBBB")
    sid = store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=mint)
    store.save_attempt(attempt(EXAMPLE, "ok", sid=sid), text=None, history_entry={})
    store.move(EXAMPLE, "https://example.org")
    assert store.ensure_identity(rid(EXAMPLE), "https://example.org", mint=mint) == sid
    assert store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=mint) == sid
    assert mint.calls == 1


def test_ensure_identity_binds_a_supplied_stable_id(store: Store) -> None:
    mint = CountingMint()
    for _ in range(2):
        assert store.ensure_identity(rid(NTIA), NTIA, stable_id="ZTI1Mjg0Zj", mint=mint) == (
            "ZTI1Mjg0Zj"
        )
    assert mint.calls == 0
    assert store.stable_id(rid(NTIA)) == "ZTI1Mjg0Zj"


def test_supplying_a_different_stable_id_for_a_known_resource_raises_naming_both(
    store: Store,
) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="ZTI1Mjg0Zj", mint=CountingMint())
    with pytest.raises(StableIdConflictError) as info:
        store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_PC79HD2HUf", mint=CountingMint())
    assert "ZTI1Mjg0Zj" in str(info.value) and "sid_PC79HD2HUf" in str(info.value)
    assert (info.value.existing, info.value.requested) == ("ZTI1Mjg0Zj", "sid_PC79HD2HUf")
    assert info.value.resource_id == rid(NTIA)
    assert store.stable_id(rid(NTIA)) == "ZTI1Mjg0Zj"
    assert store.by_stable_id("sid_PC79HD2HUf") is None


def test_supplying_a_stable_id_held_by_another_resource_raises(store: Store) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_PC79HD2HUf", mint=CountingMint())
    with pytest.raises(StableIdConflictError) as info:
        store.ensure_identity(
            rid(EXAMPLE), EXAMPLE, stable_id="sid_PC79HD2HUf", mint=CountingMint()
        )
    assert info.value.other_resource_id == rid(NTIA)
    assert store.stable_id(rid(EXAMPLE)) is None
    assert store.resource_id_for_url(EXAMPLE) is None  # the refused binding left nothing


def test_save_attempt_refuses_a_stable_id_held_by_another_resource(store: Store) -> None:
    store.save_attempt(attempt(NTIA, "ok"), text=None, history_entry={})
    with pytest.raises(StableIdConflictError):
        store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    assert store.get(rid(EXAMPLE)) is None and store.by_url(EXAMPLE) is None
    assert store.by_stable_id("sid_PC79HD2HUf") == store.get(rid(NTIA))


def test_mint_is_called_until_it_returns_an_unused_id(store: Store) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_AAAAAAAAAA", mint=CountingMint())
    mint = CountingMint("sid_AAAAAAAAAA", "sid_AAAAAAAAAA", "sid_CCCCCCCCCC")
    assert store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=mint) == "sid_CCCCCCCCCC"
    assert mint.calls == 3


def test_mint_that_only_returns_taken_ids_gives_up(store: Store) -> None:
    store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_AAAAAAAAAA", mint=CountingMint())
    with pytest.raises(CacheError, match="already in use"):
        store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=constant_mint("sid_AAAAAAAAAA"))
    assert store.stable_id(rid(EXAMPLE)) is None


def test_malformed_stable_ids_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.ensure_identity(rid(NTIA), NTIA, stable_id="sid_short", mint=CountingMint())
    with pytest.raises(ValueError):
        store.ensure_identity(rid(NTIA), NTIA, mint=constant_mint("not-an-id!"))
    with pytest.raises(ValueError):
        store.save_attempt(attempt(NTIA, "ok", sid="sid_"), text=None, history_entry={})
    assert store.stable_id(rid(NTIA)) is None


def test_ensure_identity_refuses_a_url_owned_by_another_resource(store: Store) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, NTIA)
    with pytest.raises(CacheError, match="already belongs"):
        store.ensure_identity(rid(NTIA), NTIA, mint=constant_mint("sid_AAAAAAAAAA"))
    assert store.stable_id(rid(NTIA)) is None


# ---------------------------------------------------------------------------------------------
# Moving a resource to a corrected URL


def test_move_keeps_both_ids_text_and_history_and_makes_the_old_url_an_alias(
    store: Store,
) -> None:
    before = store.save_attempt(attempt(EXAMPLE, "ok"), text="text", history_entry={"n": 1})
    moved = store.move(EXAMPLE, "https://example.org")
    assert moved.url == "https://example.org"
    assert (moved.resource_id, moved.stable_id) == (before.resource_id, before.stable_id)
    assert moved.resource_id != rid("https://example.org")
    assert store.get(rid(EXAMPLE)) == moved
    assert store.aliases(rid(EXAMPLE)) == [EXAMPLE]
    assert store.by_url(EXAMPLE) == moved == store.by_url("https://example.org")
    assert store.by_stable_id(before.stable_id) == moved
    assert store.get_text(rid(EXAMPLE)) == "text"
    assert store.history(rid(EXAMPLE)) == [{"n": 1}]
    assert len(store) == 1


def test_resource_id_for_url_answers_for_identities_aliases_and_moved_urls(store: Store) -> None:
    store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=constant_mint("sid_AAAAAAAAAA"))
    assert store.resource_id_for_url(f" {EXAMPLE} ") == rid(EXAMPLE)  # before any record
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, "https://example.org")
    assert store.resource_id_for_url("https://example.org") == rid(EXAMPLE)
    assert store.resource_id_for_url(EXAMPLE) == rid(EXAMPLE)


def test_move_twice_and_back_to_an_alias(store: Store) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, "https://b.example")
    store.move("https://b.example", "https://c.example")
    assert store.aliases(rid(EXAMPLE)) == [EXAMPLE, "https://b.example"]
    back = store.move(EXAMPLE, EXAMPLE)  # found through the alias, moved back to it
    assert back.url == EXAMPLE
    assert store.aliases(rid(EXAMPLE)) == ["https://b.example", "https://c.example"]
    for url in (EXAMPLE, "https://b.example", "https://c.example"):
        assert store.by_url(url) == back


def test_move_to_the_current_url_changes_nothing(store: Store) -> None:
    saved = store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    assert store.move(EXAMPLE, f" {EXAMPLE} ") == saved
    assert store.aliases(rid(EXAMPLE)) == []
    assert store.get(rid(EXAMPLE)) == saved


def test_move_to_a_url_of_another_resource_raises_and_changes_nothing(store: Store) -> None:
    a = store.save_attempt(attempt(EXAMPLE, "ok", sid="sid_AAAAAAAAAA"), text=None,
                           history_entry={})
    b = store.save_attempt(attempt(NTIA, "ok", sid="sid_BBBBBBBBBB"), text=None,
                           history_entry={})
    with pytest.raises(CacheError, match="already belongs"):
        store.move(EXAMPLE, NTIA)
    assert store.get(rid(EXAMPLE)) == a and store.get(rid(NTIA)) == b
    assert store.by_url(NTIA) == b and store.aliases(rid(EXAMPLE)) == []


def test_move_of_an_unknown_url_raises_not_found_which_is_a_key_error(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.move(EXAMPLE, "https://example.org")
    store.ensure_identity(rid(EXAMPLE), EXAMPLE, mint=constant_mint("sid_AAAAAAAAAA"))
    with pytest.raises(KeyError):  # an identity without a record cannot move either
        store.move(EXAMPLE, "https://example.org")
    assert store.resource_id_for_url("https://example.org") is None


def test_later_attempts_after_a_move_keep_the_new_url(store: Store) -> None:
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    store.move(EXAMPLE, "https://example.org")
    stored = store.save_attempt(attempt(EXAMPLE, "error"), text=None, history_entry={})
    assert stored.url == "https://example.org"
    assert store.aliases(rid(EXAMPLE)) == [EXAMPLE]


def test_an_attempt_for_a_url_moved_away_changes_nothing(store: Store) -> None:
    """An attempt made for the old URL (moved while it ran, or a caller still naming it)
    holds that URL's content: merged in, it would undo the move."""
    store.save_attempt(attempt(EXAMPLE, "ok"), text="the good text", history_entry={"n": 1})
    moved = store.move(EXAMPLE, "https://example.org")
    history = store.history(rid(EXAMPLE))
    for status in ("ok", "error"):
        late = attempt(EXAMPLE, status, title="The old URL's page",  # type: ignore[arg-type]
                       capture_timestamp="20270101000000", original_url=EXAMPLE)
        stored = store.save_attempt(late, text="the old URL's text", history_entry={"n": 2})
        assert stored == moved
    assert store.get(rid(EXAMPLE)) == moved
    assert store.get_text(rid(EXAMPLE)) == "the good text"
    assert store.history(rid(EXAMPLE)) == history
    assert store.by_url("https://example.org") == moved


# ---------------------------------------------------------------------------------------------
# Save Page Now fields


def test_update_save_sets_the_save_fields_and_nothing_else(store: Store) -> None:
    saved = store.save_attempt(attempt(NTIA, "not_archived"), text=None, history_entry={"n": 0})
    updated = store.update_save(rid(NTIA), job_id="spn2-0123abcd",
                                requested_at="2026-11-29T11:00:00Z", status="pending",
                                history_entry={"save_status": "pending"})
    assert (updated.save_job_id, updated.save_requested_at, updated.save_status) == (
        "spn2-0123abcd", "2026-11-29T11:00:00Z", "pending"
    )
    unchanged = {"save_job_id", "save_requested_at", "save_status"}
    before, after = saved.to_json_dict(), updated.to_json_dict()
    assert {k: v for k, v in before.items() if k not in unchanged} == {
        k: v for k, v in after.items() if k not in unchanged
    }
    assert store.get(rid(NTIA)) == updated
    assert store.history(rid(NTIA)) == [{"n": 0}, {"save_status": "pending"}]


def test_fetch_attempts_never_change_the_save_fields(store: Store) -> None:
    store.save_attempt(attempt(NTIA, "not_archived"), text=None, history_entry={})
    store.update_save(rid(NTIA), job_id="j", requested_at="2026-11-29T11:00:00Z",
                      status="pending")
    statuses: tuple[Status, ...] = ("error", "ok", "not_archived")
    for status in statuses:
        stored = store.save_attempt(attempt(NTIA, status), text=None, history_entry={})
        assert (stored.save_job_id, stored.save_status) == ("j", "pending")


def test_update_save_of_a_resource_without_a_record_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.update_save(rid(NTIA), job_id=None, requested_at=None, status="deferred")
    store.ensure_identity(rid(NTIA), NTIA, mint=constant_mint("sid_AAAAAAAAAA"))
    with pytest.raises(NotFoundError):
        store.update_save(rid(NTIA), job_id=None, requested_at=None, status="deferred")
    assert store.get(rid(NTIA)) is None


# ---------------------------------------------------------------------------------------------
# Iteration, filtering and stats


def test_records_yields_every_record_once_in_resource_id_order(store: Store) -> None:
    stored = fill_six_records(store)
    records = list(store.records())
    assert [r.resource_id for r in records] == sorted(r.resource_id for r in stored.values())
    assert {r.url: r for r in records} == stored
    assert list(store) == records
    assert len(store) == len(stored) == 6
    assert all(r.resource_id in store for r in records) and rid(NTIA) not in store


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["ok"], {"/ok", "/ok-then-error"}),
        (["error"], {"/ok-then-error", "/down"}),  # status or latest outcome
        (["not_archived", "blocked"], {"/gone", "/blocked"}),
        (("archived_error",), {"/404"}),
        (frozenset({"blocked"}), {"/blocked"}),
        ([], {"/ok", "/ok-then-error", "/gone", "/404", "/blocked", "/down"}),
        (None, {"/ok", "/ok-then-error", "/gone", "/404", "/blocked", "/down"}),
    ],
)
def test_records_filters_by_status_or_latest_outcome(
    store: Store, statuses: Any, expected: set[str]
) -> None:
    fill_six_records(store)
    found = list(store.records(statuses=statuses))
    assert {r.url.removeprefix(EXAMPLE) for r in found} == expected
    assert [r.resource_id for r in found] == sorted(r.resource_id for r in found)


def test_stats_count_records_per_status_with_oldest_and_newest_fetch(store: Store) -> None:
    fill_six_records(store)
    stats = store.stats()
    assert stats == StoreStats(
        records=6,
        outcomes={"archived_error": 1, "blocked": 1, "error": 1, "not_archived": 1, "ok": 2},
        oldest_fetch="2026-01-15T00:00:00Z",
        newest_fetch="2026-03-01T00:00:00Z",
    )
    assert list(stats.outcomes) == sorted(stats.outcomes)
    assert stats.records == len(store)


# ---------------------------------------------------------------------------------------------
# Planted rows are refused, never deserialised (backends with such rows)


def test_planted_pickled_record_is_refused_and_never_unpickled(
    backend: Stores, store: Store, tmp_path: Path
) -> None:
    plant_record = backend.backend.plant_pickled_record
    if plant_record is None:
        pytest.skip(f"{backend.backend.name} stores no row that could need unpickling")
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Touch(tmp_path / "control")))
    assert (tmp_path / "control").exists(), "the payload must be live for this test to mean it"
    store.save_attempt(attempt(EXAMPLE, "ok"), text=None, history_entry={})
    plant_record(backend.place(), rid(NTIA), pickle.dumps(Touch(marker)))
    with pytest.raises(UnsafeCacheEntryError):
        store.get(rid(NTIA))
    with pytest.raises(UnsafeCacheEntryError):
        store.lookup(rid(NTIA))
    with pytest.raises(UnsafeCacheEntryError):
        list(store.records())
    with pytest.raises(UnsafeCacheEntryError):
        store.stats()
    with pytest.raises(UnsafeCacheEntryError):
        store.save_attempt(attempt(NTIA, "ok", sid="sid_BBBBBBBBBB"), text=None,
                           history_entry={})
    assert not marker.exists()
    assert store.get(rid(EXAMPLE)) is not None  # the rest of the store still reads


# ---------------------------------------------------------------------------------------------
# Several writers at once: nothing lost, stable IDs unique


def test_several_processes_lose_no_update_and_agree_on_stable_ids(backend: Stores) -> None:
    backend.open().close()  # created once, before the workers race to open it
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        results = pool.starmap(
            hammer_in_process,
            [(backend.backend.name, backend.place(), w, ROUNDS) for w in range(WORKERS)],
        )
    with backend.open() as store:
        check_nothing_lost(store, results)


def test_several_threads_sharing_one_store_lose_no_update(store: Store) -> None:
    results = in_threads(WORKERS, lambda worker: hammer(store, worker, ROUNDS))
    check_nothing_lost(store, results)


def test_racing_first_sightings_agree_on_one_stable_id(store: Store) -> None:
    # Every thread sees the same new resources at once; a slow mint widens the window in
    # which a store without one transaction per ensure_identity would bind two IDs.
    urls = [f"{EXAMPLE}/race/{i}" for i in range(10)]

    def slow_mint() -> str:
        time.sleep(0.002)
        return random_sid()

    got = in_threads(6, lambda _: [store.ensure_identity(rid(u), u, mint=slow_mint) for u in urls])
    assert all(ids == got[0] for ids in got), "two threads were given different stable IDs"
    assert len(set(got[0])) == len(urls)
    assert [store.stable_id(rid(u)) for u in urls] == got[0]
