"""The read API (``/v1/resources``, ``/v1/stats``, ``/healthz``): JSON records with exactly
the fields of ``snapcache fetch --json``, entity tags, and Cache-Control from freshness."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from snapcache.cache import Record, RecordFormatError, Store
from snapcache.cache.identity import is_resource_id, is_stable_id
from snapcache.cache.records import STATUSES
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError
from .http import (
    cache_control_for,
    check_params,
    decode_cursor,
    encode_cursor,
    entity_response,
    int_param,
)
from .state import state_of
from .summary import stats_document

_log = logging.getLogger(__name__)

__all__ = ["MAX_QUERY_URL", "find_record", "get_resource", "get_stats", "get_text",
           "healthz", "list_resources"]

JSON = "application/json"
#: The longest ``?url=`` accepted, in characters (URLs are at most 8 KB anyway).
MAX_QUERY_URL = 8192


def find_record(store: Store, ident: str) -> Record:
    """The record named by a resource ID or a stable ID (``sid_…`` or the bare 10 characters
    of older data); ``invalid_id`` for anything else, ``not_found`` when none has it."""
    if is_resource_id(ident):
        record = store.get(ident)
    elif is_stable_id(ident):
        record = store.by_stable_id(ident)
    else:
        raise ApiError("invalid_id", f"{ident[:100]!r} is neither a resource ID (16 lowercase"
                                     " hex digits) nor a stable ID (sid_ and 10 letters or digits)")
    if record is None:
        raise ApiError("not_found", f"no record has the ID {ident!r}")
    return record


async def get_resource(request: Request) -> Response:
    """``GET /v1/resources/{id}``: one record."""
    state = state_of(request)
    check_params(request.query_params, ())
    record = await run_in_threadpool(find_record, state.store, request.path_params["id"])
    control = cache_control_for(record, datetime.now(UTC), state.ttls,
                                state.config.serve.max_age_cap)
    return entity_response(record.to_json().encode("utf-8"), JSON, request.headers, control)


def _text_of(store: Store, ident: str) -> tuple[Record, str | None]:
    record = find_record(store, ident)
    return record, store.get_text(record.resource_id)


async def get_text(request: Request) -> Response:
    """``GET /v1/resources/{id}/text``: the full extracted text, as stored."""
    state = state_of(request)
    check_params(request.query_params, ())
    record, text = await run_in_threadpool(_text_of, state.store, request.path_params["id"])
    if text is None:
        raise ApiError("no_text", f"record {record.resource_id} holds no extracted text"
                                  f" (status {record.status})")
    control = cache_control_for(record, datetime.now(UTC), state.ttls,
                                state.config.serve.max_age_cap)
    return entity_response(text.encode("utf-8", "surrogatepass"), "text/plain; charset=utf-8",
                           request.headers, control)


def _skip_damaged(exc: RecordFormatError) -> None:
    # Left out of pages as `snapcache export` leaves it out; the record's own URL says why.
    _log.warning("damaged record left out of a page: %s", exc)


def _page(store: Store, statuses: list[str], after: str | None,
          limit: int) -> tuple[list[Record], bool]:
    """Up to ``limit`` records after resource ID ``after``, and whether more follow."""
    found: list[Record] = []
    # Records come in ascending resource-ID order (the store contract), so a page is the
    # next ``limit`` past the cursor: stable while records are added or changed.
    for record in store.records(statuses=statuses or None, on_damaged=_skip_damaged):
        if after is not None and record.resource_id <= after:
            continue
        if len(found) == limit:
            return found, True
        found.append(record)
    return found, False


def _by_url(store: Store, url: str, statuses: list[str]) -> list[Record]:
    record = store.by_url(url)
    if record is None:
        return []
    if statuses and record.status not in statuses and record.last_outcome not in statuses:
        return []
    return [record]


async def list_resources(request: Request) -> Response:
    """``GET /v1/resources``: by ``url`` (aliases included), or every record page by page
    in resource-ID order, optionally only those whose status or latest outcome is one of
    ``status``."""
    state = state_of(request)
    params = request.query_params
    check_params(params, ("url", "status", "limit", "cursor"), repeatable=("status",))
    statuses = sorted(set(params.getlist("status")))
    for status in statuses:
        if status not in STATUSES:
            raise ApiError("invalid_parameter", f"status must be one of {', '.join(STATUSES)},"
                                                f" got {status[:50]!r}")
    serve = state.config.serve
    limit = int_param(params, "limit", serve.page_size, 1, serve.max_page_size)
    url = params.get("url")
    cursor = params.get("cursor")
    next_cursor: str | None = None
    if url is not None:
        if cursor is not None:
            raise ApiError("invalid_parameter", "cursor cannot be combined with url")
        if not url:
            raise ApiError("invalid_parameter", "url must not be empty")
        if len(url) > MAX_QUERY_URL:
            raise ApiError("invalid_parameter", f"url is longer than {MAX_QUERY_URL} characters")
        records = await run_in_threadpool(_by_url, state.store, url, statuses)
    else:
        after = decode_cursor(cursor, statuses) if cursor is not None else None
        records, more = await run_in_threadpool(_page, state.store, statuses, after, limit)
        if more:
            next_cursor = encode_cursor(records[-1].resource_id, statuses)
    body = b"".join((
        b'{"items":[', b",".join(r.to_json().encode("utf-8") for r in records),
        b'],"next_cursor":', json.dumps(next_cursor).encode(), b"}",
    ))
    return entity_response(body, JSON, request.headers, "no-cache")


async def get_stats(request: Request) -> Response:
    """``GET /v1/stats``: the fields of ``snapcache stats --json``."""
    state = state_of(request)
    check_params(request.query_params, ())
    summary = await run_in_threadpool(state.summary.get)
    body = json.dumps(stats_document(summary), ensure_ascii=False).encode("utf-8")
    return Response(body, media_type=JSON, headers={"Cache-Control": "no-cache"})


async def healthz(request: Request) -> Response:
    """``GET /healthz``: 200 while the store answers a lookup."""
    state = state_of(request)
    check_params(request.query_params, ())
    await run_in_threadpool(state.store.__contains__, "0" * 16)
    return Response(b'{"status":"ok"}', media_type=JSON, headers={"Cache-Control": "no-store"})
