"""Exhaustive tests of cache.policy: freshness and merge. No I/O (time helpers: test_times)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcache.cache import (
    FIELD_ORDER,
    Record,
    Status,
    TTLs,
    freshness,
    holds_capture,
    is_confirmation,
    merge,
    to_iso,
)
from snapcache.cache.policy import (
    ATTEMPT_FIELDS,
    CAPTURE_FIELDS,
    IDENTITY_FIELDS,
    MAX_CLOCK_SKEW,
    SAVE_FIELDS,
    MergeResult,
)
from snapcache.cache.records import STATUSES

RID = "100680ad546ce6a5"
URL = "https://example.com"
T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
T0_ISO = "2026-11-01T12:00:00Z"
FINAL_NON_OK: tuple[Status, ...] = ("not_archived", "archived_error", "blocked")
ALL_STATUSES: tuple[Status, ...] = ("ok", "not_archived", "archived_error", "blocked", "error")


def make(status: Status, tag: str, **overrides: Any) -> Record:
    """A record whose every capture field carries ``tag``, so a test can tell where it came
    from."""
    fields: dict[str, Any] = {
        "resource_id": RID,
        "stable_id": f"sid_{tag[:3].upper():A<10}"[:14],
        "url": f"{URL}/{tag}",
        "status": status,
        "archived_status": 200 if status == "ok" else 404,
        "capture_timestamp": f"2026010{len(tag) % 9}000000",
        "archive_url": f"https://web.archive.org/web/1/{tag}",
        "raw_url": f"https://web.archive.org/web/1id_/{tag}",
        "original_url": f"{URL}/{tag}/orig",
        "fetched_at": T0_ISO,
        "content_type": f"text/{tag}",
        "content_length": len(tag) * 100,
        "title": f"title {tag}",
        "preview": f"preview {tag}",
        "text_length": len(tag) * 10,
        "redirects": [f"{URL}/{tag}/r1"],
        "error": f"error {tag}",
        "last_attempt_at": T0_ISO,
        "attempts": 1,
        "last_outcome": status,
        "requested_timestamp": f"req-{tag}",
        "archive": f"archive-{tag}",
        "orig_content_type": f"orig/{tag}",
        "sha256": f"sha-{tag}",
        "body_truncated": tag == "new",
        "preview_note": f"note {tag}",
        "created_at": f"created {tag}",
    }
    fields.update(overrides)
    return Record(**fields)


# ---------------------------------------------------------------------------------------------
# Field groups


def test_field_groups_partition_every_record_field() -> None:
    groups = [IDENTITY_FIELDS, CAPTURE_FIELDS, ATTEMPT_FIELDS, SAVE_FIELDS, ("schema_version",)]
    flat = [name for group in groups for name in group]
    assert len(flat) == len(set(flat)), "a field is in two groups"
    assert set(flat) == set(FIELD_ORDER), "a record field is missing from the merge groups"


# ---------------------------------------------------------------------------------------------
# TTLs


def test_ttl_defaults_match_the_documented_policy() -> None:
    ttls = TTLs()
    day = 86400.0
    assert ttls.for_status("ok") == 30 * day
    assert ttls.for_status("blocked") == 30 * day
    assert ttls.for_status("not_archived") == 7 * day
    assert ttls.for_status("archived_error") == 7 * day
    assert ttls.for_status("error") == 3600.0


def test_ttls_for_status_covers_every_status() -> None:
    ttls = TTLs(ok=1, blocked=2, not_archived=3, archived_error=4, error=5)
    assert [ttls.for_status(s) for s in ALL_STATUSES] == [1, 3, 4, 2, 5]
    assert set(ALL_STATUSES) == set(STATUSES)


def test_ttls_for_unknown_status_raises() -> None:
    with pytest.raises(ValueError):
        TTLs().for_status("gone")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "3600"])
def test_ttls_reject_negative_infinite_and_non_numbers(bad: Any) -> None:
    with pytest.raises(ValueError):
        TTLs(error=bad)


def test_ttls_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TTLs().ok = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Freshness


def attempted(
    status: Status,
    *,
    last_outcome: Status | None = None,
    at: str | None = T0_ISO,
    fetched_at: str | None = T0_ISO,
) -> Record:
    return Record(
        resource_id=RID,
        stable_id="sid_AAAAAAAAAA",
        url=URL,
        status=status,
        fetched_at=fetched_at,
        last_attempt_at=at,
        last_outcome=last_outcome,
    )


def test_missing_record_is_stale_with_reason_missing() -> None:
    assert freshness(None, T0, TTLs()) == freshness(None, T0, TTLs(), force=True)
    result = freshness(None, T0, TTLs())
    assert (result.fresh, result.reason, result.due_at) == (False, "missing", None)


def test_naive_now_raises() -> None:
    with pytest.raises(ValueError):
        freshness(attempted("ok"), datetime(2026, 11, 1), TTLs())


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_each_outcome_is_fresh_until_its_ttl_and_stale_from_then(status: Status) -> None:
    ttls = TTLs()
    record = attempted(status, last_outcome=status)
    due = T0 + timedelta(seconds=ttls.for_status(status))
    before = freshness(record, due - timedelta(seconds=1), ttls)
    at_due = freshness(record, due, ttls)
    assert before.fresh and before.due_at == due
    assert before.reason == f"fresh until {to_iso(due)}"
    assert not at_due.fresh and at_due.due_at == due
    assert at_due.reason == f"stale since {to_iso(due)}"


def test_good_record_whose_latest_attempt_failed_is_retried_after_the_error_ttl() -> None:
    record = attempted("ok", last_outcome="error")
    assert freshness(record, T0 + timedelta(minutes=59), TTLs()).fresh
    assert not freshness(record, T0 + timedelta(hours=1), TTLs()).fresh
    assert not freshness(record, T0 + timedelta(days=29), TTLs()).fresh


def test_good_record_whose_latest_attempt_was_not_archived_uses_the_not_archived_ttl() -> None:
    record = attempted("ok", last_outcome="not_archived")
    assert freshness(record, T0 + timedelta(days=6), TTLs()).fresh
    assert not freshness(record, T0 + timedelta(days=7), TTLs()).fresh


def test_status_is_used_when_last_outcome_is_missing() -> None:
    record = attempted("not_archived", last_outcome=None)
    result = freshness(record, T0, TTLs())
    assert result.due_at == T0 + timedelta(days=7)


def test_fetched_at_is_used_when_last_attempt_at_is_missing() -> None:
    record = attempted("ok", at=None, fetched_at="2026-10-01T00:00:00Z")
    result = freshness(record, T0, TTLs())
    assert result.due_at == datetime(2026, 10, 31, tzinfo=UTC)
    assert not result.fresh


def test_last_attempt_at_wins_over_an_older_fetched_at() -> None:
    record = attempted("ok", at=T0_ISO, fetched_at="2020-01-01T00:00:00Z")
    assert freshness(record, T0 + timedelta(days=1), TTLs()).fresh


def test_record_never_attempted_is_stale() -> None:
    result = freshness(attempted("error", at=None, fetched_at=None), T0, TTLs())
    assert (result.fresh, result.reason, result.due_at) == (False, "never attempted", None)


@pytest.mark.parametrize("stamp", ["not a time", "2026-11-01 noon", "2026-11-01T12:00:00", ""])
def test_unparseable_or_naive_timestamp_makes_a_record_stale_and_says_so(stamp: str) -> None:
    result = freshness(attempted("ok", at=stamp), T0, TTLs())
    assert not result.fresh
    assert "unparseable" in result.reason and repr(stamp) in result.reason
    assert result.due_at is None


def test_timestamp_far_in_the_future_is_stale() -> None:
    future = to_iso(T0 + MAX_CLOCK_SKEW + timedelta(seconds=1))
    result = freshness(attempted("ok", at=future), T0, TTLs())
    assert not result.fresh and "future" in result.reason


def test_small_clock_skew_is_tolerated() -> None:
    slightly_ahead = to_iso(T0 + MAX_CLOCK_SKEW)
    assert freshness(attempted("ok", at=slightly_ahead), T0, TTLs()).fresh


def test_force_makes_a_fresh_record_stale_but_keeps_its_due_time() -> None:
    result = freshness(attempted("ok"), T0, TTLs(), force=True)
    assert (result.fresh, result.reason) == (False, "forced")
    assert result.due_at == T0 + timedelta(days=30)


def test_force_on_a_record_never_attempted_says_forced() -> None:
    result = freshness(attempted("error", at=None, fetched_at=None), T0, TTLs(), force=True)
    assert (result.fresh, result.reason, result.due_at) == (False, "forced", None)


def test_custom_ttls_are_honoured_and_zero_means_always_stale() -> None:
    record = attempted("ok", last_outcome="ok")
    assert not freshness(record, T0, TTLs(ok=0)).fresh
    assert freshness(record, T0 + timedelta(seconds=9), TTLs(ok=10)).fresh


def test_a_ttl_of_centuries_does_not_overflow() -> None:
    result = freshness(attempted("ok"), T0, TTLs(ok=1e15))
    assert result.fresh and result.due_at is not None


def test_now_in_another_time_zone_is_compared_correctly() -> None:
    record = attempted("error", last_outcome="error")
    plus_two = timezone(timedelta(hours=2))
    assert freshness(record, datetime(2026, 11, 1, 14, 59, tzinfo=plus_two), TTLs()).fresh
    assert not freshness(record, datetime(2026, 11, 1, 15, 0, tzinfo=plus_two), TTLs()).fresh


# ---------------------------------------------------------------------------------------------
# Merge: every (old status or None) x (new status)

# Where the capture fields of the stored record come from. Written out in full (not derived
# from the implementation's rule) so the table is the specification.
CAPTURE_SOURCE: dict[Status | None, dict[Status, str]] = {
    None: {
        "ok": "new",
        "not_archived": "new",
        "archived_error": "new",
        "blocked": "new",
        "error": "new",
    },
    "ok": {
        "ok": "new",
        "not_archived": "old",
        "archived_error": "old",
        "blocked": "old",
        "error": "old",
    },
    "not_archived": {
        "ok": "new",
        "not_archived": "new",
        "archived_error": "new",
        "blocked": "new",
        "error": "old",
    },
    "archived_error": {
        "ok": "new",
        "not_archived": "new",
        "archived_error": "new",
        "blocked": "new",
        "error": "old",
    },
    "blocked": {
        "ok": "new",
        "not_archived": "new",
        "archived_error": "new",
        "blocked": "new",
        "error": "old",
    },
    "error": {
        "ok": "new",
        "not_archived": "new",
        "archived_error": "new",
        "blocked": "new",
        "error": "old",
    },
}

CASES = [(old, new) for old in CAPTURE_SOURCE for new in ALL_STATUSES]


def test_merge_table_covers_every_combination() -> None:
    assert len(CASES) == 6 * 5
    assert set(CAPTURE_SOURCE) == {None, *STATUSES}


@pytest.mark.parametrize(("old_status", "new_status"), CASES)
def test_merge_follows_the_rule_for_every_status_combination(
    old_status: Status | None, new_status: Status
) -> None:
    old = None if old_status is None else make(old_status, "old", attempts=4)
    new = make(new_status, "new", last_attempt_at="2026-11-02T00:00:00Z")
    result = merge(old, new)
    stored = result.record
    source = CAPTURE_SOURCE[old_status][new_status]
    expected_capture = new if source == "new" else old
    assert expected_capture is not None

    # Capture fields move as one block, from exactly one side.
    for name in CAPTURE_FIELDS:
        assert getattr(stored, name) == getattr(expected_capture, name), name
    assert result.replaced_capture is (source == "new")

    # Identity never comes from the attempt once a record exists.
    identity_source = old if old is not None else new
    for name in IDENTITY_FIELDS:
        assert getattr(stored, name) == getattr(identity_source, name), name

    # Attempt fields always describe this attempt.
    assert stored.attempts == (5 if old is not None else 1)
    assert stored.last_outcome == new_status
    assert stored.last_attempt_at == "2026-11-02T00:00:00Z"

    if new_status == "ok":
        assert stored.error is None
    elif new_status in FINAL_NON_OK and old_status == "ok":
        assert stored.error is not None
        assert stored.error.startswith(f"latest attempt: {new_status}")
        assert "archived status 404" in stored.error and "error new" in stored.error
    else:
        assert stored.error == "error new"

    # What is stored is always a valid record of the current schema.
    assert Record.from_json(stored.to_json()) == stored


@pytest.mark.parametrize("new_status", FINAL_NON_OK)
def test_final_non_ok_attempt_over_a_good_record_keeps_status_ok(new_status: Status) -> None:
    old = make("ok", "old")
    new = make(new_status, "new", error=None, archived_status=None, capture_timestamp=None)
    stored = merge(old, new).record
    assert stored.status == "ok" and stored.preview == "preview old"
    assert stored.error == f"latest attempt: {new_status}; kept the earlier good capture"


def test_transient_error_keeps_a_not_archived_result() -> None:
    old = make("not_archived", "old")
    stored = merge(old, make("error", "new", error="timeout")).record
    assert stored.status == "not_archived" and stored.error == "timeout"
    assert stored.last_outcome == "error"


def test_first_attempt_that_failed_is_stored_with_status_error() -> None:
    result = merge(None, make("error", "new", error="connection reset"))
    assert result.record.status == "error"
    assert result.record.error == "connection reset"
    assert result.replaced_capture


def test_transient_error_without_detail_still_sets_an_error() -> None:
    assert merge(None, make("error", "new", error=None)).record.error == "latest attempt: error"
    old = make("ok", "old", error=None)
    assert merge(old, make("error", "new", error=None)).record.error == "latest attempt: error"


def test_ok_attempt_clears_an_earlier_error() -> None:
    old = make("ok", "old", error="timeout", last_outcome="error")
    stored = merge(old, make("ok", "new")).record
    assert stored.error is None and stored.last_outcome == "ok"


def test_first_record_attempts_is_one_whatever_the_caller_set() -> None:
    assert merge(None, make("ok", "new", attempts=0)).record.attempts == 1
    assert merge(None, make("ok", "new", attempts=7)).record.attempts == 1


def test_first_record_gets_created_at_from_its_attempt_when_missing() -> None:
    new = make("ok", "new", created_at=None, last_attempt_at="2026-11-02T00:00:00Z")
    assert merge(None, new).record.created_at == "2026-11-02T00:00:00Z"


def test_old_record_without_created_at_keeps_none_rather_than_reminting() -> None:
    old = make("ok", "old", created_at=None)
    assert merge(old, make("ok", "new")).record.created_at is None


def test_merge_refuses_records_of_different_resources() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        merge(make("ok", "old"), make("ok", "new", resource_id="a6ec2c2fe408fea3"))


def test_merge_result_does_not_share_the_redirect_list_with_its_inputs() -> None:
    old = make("ok", "old")
    new = make("ok", "new")
    merge(old, new).record.redirects.append("x")
    merge(old, make("error", "new")).record.redirects.append("y")
    assert new.redirects == [f"{URL}/new/r1"] and old.redirects == [f"{URL}/old/r1"]


def test_merge_result_is_a_frozen_pair() -> None:
    result = merge(None, make("ok", "new"))
    assert isinstance(result, MergeResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.replaced_capture = False  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Merge: properties

_opt_text = st.none() | st.text(max_size=12)
#: Drawing a dozen records takes a second on a loaded 2-core machine, which trips
#: hypothesis's too_slow check: that measures the machine's load, not the code under test.
_LOADED_MACHINE = [HealthCheck.too_slow]
_stamps = st.none() | st.sampled_from([T0_ISO, "2026-11-02T00:00:00Z", "garbage"])


@st.composite
def records(draw: st.DrawFn, *, stable_id: str | None = None) -> Record:
    status: Status = draw(st.sampled_from(ALL_STATUSES))
    return Record(
        resource_id=RID,
        stable_id=stable_id or draw(st.from_regex(r"sid_[A-Za-z0-9]{10}", fullmatch=True)),
        url=draw(st.sampled_from([URL, f"{URL}/a", f"{URL}/b"])),
        status=status,
        archived_status=draw(st.none() | st.integers(100, 599)),
        capture_timestamp=draw(st.none() | st.from_regex(r"20[0-9]{12}", fullmatch=True)),
        archive_url=draw(_opt_text),
        raw_url=draw(_opt_text),
        fetched_at=draw(_stamps),
        content_type=draw(_opt_text),
        content_length=draw(st.none() | st.integers(0, 10**9)),
        title=draw(_opt_text),
        preview=draw(st.text(max_size=30)),
        text_length=draw(st.integers(0, 10**6)),
        redirects=draw(st.lists(st.text(max_size=10), max_size=3)),
        error=draw(_opt_text),
        last_attempt_at=draw(_stamps),
        attempts=draw(st.integers(0, 1000)),
        last_outcome=draw(st.none() | st.sampled_from(ALL_STATUSES)),
        sha256=draw(_opt_text),
        body_truncated=draw(st.booleans()),
        created_at=draw(_stamps),
    )


def _capture(record: Record) -> dict[str, Any]:
    return {name: getattr(record, name) for name in CAPTURE_FIELDS}


@settings(max_examples=300, suppress_health_check=_LOADED_MACHINE)
@given(old=records(), new=records())
def test_merge_never_changes_identity_and_counts_every_attempt(old: Record, new: Record) -> None:
    stored = merge(old, new).record
    for name in IDENTITY_FIELDS:
        assert getattr(stored, name) == getattr(old, name)
    assert stored.attempts == old.attempts + 1
    assert stored.last_outcome == new.status
    assert Record.from_json(stored.to_json()) == stored


@settings(max_examples=300, suppress_health_check=_LOADED_MACHINE)
@given(old=records(), new=records())
def test_a_good_capture_is_never_lost_to_a_non_ok_attempt(old: Record, new: Record) -> None:
    result = merge(old, new)
    if old.status == "ok" and new.status != "ok":
        assert result.record.status == "ok"
        assert _capture(result.record) == _capture(old)
        assert not result.replaced_capture
        assert result.record.error  # the failed attempt is visible


@settings(max_examples=100, suppress_health_check=_LOADED_MACHINE)
@given(first=records(), attempts=st.lists(records(), min_size=1, max_size=12))
def test_a_sequence_of_attempts_keeps_the_first_stable_id_and_the_last_good_capture(
    first: Record, attempts: list[Record]
) -> None:
    stored = merge(None, first).record
    last_good = first if first.status == "ok" else None
    for attempt in attempts:
        stored = merge(stored, attempt).record
        if attempt.status == "ok":
            last_good = attempt
        assert stored.stable_id == first.stable_id
        assert stored.resource_id == first.resource_id
        if last_good is not None:
            assert stored.status == "ok"
            assert _capture(stored) == _capture(last_good)
    assert stored.attempts == 1 + len(attempts)


# ---------------------------------------------------------------------------------------------
# Merge: a refresh that confirmed the stored capture (one request, no body)

CONFIRMED_AT = "2026-12-07T03:00:00Z"


def confirming(old: Record, **overrides: Any) -> Record:
    """The attempt the engine stores when the archive named ``old``'s capture as newest."""
    fields: dict[str, Any] = {
        "resource_id": old.resource_id, "stable_id": old.stable_id, "url": old.url,
        "status": "ok", "capture_timestamp": old.capture_timestamp,
        "original_url": old.original_url, "last_attempt_at": CONFIRMED_AT,
        "last_confirmed_at": CONFIRMED_AT, "attempts": 1, "last_outcome": "ok",
    }
    fields.update(overrides)
    return Record(**fields)


def test_is_confirmation_needs_ok_a_confirmation_time_and_no_fetch() -> None:
    old = make("ok", "old")
    assert is_confirmation(confirming(old))
    assert not is_confirmation(confirming(old, fetched_at=T0_ISO))
    assert not is_confirmation(confirming(old, last_confirmed_at=None))
    assert not is_confirmation(confirming(old, status="error"))


def test_a_confirmation_keeps_every_capture_field_and_sets_only_its_time() -> None:
    old = make("ok", "old", error="latest attempt: error", last_outcome="error")
    result = merge(old, confirming(
        old, redirects=["https://web.archive.org/web/2026id_/walked"]))
    assert not result.replaced_capture
    stored = result.record
    for name in CAPTURE_FIELDS:
        if name not in ("last_confirmed_at", "redirects"):
            assert getattr(stored, name) == getattr(old, name), name
    assert stored.last_confirmed_at == CONFIRMED_AT
    assert stored.redirects == ["https://web.archive.org/web/2026id_/walked"]
    assert stored.fetched_at == old.fetched_at  # no bytes were fetched
    assert stored.last_attempt_at == CONFIRMED_AT and stored.attempts == 2
    assert stored.error is None and stored.last_outcome == "ok"


@pytest.mark.parametrize("change", [
    {"capture_timestamp": "20991231000000"},
    {"original_url": "https://elsewhere.example/"},
])
def test_a_confirmation_of_another_capture_only_counts_the_attempt(
    change: dict[str, Any]
) -> None:
    old = make("ok", "old")
    stored = merge(old, confirming(old, redirects=["elsewhere"], **change)).record
    assert _capture(stored) == _capture(old)
    assert stored.attempts == 2 and stored.last_attempt_at == CONFIRMED_AT
    assert stored.last_outcome == old.last_outcome and stored.error == old.error


@pytest.mark.parametrize("status", (*FINAL_NON_OK, "error"))
def test_a_confirmation_over_a_record_that_is_not_good_never_makes_it_good(
    status: Status
) -> None:
    old = make(status, "old")
    stored = merge(old, confirming(make("ok", "old"))).record
    assert stored.status == status and stored.last_confirmed_at is None
    assert _capture(stored) == _capture(old)


def test_a_confirmation_without_a_record_becomes_a_transient_error_with_no_capture() -> None:
    result = merge(None, confirming(make("ok", "old")))
    stored = result.record
    assert stored.status == "error" and stored.last_outcome == "error" and stored.error
    assert stored.capture_timestamp is None and stored.last_confirmed_at is None
    assert stored.preview == "" and stored.attempts == 1


def test_a_full_fetch_after_a_confirmation_clears_its_time() -> None:
    old = merge(make("ok", "old"), confirming(make("ok", "old"))).record
    assert old.last_confirmed_at == CONFIRMED_AT
    stored = merge(old, make("ok", "new")).record
    assert stored.last_confirmed_at is None and stored.preview == "preview new"


def test_holds_capture_compares_time_and_original() -> None:
    old = make("ok", "old")
    assert holds_capture(old, old.capture_timestamp, old.original_url)
    assert not holds_capture(old, None, old.original_url)
    assert not holds_capture(old, old.capture_timestamp, "https://x.example/")
    assert not holds_capture(make("archived_error", "old"), "20260103000000",
                             f"{URL}/old/orig")
