"""Every byte an archive returns is untrusted: the strict readers and cleaners for it.

Pure functions, linear in their input (no regular expression here can backtrack
super-linearly, and every input is capped before it is scanned):

* :func:`parse_link_header`: a ``Link`` header, scanned once, capped in length and entries;
* :func:`strict_memento_timestamp`: a ``Memento-Datetime``, as an HTTP date between 1991 and
  tomorrow, or :class:`~snapcache.errors.ArchiveProtocolError`;
* :func:`capture_time_ok`: the same bounds for a 14-digit timestamp (CDX rows);
* :func:`url_key` / :func:`same_resource`: the archive's own URL equivalence, to tell a
  capture of the cited URL from a capture of another one;
* :func:`clean_text`: control characters out, length capped, before anything an archive
  said is stored or printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from snapcache.cache.times import parse_timestamp14, to_timestamp14, utc_now

from .errors import ArchiveProtocolError

#: Exceptions a parser may raise on hostile bytes (a date out of range, JSON nested too
#: deep, a bad escape, an unknown charset). The archive layer turns each into an
#: :class:`~snapcache.errors.ArchiveProtocolError` at its one parsing boundary.
PARSE_ERRORS: Final = (ValueError, OverflowError, RecursionError, UnicodeError, LookupError,
                       TypeError)

# --- text ---------------------------------------------------------------------------------

#: Caps for what an archive says, by kind: URLs (the input limit, 8 KB, and some room for a
#: replay prefix), messages and notes, short header values.
URL_CHARS: Final = 8192 + 512
NOTE_CHARS: Final = 2000
HEADER_CHARS: Final = 200
_UNSAFE_RE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufeff\ufffe\uffff]"
)


def clean_text(value: str, limit: int = NOTE_CHARS) -> str:
    """``value`` without control characters (C0, DEL, C1: escape sequences lose their
    introducer and become inert text), bidi overrides, lone surrogates and noncharacters,
    cut at ``limit`` characters (``...`` marks the cut)."""
    if len(value) > limit * 2:
        value = value[: limit * 2]  # what is cut anyway need not be scanned
    value = _UNSAFE_RE.sub("", value)
    return value if len(value) <= limit else value[: max(0, limit - 3)] + "..."


def clean_optional(value: str | None, limit: int = NOTE_CHARS) -> str | None:
    """:func:`clean_text` of a value that may be None."""
    return None if value is None else clean_text(value, limit)


# --- Link headers -------------------------------------------------------------------------

#: Only this much of a Link header is read (the archive's name a handful of mementos; a
#: 100 KB header is an attack or a bug), and at most this many entries.
LINK_MAX_CHARS: Final = 65536
LINK_MAX_ENTRIES: Final = 64


@dataclass(frozen=True, slots=True)
class LinkEntry:
    """One ``<target>; rel="..."; datetime="..."`` entry of a Link header."""

    target: str
    rels: tuple[str, ...]
    """The ``rel`` values, lower case, split on whitespace."""
    datetime: str | None = None


def parse_link_header(
    value: str | None, *, max_chars: int = LINK_MAX_CHARS, max_entries: int = LINK_MAX_ENTRIES
) -> list[LinkEntry]:
    """The entries of a Link header (RFC 8288), read in one pass over at most ``max_chars``
    characters: each character is looked at a bounded number of times, so no header, however
    crafted (90 KB of ``<``), costs more than a few milliseconds. Entries without a target,
    and an entry cut by the length cap, are dropped."""
    if not value:
        return []
    text = value[:max_chars]
    cut = len(value) > max_chars
    out: list[LinkEntry] = []
    n = len(text)
    i = 0
    while i < n and len(out) < max_entries:
        lt = text.find("<", i)
        if lt < 0:
            break
        gt = text.find(">", lt + 1)
        if gt < 0:
            break
        target = text[lt + 1:gt].strip()
        params, i, complete = _link_params(text, gt + 1)
        if cut and not complete:
            break  # the cap cut this entry: what it says is not known
        rel = params.get("rel", "")
        out.append(LinkEntry(target, tuple(rel.lower().split()), params.get("datetime")))
    return out


def _link_params(text: str, start: int) -> tuple[dict[str, str], int, bool]:
    """The ``;``-separated parameters after a target, up to the ``,`` that ends the entry
    (outside quotes). Returns them, where the next entry starts, and whether the entry
    ended before the text did (else it may have been cut by the length cap)."""
    params: dict[str, str] = {}
    segment: list[str] = []
    blank = True  # the segment holds only whitespace so far
    quoted = False
    i = start
    n = len(text)

    def close() -> None:
        name, _, val = "".join(segment).partition("=")
        name = name.strip().lower()
        if name and name not in params:
            params[name] = val.strip().strip('"').strip()
        segment.clear()

    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\" and i + 1 < n:
                segment.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                quoted = False
            segment.append(ch)
        elif ch == '"':
            quoted = True
            blank = False
            segment.append(ch)
        elif ch == ";":
            close()
            blank = True
        elif ch == ",":
            close()
            return params, i + 1, True
        elif ch == "<" and blank:
            # A new target where a parameter should start: the entry had no comma.
            close()
            return params, i, True
        else:
            segment.append(ch)
            blank = blank and ch.isspace()
        i += 1
    close()
    return params, n, False  # ran to the end of the text: complete only if nothing was cut


# --- Memento-Datetime ---------------------------------------------------------------------

#: The web began in 1991: no capture is older. None is newer than now (plus a day of clock
#: slack between us and the archive).
EARLIEST_YEAR: Final = 1991
FUTURE_SLACK: Final = timedelta(days=1)
_MONTHS: Final = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                  "dec")
# RFC 7089: Memento-Datetime is an HTTP-date (IMF-fixdate, in GMT). A numeric offset of at
# most 14 hours is accepted too (some archives send +0000). One anchored pattern without
# nested quantifiers: linear.
_HTTP_DATE_RE: Final = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun),[ \t]*)?([0-9]{1,2})[ \t]+([a-z]{3})[ \t]+"
    r"([0-9]{4})[ \t]+([0-9]{2}):([0-9]{2}):([0-9]{2})[ \t]+(gmt|utc|ut|z|[+-][0-9]{4})",
    re.IGNORECASE,
)


def strict_memento_timestamp(value: str, now: datetime | None = None) -> str:
    """A ``Memento-Datetime`` as a 14-digit UTC timestamp. Raises
    :class:`~snapcache.errors.ArchiveProtocolError` for anything but an HTTP date between
    1991 and tomorrow (year 0999 once became a 13-digit timestamp, 0001 became 2001, and
    9999 with an odd offset crashed)."""
    shown = clean_text(value, 80)
    match = _HTTP_DATE_RE.fullmatch(value.strip()) if len(value) <= 100 else None
    if match is None:
        raise ArchiveProtocolError(f"Memento-Datetime is not an HTTP date: {shown!r}")
    day, month, year, hour, minute, second, zone = match.groups()
    if month.lower() not in _MONTHS:
        raise ArchiveProtocolError(f"Memento-Datetime has no such month: {shown!r}")
    offset = 0
    if zone[0] in "+-":
        hours, minutes = int(zone[1:3]), int(zone[3:5])
        if hours > 14 or minutes > 59:
            raise ArchiveProtocolError(f"Memento-Datetime has no such offset: {shown!r}")
        offset = (hours * 60 + minutes) * (1 if zone[0] == "+" else -1)
    if not EARLIEST_YEAR <= int(year) <= 9998:
        raise ArchiveProtocolError(
            f"Memento-Datetime is before {EARLIEST_YEAR} or in the future: {shown!r}")
    try:
        local = datetime(int(year), _MONTHS.index(month.lower()) + 1, int(day), int(hour),
                         int(minute), int(second), tzinfo=UTC)
        when = local - timedelta(minutes=offset)
    except (ValueError, OverflowError) as exc:
        raise ArchiveProtocolError(f"Memento-Datetime is no real time: {shown!r}") from exc
    if not capture_time_ok(when, now):
        raise ArchiveProtocolError(
            f"Memento-Datetime is before {EARLIEST_YEAR} or in the future: {shown!r}")
    return to_timestamp14(when)


def capture_time_ok(when: datetime | str, now: datetime | None = None) -> bool:
    """Whether a capture time (a datetime, or 14 digits) is possible: from 1991 to now plus
    a day."""
    if isinstance(when, str):
        if len(when) != 14 or not when.isdigit():
            return False
        try:
            when = parse_timestamp14(when)
        except ValueError:
            return False
    latest = (now or utc_now()) + FUTURE_SLACK
    return when.year >= EARLIEST_YEAR and when <= latest


# --- URL equivalence ----------------------------------------------------------------------

_WWW_RE: Final = re.compile(r"www[0-9]{0,3}\.")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def url_key(url: str) -> str | None:
    """The archive's key for ``url`` (as its SURT canonicalisation has it): the scheme, a
    leading ``www.``, a default port, a trailing slash, the fragment, the order of query
    parameters, letter case, percent-escapes and ``&amp;`` for ``&`` do not count. None for
    what is no http(s) URL with a host."""
    if len(url) > URL_CHARS:
        return None
    # The Internet Archive's Link headers carry originals HTML-escaped ("&amp;" between
    # query parameters, REC test_get_memento_raises_for_mementos_that_redirect_in_a_loop).
    url = url.replace("&amp;", "&")
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    host = host.lower()
    www = _WWW_RE.match(host)
    if www is not None and www.end() < len(host):
        host = host[www.end():]
    if port is not None and port not in _DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    path = unquote(parts.path).lower().rstrip("/")
    query = "&".join(
        f"{k}={v}" for k, v in sorted(parse_qsl(parts.query.lower(), keep_blank_values=True))
    )
    return f"{host}{path}?{query}" if query else f"{host}{path}"


def same_resource(a: str | None, b: str | None) -> bool:
    """Whether the archive would take ``a`` and ``b`` for the same URL (:func:`url_key`)."""
    if not a or not b:
        return False
    key = url_key(a)
    return key is not None and key == url_key(b)
