"""The one-fetch engine: freshness check, resolution, extraction and storage of one URL.

It knows nothing of runs, saving or threads: :mod:`snapcache.runner` and
:mod:`snapcache.save` drive it through :class:`~snapcache.protocols.FetchEngine`, and the
public :class:`~snapcache.Fetcher` / :class:`~snapcache.AsyncFetcher` sit on top of all three.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from snapcache.cache import (
    Record,
    RecordFacts,
    Status,
    Store,
    TTLs,
    freshness,
    record_facts,
    to_iso,
)

from .archive import Resolution, WaybackArchive
from .capture import KnownCapture
from .chain import ArchiveChain
from .config import Config
from .credentials import redact
from .errors import (
    ArchiveError,
    ArchiveUnreachableError,
    DeferredError,
    DisallowedHostError,
    TransientError,
)
from .extract import EXTRACTOR_VERSION, Extraction, ExtractPool
from .ids import (
    mint_stable_id,
    normalize_timestamp,
    parse_target,
    resource_id,
    timestamp_now,
)
from .judging import Served, Verdict
from .junk import HEAD_BYTES, TEXT_SCAN_CHARS, CaptureFacts, classify_capture, is_junk
from .protocols import Plan
from .transport import Response, Transport, TransportStats, url_deadline
from .untrusted import HEADER_CHARS, NOTE_CHARS, URL_CHARS, clean_optional, clean_text


def ttls_from_config(config: Config) -> TTLs:
    """The per-outcome freshness periods of the configuration, in seconds."""
    c = config.cache
    day = 86400.0
    return TTLs(
        ok=c.ttl_ok_days * day,
        blocked=c.ttl_blocked_days * day,
        not_archived=c.ttl_not_archived_days * day,
        archived_error=c.ttl_archived_error_days * day,
        error=c.ttl_error_hours * 3600.0,
    )


def known_capture(record: Record | None, *, full: bool = False) -> KnownCapture | None:
    """The capture a refresh of ``record`` may confirm instead of fetching, or None when
    the refresh must fetch in full.

    Only a good record qualifies, whose capture is complete (a capped or damaged body may
    come whole now), whose preview the current extractor made (a record of an older
    extractor, or of one from before versions were kept, is fetched in full once so that
    extraction improvements reach it), and whose archive is known; ``full`` (``--full``)
    always fetches.
    """
    if (full or record is None or record.status != "ok" or record.body_truncated
            or record.extractor_version != EXTRACTOR_VERSION):
        return None
    if not record.capture_timestamp or not record.original_url or not record.archive:
        return None
    return KnownCapture(record.capture_timestamp, record.original_url, record.archive)


def absent_from(record: Record | None, *, full: bool = False) -> str | None:
    """The archive whose "not archived" ``record`` holds, so that a refresh need not
    confirm it with the CDX again (None: confirm as on a first fetch; always with ``full``)."""
    if full or record is None or record.status != "not_archived":
        return None
    return record.archive


@dataclass(frozen=True, slots=True)
class Extracted:
    """What extraction gave for one response, with the body's SHA-256."""

    content_type: str | None
    title: str | None
    preview: str
    text: str
    note: str | None
    sha256: str


def extract_response(response: Response, pool: ExtractPool) -> Extracted:
    """Extract ``response``'s body (in memory, or spilled to a file and passed by path) in
    ``pool``'s bounded workers, and hash it.

    Never raises for a document: one that stops its worker (memory, time) or makes a parser
    fail keeps the capture fields good, with an empty preview and the reason noted."""
    declared = response.headers.get("content-type")
    source: bytes | Path = (
        response.body_path if response.body_path is not None else (response.body or b"")
    )
    try:
        result = pool.extract(source, declared)
    except Exception as exc:
        result = Extraction(
            kind="other",
            content_type=(declared or "application/octet-stream").split(";")[0].strip(),
            title=None,
            text="",
            preview="",
            note=f"extraction failed: {type(exc).__name__}",
            charset=None,
            pages=None,
        )
    digest = hashlib.sha256()
    if isinstance(source, Path):
        with source.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(source)
    return Extracted(
        content_type=result.content_type,
        title=result.title,
        preview=result.preview,
        text=result.text,
        note=result.note,
        sha256=digest.hexdigest(),
    )


def capture_facts(response: Response, served: Served, extracted: Extracted) -> CaptureFacts:
    """What the junk classifier is shown of a capture: the archive's answer (its archived
    headers, the head of its body), where the walk went, and what extraction found."""
    head = response.head
    if response.body is not None and len(response.body) > len(head):
        head = response.body[:HEAD_BYTES]
    return CaptureFacts(
        requested_url=served.requested,
        final_url=served.original,
        redirects=served.chain[1:],
        archived_status=served.archived_status,
        headers=response.headers,
        content_type=extracted.content_type,
        title=extracted.title,
        text=extracted.text[:TEXT_SCAN_CHARS],
        text_length=len(extracted.text),
        head=head[:HEAD_BYTES],
    )


class Engine:
    """Plan and make one fetch: implements :class:`~snapcache.protocols.FetchEngine`.

    It uses the store and transport it is given and owns neither: whoever made them closes
    them (the public facade does). It owns its extraction pool, whose worker processes
    start on the first extraction: :meth:`close` stops them.
    """

    def __init__(self, config: Config, store: Store, transport: Transport) -> None:
        self._config = config
        self._store = store
        self.transport = transport
        #: Every configured archive, in the order they are tried.
        self.chain = ArchiveChain(config, transport)
        #: The primary archive (``[archive]``).
        self.archive: WaybackArchive = self.chain.archives[0]
        self.ttls = ttls_from_config(config)
        self.limits = config.preview.extract_limits()
        #: The worker processes extraction runs in (bounded in memory and time).
        self.extractor = ExtractPool(self.limits, workers=config.preview.workers)

    def close(self) -> None:
        """Stop the extraction workers (the store and transport are the caller's)."""
        self.extractor.close()

    @property
    def config(self) -> Config:
        """The configuration in use."""
        return self._config

    @property
    def store(self) -> Store:
        """The record store results are written to."""
        return self._store

    def stats(self) -> TransportStats:
        """Requests made through this engine's transport so far."""
        return self.transport.stats_snapshot()

    def plan(
        self, url: str, at: str | None = None, force: bool = False, *, checked: bool = False,
        full: bool = False, with_record: bool = True,
    ) -> Plan:
        """Decide, without any request, whether ``url`` needs fetching and why.

        Synchronous on purpose: it only reads the local cache (microseconds), so callers on
        any thread can answer a fresh record without a hop onto the engine's loop. Without
        ``with_record``, a fresh URL is judged from the store's facts of its record alone
        (:attr:`Plan.existing` None): a warm run over a long list then reads a small row
        per URL instead of parsing every record.

        Raises :class:`~snapcache.errors.InputError` for a URL or timestamp that is not usable.
        """
        target = parse_target(url, self.transport.allowed, checked=checked)
        # Local SQLite reads take microseconds and never wait on writers (WAL), so they run
        # on the caller's thread: a hop per read would cost more than the read (warm runs).
        rid = resource_id(target.given)
        existing, facts = self._stored(rid, with_record)
        if facts is None or facts.url != target.given:
            # After a move, a corrected URL belongs to a resource whose ID is the hash of
            # the URL it was first cited with (the ID is a key, not a function of the URL),
            # and a moved-away URL is an alias: the URL index knows both.
            owner = self._store.resource_id_for_url(target.given)
            if owner is not None and owner != rid:
                rid = owner
                existing, facts = self._stored(rid, with_record)
        alias: str | None = None
        if facts is not None and facts.url.strip() != target.given:
            # An old URL of a moved record (a list not yet corrected): fetch the record's
            # current URL. Fetching the old one would store its content, title and
            # original_url in the corrected record, and undo the move on every run.
            alias = target.given
            target = parse_target(facts.url.strip(), self.transport.allowed)
        wanted_at = normalize_timestamp(at) if at else target.at

        def decided(due: bool, reason: str) -> Plan:
            record = existing
            if record is None and due and facts is not None:
                # Only the facts were read; the fetch needs the record. Read now, it may be
                # newer than they are (another process wrote it): the fetch merges into
                # what is stored when it ends, whatever was read here.
                record = self._store.get(rid)
            return Plan(target, wanted_at, rid, record, due, reason, alias, full, facts)

        if facts is None:
            return decided(True, "missing")
        if force or full:
            return decided(True, "forced")
        # A record answers the question only if it was asked the same way: newest (None)
        # or closest to the same time.
        if facts.requested_timestamp != wanted_at:
            return decided(True, "asked for another time")
        fresh = freshness(facts, datetime.now(UTC), self.ttls)
        return decided(not fresh.fresh, fresh.reason)

    def _stored(self, rid: str, with_record: bool) -> tuple[Record | None, RecordFacts | None]:
        """The stored record of ``rid`` and its facts; without ``with_record``, the facts
        alone (from the store's summary, where it keeps one)."""
        if not with_record:
            return None, record_facts(self._store, rid)
        record = self._store.get(rid)
        return record, None if record is None else RecordFacts.of(record)

    async def attempt(
        self, plan: Plan, stable_id: str | None = None, *, defer_unreachable: bool = False
    ) -> Record:
        """Resolve, fetch, extract and store one planned URL, whatever its freshness.

        ``stable_id`` binds a supplied ID when the resource has none yet (a conflict with a
        stored one raises :class:`~snapcache.cache.StableIdConflictError`). With
        ``defer_unreachable``, an attempt that could not connect to any archive raises
        :class:`~snapcache.errors.ArchiveUnreachableError` and stores nothing.
        """
        target, wanted_at, rid = plan.target, plan.at, plan.resource_id
        sid = await asyncio.to_thread(
            functools.partial(
                self._store.ensure_identity, rid, target.given, stable_id=stable_id,
                mint=mint_stable_id,
            )
        )
        started = datetime.now(UTC)
        resolution: Resolution | None = None
        extracted: Extracted | None = None
        error: str | None
        self.extractor.prestart()  # a worker starts while the archive answers
        judged: list[tuple[Response, Extracted]] = []

        async def judge(response: Response, served: Served) -> Verdict:
            # Every 2xx capture is extracted before it is accepted: the classifier needs its
            # title and text, and the one accepted keeps this extraction.
            done = await asyncio.to_thread(extract_response, response, self.extractor)
            judged.append((response, done))
            flag = classify_capture(capture_facts(response, served, done))
            return Verdict(flag.value if flag is not None else None, is_junk(flag))

        try:
            # One deadline over every request, hop and retry of this URL, in every archive.
            with url_deadline(self.config.archive.url_deadline):
                resolution = await self.chain.resolve(
                    target.original, wanted_at, known_capture(plan.existing, full=plan.full),
                    judge, absent_from=absent_from(plan.existing, full=plan.full))
            if resolution.response is not None:
                extracted = next((e for r, e in judged if r is resolution.response), None)
                if extracted is None:
                    extracted = await asyncio.to_thread(
                        extract_response, resolution.response, self.extractor)
        except ArchiveUnreachableError as exc:
            if defer_unreachable:
                raise  # nothing reached: the caller decides, and nothing is stored
            resolution = Resolution("error", wanted_at or timestamp_now(), error=str(exc),
                                    archive=self.config.archive.name)
            error = resolution.error
        except (TransientError, ArchiveError, DisallowedHostError) as exc:
            resolution = None
            error = str(exc) or type(exc).__name__
        except DeferredError:
            raise  # not now: nothing is stored, a later run tries again
        except Exception as exc:
            # Every exception the archive's bytes can cause is mapped to a snapcache error
            # where they are read (transport, archive); should one still slip through, the
            # URL is recorded with an error (and its error TTL) instead of being left
            # unstored, to be retried on every run forever.
            resolution = None
            error = f"internal error on the archive's answer: {type(exc).__name__}: {exc}"
        else:
            error = resolution.error
        finally:
            if resolution is not None and resolution.response is not None:
                resolution.response.discard()
        if error is not None:
            # Exception text becomes the record's error: it must never quote a save key.
            error = redact(error, self.config.save.secrets())
        record = self._new_record(rid, sid, target.given, wanted_at, started, resolution,
                                  extracted, error)
        entry: dict[str, object] = {
            "at": record.last_attempt_at,
            "outcome": record.status,
            "capture_timestamp": record.capture_timestamp,
            "archived_status": record.archived_status,
            "error": record.error,
        }
        if record.content_flag is not None or record.skipped:
            entry.update(content_flag=record.content_flag,
                         skipped=[e.get("capture_timestamp") for e in record.skipped])
        if resolution is not None and resolution.confirmed and plan.existing is not None:
            # The stored capture is still the one to keep: confirmed, not fetched.
            entry.update(confirmed=True, archived_status=plan.existing.archived_status)
        text = extracted.text if extracted is not None else None
        return await asyncio.to_thread(
            self._store.save_attempt, record, text=text, history_entry=entry
        )

    def _new_record(
        self,
        rid: str,
        sid: str,
        url: str,
        at: str | None,
        started: datetime,
        resolution: Resolution | None,
        extracted: Extracted | None,
        error: str | None,
    ) -> Record:
        now = to_iso(datetime.now(UTC))
        status: Status = resolution.status if resolution is not None else "error"
        record = Record(
            resource_id=rid,
            stable_id=sid,
            url=url,
            status=status,
            # Every string an archive supplied is cut and stripped of control characters
            # here, before it is stored: cards, exports (CSV and JSON) and terminals only
            # ever see what the store holds.
            error=clean_optional(error) if status == "error" else None,
            last_attempt_at=now,
            attempts=1,
            last_outcome=status,
            requested_timestamp=at,
            # The configured name of the archive that gave the result.
            archive=(resolution.archive if resolution is not None else None)
            or self.config.archive.name,
            created_at=to_iso(started),
        )
        if resolution is None:
            return record
        record.archived_status = resolution.archived_status
        record.capture_timestamp = resolution.capture_timestamp
        record.archive_url = clean_optional(resolution.archive_url, URL_CHARS)
        record.raw_url = clean_optional(resolution.raw_url, URL_CHARS)
        record.original_url = clean_optional(resolution.original_url, URL_CHARS)
        record.redirects = [clean_text(r, URL_CHARS) for r in resolution.redirects]
        record.preview_note = clean_optional(resolution.note)
        record.content_flag = resolution.content_flag
        record.skipped = [
            {k: clean_optional(v, URL_CHARS) if isinstance(v, str) else v
             for k, v in s.to_json_dict().items()}
            for s in resolution.skipped
        ]
        if resolution.confirmed:
            # No bytes were fetched: fetched_at stays unset, and the store keeps the stored
            # capture's fields (see snapcache.cache.policy.merge).
            record.last_confirmed_at = now
            return record
        response = resolution.response
        if response is not None and extracted is not None:
            record.fetched_at = now
            record.content_type = clean_optional(extracted.content_type, HEADER_CHARS)
            record.orig_content_type = clean_optional(response.headers.get(
                "x-archive-orig-content-type", response.headers.get("content-type")
            ), HEADER_CHARS)
            record.content_length = response.size
            # A body whose gzip was damaged or cut is incomplete too, though not capped.
            record.body_truncated = response.capped or response.damage is not None
            record.title = extracted.title
            record.preview = extracted.preview
            record.text_length = len(extracted.text)
            record.sha256 = extracted.sha256
            record.extractor_version = EXTRACTOR_VERSION
            notes = [n for n in (response.damage, extracted.note) if n]
            record.preview_note = clean_text("; ".join(notes), NOTE_CHARS) if notes else None
        return record

