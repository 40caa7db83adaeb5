"""The Internet Archive's Wayback protocol: replay URLs, the playback-first resolution walk
and the CDX fallback. Decisions are delegated to the pure functions of :mod:`capture`; this
module only sends the requests they ask for.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Final, Literal

from cache.records import Status

from .capture import (
    CDX_FIELDS,
    CdxRow,
    Hop,
    HopKind,
    Walk,
    WalkEnd,
    choose_captures,
    classify_playback,
    parse_cdx,
)
from .config import Config
from .errors import ArchiveError, TransientError
from .ids import timestamp_now
from .transport import FULL, HEAD_BYTES, Response, Transport

_REPLAY_RE: Final = re.compile(r"/web/(\d{1,14})(?:[a-z]{2}_)?/(.+)$", re.DOTALL)
#: How many CDX candidates to try when the first one does not replay as a 2xx capture
#: (a fresh capture may redirect to an older one for a while: internetarchive/wayback#210).
CDX_CANDIDATES: Final = 2
#: How much of a non-capture 200/403 page to read looking for the exclusion notice.
ERROR_PAGE_BYTES: Final = 256 * 1024


@dataclass(slots=True)
class Resolution:
    """What resolving one URL found. ``response`` holds the capture's body when ok."""

    status: Status
    requested_timestamp: str
    archived_status: int | None = None
    capture_timestamp: str | None = None
    original_url: str | None = None
    archive_url: str | None = None
    raw_url: str | None = None
    redirects: list[str] = field(default_factory=list)
    response: Response | None = None
    error: str | None = None
    note: str | None = None
    cdx_queries: int = 0


def original_from_replay_url(url: str) -> str | None:
    """The original URL inside a replay URL ``.../web/<ts><flag>/<original>``."""
    match = _REPLAY_RE.search(url)
    return match.group(2) if match else None


class WaybackArchive:
    """Resolves URLs against a Wayback Machine (the Internet Archive's dialect)."""

    def __init__(self, config: Config, transport: Transport) -> None:
        self.config = config
        self.base = config.archive.base_url.rstrip("/")
        self.transport = transport

    def replay_url(self, timestamp: str, url: str, flag: Literal["id_", ""] = "id_") -> str:
        """``{base}/web/{timestamp}{flag}/{url}``; ``id_`` gives the raw captured bytes."""
        return f"{self.base}/web/{timestamp}{flag}/{url}"

    async def _hop(self, url: str) -> tuple[Hop, Response]:
        def want_body(status: int, headers: dict[str, str]) -> int:
            # Only a 2xx capture's body is worth reading in full. A 200 or 403 that is not a
            # capture may be the exclusion page, whose telling sentence sits ~56 KB in (REC
            # test_get_memento_raises_blocked_error); anything else needs its head at most.
            if "memento-datetime" in headers:
                return FULL if 200 <= status < 300 else 0
            return ERROR_PAGE_BYTES if status in (200, 403) else HEAD_BYTES

        response = await self.transport.get(url, "playback", want_body=want_body)
        hop = classify_playback(response.status, response.headers, response.head, url)
        if hop.kind in (HopKind.TRANSIENT, HopKind.RATE_LIMITED):
            response.discard()
            raise TransientError(f"{hop.reason} ({url})")
        return hop, response

    async def walk(self, start: str) -> tuple[Walk, Response | None]:
        """Follow a playback chain by hand from ``start``; return the walk and, when it ended
        on a 2xx capture, that capture's response (body read)."""
        walk = Walk(start, self.transport.allowed, self.config.archive.max_redirects)
        url: str | None = start
        final: Response | None = None
        while url is not None:
            hop, response = await self.transport.retrying(functools.partial(self._hop, url))
            url = walk.step(hop)
            if url is None and walk.good:
                final = response
            else:
                response.discard()
        return walk, final

    async def cdx_good_captures(self, url: str, at: str | None) -> list[CdxRow]:
        """One CDX query for the newest (or closest to ``at``) 2xx captures of ``url``."""
        params = {
            "url": url,
            "output": "json",
            "fl": ",".join(CDX_FIELDS),
            "filter": "statuscode:2[0-9][0-9]",
        }
        if at is None:
            # The last rows are the newest; a few spare rows absorb duplicates and junk.
            params.update({"limit": "-10", "fastLatest": "true"})
        else:
            params.update({"closest": at, "sort": "closest", "limit": "10"})

        async def attempt() -> Response:
            def want_body(status: int, headers: dict[str, str]) -> int:
                return FULL if status == 200 else HEAD_BYTES

            response = await self.transport.get(
                f"{self.base}/cdx/search/cdx", "cdx", want_body=want_body, params=params
            )
            if response.status >= 500:
                raise TransientError(f"CDX answered HTTP {response.status}")
            return response

        response = await self.transport.retrying(attempt)
        try:
            if response.status == 403 or "x-archive-wayback-runtime-error" in response.headers:
                marker = response.headers.get("x-archive-wayback-runtime-error", "")
                if response.status == 403 or "AccessControl" in marker:
                    raise _Blocked(marker or "CDX answered 403")
            if response.status != 200:
                raise ArchiveError(f"CDX answered HTTP {response.status}")
            if response.body_path is not None:
                text = response.body_path.read_text("utf-8", errors="replace")
            else:
                text = (response.body or b"").decode("utf-8", errors="replace")
        finally:
            response.discard()
        return choose_captures(parse_cdx(text), at, limit=CDX_CANDIDATES)

    def _ok(self, walk: Walk, response: Response, requested: str) -> Resolution:
        hop = walk.final
        assert hop is not None and hop.timestamp is not None
        original = hop.original or original_from_replay_url(hop.url) or walk.start
        return Resolution(
            status="ok",
            requested_timestamp=requested,
            archived_status=hop.status,
            capture_timestamp=hop.timestamp,
            original_url=original,
            archive_url=self.replay_url(hop.timestamp, original, ""),
            raw_url=self.replay_url(hop.timestamp, original),
            redirects=walk.visited[:-1],
            response=response,
        )

    async def resolve(self, url: str, at: str | None) -> Resolution:
        """Resolve ``url`` to its newest good capture (or the one closest to ``at``).

        Playback first (its budget is 20 times the CDX's); one CDX query only when playback
        did not land on a 2xx capture. Raises :class:`TransientError` when the archive could
        not be reached within the retry budget.
        """
        requested = at or timestamp_now()
        first, response = await self.walk(self.replay_url(requested, url))
        if first.good and response is not None:
            return self._ok(first, response, requested)
        if first.end is WalkEnd.BLOCKED:
            reason = first.final.reason if first.final else None
            return Resolution("blocked", requested, note=reason)
        if first.end is WalkEnd.OFF_ARCHIVE:
            return Resolution(
                "error",
                requested,
                redirects=[*first.visited, first.refused or ""],
                error=f"redirect to a non-archive host refused: {first.refused}",
            )
        if first.end is WalkEnd.UNKNOWN:
            reason = first.final.reason if first.final else "unclassified answer"
            return Resolution("error", requested, redirects=first.visited, error=reason)
        try:
            candidates = await self.cdx_good_captures(url, at)
        except _Blocked as exc:
            return Resolution("blocked", requested, note=str(exc), cdx_queries=1)
        last: Walk | None = None
        for row in candidates:
            walk, good = await self.walk(self.replay_url(row.timestamp, row.original))
            if walk.good and good is not None:
                result = self._ok(walk, good, requested)
                result.redirects = [*first.visited, *result.redirects]
                result.cdx_queries = 1
                return result
            last = walk
        return self._no_good_capture(first, last, requested)

    def _no_good_capture(self, first: Walk, last: Walk | None, requested: str) -> Resolution:
        capture = first.last_capture or (last.last_capture if last else None)
        if capture is None:
            return Resolution(
                "not_archived", requested, redirects=first.visited[:-1], cdx_queries=1,
                note="the archive holds no capture of this URL",
            )
        why = {
            WalkEnd.LOOP: "the archived redirects form a loop",
            WalkEnd.TOO_MANY_HOPS: "the archived redirect chain is too long",
        }.get(first.end or WalkEnd.CAPTURE, f"only captures of HTTP {capture.status} responses")
        original = capture.original or original_from_replay_url(capture.url)
        ts = capture.timestamp
        return Resolution(
            "archived_error",
            requested,
            archived_status=capture.status,
            capture_timestamp=ts,
            original_url=original,
            archive_url=self.replay_url(ts, original, "") if ts and original else None,
            raw_url=self.replay_url(ts, original) if ts and original else None,
            redirects=first.visited[:-1],
            cdx_queries=1,
            note=f"no good capture: {why}",
        )


class _Blocked(Exception):
    """Internal: the CDX refused the URL as excluded."""
