"""HTTP details shared by the API's handlers: strict query parameters, entity tags and
conditional requests, Cache-Control from a record's freshness, and opaque page cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection, Mapping
from datetime import datetime

from snapcache.cache import Record, TTLs, freshness
from snapcache.cache.identity import is_resource_id
from starlette.datastructures import QueryParams
from starlette.responses import Response

from .errors import ApiError

__all__ = [
    "cache_control_for",
    "check_params",
    "decode_cursor",
    "encode_cursor",
    "entity_response",
    "etag_of",
    "int_param",
]


def check_params(params: QueryParams, allowed: Collection[str],
                 repeatable: Collection[str] = ()) -> None:
    """Refuse unknown query parameters (a typo must not silently widen a query) and
    repeated ones that take a single value."""
    for key in params:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ApiError("invalid_parameter",
                           f"unknown query parameter {key[:100]!r} (known: {known})")
        if key not in repeatable and len(params.getlist(key)) > 1:
            raise ApiError("invalid_parameter", f"query parameter {key!r} given twice")


def int_param(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter within ``[low, high]``; ``default`` when absent."""
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise ApiError("invalid_parameter", f"{name} must be an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError("invalid_parameter", f"{name} must be an integer from {low} to {high}")
    return value


def etag_of(body: bytes) -> str:
    """A strong entity tag for ``body`` (a hash of the bytes themselves)."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against ``etag`` (``*`` matches)."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


def entity_response(body: bytes, media_type: str, request_headers: Mapping[str, str],
                    cache_control: str) -> Response:
    """A 200 with ``body``, its ETag and ``cache_control``, or a bodiless 304 when the
    request's ``If-None-Match`` already names that ETag."""
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    condition = request_headers.get("if-none-match")
    if condition is not None and _matches(condition, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def cache_control_for(record: Record, now: datetime, ttls: TTLs, cap: int) -> str:
    """How long a client may reuse a record: until it goes stale under the configured TTLs
    (at most ``cap`` seconds, since a forced refetch or a move changes it sooner); a stale
    record must be revalidated (its ETag makes that cheap)."""
    judged = freshness(record, now, ttls)
    if not judged.fresh or judged.due_at is None:
        return "no-cache"
    seconds = int((judged.due_at - now).total_seconds())
    return f"max-age={max(0, min(seconds, cap))}"


def encode_cursor(after: str, statuses: Collection[str]) -> str:
    """An opaque cursor: the last resource ID served and the filter it was served under."""
    doc = json.dumps({"a": after, "s": sorted(statuses)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, statuses: Collection[str]) -> str:
    """The resource ID a cursor continues after; ``invalid_cursor`` for anything this
    server did not make, or a cursor made under another status filter."""
    bad = ApiError("invalid_cursor", "cursor is not one this server gave for these filters")
    if len(cursor) > 512 or not cursor.isascii():
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(doc, dict) or set(doc) != {"a", "s"}:
        raise bad
    after, filt = doc["a"], doc["s"]
    if not isinstance(after, str) or not is_resource_id(after) or filt != sorted(statuses):
        raise bad
    return after
