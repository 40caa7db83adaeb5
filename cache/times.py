"""Every time conversion snapcache needs, in one place: the clock, ISO 8601 and 14 digits.

Two text forms of a moment exist in the project, both always in UTC:

* ISO 8601 with whole seconds and a ``Z``, ``2026-11-29T11:27:55Z``: the ``*_at`` fields of
  records, history entries, run summaries and lock files;
* 14 digits, ``YYYYMMDDhhmmss``: the Wayback Machine's capture timestamps (``20260408194323``),
  as used in archive URLs, the CDX API and ``capture_timestamp``.

Every function takes and returns timezone-aware ``datetime`` values. A naive ``datetime`` is
refused rather than guessed: reading one as local time (what ``astimezone`` does) or as UTC
would shift a stored time by hours on some machines and could make a stale record look fresh.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "parse_iso",
    "parse_timestamp14",
    "require_aware",
    "to_iso",
    "to_timestamp14",
    "utc_now",
    "utc_now_iso",
]

# ASCII digits only: str.isdigit() would let other scripts' digits through.
_TIMESTAMP14_RE: Final = re.compile(r"[0-9]{14}")


def utc_now() -> datetime:
    """Return the current time as a tz-aware UTC ``datetime`` (microseconds kept)."""
    return datetime.now(UTC)


def utc_now_iso() -> str:
    """Return the current UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (whole seconds)."""
    return to_iso(utc_now())


def to_iso(moment: datetime) -> str:
    """Format a tz-aware ``datetime`` as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (whole seconds).

    Fractions of a second are dropped, not rounded. Raises ``TypeError`` for a non-datetime
    and ``ValueError`` for a naive one.
    """
    if type(moment) is not datetime or moment.tzinfo is not UTC:
        # Times in UTC already (every time snapcache computes) skip the checks and the
        # conversion: freshness formats one per URL planned.
        require_aware(moment, "moment")
        moment = moment.astimezone(UTC)
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp with a time zone into a tz-aware UTC ``datetime``.

    Accepts ``Z`` and numeric offsets (``+00:00``, and others, converted to UTC), with or
    without fractions of a second, and surrounding white space. Raises ``ValueError`` for
    anything else, including timestamps without a time zone: guessing the zone of a stored
    time could make a stale record look fresh.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string, not {type(text).__name__}")
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}") from exc
    if parsed.utcoffset() is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return parsed.astimezone(UTC)


def to_timestamp14(moment: datetime) -> str:
    """Format a tz-aware ``datetime`` as a 14-digit UTC archive timestamp, ``YYYYMMDDhhmmss``.

    Fractions of a second are dropped. Raises ``TypeError`` for a non-datetime and
    ``ValueError`` for a naive one.
    """
    require_aware(moment, "moment")
    d = moment.astimezone(UTC)
    # Formatted by hand so that years before 1000 still give 14 digits (strftime's %Y does
    # not pad them on every platform); for every other year this equals "%Y%m%d%H%M%S".
    return f"{d.year:04d}{d.month:02d}{d.day:02d}{d.hour:02d}{d.minute:02d}{d.second:02d}"


def parse_timestamp14(text: str) -> datetime:
    """Parse a 14-digit archive timestamp (``YYYYMMDDhhmmss``, UTC) into a tz-aware ``datetime``.

    Exactly 14 ASCII digits forming a real date and time; nothing else, not even surrounding
    white space (``strptime`` would accept some 13-digit strings and non-ASCII digits).
    Raises ``ValueError`` otherwise, e.g. for the month-00 rows the CDX API sometimes returns.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string, not {type(text).__name__}")
    if not _TIMESTAMP14_RE.fullmatch(text):
        raise ValueError(f"not a 14-digit timestamp: {text!r}")
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise ValueError(f"timestamp {text!r} is not a valid date and time") from exc


def require_aware(moment: datetime, name: str) -> None:
    """Refuse what is not a tz-aware ``datetime``, naming the argument ``name``.

    Raises ``TypeError`` for a non-datetime and ``ValueError`` for a naive one.
    """
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(moment).__name__}")
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {moment.isoformat()})")
