"""The write API: ``POST /v1/fetch`` and ``GET /v1/jobs/{id}``, behind a bearer token.

Off unless a token is configured (403 ``write_disabled``); a missing or wrong token is a
401. Tokens are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError
from .http import check_params
from .state import ServerState, state_of

__all__ = ["MAX_URL_CHARS", "URL_PATTERN", "get_job", "post_fetch", "require_token"]

_BODY_KEYS: Final = frozenset({"urls", "force"})
_NOT_IN_URL: Final = (r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
                      r"\u3000\ufeff")
#: Characters that read as "." once normalised (NFKC): a host made of them alone is a dot
#: segment, which the fetcher refuses. (Dots first, then the first other character: one
#: way to match, so the pattern stays linear.)
_DOTS: Final = r".\u2024\u2025\ufe52\uff0e"
#: The URLs ``POST /v1/fetch`` takes, as the OpenAPI document states them and the server
#: checks them (the same pattern, so the two cannot disagree): http(s), an optional user,
#: a host name with at least one character that is not a dot, an optional port (0-65535),
#: then any path, query and fragment without white space or control characters. The user
#: and host hold no ``%``, ``;`` or ``\``: decoded, cut at a parameter or split at a
#: backslash, they could spell the dot segment the fetcher refuses. Everything the pattern
#: admits, the fetcher accepts too (IPv6 literals are left out: their checks differ
#: between URL parsers).
URL_PATTERN: Final = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"
    rf"([^{_NOT_IN_URL}/?#@\[\]\\%;]*@)?"
    rf"[{_DOTS}]*[^{_NOT_IN_URL}/?#@:\[\]\\%;{_DOTS}]"
    rf"[^{_NOT_IN_URL}/?#@:\[\]\\%;]*"
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?"
    rf"([/?#][^{_NOT_IN_URL}]*)?$"
)
#: The longest URL taken, in characters (at most 4 bytes each: the fetcher's 8 KB).
MAX_URL_CHARS: Final = 2048
_URL_RE: Final = re.compile(URL_PATTERN)


def require_token(state: ServerState, request: Request) -> None:
    """Refuse the request unless it carries the configured bearer token."""
    if not state.token:
        raise ApiError("write_disabled", "the write API is off: set [serve] token or"
                                         " $SNAPCACHE_SERVE_TOKEN to turn it on")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    # Compared as bytes in constant time, whatever was sent (compare_digest refuses
    # non-ASCII str).
    ok = scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), state.token.encode("utf-8"))
    if not ok:
        raise ApiError("unauthorized", "a valid bearer token is required",
                       headers={"WWW-Authenticate": 'Bearer realm="snapcache"'})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError("payload_too_large", f"the body must be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("payload_too_large", f"the body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse(body: bytes, max_urls: int) -> tuple[list[str], bool]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("invalid_body", "the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ApiError("invalid_body", 'the body must be a JSON object: {"urls": [...]}')
    unknown = set(doc) - _BODY_KEYS
    if unknown:
        raise ApiError("invalid_body", f"unknown key {sorted(unknown)[0][:50]!r}"
                                       " (known: urls, force)")
    urls = doc.get("urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ApiError("invalid_body", "urls must be a non-empty list of strings")
    if len(urls) > max_urls:
        raise ApiError("invalid_body", f"at most {max_urls} URLs per request, got {len(urls)}")
    for index, url in enumerate(urls):
        # fullmatch: "$" alone would also match before a final line break. A lone
        # surrogate (JSON can carry one) is no text at all and cannot be hashed into an ID.
        if (len(url) > MAX_URL_CHARS or not _URL_RE.fullmatch(url)
                or (not url.isascii() and not _encodable(url))):
            raise ApiError("invalid_url", f"urls[{index}]: not an http(s) URL with a host, at"
                                          f" most {MAX_URL_CHARS} characters, without white"
                                          " space or control characters")
    force = doc.get("force", False)
    if not isinstance(force, bool):
        raise ApiError("invalid_body", "force must be true or false")
    # A URL listed twice is fetched once (as in a run).
    return list(dict.fromkeys(urls)), force


async def post_fetch(request: Request) -> Response:
    """``POST /v1/fetch``: queue URLs for fetching; 202 with each URL's resource ID."""
    state = state_of(request)
    require_token(state, request)
    check_params(request.query_params, ())
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError("unsupported_media_type", "send the body as application/json")
    serve = state.config.serve
    urls, force = _parse(await _read_body(request, serve.max_body_bytes), serve.max_fetch_urls)
    job = await state.queue.submit(urls, force)
    body = json.dumps(job.to_json_dict(), ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=202, media_type="application/json",
                    headers={"Location": f"/v1/jobs/{job.id}", "Cache-Control": "no-store"})


async def get_job(request: Request) -> Response:
    """``GET /v1/jobs/{id}``: where each URL of a job stands."""
    state = state_of(request)
    require_token(state, request)
    check_params(request.query_params, ())
    job_id = request.path_params["id"]
    job = state.queue.job(job_id)
    if job is None:
        raise ApiError("not_found", f"no recent job has the ID {job_id[:100]!r}")
    body = json.dumps(job.to_json_dict(), ensure_ascii=False).encode("utf-8")
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
