"""Save Page Now 2: ask the archive to capture what it lacks, politely and honestly.

The API is authenticated (``Authorization: LOW key:secret``), asynchronous (a job id, then
polling) and misreports in both directions (wayback-pitfalls.md, section 9): errors arrive as
HTTP 200 JSON, a job may report failure although the capture exists, a re-submission may
return a job for a capture made minutes ago, and a fresh capture may not be replayable for a
while. So every answer is mapped by a pure function, and every "success" or "failure" is
confirmed by replay before the record says so.

Statuses stored in ``record.save_status``:

* ``pending``: submitted; the next run polls the job (never resubmits it);
* ``success``: the archive captured it and snapshot fetched the new capture;
* ``not_replayable_yet``: the job succeeded but playback still serves an older capture;
  a later run checks again;
* ``error:<status_ext>``: the archive refused or failed (``error:blocked-url``,
  ``error:not-found``, ``error:too-many-daily-captures`` …), confirmed by replay;
* ``unauthorized``: the keys were refused (401); saving stops for the run;
* ``deferred``: not submitted (the save pool is paused after a 429, or the daily budget is
  spent); a later run submits it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

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
from .protocols import FetchEngine
from .transport import FULL, DailyBudget, Pool, Transport

ENV_ACCESS: Final = ENV_SAVE_ACCESS
ENV_SECRET: Final = ENV_SAVE_SECRET
#: A job still not replayable after this long is given up as an error.
GIVE_UP_AFTER: Final = timedelta(days=7)
#: An error outcome is retried after this long (the archive's per-URL limits reset daily).
RETRY_ERRORS_AFTER: Final = timedelta(days=7)

AnswerKind = Literal["job", "pending", "success", "error", "unauthorized", "unexpected"]


@dataclass(frozen=True, slots=True)
class SaveAnswer:
    """One SPN2 answer, classified."""

    kind: AnswerKind
    job_id: str | None = None
    timestamp: str | None = None
    original_url: str | None = None
    status_ext: str | None = None
    message: str | None = None


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _short(text: object) -> str | None:
    return str(text)[:300] if text else None


def interpret_submit(status: int, body: bytes) -> SaveAnswer:
    """Classify the answer to ``POST /save``.

    200 with a ``job_id`` is a job (possibly an existing one: "The same snapshot had been
    made N minutes ago"). Errors come as HTTP 200 JSON with ``status: error`` and no job id.
    """
    if status == 401:
        return SaveAnswer("unauthorized", message="the archive refused the save keys (401)")
    data = _json(body) if status == 200 else None
    if data is None:
        return SaveAnswer("unexpected", message=f"HTTP {status} from /save")
    if data.get("status") == "error" or not data.get("job_id"):
        return SaveAnswer(
            "error",
            status_ext=str(data.get("status_ext") or "error:unknown"),
            message=_short(data.get("message")),
        )
    return SaveAnswer("job", job_id=str(data["job_id"]), message=_short(data.get("message")))


def interpret_status(status: int, body: bytes) -> SaveAnswer:
    """Classify the answer to ``GET /save/status/<job_id>``."""
    if status == 401:
        return SaveAnswer("unauthorized", message="the archive refused the save keys (401)")
    data = _json(body) if status == 200 else None
    if data is None:
        return SaveAnswer("unexpected", message=f"HTTP {status} from /save/status")
    state = data.get("status")
    job = str(data.get("job_id")) if data.get("job_id") else None
    if state == "pending":
        return SaveAnswer("pending", job_id=job)
    if state == "success" and isinstance(data.get("timestamp"), str):
        return SaveAnswer(
            "success", job_id=job, timestamp=data["timestamp"],
            original_url=str(data.get("original_url") or "") or None,
        )
    if state == "error":
        return SaveAnswer(
            "error", job_id=job, status_ext=str(data.get("status_ext") or "error:unknown"),
            message=_short(data.get("message")),
        )
    return SaveAnswer("unexpected", job_id=job, message=f"status {state!r} from /save/status")


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
    if record.save_status in ("pending", "not_replayable_yet"):
        return False
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
            response = await self.transport.request(
                "POST" if data else "GET", url, pool, want_body=lambda s, h: FULL,
                data=data, headers=self._auth,
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
        try:
            body = response.body or (response.body_path.read_bytes() if response.body_path
                                     else b"")
        finally:
            response.discard()
        return response.status, body

    async def _update(self, record: Record, job: str | None, requested: str | None,
                      status: str, note: str | None = None) -> Record:
        # Every save status, job id and note is stored through here: none may hold a key.
        status = self.scrub(status) or status
        job, note = self.scrub(job), self.scrub(note)
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
        within = int(self.config.save.if_not_archived_within_days * 86400)
        form = {"url": record.original_url or _original(record.url),
                "if_not_archived_within": str(within)}
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
            return await self._confirm(record, None, requested, failure=answer.status_ext)
        return await self._update(record, None, None, "deferred", answer.message)

    async def poll_once(self, record: Record) -> Record:
        """Ask once how ``record``'s job stands; confirm by replay when it has finished."""
        job, requested = record.save_job_id, record.save_requested_at
        if not job:
            return record
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
            return await self._confirm(record, job, requested, success_ts=answer.timestamp)
        if answer.kind == "error":
            return await self._confirm(record, job, requested, failure=answer.status_ext)
        if answer.kind == "unauthorized":
            self.stopped = answer.message
            self.keys_refused = True
            return await self._update(record, job, requested, "unauthorized", answer.message)
        if answer.kind == "unexpected":
            # The archive keeps job statuses for about an hour; after that only replay can
            # tell whether the capture happened.
            return await self._confirm(record, job, requested)
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
                       success_ts: str | None = None, failure: str | None = None) -> Record:
        """Fetch the URL's newest capture and decide from what playback really serves."""
        plan = self.engine.plan(record.url, None, True)
        fetched = await self.engine.attempt(plan)
        floor = success_ts or _archive_ts(requested, skew=timedelta(minutes=5))
        served = fetched.capture_timestamp if fetched.status == "ok" else None
        if served is not None and floor is not None and served >= floor:
            # The new capture (or one made since the request) is replayable: a success,
            # whatever the job reported.
            note = f"job reported {failure}, but the capture exists" if failure else None
            return await self._update(fetched, job, requested, "success", note)
        if failure is not None:
            return await self._update(fetched, job, requested, failure)
        requested_at = _parse_iso(requested)
        if requested_at is not None and datetime.now(UTC) - requested_at > GIVE_UP_AFTER:
            return await self._update(fetched, job, requested, "error:never-replayable")
        # Captured but still not served: playback redirects to an older capture for a while
        # (internetarchive/wayback#210). Not the new capture yet; look again next run.
        return await self._update(fetched, job, requested, "not_replayable_yet")


def _archive_ts(iso: str | None, skew: timedelta = timedelta(0)) -> str | None:
    """An ISO time as a 14-digit archive timestamp, moved back by ``skew`` (our clock and
    the archive's may differ by a little)."""
    moment = _parse_iso(iso)
    return to_timestamp14(moment - skew) if moment else None


def _original(url: str) -> str:
    from .ids import parse_target

    try:
        return parse_target(url).original
    except SnapcacheError:
        return url
