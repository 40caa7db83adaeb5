"""The Wayback protocol in its two dialects (the Internet Archive's and pywb's): replay URLs,
the playback-first resolution walk, the CDX fallback, and the chain of archives tried in
order. Decisions are delegated to the pure functions of :mod:`capture`; this module only
sends the requests they ask for.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal
from urllib.parse import urlsplit

from snapcache.cache.records import Status

from .capture import (
    Hop,
    HopKind,
    KnownCapture,
    Walk,
    WalkEnd,
    classify_playback,
    earlier_capture,
    is_known_capture,
    link_original,
    memento_timestamp,
    pywb_redirect_replay,
    replay_original,
    replay_parts,
)
from .cdx import CDX_FIELDS, CdxRow, body_lines, choose_captures, iter_cdx, iter_pywb_cdx
from .config import ArchiveEntry, Config
from .errors import (
    ArchiveError,
    ArchiveProtocolError,
    DisallowedRequestError,
    InputError,
    TransientError,
)
from .ids import build_replay_url, timestamp_now
from .judging import Judge, Served, Skipped
from .transport import FULL, HEAD_BYTES, Pool, Response, Transport, cdx_endpoint, replay_prefix
from .untrusted import PARSE_ERRORS, clean_text

_REPLAY_RE: Final = re.compile(r"/web/(\d{1,14})(?:[a-z]{2}_)?/(.+)$", re.DOTALL)
#: How many CDX candidates to try when the first one does not replay as a 2xx capture
#: (a fresh capture may redirect to an older one for a while: internetarchive/wayback#210).
CDX_CANDIDATES: Final = 2
#: Earlier captures replayed (via Link headers) before falling back to a CDX query.
EARLIER_HOPS: Final = 2
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
    archive: str | None = None
    """The configured name of the archive that gave this result."""
    confirmed: bool = False
    """A refresh found that the capture to keep is the one the stored record holds: the
    capture fields name it, and nothing was downloaded (``response`` is None)."""
    content_flag: str | None = None
    """Why the capture kept is not plainly the document (``script_shell``), or, with no
    good capture, why the newest capture was passed over."""
    skipped: list[Skipped] = field(default_factory=list)
    """Newer captures passed over (junk, or captures of another URL), newest first."""


def original_from_replay_url(url: str, prefix: str | None = None) -> str | None:
    """The original URL inside a replay URL ``{prefix}<ts><flag>/<original>`` (the prefix
    defaults to any ``.../web/``)."""
    if prefix is None:
        match = _REPLAY_RE.search(url)
        return match.group(2) if match else None
    if not url.startswith(prefix):
        return None
    match = re.match(r"(\d{1,14})(?:[a-z]{2}_)?/(.+)$", url[len(prefix):], re.DOTALL)
    return match.group(2) if match else None


#: pywb's CDX filter is a substring match unless prefixed: ``~`` makes it a regex match.
PYWB_GOOD_STATUS_FILTER: Final = "~status:2[0-9][0-9]"


class WaybackArchive:
    """Resolves URLs against one Wayback-compatible archive, in its dialect."""

    def __init__(
        self, config: Config, transport: Transport, entry: ArchiveEntry | None = None
    ) -> None:
        self.config = config
        self.entry = entry or config.primary
        self.name = self.entry.name
        self.base = self.entry.base_url.rstrip("/")
        self.transport = transport
        #: ``{base}/web/`` (ia) or ``{base}/{collection}/`` (pywb): the playback pool's
        #: requests to this archive are all under it (the transport checks).
        self.prefix = replay_prefix(self.entry)
        self.cdx_endpoint = cdx_endpoint(self.entry)
        #: The path of the prefix: where a redirect inside the archive may lead.
        self.replay_paths = (urlsplit(self.prefix).path,)
        #: Redirects keep the archive's scheme: no https to http downgrade.
        self.scheme = urlsplit(self.base).scheme
        # A replay chain stays on this archive's own hosts; the primary's include its
        # availability host and extra_hosts, as before there were several archives.
        is_primary = self.entry == config.primary
        self.allowed = config.primary_hosts if is_primary else frozenset({self.entry.netloc})

    def replay_url(self, timestamp: str, url: str, flag: Literal["id_", ""] = "id_") -> str:
        """``{prefix}{timestamp}{flag}/{url}``, the prefix being ``{base}/web/`` (ia) or
        ``{base}/{collection}/`` (pywb); ``id_`` gives the raw captured bytes.

        Built by :func:`~snapcache.ids.build_replay_url`: nothing in ``url`` can move the
        request out of the prefix. Raises :class:`DisallowedRequestError` for a URL it
        refuses (input URLs were checked when parsed: only one the archive named can be).
        """
        try:
            return build_replay_url(self.prefix, timestamp, url, flag)
        except InputError as exc:
            raise DisallowedRequestError(f"refusing to replay {_short(url)}: {exc}") from exc

    def _record_urls(self, timestamp: str, original: str) -> tuple[str | None, str | None]:
        """The archive and raw replay URLs of a capture, for the record; None for an
        original the archive named that no replay URL may hold."""
        try:
            return self.replay_url(timestamp, original, ""), self.replay_url(timestamp, original)
        except DisallowedRequestError:
            return None, None

    def original_from_replay(self, url: str) -> str | None:
        """The original URL inside one of this archive's replay URLs."""
        return original_from_replay_url(url, self.prefix)

    async def _hop(self, url: str, known: KnownCapture | None = None) -> tuple[Hop, Response]:
        def want_body(status: int, headers: dict[str, str]) -> int:
            # Only a 2xx capture's body is worth reading in full. A 200 or 403 that is not a
            # capture may be the exclusion page, whose telling sentence sits ~56 KB in (REC
            # test_get_memento_raises_blocked_error); anything else needs its head at most.
            if "memento-datetime" in headers:
                if known is not None and is_known_capture(
                    memento_timestamp(headers["memento-datetime"]),
                    link_original(headers.get("link")) or replay_original(
                        url, self.replay_paths), known):
                    # pywb answers an inexact time with the capture itself: when its
                    # headers name the stored capture, its body is not read at all.
                    return 0
                return FULL if 200 <= status < 300 else 0
            return ERROR_PAGE_BYTES if status in (200, 403) else HEAD_BYTES

        response = await self.transport.request("GET", url, Pool.PLAYBACK, want_body=want_body)
        try:
            hop = self._classify(url, response)
        except BaseException:
            response.discard()  # a spilled body must not outlive an answer we refuse
            raise
        return hop, response

    def _classify(self, url: str, response: Response) -> Hop:
        """What one playback answer is. The parsing boundary of playback: whatever a parser
        raises on the archive's bytes becomes :class:`ArchiveProtocolError` here."""
        try:
            hop = classify_playback(response.status, response.headers, response.head, url)
            if hop.kind in (HopKind.TRANSIENT, HopKind.RATE_LIMITED):
                raise TransientError(f"{hop.reason} ({url})")
            if self.entry.dialect == "pywb" and hop.kind is HopKind.ARCHIVED_REDIRECT:
                # pywb replays the archived Location as is: the live site. Ask the archive.
                original = hop.original or self.original_from_replay(url) or url
                location = response.headers.get("location", "")
                target = pywb_redirect_replay(location, original, hop.timestamp or "",
                                              self.prefix, url)
                if target is None:
                    hop = replace(hop, kind=HopKind.UNKNOWN, location=None, reason=(
                        "archived redirect to an unusable URL refused: " + _short(location)))
                else:
                    hop = replace(hop, location=target)
        except PARSE_ERRORS as exc:
            raise ArchiveProtocolError(
                f"unreadable answer from the archive ({type(exc).__name__}: "
                f"{clean_text(str(exc), 200)}) for {url}") from exc
        return hop

    async def walk(
        self, start: str, original: str | None = None, known: KnownCapture | None = None,
        before: str | None = None,
    ) -> tuple[Walk, Response | None]:
        """Follow a playback chain by hand from ``start``, a replay URL of ``original``;
        return the walk and, when it ended on a 2xx capture of ``original`` (or of a URL an
        archived redirect led to), that capture's response (body read).

        With ``known`` (a refresh: the capture the stored record holds), a walk that
        followed no archived redirect stops where it would request that capture, or on an
        answer whose headers name it (its body unread): it ends
        :attr:`WalkEnd.CONFIRMED` with no response.

        With ``before`` (a step back from the capture at that time), a nearest-capture
        redirect to a capture at or after it ends the walk :attr:`WalkEnd.NOT_EARLIER`
        unfollowed: it would only walk the newer chain again."""
        walk = Walk(start, self.allowed, self.config.archive.max_redirects,
                    replay_paths=self.replay_paths, scheme=self.scheme, original=original)
        url: str | None = start
        final: Response | None = None
        while url is not None:
            if known is not None and walk.hops and walk.may_confirm and self._names(url, known):
                walk.confirm(url)  # the nearest capture is the stored one: not fetched
                break
            parts = replay_parts(url, self.replay_paths) if before and walk.hops else None
            if parts is not None and len(parts[0]) == 14 and parts[0] >= (before or ""):
                walk.end = WalkEnd.NOT_EARLIER
                break
            hop, response = await self.transport.retrying(
                functools.partial(self._hop, url, known if walk.may_confirm else None))
            url = walk.step(hop)
            if (url is None and walk.good and walk.may_confirm
                    and is_known_capture(hop.timestamp, hop.original
                                         or replay_original(hop.url, self.replay_paths), known)):
                walk.confirm()
                response.discard()
            elif url is None and walk.good:
                final = response
            else:
                response.discard()
        return walk, final

    def _names(self, url: str, known: KnownCapture) -> bool:
        """Whether ``url`` is this archive's replay URL of the ``known`` capture."""
        parts = replay_parts(url, self.replay_paths)
        return parts is not None and is_known_capture(parts[0], parts[1], known)

    def _cdx_params(self, url: str, at: str | None) -> dict[str, str]:
        if self.entry.dialect == "pywb":
            # pywb: JSON lines; no negative limit, so newest-first is sort=reverse. Its fuzzy
            # fallback may drop the filter; choose_captures checks the status again anyway.
            params = {"url": url, "output": "json", "filter": PYWB_GOOD_STATUS_FILTER,
                      "limit": "10"}
            if at is None:
                params["sort"] = "reverse"
            else:
                params.update({"closest": at, "sort": "closest"})
            return params
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
        return params

    async def cdx_good_captures(
        self, url: str, at: str | None, limit: int = CDX_CANDIDATES
    ) -> list[CdxRow]:
        """One CDX query for the newest (or closest to ``at``) 2xx captures of ``url``.

        The answer is read up to ``[archive] max_cdx_bytes`` (far below the body cap: the
        query asks for ten rows) and parsed line by line in a worker thread, never as one
        document on the event loop; rows for other URLs are dropped."""
        params = self._cdx_params(url, at)

        async def attempt() -> Response:
            def want_body(status: int, headers: dict[str, str]) -> int:
                return FULL if status == 200 else HEAD_BYTES

            response = await self.transport.request(
                "GET", self.cdx_endpoint, Pool.CDX, want_body=want_body, params=params,
                max_bytes=self.config.archive.max_cdx_bytes,
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
            return await asyncio.to_thread(self._choose, response, url, at, limit)
        finally:
            response.discard()

    def _choose(
        self, response: Response, url: str, at: str | None, limit: int = CDX_CANDIDATES
    ) -> list[CdxRow]:
        """The CDX candidates in ``response``, row by row (runs in a worker thread). The
        parsing boundary of CDX answers: whatever a parser raises on them becomes
        :class:`ArchiveProtocolError`."""
        source = response.body_path if response.body_path is not None else (response.body or b"")
        lines = body_lines(source)
        rows = iter_pywb_cdx(lines) if self.entry.dialect == "pywb" else iter_cdx(lines)
        try:
            return choose_captures(rows, at, limit=limit, requested=url)
        except PARSE_ERRORS as exc:
            raise ArchiveProtocolError(
                f"unreadable CDX answer ({type(exc).__name__}: {clean_text(str(exc), 200)})"
            ) from exc

    def _ok(self, walk: Walk, response: Response, requested: str) -> Resolution:
        hop = walk.final
        assert hop is not None and hop.timestamp is not None
        original = hop.original or self.original_from_replay(hop.url) or walk.start
        archive_url, raw_url = self._record_urls(hop.timestamp, original)
        return Resolution(
            status="ok",
            requested_timestamp=requested,
            archived_status=hop.status,
            capture_timestamp=hop.timestamp,
            original_url=original,
            archive_url=archive_url,
            raw_url=raw_url,
            redirects=walk.visited[:-1],
            response=response,
        )

    async def resolve(
        self, url: str, at: str | None, known: KnownCapture | None = None,
        judge: Judge | None = None, *, absent: bool = False,
    ) -> Resolution:
        """Resolve ``url`` to its newest good capture (or the one closest to ``at``).

        Playback first (its budget is 20 times the CDX's); one CDX query only when playback
        did not land on a 2xx capture. Raises :class:`TransientError` when the archive could
        not be reached within the retry budget.

        With ``known``, the good capture the stored record holds (a refresh), resolution
        stops as soon as the archive names that capture as the one to use, without
        fetching it: the result is ``confirmed``.

        With ``judge``, every 2xx capture is judged before it is accepted; one it says to
        skip (a challenge page, a parked domain ...) is passed over like an error capture,
        and the result lists it in ``skipped``.

        ``absent`` says the stored record already holds this archive's "not archived"
        (confirmed by the CDX when it was first found): playback saying so again is enough,
        and the CDX query that ``confirm_not_archived`` adds to a first verdict is spared.
        """
        requested = at or timestamp_now()
        skipped: list[Skipped] = []
        result = await self._resolve(url, at, requested, known, judge, skipped, absent)
        result.skipped = skipped
        if result.status != "ok" and skipped and result.content_flag is None:
            result.content_flag = skipped[0].flag
        return result

    async def _resolve(
        self, url: str, at: str | None, requested: str, known: KnownCapture | None,
        judge: Judge | None, skipped: list[Skipped], absent: bool = False,
    ) -> Resolution:
        first, response = await self.walk(self.replay_url(requested, url), url, known)
        if first.end is WalkEnd.CONFIRMED and known is not None:
            return self._confirmed(known, requested, first.visited[:-1])
        if first.good and response is not None:
            accepted = await self._accept(first, response, requested, judge, skipped)
            if accepted is not None:
                return accepted
        if first.end is WalkEnd.BLOCKED:
            reason = first.final.reason if first.final else None
            return Resolution("blocked", requested, note=reason)
        if first.end is WalkEnd.OFF_ARCHIVE:
            return Resolution(
                "error",
                requested,
                redirects=[*first.visited, first.refused or ""],
                error=f"{first.refusal}: {first.refused}",
            )
        if first.end is WalkEnd.UNKNOWN:
            reason = first.final.reason if first.final else "unclassified answer"
            return Resolution("error", requested, redirects=first.visited, error=reason)
        if first.end is WalkEnd.CAPTURE and at is None:
            # The newest capture is an error capture: step back through earlier captures
            # named by its Link header, on the playback budget, before spending a CDX query.
            found, none_earlier = await self._step_back(first, requested, known, judge, skipped)
            if found is not None:
                return found
            if none_earlier:
                return self._no_good_capture(first, None, requested, cdx_queries=0,
                                             skipped=skipped)
        if first.end is WalkEnd.NOT_ARCHIVED and (
                absent or not self.config.archive.confirm_not_archived):
            return self._no_good_capture(first, None, requested, cdx_queries=0,
                                             skipped=skipped)
        # A capture of another URL (WalkEnd.FOREIGN) is not this URL's: like an error
        # capture, the CDX is asked for the next candidate.
        foreign = first.refused if first.end is WalkEnd.FOREIGN else None
        if foreign is not None:
            self._skip_foreign(first, skipped)
        passed = {s.timestamp for s in skipped}
        try:
            # The junk already passed over is among the newest 2xx rows: ask for more.
            candidates = await self.cdx_good_captures(url, at, CDX_CANDIDATES + len(passed))
        except _Blocked as exc:
            return Resolution("blocked", requested, note=str(exc), cdx_queries=1)
        last: Walk | None = None
        for row in (r for r in candidates if r.timestamp not in passed):
            if known is not None and is_known_capture(row.timestamp, row.original, known):
                # The CDX names the stored capture as the newest good one: not fetched.
                result = self._confirmed(known, requested, list(first.visited))
                result.cdx_queries = 1
                return result
            try:
                start = self.replay_url(row.timestamp, row.original)
            except DisallowedRequestError:
                continue  # a row whose original no replay URL may hold: junk, skipped
            walk, good = await self.walk(start, url, known)
            if walk.end is WalkEnd.CONFIRMED and known is not None:
                result = self._confirmed(known, requested,
                                         [*first.visited, *walk.visited[:-1]])
                result.cdx_queries = 1
                return result
            if walk.good and good is not None:
                accepted = await self._accept(walk, good, requested, judge, skipped)
                if accepted is not None:
                    accepted.redirects = [*first.visited, *accepted.redirects]
                    accepted.cdx_queries = 1
                    return accepted
            last = walk
            if walk.end is WalkEnd.FOREIGN:
                self._skip_foreign(walk, skipped)
                foreign = foreign or walk.refused
        return self._no_good_capture(first, last, requested, foreign=foreign,
                                     skipped=skipped)

    async def _accept(
        self, walk: Walk, response: Response, requested: str, judge: Judge | None,
        skipped: list[Skipped],
    ) -> Resolution | None:
        """The ok resolution of a walk that landed on a 2xx capture, or None when ``judge``
        says to pass it over (then it is added to ``skipped`` and its body dropped)."""
        result = self._ok(walk, response, requested)
        if judge is None:
            return result
        hop = walk.final
        assert hop is not None and hop.timestamp is not None
        served = Served(walk.original or result.original_url or walk.start,
                        result.original_url or walk.start, tuple(walk.expected),
                        hop.timestamp, hop.status)
        verdict = await judge(response, served)
        if not verdict.skip:
            result.content_flag = verdict.flag
            return result
        skipped.append(Skipped(hop.timestamp, verdict.flag or "junk", hop.status,
                               result.archive_url))
        response.discard()
        return None

    def _skip_foreign(self, walk: Walk, skipped: list[Skipped]) -> None:
        """Note a capture of another URL the walk was served (``url_mismatch``)."""
        hop = walk.final
        skipped.append(Skipped(hop.timestamp if hop is not None else None, "url_mismatch",
                               hop.status if hop is not None and hop.timestamp else None,
                               walk.refused))

    async def _step_back(
        self, first: Walk, requested: str, known: KnownCapture | None = None,
        judge: Judge | None = None, skipped: list[Skipped] | None = None,
    ) -> tuple[Resolution | None, bool]:
        """Replay up to :data:`EARLIER_HOPS` earlier captures, newest first, as the Link
        headers name them. Returns an ok resolution if one is good, and whether the headers
        showed that no earlier capture exists at all (then CDX has nothing to add).

        An earlier capture that is ``known`` (the stored one) is confirmed, not replayed.
        Stepping back starts from the walk's first capture, the one of the URL asked for:
        when an archived redirect led elsewhere, the last capture's Link header would name
        the earlier captures of that other URL."""
        hop = first.first_capture
        visited = list(first.visited)
        for _ in range(EARLIER_HOPS):
            if hop is None or hop.timestamp is None:
                return None, False
            earlier = earlier_capture(hop.link, hop.timestamp)
            if not earlier.known:
                return None, False
            if earlier.timestamp is None:
                return None, True
            original = self.original_from_replay(earlier.url or "") or hop.original
            if not original:
                return None, False
            if known is not None and first.may_confirm and is_known_capture(
                    earlier.timestamp, original, known):
                return self._confirmed(known, requested, visited), False
            try:
                start = self.replay_url(earlier.timestamp, original)
            except DisallowedRequestError:
                return None, False  # a Link header naming an unusable URL: let CDX decide
            walk, response = await self.walk(start, first.original, known, hop.timestamp)
            visited.extend(walk.visited)
            if walk.end is WalkEnd.CONFIRMED and known is not None:
                return self._confirmed(known, requested, visited[:-1]), False
            if walk.good and response is not None:
                result = await self._accept(walk, response, requested, judge,
                                            skipped if skipped is not None else [])
                if result is not None:
                    result.redirects = visited[:-1]
                    return result, False
            back = walk.first_capture
            if (walk.end is not WalkEnd.CAPTURE or back is None or back.timestamp is None
                    or back.timestamp >= hop.timestamp):
                return None, False  # the chain did not move back in time: let CDX decide
            hop = back
        return None, False

    def _confirmed(
        self, known: KnownCapture, requested: str, redirects: list[str]
    ) -> Resolution:
        """The resolution of a refresh that found the stored capture still the one to keep;
        ``redirects`` are the replay URLs that led to it, as on a first fetch."""
        archive_url, raw_url = self._record_urls(known.timestamp, known.original)
        return Resolution(
            status="ok",
            requested_timestamp=requested,
            capture_timestamp=known.timestamp,
            original_url=known.original,
            archive_url=archive_url,
            raw_url=raw_url,
            redirects=list(redirects),
            confirmed=True,
        )

    def _no_good_capture(
        self, first: Walk, last: Walk | None, requested: str, cdx_queries: int = 1,
        foreign: str | None = None, skipped: list[Skipped] | None = None,
    ) -> Resolution:
        capture = first.last_capture or (last.last_capture if last else None)
        junk = [s for s in skipped or () if s.flag != "url_mismatch"]
        if capture is None and foreign is not None:
            # The archive served a capture, but of another URL, and nothing else: that is
            # no answer about this URL (a final outcome would be a guess). Retried later.
            return Resolution(
                "error", requested, redirects=first.visited, cdx_queries=cdx_queries,
                error=f"the archive answered with a capture of another URL: {_short(foreign)}",
            )
        if capture is None:
            return Resolution(
                "not_archived", requested, redirects=first.visited[:-1],
                cdx_queries=cdx_queries, note="the archive holds no capture of this URL",
            )
        why = {
            WalkEnd.LOOP: "the archived redirects form a loop",
            WalkEnd.TOO_MANY_HOPS: "the archived redirect chain is too long",
        }.get(first.end or WalkEnd.CAPTURE, f"only captures of HTTP {capture.status} responses")
        if junk:
            # The newest capture may be an error capture or junk; either way no capture
            # of this URL is the document. The flag (on the record) says which junk.
            why = f"the newest captures are not the document ({junk[0].flag})"
        original = capture.original or self.original_from_replay(capture.url)
        ts = capture.timestamp
        archive_url, raw_url = (self._record_urls(ts, original) if ts and original
                                else (None, None))
        return Resolution(
            "archived_error",
            requested,
            archived_status=capture.status,
            capture_timestamp=ts,
            original_url=original,
            archive_url=archive_url,
            raw_url=raw_url,
            redirects=first.visited[:-1],
            cdx_queries=cdx_queries,
            note=f"no good capture: {why}",
        )


class _Blocked(Exception):
    """Internal: the CDX refused the URL as excluded."""


def _short(url: str, limit: int = 200) -> str:
    """``url`` quoted for a message, cut at ``limit`` characters (input URLs reach 8 KB)."""
    return repr(url if len(url) <= limit else url[:limit] + "...")
