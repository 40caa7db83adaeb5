"""Pure decisions about records: is one fresh, and what is stored after an attempt.

Nothing here touches the disk, the network or the clock (the decisions take ``now`` as an
argument; time conversions live in :mod:`.times`), so every branch is tested with plain
values. Nothing here depends on how or where records are stored.

The core promise, implemented by :func:`merge`: a failed or worse attempt never overwrites a
good record. The wiki that motivated snapcache lost good previews when a later fetch failed
(its writes replaced the whole record); here a record's fields are split into identity,
capture and attempt groups, and only an attempt that produced a capture at least as
meaningful may replace the capture group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from .records import FINAL_STATUSES, SCHEMA_VERSION, STATUSES, Record, RecordFacts, Status
from .times import parse_iso, require_aware, to_iso

__all__ = [
    "ATTEMPT_FIELDS",
    "CAPTURE_FIELDS",
    "IDENTITY_FIELDS",
    "MAX_CLOCK_SKEW",
    "SAVE_FIELDS",
    "Freshness",
    "MergeResult",
    "TTLs",
    "freshness",
    "holds_capture",
    "is_confirmation",
    "merge",
]

# --------------------------------------------------------------------------------------------
# Freshness.

_DAY: Final = 86400.0

#: A last attempt further than this in the future is treated as stale: a record written by a
#: machine whose clock ran ahead would otherwise stay "fresh" until long after its TTL.
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class TTLs:
    """How long (seconds) the outcome of an attempt stays fresh, per outcome.

    Defaults: a good capture or a refusal by the archive is rechecked monthly (the wiki's
    30-day default); "no capture" and "only error captures" weekly, since the archive may
    capture the page meanwhile; a transient error after an hour.
    """

    ok: float = 30 * _DAY
    blocked: float = 30 * _DAY
    not_archived: float = 7 * _DAY
    archived_error: float = 7 * _DAY
    error: float = 3600.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"TTL {f.name!r} must be a finite number of seconds >= 0")

    def for_status(self, status: Status) -> float:
        """Return the TTL in seconds for an outcome; ``ValueError`` for an unknown one."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return float(getattr(self, status))


@dataclass(frozen=True, slots=True)
class Freshness:
    """Whether a stored record may be used as is, and why.

    ``due_at`` is when the record becomes (or became) stale; ``None`` when there is no record
    or its timestamp cannot be judged.
    """

    fresh: bool
    reason: str
    due_at: datetime | None


def freshness(
    record: Record | RecordFacts | None, now: datetime, ttls: TTLs, *, force: bool = False
) -> Freshness:
    """Judge whether ``record`` (or its :class:`~snapcache.cache.records.RecordFacts`, which
    hold every field read here) is fresh at ``now``.

    Judged from the latest attempt, not the latest success: ``last_attempt_at`` (or
    ``fetched_at`` for records without it) plus the TTL of ``last_outcome`` (or ``status``).
    So a good record whose latest attempt failed transiently is retried after the error TTL,
    neither sooner nor a month later. A record is stale from ``due_at`` on (inclusive).
    ``force`` makes every record stale (reason ``"forced"``). ``now`` must be tz-aware.
    """
    require_aware(now, "now")
    if record is None:
        return Freshness(False, "missing", None)
    judged = _judge(record, now, ttls)
    if force:
        return Freshness(False, "forced", judged.due_at)
    return judged


def _judge(record: Record | RecordFacts, now: datetime, ttls: TTLs) -> Freshness:
    stamp = record.last_attempt_at if record.last_attempt_at is not None else record.fetched_at
    if stamp is None:
        return Freshness(False, "never attempted", None)
    try:
        attempted = parse_iso(stamp)
    except ValueError:
        return Freshness(False, f"stale: unparseable timestamp {stamp!r}", None)
    if attempted > now + MAX_CLOCK_SKEW:
        return Freshness(False, f"stale: last attempt {stamp} is in the future", None)
    outcome: Status = record.last_outcome if record.last_outcome is not None else record.status
    try:
        due = attempted + timedelta(seconds=ttls.for_status(outcome))
    except OverflowError:
        # A TTL of centuries means "never stale" in practice.
        due = datetime.max.replace(tzinfo=UTC)
    if now < due:
        return Freshness(True, f"fresh until {to_iso(due)}", due)
    return Freshness(False, f"stale since {to_iso(due)}", due)


# --------------------------------------------------------------------------------------------
# Merging an attempt into the stored record.

#: Who the resource is. Minted or given once; never taken from a later attempt.
IDENTITY_FIELDS: Final[tuple[str, ...]] = ("resource_id", "stable_id", "url", "created_at")

#: What the archive gave us. Moves as one block: a preview never sits beside another
#: capture's timestamp.
CAPTURE_FIELDS: Final[tuple[str, ...]] = (
    "status",
    "archived_status",
    "capture_timestamp",
    "archive_url",
    "raw_url",
    "original_url",
    "fetched_at",
    "content_type",
    "content_length",
    "title",
    "preview",
    "text_length",
    "redirects",
    "requested_timestamp",
    "archive",
    "orig_content_type",
    "sha256",
    "body_truncated",
    "preview_note",
    "last_confirmed_at",
    "extractor_version",
    "content_flag",
    "skipped",
)

#: About the latest attempt, whatever it produced.
ATTEMPT_FIELDS: Final[tuple[str, ...]] = ("error", "last_attempt_at", "attempts", "last_outcome")

#: About a Save Page Now request. Fetch attempts never change these (a pending job must
#: survive every refetch until it is polled); only the store's ``update_save`` does.
SAVE_FIELDS: Final[tuple[str, ...]] = ("save_job_id", "save_requested_at", "save_status")


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The record to store, and whether its capture (and so its text) came from the attempt.

    When ``replaced_capture`` is false the stored text belongs to the kept capture and must
    not be touched.
    """

    record: Record
    replaced_capture: bool


def merge(old: Record | None, new: Record) -> MergeResult:
    """Decide what is stored after an attempt that produced ``new``.

    ``new`` describes this attempt only (its ``status`` is the attempt's outcome). Rules:

    * identity (stable ID, resource ID, URL, created_at) always comes from ``old``;
      ``attempts`` is ``old.attempts + 1`` (1 without ``old``);
    * ``ok`` replaces the capture and clears ``error``;
    * a final non-ok outcome over a good (``ok``) record keeps the good capture and reports
      the outcome in ``error`` (the archive sometimes loses or hides captures, and a good
      preview must not vanish); over anything else it replaces the capture;
    * ``error`` (transient) keeps the stored capture and sets ``error``;
    * a *confirmation* (an ``ok`` attempt with ``last_confirmed_at`` set and no
      ``fetched_at``: the archive named the stored capture and nothing was downloaded)
      keeps every capture field but ``redirects`` and ``skipped`` (what was walked and
      passed over to reach it this time) and sets ``last_confirmed_at``. It carries no content, so
      it can never replace a capture: if the stored record no longer holds the capture it
      confirmed (another process stored a newer one meanwhile, or there is no record),
      only the attempt is counted.

    Raises ``ValueError`` if the two records are not for the same resource.
    """
    if old is not None and old.resource_id != new.resource_id:
        raise ValueError(
            f"cannot merge an attempt for {new.resource_id} into record {old.resource_id}"
        )
    outcome = new.status
    if is_confirmation(new):
        return _confirm(old, new)
    if old is None:
        # First sight: the attempt is the record, whatever it produced, so that even a
        # failure leaves something to show and a time to judge freshness by.
        record = replace(
            new,
            redirects=list(new.redirects),
            skipped=[dict(e) for e in new.skipped],
            error=None if outcome == "ok" else _error_text(new),
            attempts=1,
            last_outcome=outcome,
            created_at=new.created_at or new.last_attempt_at or new.fetched_at,
            schema_version=SCHEMA_VERSION,
        )
        return MergeResult(record, True)

    replaced = outcome == "ok" or (outcome in FINAL_STATUSES and old.status != "ok")
    source = new if replaced else old
    values = {name: getattr(source, name) for name in CAPTURE_FIELDS}
    values["redirects"] = list(source.redirects)
    values["skipped"] = [dict(e) for e in source.skipped]
    values.update({name: getattr(old, name) for name in IDENTITY_FIELDS})
    values.update({name: getattr(old, name) for name in SAVE_FIELDS})
    if outcome == "ok":
        error = None
    elif outcome in FINAL_STATUSES and not replaced:
        error = _kept_capture_note(new)
    else:
        error = _error_text(new)
    values.update(
        error=error,
        last_attempt_at=new.last_attempt_at,
        attempts=old.attempts + 1,
        last_outcome=outcome,
        schema_version=SCHEMA_VERSION,
    )
    return MergeResult(Record(**values), replaced)


def is_confirmation(attempt: Record) -> bool:
    """Whether ``attempt`` confirms a stored capture instead of carrying one (see
    :func:`merge`)."""
    return (attempt.status == "ok" and attempt.last_confirmed_at is not None
            and attempt.fetched_at is None)


def holds_capture(record: Record, capture_timestamp: str | None,
                  original_url: str | None) -> bool:
    """Whether ``record`` is a good record of exactly that capture."""
    return (record.status == "ok" and capture_timestamp is not None
            and record.capture_timestamp == capture_timestamp
            and record.original_url == original_url)


def _confirm(old: Record | None, new: Record) -> MergeResult:
    if old is None:
        # Nothing to confirm (the record went away meanwhile). A confirmation holds no
        # content, so it becomes a transient error with no capture: retried after the error
        # TTL, in full, since no record is left to confirm.
        empty = Record(new.resource_id, new.stable_id, new.url)
        values = {name: getattr(empty, name) for name in CAPTURE_FIELDS}
        values.update(redirects=[], status="error")
        record = replace(
            new, **values, last_outcome="error", attempts=1,
            error="the stored capture this attempt confirmed is gone; fetch again",
            created_at=new.created_at or new.last_attempt_at, schema_version=SCHEMA_VERSION,
        )
        return MergeResult(record, True)
    confirmed = holds_capture(old, new.capture_timestamp, new.original_url)
    record = replace(
        old,
        # The chain walked this time led to the same capture: it is the current one, and
        # so are the newer captures passed over on the way.
        redirects=list(new.redirects if confirmed else old.redirects),
        skipped=[dict(e) for e in (new.skipped if confirmed else old.skipped)],
        error=None if confirmed else old.error,
        last_attempt_at=new.last_attempt_at,
        attempts=old.attempts + 1,
        last_outcome="ok" if confirmed else old.last_outcome,
        last_confirmed_at=new.last_confirmed_at if confirmed else old.last_confirmed_at,
        schema_version=SCHEMA_VERSION,
    )
    return MergeResult(record, False)


def _error_text(new: Record) -> str | None:
    """The error to store for a non-ok attempt that replaces nothing good."""
    if new.status == "error" and not new.error:
        # A transient failure must always be visible; callers should say why, but if one
        # does not, still say that the attempt failed.
        return "latest attempt: error"
    return new.error


def _kept_capture_note(new: Record) -> str:
    """Explain a final non-ok outcome that did not replace a good capture."""
    details = []
    if new.archived_status is not None:
        details.append(f"archived status {new.archived_status}")
    if new.capture_timestamp is not None:
        details.append(f"capture {new.capture_timestamp}")
    note = f"latest attempt: {new.status}"
    if details:
        note += f" ({', '.join(details)})"
    if new.error:
        note += f": {new.error}"
    return note + "; kept the earlier good capture"
