"""The ASGI application: routes, security headers, error handling, CORS and the lifespan
that opens and closes the fetcher and its store."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Final

from snapcache.cache import CacheError, RecordFormatError, Store
from snapcache.config import Config
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import dashboard, read, write
from .errors import ERROR_CODES, ApiError, error_body, error_response
from .openapi import openapi_json
from .state import open_state

__all__ = ["SECURITY_HEADERS", "create_app"]

log = logging.getLogger("snapcache.serve")

#: Sent with every response. The dashboard runs no script at all; styles come only from
#: the served stylesheet; nothing may frame it.
SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_RAW_SECURITY_HEADERS: Final = [(k.lower().encode(), v.encode())
                                for k, v in SECURITY_HEADERS.items()]
#: Paths answered as JSON when they fail (the rest are dashboard pages, answered in HTML).
_API_PREFIXES: Final = ("/v1/", "/v1", "/healthz", "/openapi.json")


class SecurityHeaders:
    """Pure ASGI middleware adding :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in _RAW_SECURITY_HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path == "/v1" or path.startswith(_API_PREFIXES)


def _answer(request: Request, error: ApiError) -> Response:
    if _is_api(request):
        return error_response(error)
    page = dashboard.error_page(error.status, error.code, error.message)
    page.headers.update(error.headers)
    return page


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _answer(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    if code is None:
        # Starlette raises others only for malformed requests it parses itself.
        return _answer(request, ApiError("invalid_parameter", str(exc.detail)))
    headers: Mapping[str, str] = exc.headers or {}
    message = "no such path" if exc.status_code == 404 else "method not allowed here"
    return _answer(request, ApiError(code, message, headers=headers))


async def _store_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RecordFormatError):
        log.error("corrupt record: %s", exc)
        return _answer(request, ApiError("internal_error", f"a stored record is corrupt: {exc}"))
    log.error("store error: %s", exc)
    return _answer(request, ApiError("store_unavailable", "the record store cannot be read"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback after this handler answers; the client learns nothing
    # of the internals.
    status = ERROR_CODES["internal_error"][0]
    return Response(error_body("internal_error", "unexpected failure; see the server log"),
                    status_code=status, media_type="application/json",
                    headers=SECURITY_HEADERS)


def create_app(config: Config, *, store: Store | None = None, token: str | None = None,
               summary_ttl: float = 5.0) -> Starlette:
    """The snapcache server for ``config``.

    ``store``: a store to serve instead of the one the configuration names (any
    :class:`~snapcache.cache.Store`; the server closes it when it stops). ``token``: the
    write token, by default ``config.serve.effective_token()`` (empty turns writes off).
    ``summary_ttl``: seconds the dashboard's counts and ``/v1/stats`` may be reused.
    Raises :class:`~snapcache.errors.ConfigError` for a bad token in the environment.
    """
    write_token = config.serve.effective_token() if token is None else token
    spec = openapi_json(config.serve).encode("utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await app.state.snapcache.aclose()

    async def openapi(request: Request) -> Response:
        return Response(spec, media_type="application/json",
                        headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", dashboard.index_page),
        Route("/failing", dashboard.failing_page),
        Route("/search", dashboard.search_page),
        Route("/records/{id}", dashboard.record_page),
        Route("/static/{name}", dashboard.static_file),
        Route("/healthz", read.healthz),
        Route("/openapi.json", openapi),
        Route("/v1/stats", read.get_stats),
        Route("/v1/resources", read.list_resources),
        Route("/v1/resources/{id}", read.get_resource),
        Route("/v1/resources/{id}/text", read.get_text),
        Route("/v1/fetch", write.post_fetch, methods=["POST"]),
        Route("/v1/jobs/{id}", write.get_job),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if config.serve.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware,
            allow_origins=list(config.serve.cors_origins),
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag", "Location", "Retry-After"],
        ))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            CacheError: _store_error,
            RecordFormatError: _store_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    # Opened now, outside any event loop: the fetcher binds to the serving loop on its
    # first fetch, and reads never need one.
    app.state.snapcache = open_state(config, store, write_token, summary_ttl)
    return app
