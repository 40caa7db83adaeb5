"""Save Page Now 2: ask the archive to capture what it lacks, politely and honestly.

The API is authenticated (``Authorization: LOW key:secret``), asynchronous (a job id, then
polling) and misreports in both directions (wayback-pitfalls.md, section 9): errors arrive as
HTTP 200 JSON, a job may report failure although the capture exists, a re-submission may
return a job for a capture made minutes ago, and a fresh capture may not be replayable for a
while. So every answer is mapped by a pure function, and every "success" or "failure" is
confirmed by replay before the record says so.

Every byte of an answer is untrusted: it is read up to :data:`MAX_ANSWER_BYTES`, parsed only
when it nests at most :data:`MAX_ANSWER_DEPTH` deep, a job ID is used only in the shape the
API gives (:func:`valid_job_id`), a ``status_ext`` only from the documented list and with
``status: error`` (anything else is ``error:unknown``), a capture time only when it is a
real time near the request, and archive text is stored without control characters and
capped. The URL submitted is always the one the user cited, never one an archive named.

Statuses stored in ``record.save_status``:

* ``pending``: submitted; the next run polls the job (never resubmits it);
* ``success``: the archive captured it and snapshot fetched the new capture;
* ``not_replayable_yet``: the job succeeded but playback still serves an older capture;
  a later run checks again;
* ``error:<status_ext>``: the archive refused or failed (``error:blocked-url``,
  ``error:not-found``, ``error:too-many-daily-captures`` …), confirmed by replay;
  ``error:unknown`` for a ``status_ext`` outside the documented list (what it said is in the
  history note), ``error:bad-job-id`` for a job ID not in the API's shape;
* ``unauthorized``: the keys were refused (401); saving stops for the run;
* ``deferred``: not submitted (the save pool is paused after a 429, or the daily budget is
  spent); a later run submits it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from snapcache.cache.records import Record
from snapcache.cache.times import parse_iso, parse_timestamp14, to_timestamp14, utc_now_iso

from .credentials import ENV_SAVE_ACCESS, ENV_SAVE_SECRET, redact
from .errors import (
    ConfigError,
    DeferredError,
    DisallowedHostError,
    RateLimitedError,
    SnapcacheError,
    TransientError,
)
from .ids import parse_target
from .protocols import FetchEngine
from .transport import DailyBudget, Pool, Transport

ENV_ACCESS: Final = ENV_SAVE_ACCESS
ENV_SECRET: Final = ENV_SAVE_SECRET
#: A job still not replayable after this long is given up as an error.
GIVE_UP_AFTER: Final = timedelta(days=7)
#: An error outcome is retried after this long (the archive's per-URL limits reset daily).
RETRY_ERRORS_AFTER: Final = timedelta(days=7)
#: The most of an answer read and parsed. Real answers are a few KB; the longest (500
#: resources and 500 outlinks) about 200 KB. A longer one is not an answer.
MAX_ANSWER_BYTES: Final = 512 * 1024
#: How deep an answer may nest. Real ones nest three levels (``outlinks``); Python's parser
#: recurses per level and fails with ``RecursionError`` in the thousands.
MAX_ANSWER_DEPTH: Final = 32
#: The most of an archive's text (a message, an unknown ``status_ext``) stored in a note.
MAX_NOTE: Final = 300
#: How far our clock and the archive's may disagree.
CLOCK_SKEW: Final = timedelta(minutes=5)
#: A URL submitted again within this long gets the earlier job back, and its capture time
#: ("The same snapshot had been made N minutes ago").
SAME_SNAPSHOT_WINDOW: Final = timedelta(hours=1)
#: The ``status_ext`` values the SPN2 API documents, and the ones snapcache itself stores.
#: Any other value, or one that comes without ``status: error``, is ``error:unknown``: an
#: archive's word cannot make a save status (``success``, ``pending``) or an unbounded one.
KNOWN_ERRORS: Final = frozenset({
    "error:bad-gateway", "error:bad-request", "error:bandwidth-limit-exceeded",
    "error:blocked", "error:blocked-client-ip", "error:blocked-url", "error:browsing-timeout",
    "error:capture-location-error", "error:cannot-fetch", "error:celery",
    "error:filesize-limit", "error:ftp-access-denied", "error:gateway-timeout",
    "error:http-version-not-supported", "error:internal-server-error",
    "error:invalid-url-syntax", "error:invalid-server-response",
    "error:invalid-host-resolution", "error:job-failed", "error:method-not-allowed",
    "error:not-implemented", "error:no-browsers-available",
    "error:network-authentication-required", "error:no-access", "error:not-found",
    "error:proxy-error", "error:protocol-error", "error:read-timeout",
    "error:soft-time-limit-exceeded", "error:service-unavailable",
    "error:too-many-daily-captures", "error:too-many-redirects", "error:too-many-requests",
    "error:user-session-limit", "error:unauthorized", "error:max-daily-bandwidth",
    "error:max-daily-bandwidth-from-ip", "error:max-daily-bandwidth-host",
    # snapcache's own
    "error:unknown", "error:bad-job-id", "error:never-replayable",
})
#: Every save status a record may hold.
SAVE_STATUSES: Final = frozenset({
    "pending", "success", "not_replayable_yet", "unauthorized", "deferred",
}) | KNOWN_ERRORS
#: A job ID as the API gives it: ``spn2-`` and a hex digest (``spn2-`` and 40 hex digits
#: today), or the UUID its documentation shows. Anything else is not followed: it would be
#: pasted into ``/save/status/<job>`` with the keys attached.
_JOB_ID_RE: Final = re.compile(
    r"spn2-[0-9a-f]{1,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
#: A JSON string (so that brackets inside strings are not counted), and a bracket.
_JSON_STRING_RE: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET_RE: Final = re.compile(r"[\[\]{}]")
#: C0 and C1 controls, DEL, format characters (bidi overrides, zero widths) and surrogates.
_CONTROL_RE: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
#: The most of one archive text field kept before the stored cap (so that scrubbing a key
#: sees the whole key wherever the cap falls).
_TEXT_KEEP: Final = 4 * MAX_NOTE

AnswerKind = Literal["job", "pending", "success", "error", "unauthorized", "unexpected"]


@dataclass(frozen=True, slots=True)
class SaveAnswer:
    """One SPN2 answer, classified. Text fields are cleaned (:func:`clean_text`); the job
    ID is valid (:func:`valid_job_id`) or ``None``; ``original_url`` is informational only
    and is never requested or submitted."""

    kind: AnswerKind
    job_id: str | None = None
    timestamp: str | None = None
    original_url: str | None = None
    status_ext: str | None = None
    message: str | None = None


def valid_job_id(job: object) -> bool:
    """Is ``job`` a Save Page Now job ID, one that stays a single path segment?"""
    return isinstance(job, str) and _JOB_ID_RE.fullmatch(job) is not None


def valid_timestamp(ts: object) -> bool:
    """Is ``ts`` a 14-digit archive timestamp of a real date and time?"""
    if not isinstance(ts, str):
        return False
    try:
        parse_timestamp14(ts)
    except ValueError:
        return False
    return True


def json_depth(text: str, limit: int = MAX_ANSWER_DEPTH) -> int:
    """How deep ``text``'s brackets nest outside strings, counting no further than past
    ``limit`` (iterative, so any depth is measured without recursion)."""
    depth = deepest = 0
    for match in _BRACKET_RE.finditer(_JSON_STRING_RE.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def parse_answer(body: bytes) -> dict[str, object] | None:
    """An SPN answer's JSON object, or ``None``: not JSON, not an object, longer than
    :data:`MAX_ANSWER_BYTES` or nested deeper than :data:`MAX_ANSWER_DEPTH`."""
    if len(body) > MAX_ANSWER_BYTES:
        return None
    text = body.decode("utf-8", "replace")
    if json_depth(text) > MAX_ANSWER_DEPTH:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: cannot happen below the depth cap
        return None
    return data if isinstance(data, dict) else None


def clean_text(text: object, limit: int = _TEXT_KEEP) -> str | None:
    """An archive's text as it may be stored: a string only, control and format characters
    (escapes, bidi overrides, lone surrogates) as spaces, runs of white space as one, at most
    ``limit`` characters. ``None`` for anything else or nothing left."""
    if not isinstance(text, str):
        return None
    kept = text[: limit * 2]
    cleaned = " ".join(_CONTROL_RE.sub(" ", kept).split())[:limit]
    return cleaned or None


def _error_ext(data: dict[str, object]) -> tuple[str, str | None]:
    """The ``status_ext`` of an error answer, and a note saying what the archive sent when
    that is not taken as given."""
    ext = data.get("status_ext")
    if data.get("status") == "error" and isinstance(ext, str) and ext in KNOWN_ERRORS:
        return ext, None
    if ext is None:
        return "error:unknown", None
    shown = clean_text(ext if isinstance(ext, str) else repr(ext))
    state = clean_text(repr(data.get("status")), 60)
    return "error:unknown", f"the archive answered status {state} with status_ext {shown!r}"


def _joined(*parts: str | None) -> str | None:
    text = "; ".join(p for p in parts if p)
    return text or None


def interpret_submit(status: int, body: bytes) -> SaveAnswer:
    """Classify the answer to ``POST /save``.

    200 with a ``job_id`` is a job (possibly an existing one: "The same snapshot had been
    made N minutes ago"). Errors come as HTTP 200 JSON with ``status: error`` and no job id.
    A job ID not in the API's shape is an ``error:bad-job-id``: it is never stored or polled.
    """
    if status == 401:
        return SaveAnswer("unauthorized", message="the archive refused the save keys (401)")
    data = parse_answer(body) if status == 200 else None
    if data is None:
        why = "" if status != 200 else ": not a JSON object of a sane size and depth"
        return SaveAnswer("unexpected", message=f"HTTP {status} from /save{why}")
    message = clean_text(data.get("message"))
    job = data.get("job_id")
    if data.get("status") == "error" or not job:
        ext, note = _error_ext(data)
        return SaveAnswer("error", status_ext=ext, message=_joined(note, message))
    if not isinstance(job, str) or not valid_job_id(job):
        shown = clean_text(job if isinstance(job, str) else repr(job), 80)
        return SaveAnswer("error", status_ext="error:bad-job-id", message=_joined(
            f"the archive answered with {shown!r}, not a job ID", message))
    return SaveAnswer("job", job_id=job, message=message)


def interpret_status(status: int, body: bytes) -> SaveAnswer:
    """Classify the answer to ``GET /save/status/<job_id>``.

    ``success`` needs a real 14-digit ``timestamp`` (else the answer is unexpected, and
    replay decides); ``error`` gives its ``status_ext`` only from :data:`KNOWN_ERRORS`."""
    if status == 401:
        return SaveAnswer("unauthorized", message="the archive refused the save keys (401)")
    data = parse_answer(body) if status == 200 else None
    if data is None:
        why = "" if status != 200 else ": not a JSON object of a sane size and depth"
        return SaveAnswer("unexpected", message=f"HTTP {status} from /save/status{why}")
    state = data.get("status")
    raw_job = data.get("job_id")
    job = raw_job if isinstance(raw_job, str) and valid_job_id(raw_job) else None
    if state == "pending":
        return SaveAnswer("pending", job_id=job)
    timestamp = data.get("timestamp")
    if state == "success" and isinstance(timestamp, str) and valid_timestamp(timestamp):
        return SaveAnswer("success", job_id=job, timestamp=timestamp,
                          original_url=clean_text(data.get("original_url")))
    if state == "error":
        ext, note = _error_ext(data)
        return SaveAnswer("error", job_id=job, status_ext=ext,
                          message=_joined(note, clean_text(data.get("message"))))
    shown = clean_text(repr(state), 60)
    if state == "success":
        shown = f"success with timestamp {clean_text(repr(timestamp), 60)}"
    return SaveAnswer("unexpected", job_id=job, message=f"status {shown} from /save/status")


def _parse_iso(text: str | None) -> datetime | None:
    # Save times are written by us, but a damaged record must not stop a save pass.
    if not text:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def needs_save(record: Record, now: datetime, *, stale_days: float | None = None) -> bool:
    """Should a save be submitted for this record now? (Pending jobs are polled instead.)

    Not archived, or (with ``stale_days``) a newest good capture older than that; and no
    job in flight, no recent error, unless keys or budget stopped the last try.
    """
    if record.save_status in ("pending", "not_replayable_yet") and record.save_job_id:
        return False  # polled instead (a job ID the API would not give is dropped then)
    # Without a job, "pending" can never be followed (an archive's status_ext of "pending"
    # was once stored so): such a record is submitted like one never tried.
    if record.save_status and record.save_status.startswith("error:"):
        when = _parse_iso(record.save_requested_at)
        if when is not None and now - when < RETRY_ERRORS_AFTER:
            return False
    if record.status == "not_archived":
        return True
    if stale_days is not None and record.status == "archived_error":
        return True  # no good capture at all: older than any window
    if stale_days is not None and record.status == "ok" and record.capture_timestamp:
        try:
            captured = parse_timestamp14(record.capture_timestamp)
        except ValueError:
            return False
        return now - captured > timedelta(days=stale_days)
    return False


def plausible_capture_time(timestamp: str | None, requested: str | None,
                           now: datetime) -> bool:
    """Can a job's reported capture time be the capture made for a request at
    ``requested`` (ISO)? A real 14-digit time, not after ``now`` and not before the request
    (both give or take :data:`CLOCK_SKEW`), or before it by at most
    :data:`SAME_SNAPSHOT_WINDOW` (a re-submission gets the earlier job back)."""
    if timestamp is None:
        return False
    try:
        moment = parse_timestamp14(timestamp)
    except ValueError:
        return False
    if moment > now + CLOCK_SKEW:
        return False
    asked = _parse_iso(requested)
    return asked is None or moment >= asked - SAME_SNAPSHOT_WINDOW - CLOCK_SKEW


def needs_poll(record: Record) -> bool:
    """A job submitted earlier that a run should follow up."""
    return record.save_status in ("pending", "not_replayable_yet") and bool(record.save_job_id)


@dataclass(slots=True)
class SaveStats:
    """What a save pass did."""

    submitted: int = 0
    polled: int = 0
    outcomes: dict[str, int] | None = None
    stopped: str | None = None

    def settle(self, latest: dict[str, str]) -> None:
        """Count each record's latest save status once (errors under "error")."""
        self.outcomes = {}
        for status in latest.values():
            key = "error" if status.startswith("error:") else status
            self.outcomes[key] = self.outcomes.get(key, 0) + 1


class Saver:
    """Submits and follows SPN2 jobs for records: requests through ``transport``, replay
    checks and record updates through ``engine``."""

    def __init__(self, engine: FetchEngine, transport: Transport) -> None:
        self.engine = engine
        self.transport = transport
        self.config = engine.config
        self.base = self.config.archive.base_url.rstrip("/")
        if not self.config.save.enabled:
            raise ConfigError("saving is disabled: set [save] enabled = true in the config")
        # Stripped and checked: a key read from a CRLF file kept its \r, which no header
        # may carry; the refusal quoted the key and was stored as a history note.
        access, secret = self.config.save.keys()
        if not access or not secret:
            raise ConfigError(
                f"save keys missing: set [save] access_key and secret_key, or {ENV_ACCESS} "
                f"and {ENV_SECRET}"
            )
        # The only place the keys exist outside the config: a request header. Whatever text
        # may quote it (an archive message, an exception) passes scrub() before it is
        # stored or shown.
        self._secrets = (access, secret)
        self._auth = {"Authorization": f"LOW {access}:{secret}", "Accept": "application/json"}
        # The transport's shared state: the SQLite file, or PostgreSQL across machines.
        self.daily = DailyBudget(transport.limiter.state, self.config.save.per_day)
        self.stats = SaveStats()
        #: Why submissions stopped (a 429 pause, the daily budget, refused keys).
        self.stopped: str | None = None
        #: Refused keys also stop polling: every status request would be refused too.
        self.keys_refused = False
        self.latest: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Saver(base={self.base!r})"

    def scrub(self, text: str | None) -> str | None:
        """``text`` without the save keys (see :func:`snapcache.credentials.redact`)."""
        return redact(text, self._secrets) if text is not None else None

    async def _call(self, url: str, pool: Pool, *, data: dict[str, str] | None = None
                    ) -> tuple[int, bytes]:
        try:
            # One byte past the cap: enough to tell an answer too long to be one (it is
            # then no JSON object at all), never a gigabyte in memory or on disk.
            response = await self.transport.request(
                "POST" if data else "GET", url, pool,
                want_body=lambda s, h: MAX_ANSWER_BYTES + 1, data=data, headers=self._auth,
            )
        except SnapcacheError as exc:
            # An error about the request may quote its Authorization header. Raise the same
            # kind of error without the keys, and without the chained original that holds
            # them.
            text = str(exc)
            scrubbed = self.scrub(text)
            if scrubbed == text:
                raise
            raise type(exc)(scrubbed) from None
        response.discard()
        return response.status, response.head

    async def _update(self, record: Record, job: str | None, requested: str | None,
                      status: str, note: str | None = None) -> Record:
        # Every save status, job id and note is stored through here: none may hold a key,
        # a control character or an archive's word for a status. Cleaned before scrubbing
        # (cleaning turns a zero-width space inside a key into a space, never removes it)
        # and capped after it (a cap must not cut a key in two the scrubber then misses).
        if status not in SAVE_STATUSES:
            status = "error:unknown"
        if job is not None and not valid_job_id(job):
            job = None
        note = self.scrub(clean_text(note))
        note = note[:MAX_NOTE] if note else None
        self.latest[record.resource_id] = status
        entry = {"at": utc_now_iso(), "save_status": status, "save_job_id": job, "note": note}
        return await asyncio.to_thread(
            self.engine.store.update_save, record.resource_id, job_id=job,
            requested_at=requested, status=status, history_entry=entry,
        )

    async def submit(self, record: Record) -> Record:
        """Submit ``record``'s URL; returns the record with its save fields set."""
        if self.stopped:
            return record
        if not await asyncio.to_thread(self.daily.take):
            self.stopped = "the daily save budget is spent"
            return await self._update(record, None, None, "deferred", self.stopped)
        try:
            # The URL the user cited (the original inside a cited archive URL), never an
            # original_url an archive's Link header named: that would spend the user's
            # account and good name on any URL a second archive cares to name.
            url = parse_target(record.url, self.transport.allowed).original
        except SnapcacheError as exc:
            return await self._update(record, None, None, "error:invalid-url-syntax",
                                      f"not submitted: {exc}")
        within = int(self.config.save.if_not_archived_within_days * 86400)
        form = {"url": url, "if_not_archived_within": str(within)}
        requested = utc_now_iso()
        try:
            status, body = await self._call(f"{self.base}/save", Pool.SAVE, data=form)
        except (RateLimitedError, DeferredError) as exc:
            # A 429 paused the save pool for every process; submit again on a later run.
            self.stopped = f"the archive paused saving: {exc}"
            return await self._update(record, None, None, "deferred", self.stopped)
        except TransientError as exc:
            return await self._update(record, None, None, "deferred", str(exc))
        self.stats.submitted += 1
        answer = interpret_submit(status, body)
        if answer.kind == "unauthorized":
            self.stopped = answer.message
            self.keys_refused = True
            return await self._update(record, None, requested, "unauthorized", answer.message)
        if answer.kind == "job":
            return await self._update(record, answer.job_id, requested, "pending",
                                      answer.message)
        if answer.kind == "error":
            # Trust captures over reports: a refusal may hide a capture made anyway.
            return await self._confirm(record, None, requested, failure=answer.status_ext,
                                       note=answer.message)
        return await self._update(record, None, None, "deferred", answer.message)

    async def poll_once(self, record: Record) -> Record:
        """Ask once how ``record``'s job stands; confirm by replay when it has finished."""
        job, requested = record.save_job_id, record.save_requested_at
        if not job:
            return record
        if not valid_job_id(job):
            # Stored before job IDs were checked (a CRLF, a "../../web/..."): never sent
            # with the keys. Replay still says whether a capture came of it.
            shown = clean_text(repr(job), 80)
            return await self._confirm(record, None, requested, failure="error:bad-job-id",
                                       note=f"the stored job ID {shown} is not one the "
                                            f"archive gives: dropped")
        self.stats.polled += 1
        try:
            status, body = await self._call(f"{self.base}/save/status/{job}", Pool.SAVE_STATUS)
        except (TransientError, DeferredError):
            return record  # the job is still on the archive's side; ask again later
        except DisallowedHostError as exc:
            # The job ID the archive gave makes a request we may not send (it climbs out of
            # /save/status/): the job cannot be followed, so it is dropped, never polled again.
            return await self._update(record, None, requested, "error:bad-job-id", str(exc))
        answer = interpret_status(status, body)
        if answer.kind == "success":
            if plausible_capture_time(answer.timestamp, requested, datetime.now(UTC)):
                return await self._confirm(record, job, requested,
                                           success_ts=answer.timestamp)
            # A time long before the request would let an old capture pass for the new
            # one; replay against the request time decides instead.
            return await self._confirm(
                record, job, requested,
                note=f"the job reported success at {answer.timestamp}, not near the request",
            )
        if answer.kind == "error":
            return await self._confirm(record, job, requested, failure=answer.status_ext,
                                       note=answer.message)
        if answer.kind == "unauthorized":
            self.stopped = answer.message
            self.keys_refused = True
            return await self._update(record, job, requested, "unauthorized", answer.message)
        if answer.kind == "unexpected":
            # The archive keeps job statuses for about an hour; after that only replay can
            # tell whether the capture happened.
            return await self._confirm(record, job, requested, note=answer.message)
        return record

    async def run(self, resource_ids: list[str], *, stale_days: float | None = None,
                  budget: float | None = None) -> SaveStats:
        """Submit what needs saving among ``resource_ids``, then follow every pending job
        (round-robin, ``poll_interval`` apart) until all finish or ``budget`` seconds pass.
        Jobs still pending stay so, for the next run to poll; none is ever resubmitted."""
        deadline = time.monotonic() + (budget if budget is not None
                                       else self.config.save.poll_budget)
        now = datetime.now(UTC)
        pending: list[Record] = []
        for rid in resource_ids:
            record = await asyncio.to_thread(self.engine.store.get, rid)
            if record is None:
                continue
            if needs_poll(record):
                pending.append(record)
            elif needs_save(record, now, stale_days=stale_days) and not self.stopped:
                if time.monotonic() > deadline:
                    break
                record = await self.submit(record)
                if needs_poll(record):
                    pending.append(record)
        while pending and not self.keys_refused and time.monotonic() < deadline:
            still: list[Record] = []
            for record in pending:
                updated = await self.poll_once(record)
                if needs_poll(updated) and updated.save_status == "pending":
                    still.append(updated)
            pending = still
            if pending:
                await asyncio.sleep(min(self.config.save.poll_interval,
                                        max(0.0, deadline - time.monotonic())))
        self.stats.stopped = self.scrub(self.stopped)
        self.stats.settle(self.latest)
        return self.stats

    async def _confirm(self, record: Record, job: str | None, requested: str | None, *,
                       success_ts: str | None = None, failure: str | None = None,
                       note: str | None = None) -> Record:
        """Fetch the URL's newest capture and decide from what playback really serves.
        ``success_ts`` is a checked capture time (:func:`plausible_capture_time`)."""
        plan = self.engine.plan(record.url, None, True)
        fetched = await self.engine.attempt(plan)
        floor = success_ts or _archive_ts(requested, skew=CLOCK_SKEW)
        served = fetched.capture_timestamp if fetched.status == "ok" else None
        if served is not None and floor is not None and served >= floor:
            # The new capture (or one made since the request) is replayable: a success,
            # whatever the job reported.
            said = f"job reported {failure}, but the capture exists" if failure else None
            return await self._update(fetched, job, requested, "success",
                                      _joined(said, note))
        if failure is not None:
            return await self._update(fetched, job, requested, failure, note)
        requested_at = _parse_iso(requested)
        if requested_at is not None and datetime.now(UTC) - requested_at > GIVE_UP_AFTER:
            return await self._update(fetched, job, requested, "error:never-replayable", note)
        # Captured but still not served: playback redirects to an older capture for a while
        # (internetarchive/wayback#210). Not the new capture yet; look again next run.
        return await self._update(fetched, job, requested, "not_replayable_yet", note)


def _archive_ts(iso: str | None, skew: timedelta = timedelta(0)) -> str | None:
    """An ISO time as a 14-digit archive timestamp, moved back by ``skew`` (our clock and
    the archive's may differ by a little)."""
    moment = _parse_iso(iso)
    return to_timestamp14(moment - skew) if moment else None

