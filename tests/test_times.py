"""Tests of snapcache.cache.times: the clock, ISO 8601 and 14-digit archive timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from snapcache.cache import (
    parse_iso,
    parse_timestamp14,
    to_iso,
    to_timestamp14,
    utc_now,
    utc_now_iso,
)
from snapcache.cache.times import require_aware

MOMENT = datetime(2026, 11, 29, 11, 27, 55, tzinfo=UTC)
PLUS_ONE = timezone(timedelta(hours=1))

# Whole-second UTC moments from year 1000 on (strftime pads no earlier year on Linux, and the
# project's formats were written with strftime: these are the years where outputs must be
# byte-identical to it).
utc_moments = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(microsecond=0, tzinfo=UTC))
# Any aware moment, any offset, with microseconds, that stays within datetime's range in UTC.
aware_moments = st.datetimes(
    min_value=datetime(1000, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [UTC, PLUS_ONE, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45))]
    ),
)


# ---------------------------------------------------------------------------------------------
# The clock


def test_utc_now_is_aware_utc_and_current() -> None:
    now = utc_now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_utc_now_iso_is_whole_seconds_with_z_and_round_trips() -> None:
    text = utc_now_iso()
    assert text.endswith("Z") and len(text) == len("2026-11-29T11:27:55Z")
    assert abs(parse_iso(text) - datetime.now(UTC)) < timedelta(seconds=5)
    assert to_iso(parse_iso(text)) == text


# ---------------------------------------------------------------------------------------------
# ISO 8601


def test_to_iso_formats_utc_whole_seconds() -> None:
    moment = datetime(2026, 11, 29, 12, 27, 55, 987654, tzinfo=PLUS_ONE)
    assert to_iso(moment) == "2026-11-29T11:27:55Z"  # converted, fraction dropped (not rounded)


@given(aware_moments)
def test_to_iso_equals_the_strftime_format_it_replaces(moment: datetime) -> None:
    # fetcher/engine.py, save.py and runner.py format with this strftime pattern.
    assert to_iso(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@given(utc_moments)
def test_iso_round_trips(moment: datetime) -> None:
    assert parse_iso(to_iso(moment)) == moment
    assert to_iso(parse_iso(to_iso(moment))) == to_iso(moment)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-29T11:27:55Z",
        "2026-11-29T11:27:55+00:00",
        "2026-11-29T12:27:55+01:00",
        "2026-11-29T06:27:55-05:00",
        " 2026-11-29T11:27:55Z\n",
        "2026-11-29T11:27:55.25Z",
    ],
)
def test_parse_iso_returns_aware_utc(text: str) -> None:
    parsed = parse_iso(text)
    assert parsed.replace(microsecond=0) == MOMENT
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-29T11:27:55",  # no zone: refused, not guessed
        "2026-11-29",
        "yesterday",
        "",
        "   ",
        "20261129112755",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
    ],
)
def test_parse_iso_rejects_naive_and_malformed_timestamps(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso(text)


@pytest.mark.parametrize("value", [12345, None, b"2026-11-29T11:27:55Z", MOMENT])
def test_parse_iso_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_iso(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# 14-digit archive timestamps


def test_to_timestamp14_formats_utc() -> None:
    moment = datetime(2026, 4, 8, 20, 43, 23, 999999, tzinfo=PLUS_ONE)
    assert to_timestamp14(moment) == "20260408194323"


def test_timestamp14_pads_early_years_to_14_digits() -> None:
    early = datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert to_timestamp14(early) == "09990102030405"
    assert parse_timestamp14("09990102030405") == early


@given(aware_moments)
def test_to_timestamp14_equals_the_strftime_format_it_replaces(moment: datetime) -> None:
    # fetcher/ids.py, capture.py and save.py format with this strftime pattern.
    assert to_timestamp14(moment) == moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


@given(utc_moments)
def test_timestamp14_round_trips(moment: datetime) -> None:
    text = to_timestamp14(moment)
    assert len(text) == 14 and text.isdigit()
    assert parse_timestamp14(text) == moment
    assert to_timestamp14(parse_timestamp14(text)) == text


def test_parse_timestamp14_returns_aware_utc() -> None:
    parsed = parse_timestamp14("20261129112755")
    assert parsed == MOMENT and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026",  # the short forms users type are padded by snapcache.ids, not here
        "2026112911275",  # 13 digits: strptime would read it as 2026-11-29 11:27:05
        "202611291127550",
        " 20261129112755",
        "20261129112755\n",
        "20260001000000",  # month 00: the CDX API returns such rows
        "20261300000000",
        "20260230000000",
        "20261129246000",
        "00000101000000",
        "2026-11-29T11:2",
        "".join(chr(0xFF10 + int(c)) for c in "20261129112755"),  # full-width: isdigit() is true
    ],
)
def test_parse_timestamp14_rejects_anything_but_14_digits_of_a_real_time(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp14(text)


@pytest.mark.parametrize("value", [20261129112755, None, b"20261129112755"])
def test_parse_timestamp14_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_timestamp14(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Naive datetimes and non-datetimes are refused, never guessed


@pytest.mark.parametrize("convert", [to_iso, to_timestamp14])
def test_naive_datetimes_are_refused(convert: Callable[[datetime], str]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        convert(datetime(2026, 11, 29, 11, 27, 55))


@pytest.mark.parametrize("convert", [to_iso, to_timestamp14])
@pytest.mark.parametrize("value", ["2026-11-29T11:27:55Z", 1764415675, None])
def test_non_datetimes_are_a_type_error(convert: Callable[[datetime], str], value: object) -> None:
    with pytest.raises(TypeError, match="must be a datetime"):
        convert(value)  # type: ignore[arg-type]


def test_aware_datetimes_in_any_zone_give_the_same_text() -> None:
    same = MOMENT.astimezone(timezone(timedelta(hours=-9, minutes=-30)))
    assert to_iso(same) == to_iso(MOMENT) == "2026-11-29T11:27:55Z"
    assert to_timestamp14(same) == to_timestamp14(MOMENT) == "20261129112755"


def test_require_aware_names_the_argument() -> None:
    require_aware(MOMENT, "now")  # no error for an aware datetime
    with pytest.raises(ValueError, match=r"^now must be timezone-aware"):
        require_aware(datetime(2026, 1, 1), "now")
    with pytest.raises(TypeError, match=r"^now must be a datetime"):
        require_aware("2026", "now")  # type: ignore[arg-type]
