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

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Final
from urllib.parse import urljoin, urlsplit

from snapcache.cache.records import Status

# The CDX half lives in .cdx; its names are re-exported here, where they always were.
from .cdx import CDX_FIELDS as CDX_FIELDS
from .cdx import CdxRow as CdxRow
from .cdx import choose_captures as choose_captures
from .cdx import parse_cdx as parse_cdx
from .cdx import parse_pywb_cdx as parse_pywb_cdx
from .cdx import plausible_original as plausible_original
from .cdx import valid_timestamp as valid_timestamp
from .errors import ArchiveProtocolError, InputError
from .ids import build_replay_url, safe_replay_target
from .untrusted import (
    parse_link_header,
    same_resource,
    strict_memento_timestamp,
)

# Statuses the archive itself answers with when it is struggling (EDGI retries these).
_TRANSIENT_STATUSES: Final = frozenset({408, 413, 421, 425, 500, 502, 503, 504, 507, 509, 520,
                                        521, 522, 523, 524, 598, 599})
_BLOCK_HEADER_MARKERS: Final = ("AccessControlException", "RobotAccessControl", "Blocked Site")
_BLOCK_BODY_MARKERS: Final = (b"URL has been excluded", b"blocked by robots", b"robots.txt")
_NOT_ARCHIVED_HEADER_MARKERS: Final = ("ResourceNotInArchive", "NotInArchive")


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
    for entry in parse_link_header(link_header):
        if "memento" not in entry.rels:
            continue
        ts = memento_timestamp(entry.datetime)
        if ts is None:
            continue
        names_first = names_first or "first" in entry.rels
        if ts < current and (best is None or ts > best[0]):
            best = (ts, entry.target)
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


def memento_timestamp(value: str | None, now: datetime | None = None) -> str | None:
    """A ``Memento-Datetime`` (an HTTP date) as a 14-digit UTC timestamp, or None when it is
    missing or not a possible capture time (see
    :func:`~snapcache.untrusted.strict_memento_timestamp`, which says why)."""
    if not value:
        return None
    try:
        return strict_memento_timestamp(value, now)
    except ArchiveProtocolError:
        return None


def link_original(link_header: str | None) -> str | None:
    """The ``rel="original"`` target of a Link header, if any (read by the linear,
    capped :func:`~snapcache.untrusted.parse_link_header`)."""
    for entry in parse_link_header(link_header):
        if "original" in entry.rels:
            return entry.target
    return None


def classify_playback(
    status: int, headers: Mapping[str, str], body_head: bytes, url: str
) -> Hop:
    """Classify one playback response (headers lower-cased, as :func:`header_map` gives).

    ``body_head`` is the first few KB of the body; it is only read for responses without
    ``Memento-Datetime`` (the exclusion page is told apart by its text).

    Raises :class:`~snapcache.errors.ArchiveProtocolError` for a ``Memento-Datetime`` that
    is not an HTTP date from 1991 to tomorrow: such an answer is neither a capture nor a
    known archive answer, and guessing would store a wrong capture time.
    """
    raw_datetime = headers.get("memento-datetime")
    ts = None if raw_datetime is None else strict_memento_timestamp(raw_datetime)
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
    FOREIGN = "foreign"
    """The archive answered with a capture of another URL (its ``Link rel="original"``, or
    the replay URL a nearest-capture redirect named, is not the URL asked for, nor one an
    archived redirect of the walk led to): not this URL's capture (:attr:`Walk.refused`
    holds that other URL)."""
    UNKNOWN = "unknown"
    NOT_EARLIER = "not_earlier"
    """Stepping back to an earlier capture, the archive redirected to one no earlier than
    the capture stepped back from (the earlier one is not replayable): not followed."""
    CONFIRMED = "confirmed"
    """A refresh: the walk was about to reach the capture the stored record already holds
    (:class:`KnownCapture`), so it stopped there without fetching it again."""


@dataclass(frozen=True, slots=True)
class KnownCapture:
    """The good capture a stored record holds, which a refresh may confirm unfetched."""

    timestamp: str
    """Its 14-digit time."""
    original: str
    """The URL it is a capture of (the record's ``original_url``)."""
    archive: str
    """The configured name of the archive that holds it."""


def replay_parts(url: str, replay_paths: Sequence[str]) -> tuple[str, str] | None:
    """``(timestamp, original)`` of a replay URL ``<origin><replay path><ts><flag>/<original>``
    under one of ``replay_paths``; None for any other URL."""
    original = replay_original(url, replay_paths)
    if original is None:
        return None
    head = url[: len(url) - len(original)]
    match = re.search(r"/([0-9]{1,14})(?:[a-z]{2}_)?/$", head)
    return (match.group(1), original) if match else None


def is_known_capture(timestamp: str | None, original: str | None,
                     known: KnownCapture | None) -> bool:
    """Whether a capture at ``timestamp`` of ``original`` is ``known``: the same 14-digit time
    and the same URL by the archive's own equivalence (scheme, ``www.``, default port, case
    of the host, order of the query)."""
    return (known is not None and timestamp is not None and original is not None
            and timestamp == known.timestamp and same_resource(original, known.original))


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
    Location holding ``/../save/`` or ``/%2e%2e/cdx/`` is refused, never followed. With
    ``scheme`` (the archive base's), a redirect must keep it: no https to http downgrade.

    With ``original`` (the URL asked for), every capture must be of that URL by the
    archive's own equivalence (:func:`~snapcache.untrusted.same_resource`), or of a URL an
    archived redirect of this walk led to: a ``Link rel="original"`` naming another URL, or
    a nearest-capture redirect to another URL's replay, ends the walk
    :attr:`WalkEnd.FOREIGN` (needs ``replay_paths`` to read the originals of replay URLs).
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
    scheme: str | None = None
    original: str | None = None
    expected: list[str] = field(default_factory=list)
    """The originals a capture of this walk may have: ``original``, then the targets of
    the archived redirects followed."""

    def __post_init__(self) -> None:
        if self.original is not None and not self.expected:
            self.expected.append(self.original)

    def _expects(self, url: str | None) -> bool:
        """Whether a capture of ``url`` belongs to this walk (always, without ``original``)."""
        if self.original is None or not self.replay_paths:
            return True
        return url is not None and any(same_resource(url, e) for e in self.expected)

    def _foreign(self, other: str | None) -> None:
        self.end = WalkEnd.FOREIGN
        self.refused = other or ""

    def step(self, hop: Hop) -> str | None:
        """Record ``hop`` and return the next URL to request, or None when done."""
        self.visited.append(hop.url)
        self.final = hop
        if hop.kind in (HopKind.MEMENTO, HopKind.ARCHIVED_REDIRECT):
            # The capture's own word for what it is of (Link rel="original"), else the
            # original of the replay URL asked for, which this walk checked already.
            captured = hop.original or replay_original(hop.url, self.replay_paths)
            if not self._expects(captured):
                self._foreign(captured)  # not appended to hops: not a capture of ours
                return None
        self.hops.append(hop)
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
        try:
            scheme = urlsplit(target).scheme.lower()
        except ValueError:
            scheme = ""
        # mailto:, data:, a bare word: no host at all, so no archive host either.
        if scheme not in ("http", "https") or netloc_of(target) not in self.allowed_netlocs:
            self.end = WalkEnd.OFF_ARCHIVE
            self.refused = target
            return None
        if self.scheme is not None and scheme != self.scheme:
            self.end = WalkEnd.OFF_ARCHIVE
            self.refused = target
            self.refusal = f"redirect from {self.scheme} to {scheme} refused"
            return None
        if self.replay_paths:
            safe = safe_replay_target(target, self.replay_paths)
            if safe is None:
                self.end = WalkEnd.OFF_ARCHIVE
                self.refused = target
                self.refusal = "redirect outside the archive's replay path refused"
                return None
            target = safe
            led_to = replay_original(target, self.replay_paths)
            if hop.kind is HopKind.ARCHIVED_REDIRECT:
                if led_to is not None and self.original is not None:
                    self.expected.append(led_to)  # the captured redirect's target
            elif not self._expects(led_to):
                self._foreign(led_to)  # "the nearest capture" of some other URL
                return None
        if target in self.visited:
            self.end = WalkEnd.LOOP
            return None
        if len(self.hops) > self.max_hops:
            self.end = WalkEnd.TOO_MANY_HOPS
            return None
        return target

    @property
    def may_confirm(self) -> bool:
        """Whether this walk may still end on a stored capture without fetching it: while
        it is under way, or on the capture just answered. (A chain through archived
        redirects is walked hop by hop as on a first fetch; only its last capture's body
        is spared.)"""
        return self.end in (None, WalkEnd.CAPTURE)

    def confirm(self, url: str | None = None) -> None:
        """End the walk on the stored capture: at ``url``, its replay URL, when the walk
        was about to request it; or at the capture just answered (whose body was not read)."""
        self.end = WalkEnd.CONFIRMED
        if url is not None:
            self.visited.append(url)

    @property
    def first_capture(self) -> Hop | None:
        """The first hop that was a capture: the one of the URL the walk started from (a
        memento or an archived redirect), before any archived redirect led elsewhere."""
        for hop in self.hops:
            if hop.kind in (HopKind.MEMENTO, HopKind.ARCHIVED_REDIRECT):
                return hop
        return None

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


def replay_original(url: str, replay_paths: Sequence[str]) -> str | None:
    """The original inside a replay URL ``<origin><replay path><ts><flag>/<original>``
    whose path starts with one of ``replay_paths``; None for any other URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    if not parts.scheme or not url.startswith(origin):
        return None
    rest = url[len(origin):]
    for path in replay_paths:
        if rest.startswith(path):
            head = _REPLAY_TS_RE.match(rest, len(path))
            if head is not None:
                return rest[head.end():]
    return None


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
