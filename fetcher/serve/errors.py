"""The API's error format: ``{"error": {"code": ..., "message": ...}}`` with an HTTP status.

Every error the server answers, on every path, has this shape (the dashboard's HTML pages
show the same code and message). The codes are stable and listed in :data:`ERROR_CODES`
(and in the OpenAPI document); messages are for people and may change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from starlette.responses import Response

__all__ = ["ERROR_CODES", "ApiError", "error_body", "error_response"]

#: Every error code, with its HTTP status and what it means.
ERROR_CODES: Final[dict[str, tuple[int, str]]] = {
    "invalid_parameter": (400, "a query parameter is malformed, out of range or unknown"),
    "invalid_id": (400, "the path does not hold a resource ID or a stable ID"),
    "invalid_cursor": (400, "the cursor was not made by this server for these filters"),
    "invalid_body": (400, "the request body is not the JSON object the operation takes"),
    "invalid_url": (400, "a URL to fetch is not usable (the message names it)"),
    "unauthorized": (401, "the bearer token is missing or wrong"),
    "write_disabled": (403, "no write token is configured, so the write API is off"),
    "not_found": (404, "no such record, job or path"),
    "no_text": (404, "the record exists but holds no extracted text"),
    "method_not_allowed": (405, "the path does not take this method"),
    "payload_too_large": (413, "the request body is over [serve] max_body_bytes"),
    "unsupported_media_type": (415, "the request body must be application/json"),
    "queue_full": (429, "too many URLs are waiting to be fetched; try again later"),
    "internal_error": (500, "an unexpected failure; the server log has the details"),
    "store_unavailable": (503, "the record store cannot be read right now"),
}


class ApiError(Exception):
    """An error answered as JSON: raise it from a handler (see :func:`error_response`)."""

    def __init__(
        self, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.status = ERROR_CODES[code][0]
        self.message = message
        self.headers = dict(headers or {})


def error_body(code: str, message: str) -> bytes:
    """The JSON body of an error."""
    return json.dumps(
        {"error": {"code": code, "message": message}}, ensure_ascii=False
    ).encode("utf-8")


def error_response(error: ApiError) -> Response:
    """The response for ``error``: its status, the JSON body, its extra headers."""
    return Response(
        error_body(error.code, error.message),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )
