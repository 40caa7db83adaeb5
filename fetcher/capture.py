"""Pure decisions about captures: what a playback response means, where a redirect chain
leads, which CDX row to use. No sockets, no clocks, no disk: everything here is a function of
its arguments and is tested exhaustively in tests/test_capture.py.

The rules, with the evidence behind each (see wayback-pitfalls.md in the project's notes):

* A 3xx *without* ``Memento-Datetime`` is the archive pointing at the nearest capture; a
  3xx *with* it is a capture of a redirect (edgi wayback#14, #36, REC
  test_get_memento_follows_historical_redirects).
* Any status *with* ``Memento-Datetime`` is the archived status, even 429 or 5xx
  (edgi wayback#158, REC test_get_memento_works_on_archived_rate_limit_responses).
* The exclusion page is an HTTP 200 without ``Memento-Datetime`` (REC
  test_get_memento_raises_blocked_error); never-archived is a 404 without it.
* CDX rows repeat, include revisits with status ``-``, impossible timestamps (month 00) and
  junk originals (edgi wayback#40, REC bad_timestamp_cdx.txt, malformed_cdx.txt).

pywb (2.10, checked against a real server in tests/test_pywb.py) differs in four ways:

* An archived redirect is replayed with the archived ``Location``, which points at the live
  site (or is relative to the captured URL); :func:`pywb_redirect_replay` maps it back into
  the archive so the live host is never contacted.
* An inexact timestamp is answered with the nearest capture itself (200 with
  ``Memento-Datetime`` and ``Content-Location``), not a redirect; with ``redirect_to_exact``
  set it is a 307 without ``Memento-Datetime``, which reads as a nearest-capture redirect.
* A URL blocked by an access rule answers 451 without ``Memento-Datetime``.
* Its CDX answers JSON lines, one object per capture (:func:`parse_pywb_cdx`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final
from urllib.parse import urljoin, urlsplit

from snapcache.cache.records import Status
from snapcache.cache.times import parse_timestamp14, to_timestamp14

from .errors import InputError
from .ids import build_replay_url, safe_replay_target

# Statuses the archive itself answers with when it is struggling (EDGI retries these).
_TRANSIENT_STATUSES: Final = frozenset({408, 413, 421, 425, 500, 502, 503, 504, 507, 509, 520,
                                        521, 522, 523, 524, 598, 599})
_BLOCK_HEADER_MARKERS: Final = ("AccessControlException", "RobotAccessControl", "Blocked Site")
_BLOCK_BODY_MARKERS: Final = (b"URL has been excluded", b"blocked by robots", b"robots.txt")
_NOT_ARCHIVED_HEADER_MARKERS: Final = ("ResourceNotInArchive", "NotInArchive")
_TS_RE: Final = re.compile(r"^[0-9]{14}$")


class HopKind(Enum):
    """What one playback response is."""

    MEMENTO = "memento"
    """A capture: its HTTP status is the archived status."""
    ARCHIVED_REDIRECT = "archived_redirect"
    """A capture of a 3xx; Location points at the target's replay URL."""
    NEAREST_REDIRECT = "nearest_redirect"
    """The archive redirecting to the capture nearest the requested time."""
    NOT_ARCHIVED = "not_archived"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    """The archive's own 429 (no Memento-Datetime): pause the pool, retry later."""
    TRANSIENT = "transient"
    """5xx or similar from the archive itself: retry with backoff."""
    UNKNOWN = "unknown"
    """Not a capture and not a known archive answer (e.g. a view-mode page): never stored."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One classified playback response."""

    kind: HopKind
    status: int
    url: str
    """The URL that was requested."""
    timestamp: str | None = None
    """The capture's 14-digit time, from Memento-Datetime."""
    location: str | None = None
    """The absolute redirect target, for redirects."""
    original: str | None = None
    """The captured URL, from the Link rel="original" header."""
    reason: str = ""
    link: str | None = None
    """A capture's Link header: it names its neighbours (first, prev, next, last)."""


@dataclass(frozen=True, slots=True)
class Earlier:
    """What a capture's Link header says about the capture before it."""

    known: bool
    """False when the header names no mementos at all (nothing can be concluded)."""
    timestamp: str | None = None
    """The latest capture strictly before this one, if any."""
    url: str | None = None
    """Its replay URL, as the header gives it."""


def earlier_capture(link_header: str | None, current: str) -> Earlier:
    """The capture just before ``current`` (14 digits) according to a memento's Link header.

    The archive lists a capture's first, previous, next and last mementos with their
    datetimes (REC test_get_memento_with_path_based_redirects), so the previous capture can
    be replayed without a CDX query. ``Earlier(known=True)`` with no timestamp means the
    header shows that no earlier capture exists (this one is the first).
    """
    if not link_header:
        return Earlier(False)
    best: tuple[str, str] | None = None
    names_first = False
    for target, params in _LINK_RE.findall(link_header):
        rels = " ".join(re.findall(r'rel="?([^";]+)"?', params)).split()
        if "memento" not in rels:
            continue
        when = re.search(r'datetime="([^"]+)"', params)
        ts = memento_timestamp(when.group(1)) if when else None
        if ts is None:
            continue
        names_first = names_first or "first" in rels
        if ts < current and (best is None or ts > best[0]):
            best = (ts, str(target).strip())
    if best is not None:
        return Earlier(True, best[0], best[1])
    # Only a header that names the first memento proves there is nothing earlier; pywb,
    # for one, lists just the memento itself.
    return Earlier(names_first)


def header_map(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Fold raw header pairs into a lower-case dict; repeated headers are joined with ", "."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def memento_timestamp(value: str | None) -> str | None:
    """Convert a ``Memento-Datetime`` header (RFC 1123) to a 14-digit UTC timestamp."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return to_timestamp14(parsed)


_LINK_RE: Final = re.compile(r'<([^>]*)>\s*;([^<]*)')


def link_original(link_header: str | None) -> str | None:
    """The ``rel="original"`` target of a Link header, if any."""
    if not link_header:
        return None
    for target, params in _LINK_RE.findall(link_header):
        rels = re.findall(r'rel="?([^";]+)"?', params)
        if any("original" in rel.split() for rel in rels):
            return str(target).strip()
    return None


def classify_playback(
    status: int, headers: Mapping[str, str], body_head: bytes, url: str
) -> Hop:
    """Classify one playback response (headers lower-cased, as :func:`header_map` gives).

    ``body_head`` is the first few KB of the body; it is only read for responses without
    ``Memento-Datetime`` (the exclusion page is told apart by its text).
    """
    ts = memento_timestamp(headers.get("memento-datetime"))
    location = headers.get("location")
    try:
        absolute = urljoin(url, location.strip()) if location and location.strip() else None
    except ValueError:  # e.g. "http://[x": no URL at all, so no redirect to follow
        absolute = None
    original = link_original(headers.get("link"))
    if ts is not None:
        if 300 <= status < 400 and absolute:
            return Hop(HopKind.ARCHIVED_REDIRECT, status, url, ts, absolute, original,
                       link=headers.get("link"))
        return Hop(HopKind.MEMENTO, status, url, ts, None, original, link=headers.get("link"))
    runtime_error = headers.get("x-archive-wayback-runtime-error", "")
    if any(m in runtime_error for m in _BLOCK_HEADER_MARKERS):
        return Hop(HopKind.BLOCKED, status, url, reason=runtime_error)
    if any(m in runtime_error for m in _NOT_ARCHIVED_HEADER_MARKERS):
        return Hop(HopKind.NOT_ARCHIVED, status, url, reason=runtime_error)
    if 300 <= status < 400:
        if absolute:
            reason = headers.get("x-archive-redirect-reason", "")
            return Hop(HopKind.NEAREST_REDIRECT, status, url, None, absolute, reason=reason)
        return Hop(HopKind.UNKNOWN, status, url, reason=f"HTTP {status} without Location")
    if status == 451:
        # pywb's answer for a URL its access rules block (AccessException).
        return Hop(HopKind.BLOCKED, status, url, reason="blocked by the archive's access rules")
    if status == 429:
        return Hop(HopKind.RATE_LIMITED, status, url, reason="archive answered 429")
    if status in _TRANSIENT_STATUSES:
        return Hop(HopKind.TRANSIENT, status, url, reason=f"archive answered HTTP {status}")
    lowered = body_head.lower()
    if status in (200, 403) and any(m.lower() in lowered for m in _BLOCK_BODY_MARKERS):
        return Hop(HopKind.BLOCKED, status, url, reason="excluded from the archive")
    if status == 404:
        return Hop(HopKind.NOT_ARCHIVED, status, url, reason="the archive has no capture")
    return Hop(
        HopKind.UNKNOWN,
        status,
        url,
        reason=f"HTTP {status} without Memento-Datetime is not a capture",
    )


class WalkEnd(Enum):
    """How a walk along a playback redirect chain ended."""

    CAPTURE = "capture"
    """A memento was reached (its status may be anything)."""
    NOT_ARCHIVED = "not_archived"
    BLOCKED = "blocked"
    LOOP = "loop"
    TOO_MANY_HOPS = "too_many_hops"
    OFF_ARCHIVE = "off_archive"
    """A redirect pointed away from the configured archive hosts, or outside the archive's
    replay path; not followed (:attr:`Walk.refusal` says which)."""
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Walk:
    """A pure state machine for following a playback redirect chain.

    Feed it each classified hop with :meth:`step`; it answers the next URL to request, or
    ``None`` when the walk is over (then read :attr:`end` and :attr:`final`). Rate limits and
    transient errors are the I/O layer's business (it retries the same URL), so they never
    reach here.

    With ``replay_paths`` (the archive's replay prefix paths, ``/web/``), a redirect must
    also be a replay URL under one of them whose original is safe
    (:func:`~snapcache.ids.safe_replay_target`; plain dot segments in it are resolved): a
    Location holding ``/../save/`` or ``/%2e%2e/cdx/`` is refused, never followed.
    """

    start: str
    allowed_netlocs: frozenset[str]
    max_hops: int = 10
    visited: list[str] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    end: WalkEnd | None = None
    final: Hop | None = None
    refused: str | None = None
    replay_paths: tuple[str, ...] = ()
    refusal: str = "redirect to a non-archive host refused"
    """Why the walk ended :attr:`WalkEnd.OFF_ARCHIVE` (the refused URL is :attr:`refused`)."""

    def step(self, hop: Hop) -> str | None:
        """Record ``hop`` and return the next URL to request, or None when done."""
        self.hops.append(hop)
        self.visited.append(hop.url)
        self.final = hop
        if hop.kind is HopKind.MEMENTO:
            self.end = WalkEnd.CAPTURE
            return None
        if hop.kind is HopKind.NOT_ARCHIVED:
            self.end = WalkEnd.NOT_ARCHIVED
            return None
        if hop.kind is HopKind.BLOCKED:
            self.end = WalkEnd.BLOCKED
            return None
        if hop.kind not in (HopKind.ARCHIVED_REDIRECT, HopKind.NEAREST_REDIRECT):
            self.end = WalkEnd.UNKNOWN
            return None
        target = hop.location or ""
        if netloc_of(target) not in self.allowed_netlocs:
            self.end = WalkEnd.OFF_ARCHIVE
            self.refused = target
            return None
        if self.replay_paths:
            safe = safe_replay_target(target, self.replay_paths)
            if safe is None:
                self.end = WalkEnd.OFF_ARCHIVE
                self.refused = target
                self.refusal = "redirect outside the archive's replay path refused"
                return None
            target = safe
        if target in self.visited:
            self.end = WalkEnd.LOOP
            return None
        if len(self.hops) > self.max_hops:
            self.end = WalkEnd.TOO_MANY_HOPS
            return None
        return target

    @property
    def last_capture(self) -> Hop | None:
        """The last hop that was a capture (a memento or an archived redirect)."""
        for hop in reversed(self.hops):
            if hop.kind in (HopKind.MEMENTO, HopKind.ARCHIVED_REDIRECT):
                return hop
        return None

    @property
    def good(self) -> bool:
        """True when the walk reached a capture with a 2xx archived status."""
        return (
            self.end is WalkEnd.CAPTURE
            and self.final is not None
            and 200 <= self.final.status < 300
        )


def pywb_redirect_replay(
    location: str, original: str, timestamp: str, replay_prefix: str, replay_url: str
) -> str | None:
    """Where to follow a pywb archived redirect, inside the archive; None when the target
    is no URL a replay URL may hold (:func:`~snapcache.ids.build_replay_url` refuses it).

    pywb replays an archived 3xx with the archived ``Location``: the live target, absolute or
    relative to the captured URL ``original``. Following it would contact the live site, so
    the target is asked of the same archive at the redirect's own ``timestamp``
    (``{replay_prefix}{timestamp}id_/{target}``; the archive serves the nearest capture). A
    ``Location`` that already is a replay URL of this archive (``replay_prefix`` is
    ``{base}/{collection}/``) is kept.
    """
    location = location.strip()
    try:
        # Only an absolute or root-relative Location can name a replay URL: a bare relative
        # one ("next.html") is relative to the captured page, whatever it joins to here.
        if location.startswith("/") or urlsplit(location).scheme:
            in_archive = urljoin(replay_url, location)
            if in_archive.startswith(replay_prefix) and _REPLAY_TS_RE.match(
                in_archive[len(replay_prefix):]
            ):
                return in_archive  # the walk checks it like any redirect target
        target = urljoin(original, location)
        return build_replay_url(replay_prefix, timestamp, target)
    except (ValueError, InputError):  # InputError is a ValueError too; said for the reader
        return None


_REPLAY_TS_RE: Final = re.compile(r"[0-9]{1,14}(?:[a-z]{2}_)?/")


def netloc_of(url: str) -> str:
    """``host[:port]`` of a URL in lower case, the default port dropped ('' if unparsable)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{host}:{port}" if port is not None and port != default else host


# --- CDX ------------------------------------------------------------------------------

CDX_FIELDS: Final = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest",
                     "length")


@dataclass(frozen=True, slots=True)
class CdxRow:
    """One CDX row, defensively parsed. ``status``/``length`` are None for ``-``."""

    urlkey: str
    timestamp: str
    original: str
    mimetype: str
    status: int | None
    digest: str
    length: int | None


def valid_timestamp(ts: str) -> bool:
    """True for a 14-digit timestamp that is a real date (the CDX has month-00 rows)."""
    if not _TS_RE.match(ts):
        return False
    try:
        parse_timestamp14(ts)
    except ValueError:
        return False
    return True


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _row_from_values(names: Sequence[str], values: Sequence[object]) -> CdxRow | None:
    if len(values) != len(names) or not all(isinstance(v, str) for v in values):
        return None
    data = dict(zip(names, (str(v) for v in values), strict=True))
    if "timestamp" not in data or "original" not in data:
        return None
    return CdxRow(
        urlkey=data.get("urlkey", ""),
        timestamp=data["timestamp"],
        original=data["original"],
        mimetype=data.get("mimetype", ""),
        status=_int_or_none(data.get("statuscode", "-")),
        digest=data.get("digest", ""),
        length=_int_or_none(data.get("length", "-")),
    )


def parse_cdx(body: str, fields: Sequence[str] = CDX_FIELDS) -> list[CdxRow]:
    """Parse a CDX answer: JSON (header row first) or space-separated text.

    Malformed rows are skipped, not fatal. Truncated JSON (a cut connection) is salvaged row
    by row, so what arrived intact is still used.
    """
    text = body.strip()
    if not text:
        return []
    rows: list[list[object]] = []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
            rows = _salvage_json_rows(text)
        if isinstance(parsed, list):
            rows = [r for r in parsed if isinstance(r, list)]
        names: Sequence[str] = fields
        if rows and all(isinstance(v, str) for v in rows[0]) and "timestamp" in rows[0]:
            names = [str(v) for v in rows[0]]
            rows = rows[1:]
        out = [_row_from_values(names, r) for r in rows]
        return [r for r in out if r is not None]
    result = []
    for line in text.splitlines():
        row = _row_from_values(fields, line.split(" "))
        if row is not None:
            result.append(row)
    return result


def _salvage_json_rows(text: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for match in re.finditer(r"\[(\"(?:[^\"\\]|\\.)*\"(?:\s*,\s*\"(?:[^\"\\]|\\.)*\")*)\]", text):
        try:
            value = json.loads(f"[{match.group(1)}]")
        except ValueError:
            continue
        if isinstance(value, list):
            rows.append(value)
    return rows


#: pywb's CDX field names, mapped to the IA names :class:`CdxRow` uses.
_PYWB_FIELDS: Final = {"url": "original", "mime": "mimetype", "status": "statuscode"}


def parse_pywb_cdx(body: str) -> list[CdxRow]:
    """Parse a pywb CDX answer (``output=json``): one JSON object per line, with the keys
    ``urlkey``, ``timestamp``, ``url``, ``mime``, ``status``, ``digest``, ``length`` and
    more (``offset``, ``filename``, ``source``, ``access``, ``is_fuzzy``).

    Lines that are not JSON objects with string values are skipped (a cut connection loses
    only its last line). Rows whose ``access`` is not ``allow`` are dropped: pywb lists
    captures its access rules block (and refuses to replay them). A revisit's status is
    ``-`` as in the IA's CDX; a missing field reads as unknown.
    """
    rows = []
    for line in body.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if obj.get("access", "allow") != "allow":
            continue
        names = [_PYWB_FIELDS.get(str(k), str(k)) for k in obj]
        wanted = [(n, v) for n, v in zip(names, obj.values(), strict=True) if n in CDX_FIELDS]
        row = _row_from_values([n for n, _ in wanted], [v for _, v in wanted])
        if row is not None:
            rows.append(row)
    return rows


def plausible_original(url: str) -> bool:
    """False for the junk originals the CDX holds (``http://mailto:...``, ``data:``...)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return False
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        return False
    return "." in host or host == "localhost" or ":" in host


def _seconds(ts: str) -> float:
    return parse_timestamp14(ts).timestamp()


def choose_captures(rows: Iterable[CdxRow], at: str | None, limit: int = 2) -> list[CdxRow]:
    """The good captures to try, best first.

    Good means a 2xx status, a real timestamp and a plausible original URL; revisit rows
    (status ``-``) and duplicates are dropped. Best means newest when ``at`` is None, else
    closest to ``at`` in either direction (the archive's own rule), earlier on a tie.
    """
    seen: set[tuple[str, str]] = set()
    good: list[CdxRow] = []
    for row in rows:
        if row.status is None or not 200 <= row.status < 300:
            continue
        if not valid_timestamp(row.timestamp) or not plausible_original(row.original):
            continue
        key = (row.timestamp, row.digest)
        if key in seen:
            continue
        seen.add(key)
        good.append(row)
    if at is None:
        good.sort(key=lambda r: r.timestamp, reverse=True)
    else:
        target = _seconds(at)
        good.sort(key=lambda r: (abs(_seconds(r.timestamp) - target), r.timestamp))
    return good[:limit]


# --- several archives -----------------------------------------------------------------

#: How good a final outcome is, across archives: a good capture beats a capture of an error
#: response, which beats a refusal, which beats "no capture".
OUTCOME_RANK: Final[Mapping[Status, int]] = {
    "ok": 4,
    "archived_error": 3,
    "blocked": 2,
    "not_archived": 1,
    "error": 0,
}


def best_outcome(outcomes: Sequence[Status]) -> int | None:
    """Index of the best of the archives' outcomes (the first one on a tie), None if empty."""
    best: int | None = None
    for index, status in enumerate(outcomes):
        if best is None or OUTCOME_RANK[status] > OUTCOME_RANK[outcomes[best]]:
            best = index
    return best
