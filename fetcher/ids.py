"""Identifiers and input URLs: resource IDs, stable IDs, archive URLs given as input.

The ID scheme is the wiki's (see the README): a resource ID is the first 16 hex characters of
SHA-256 over the URL exactly as given; a stable ID is ``sid_`` plus 10 random alphanumerics,
minted once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from snapcache.cache.times import parse_timestamp14, to_timestamp14, utc_now

from .errors import InputError

_ALPHABET: Final = string.ascii_letters + string.digits
_SID_RE: Final = re.compile(r"^(?:sid_)?[A-Za-z0-9]{10}$")
#: Longest URL accepted; browsers and the archive stop well before this.
MAX_URL_LENGTH: Final = 8192
# /web/<ts><modifier>/<original>: ts is 0-14 digits, modifier is a flag like id_ or a
# calendar star. The original may lack a scheme (the wiki cites such a calendar URL).
_ARCHIVE_PATH_RE: Final = re.compile(
    r"^/web/(?P<ts>\d{1,14})?(?P<mod>\*|[a-z]{2}_)?/(?P<original>.+)$", re.DOTALL
)
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE_RE: Final = re.compile(r"\s")
_KNOWN_ARCHIVE_HOSTS: Final = frozenset({"web.archive.org", "wayback.archive.org"})
# ASCII digits only: str.isdigit() would let other scripts' digits through.
_DIGITS_RE: Final = re.compile(r"[0-9]+")
#: The forms :func:`parse_at` accepts, as its error messages name them.
AT_FORMS: Final = (
    "YYYY[MM[DD[hhmmss]]] digits or an ISO 8601 date or date-time"
    " (2024-01-01, 2024-01-01T12:00:00Z)"
)


def resource_id(url: str) -> str:
    """First 16 hex characters of SHA-256 over the URL as given (whitespace stripped)."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:16]


def mint_stable_id() -> str:
    """A new stable ID: ``sid_`` plus 10 characters from [A-Za-z0-9], from ``secrets``."""
    return "sid_" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def is_stable_id(text: str) -> bool:
    """True for ``sid_`` IDs and the bare 10-character IDs of older wiki data."""
    return bool(_SID_RE.match(text))


def check_url(url: str) -> str:
    """Return the URL stripped of surrounding whitespace, or raise :class:`InputError`.

    Accepts absolute http(s) URLs with a host, no control characters, at most 8 KB.
    """
    stripped = url.strip()
    if not stripped:
        raise InputError("empty URL")
    if len(stripped.encode("utf-8", "surrogatepass")) > MAX_URL_LENGTH:
        raise InputError(f"URL longer than {MAX_URL_LENGTH} bytes")
    if _CONTROL_RE.search(stripped):
        raise InputError("URL contains control characters")
    if _SPACE_RE.search(stripped):
        raise InputError("URL contains whitespace")
    try:
        parts = urlsplit(stripped)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InputError(f"unparsable URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"not an http(s) URL (scheme {parts.scheme or 'missing'!r})")
    if not parts.hostname:
        raise InputError("URL has no host")
    return stripped


def normalize_timestamp(value: str) -> str:
    """Validate a 4-14 digit UTC timestamp (YYYY[MM[DD[hh[mm[ss]]]]]) and pad it to 14.

    Missing parts become the start of the period (month and day 01, time 00). Raises
    :class:`InputError` for anything that is not a real date and time.
    """
    text = value.strip()
    if not text.isdigit() or not 4 <= len(text) <= 14 or len(text) % 2:
        raise InputError(f"timestamp {value!r}: expected YYYYMMDD[hhmmss] digits")
    padded = text + "0101000000"[len(text) - 4 :] if len(text) < 14 else text
    try:
        parse_timestamp14(padded)
    except ValueError as exc:
        raise InputError(f"timestamp {value!r} is not a valid date and time") from exc
    return padded


def parse_at(value: str) -> str:
    """A target time as 14 UTC digits, from the forms people type.

    Archive digits, ``YYYY[MM[DD[hh[mm[ss]]]]]``, go through :func:`normalize_timestamp`
    (padded to the start of the period). Anything else must be an ISO 8601 date or date and
    time (``2024-01-01``, ``2024-01-01T12:30``, ``2024-01-01T12:30:00+02:00``, ``...Z``),
    converted to UTC; a date and time without a zone is taken as UTC, the zone every time
    in snapcache is in. Raises :class:`InputError` naming the accepted forms.
    """
    text = value.strip()
    if _DIGITS_RE.fullmatch(text):
        return normalize_timestamp(text)
    try:
        moment = datetime.fromisoformat(text)
        if moment.utcoffset() is None:
            moment = moment.replace(tzinfo=UTC)
        # A zone offset can push year 1 or 9999 out of range: that is no target either.
        return to_timestamp14(moment.astimezone(UTC))
    except (ValueError, OverflowError):
        raise InputError(f"{value!r} is not a time: expected {AT_FORMS}") from None


def timestamp_now() -> str:
    """The current UTC time as a 14-digit archive timestamp."""
    return to_timestamp14(utc_now())


@dataclass(frozen=True, slots=True)
class Target:
    """What to resolve for one input URL."""

    given: str
    """The URL as given (stripped): its hash is the resource ID."""
    original: str
    """The URL to look up in the archive."""
    at: str | None
    """A 14-digit target time taken from an archive URL, if any."""


def parse_target(
    url: str, archive_hosts: frozenset[str] = frozenset(), *, checked: bool = False
) -> Target:
    """Understand an input URL, including archive URLs such as
    ``https://web.archive.org/web/20221020000000*/ftxfuturefund.org``.

    For an archive URL the original URL and the target time come from its path; a calendar
    star (``*``) or a mode flag (``id_``) is dropped. Raises :class:`InputError`.
    ``checked`` skips re-validating a URL that :func:`check_url` already returned.
    """
    given = url if checked else check_url(url)
    parts = urlsplit(given)
    host = (parts.hostname or "").lower()
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if host in _KNOWN_ARCHIVE_HOSTS or netloc in archive_hosts:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        match = _ARCHIVE_PATH_RE.match(path)
        if match:
            original = match.group("original")
            if "://" not in original[:12]:
                # A scheme-less original (the calendar form): the archive folds http and
                # https together when matching, so http is as good as any.
                original = "http://" + original.lstrip("/")
            original = check_url(original)
            ts = match.group("ts")
            at = normalize_timestamp(ts) if ts and len(ts) >= 4 and len(ts) % 2 == 0 else None
            return Target(given=given, original=original, at=at)
    return Target(given=given, original=given, at=None)
