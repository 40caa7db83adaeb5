"""The dashboard: server-rendered HTML (Jinja2, autoescaped), no script at all.

Pages: ``/`` (counts per outcome, the age of each source's good capture as an inline SVG
histogram, failing sources), ``/failing`` (all of them, page by page), ``/search`` (by URL
or title) and ``/records/{id}`` (the CLI's card and the preview). Every page is bounded:
``[serve] page_size`` rows, a query of at most :data:`MAX_QUERY` characters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final, TypeVar

import jinja2
from snapcache.cache import Record, Store, to_iso
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .errors import ApiError
from .http import entity_response
from .present import card_rows, clean, human_iso, human_timestamp, safe_href, title_of
from .read import find_record
from .state import state_of
from .summary import Bucket, IndexRow, Summary

__all__ = ["MAX_QUERY", "STATIC_FILES", "error_page", "failing_page", "index_page",
           "record_page", "search_page", "static_file"]

#: The longest search query accepted, in characters.
MAX_QUERY: Final = 500
#: The highest page number accepted (pages are bounded; this bounds the arithmetic).
MAX_PAGE: Final = 1_000_000
_BAR_WIDTH: Final = 190

T = TypeVar("T")

_ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("snapcache.serve", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(clean=clean, href=safe_href, when=human_iso, captured=human_timestamp,
                    moment=lambda dt: human_iso(to_iso(dt)))


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of the histogram, in SVG units."""

    label: str
    count: int
    width: int


def _bars(buckets: Sequence[Bucket]) -> list[Bar]:
    top = max((b.count for b in buckets), default=0) or 1
    return [Bar(b.label, b.count, max(1, round(_BAR_WIDTH * b.count / top)) if b.count else 0)
            for b in buckets]


def _render(name: str, status_code: int = 200, **values: object) -> HTMLResponse:
    html = _ENV.get_template(name).render(**values)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-cache"})


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if (not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_PAGE))
            or not 1 <= int(raw) <= MAX_PAGE):
        raise ApiError("invalid_parameter", f"page must be a number from 1 to {MAX_PAGE}")
    return int(raw)


def _slice(rows: Sequence[T], page: int, size: int) -> tuple[Sequence[T], int]:
    pages = max(1, math.ceil(len(rows) / size))
    return rows[(page - 1) * size: page * size], pages


async def _summary(request: Request) -> Summary:
    return await run_in_threadpool(state_of(request).summary.get)


async def index_page(request: Request) -> Response:
    """``/``: counts, capture ages, the first failing sources, the search box."""
    state = state_of(request)
    summary = await _summary(request)
    size = state.config.serve.page_size
    failing, pages = _slice(summary.failing, 1, size)
    return _render("index.html", summary=summary, bars=_bars(summary.ages),
                   bar_width=_BAR_WIDTH, failing=failing, failing_pages=pages,
                   failing_total=len(summary.failing), q="")


async def failing_page(request: Request) -> Response:
    """``/failing?page=N``: every failing source, page by page."""
    state = state_of(request)
    page = _page_number(request)
    summary = await _summary(request)
    rows, pages = _slice(summary.failing, page, state.config.serve.page_size)
    return _render("failing.html", summary=summary, failing=rows, page=page, pages=pages,
                   failing_total=len(summary.failing), q="")


def _search(store: Store, summary: Summary, q: str) -> list[IndexRow]:
    needle = q.casefold()
    found = [row for row in summary.index
             if needle in row.url.casefold() or needle in (row.title or "").casefold()]
    # An exact URL also finds the record it is an alias of (a moved resource).
    exact = store.by_url(q)
    if exact is not None and all(r.resource_id != exact.resource_id for r in found):
        found.insert(0, IndexRow(exact.resource_id, exact.url, exact.title, exact.status,
                                 exact.capture_timestamp))
    return found


async def search_page(request: Request) -> Response:
    """``/search?q=…``: records whose URL or title contains ``q`` (case-insensitive)."""
    state = state_of(request)
    q = request.query_params.get("q", "").strip()
    if len(q) > MAX_QUERY:
        raise ApiError("invalid_parameter", f"the query must be at most {MAX_QUERY} characters")
    page = _page_number(request)
    rows: Sequence[IndexRow] = []
    total, pages = 0, 1
    if q:
        summary = await _summary(request)
        found = await run_in_threadpool(_search, state.store, summary, q)
        total = len(found)
        rows, pages = _slice(found, page, state.config.serve.page_size)
    return _render("search.html", q=q, rows=rows, total=total, page=page, pages=pages)


def _record_and_text(store: Store, ident: str) -> tuple[Record, bool]:
    record = find_record(store, ident)
    return record, store.get_text(record.resource_id) is not None


async def record_page(request: Request) -> Response:
    """``/records/{id}``: the card of one record and its preview."""
    state = state_of(request)
    record, has_text = await run_in_threadpool(
        _record_and_text, state.store, request.path_params["id"])
    return _render("record.html", record=record, title=title_of(record),
                   rows=card_rows(record), preview=clean(record.preview), has_text=has_text,
                   q="")


def _load_static() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("snapcache.serve") / "static"
    types = {"app.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
    return {name: ((folder / name).read_bytes(), media) for name, media in types.items()}


#: The dashboard's static files, read from the package once: only these names are served
#: (no path from a request ever reaches the file system).
STATIC_FILES: Final = _load_static()


async def static_file(request: Request) -> Response:
    """``/static/{name}``: the stylesheet and the icon, with an ETag."""
    found = STATIC_FILES.get(request.path_params["name"])
    if found is None:
        raise ApiError("not_found", "no such file")
    body, media = found
    return entity_response(body, media, request.headers, "max-age=3600")


def error_page(status: int, code: str, message: str) -> HTMLResponse:
    """An HTML page for an error on a dashboard path (the API answers JSON)."""
    return _render("error.html", status, status=status, code=code, message=message, q="")
