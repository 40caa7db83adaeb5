"""The record kept for each cited resource, and its JSON form.

A record is plain data: it knows nothing of the archive or of HTTP. Its JSON form is what
the store writes, what ``snapcache fetch --json`` prints and what exports contain, so the
field order here is the public order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Final, Literal, get_args

#: Bumped whenever a field changes meaning or a field is removed. Adding an optional field
#: with a default does not need a bump: older records load with the default.
SCHEMA_VERSION: Final = 1

Status = Literal["ok", "not_archived", "archived_error", "blocked", "error"]
"""The outcome of resolving a URL.

``ok``: a capture with a 2xx archived status was fetched. ``not_archived``: the archive holds
no capture. ``archived_error``: it holds only captures of error responses (404, 5xx, ...).
``blocked``: the archive refuses to replay the URL (excluded site, robots). ``error``: the
attempt failed for a reason that may pass (archive down, timeout, truncated body ...).
"""

STATUSES: Final[tuple[str, ...]] = get_args(Status)
FINAL_STATUSES: Final = frozenset({"ok", "not_archived", "archived_error", "blocked"})


class RecordFormatError(ValueError):
    """A stored or supplied record does not match the current schema."""


@dataclass(slots=True)
class Record:
    """Everything snapcache knows about one cited resource."""

    resource_id: str
    stable_id: str
    url: str
    status: Status = "error"
    archived_status: int | None = None
    capture_timestamp: str | None = None
    archive_url: str | None = None
    raw_url: str | None = None
    original_url: str | None = None
    fetched_at: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    title: str | None = None
    preview: str = ""
    text_length: int = 0
    redirects: list[str] = field(default_factory=list)
    error: str | None = None
    last_attempt_at: str | None = None
    attempts: int = 0
    # Fields beyond the documented minimum.
    last_outcome: Status | None = None
    requested_timestamp: str | None = None
    archive: str | None = None
    orig_content_type: str | None = None
    sha256: str | None = None
    body_truncated: bool = False
    preview_note: str | None = None
    created_at: str | None = None
    # Save Page Now: the job asked for this resource, when, and where it stands.
    save_job_id: str | None = None
    save_requested_at: str | None = None
    save_status: str | None = None
    # Refresh: when the archive last showed, without a download, that the stored capture is
    # still the one to keep; and the extractor version that made the preview (None: made
    # before versions were recorded, so by an older extractor).
    last_confirmed_at: str | None = None
    extractor_version: int | None = None
    # A capture that is not the document (snapcache.junk): why the kept capture is odd
    # (script_shell), or why there is no good one; and the newer captures passed over.
    content_flag: str | None = None
    skipped: list[dict[str, str | int | None]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_json_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict, fields in their public order."""
        # What dataclasses.asdict gives (the list copied, not shared), without its recursive
        # deep copy of every value: exports write this for every record.
        data = dict(zip(FIELD_ORDER, _FIELD_VALUES(self), strict=True))
        data["redirects"] = list(self.redirects)
        data["skipped"] = [dict(entry) for entry in self.skipped]
        return data

    def to_json(self) -> str:
        """Serialise to one line of JSON (UTF-8 safe, no ASCII escaping)."""
        return _ENCODE(self.to_json_dict())

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Record:
        """Build a record from its JSON form, checking every field's type.

        Raises :class:`RecordFormatError` naming the first bad field.
        """
        if not isinstance(data, dict):
            raise RecordFormatError("record is not a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise RecordFormatError(f"schema_version {version!r} is not {SCHEMA_VERSION}")
        # One pass over the fields by exact type (records are parsed on every cache read, so
        # this is on the warm path of every run and of every export); only a field of
        # another type (a subclass, a bool where an int goes, a wrong one) is looked at
        # again, in order, with the full check.
        shape = (tuple(data), tuple(map(type, data.values())))
        odd: list[str] = []
        if shape not in _GOOD_SHAPES:
            odd = [n for n, v in data.items() if type(v) not in _EXACT_TYPES.get(n, ())]
            if not odd and len(_GOOD_SHAPES) < _SHAPES_KEPT:
                _GOOD_SHAPES.add(shape)
        for name in odd:
            value = data[name]
            expected = _FIELD_TYPES.get(name)
            if expected is None:
                raise RecordFormatError(f"unknown field {name!r}")
            if not isinstance(value, expected) or (
                isinstance(value, bool) and bool not in expected
            ):
                if name in _REQUIRED_STR_FIELDS:
                    raise RecordFormatError(f"field {name!r} must be a non-empty string")
                if name in _TYPED_FIELDS:
                    raise RecordFormatError(f"field {name!r} has the wrong type")
                raise RecordFormatError(f"field {name!r} must be a string or null")
        for name in _REQUIRED_STR_FIELDS:
            if not data.get(name):
                raise RecordFormatError(f"field {name!r} must be a non-empty string")
        if data.get("status", "error") not in STATUSES:
            raise RecordFormatError(f"field 'status' has unknown value {data.get('status')!r}")
        if data.get("last_outcome") not in _OUTCOMES:
            raise RecordFormatError("field 'last_outcome' has an unknown value")
        if not all(isinstance(r, str) for r in data.get("redirects", [])):
            raise RecordFormatError("field 'redirects' must be a list of strings")
        skipped = data.get("skipped")
        if skipped and not all(_skipped_entry(e) for e in skipped):
            raise RecordFormatError("field 'skipped' must be a list of objects of strings,"
                                    " integers and nulls")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Record:
        """Parse one JSON document into a record (see :meth:`from_json_dict`)."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordFormatError(f"record is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            # Arrays or objects nested thousands deep exhaust the parser's recursion limit;
            # no record has them, so the text is damaged or planted.
            raise RecordFormatError("record is nested too deep to parse") from exc
        return cls.from_json_dict(data)


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """The fields of a stored record that say who it is and when it is due again: what a
    run needs to plan a URL whose record is fresh, without reading the whole record.

    A store may keep these beside each record (the diskcache store does, in its summary)
    so that a warm run over a long list reads a small row per URL, not every preview.
    """

    resource_id: str
    stable_id: str
    url: str
    status: Status
    last_outcome: Status | None
    last_attempt_at: str | None
    fetched_at: str | None
    requested_timestamp: str | None

    @classmethod
    def of(cls, record: Record) -> RecordFacts:
        """The facts of ``record``."""
        return cls(record.resource_id, record.stable_id, record.url, record.status,
                   record.last_outcome, record.last_attempt_at, record.fetched_at,
                   record.requested_timestamp)


def _skipped_entry(entry: object) -> bool:
    """Whether ``entry`` is a valid element of ``skipped``: a small flat object."""
    return isinstance(entry, dict) and len(entry) <= 16 and all(
        isinstance(k, str) and (v is None or type(v) in (str, int))
        for k, v in entry.items())


#: The public field order, for CSV exports and documentation.
FIELD_ORDER: Final[tuple[str, ...]] = tuple(f.name for f in fields(Record))
_FIELD_VALUES: Final = attrgetter(*FIELD_ORDER)
# Validation tables, computed once: records are parsed on every cache read.
_KNOWN_FIELDS: Final = frozenset(FIELD_ORDER)
_TYPED_FIELDS: Final[dict[str, tuple[type, ...]]] = {
    "archived_status": (int, type(None)),
    "extractor_version": (int, type(None)),
    "content_length": (int, type(None)),
    "text_length": (int,),
    "attempts": (int,),
    "body_truncated": (bool,),
    "preview": (str,),
    "redirects": (list,),
    "skipped": (list,),
}
_REQUIRED_STR_FIELDS: Final = ("resource_id", "stable_id", "url")
_FIELD_TYPES: Final[dict[str, tuple[type, ...]]] = {
    **dict.fromkeys(_KNOWN_FIELDS, (str, type(None))),
    **dict.fromkeys(_REQUIRED_STR_FIELDS, (str,)),
    **_TYPED_FIELDS,
    "schema_version": (int,),
}
_EXACT_TYPES: Final[dict[str, frozenset[type]]] = {
    name: frozenset(types) for name, types in _FIELD_TYPES.items()
}
_OUTCOMES: Final = frozenset((*STATUSES, None))
#: Field names and exact value types of records that passed the type check: records of a
#: store share a handful of shapes, so most skip the check field by field. Bounded, since
#: a shape is any combination of null and non-null optional fields.
_GOOD_SHAPES: Final[set[tuple[tuple[str, ...], tuple[type, ...]]]] = set()
_SHAPES_KEPT: Final = 4096
#: json.dumps(value, ensure_ascii=False, separators=(",", ":")), its encoder made once.
_ENCODE: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
