"""``snapcache serve``: an HTTP API (``/v1``) and a dashboard (``/``) over a record store.

It sits on top of the library like the CLI: it uses :mod:`snapcache.api` and the store
contract, and nothing in the library imports it. :func:`create_app` builds the ASGI
application; ``snapcache serve`` runs it under uvicorn.
"""

from .app import SECURITY_HEADERS, create_app
from .errors import ERROR_CODES, ApiError
from .openapi import PACKAGED_OPENAPI, openapi_document, openapi_json

__all__ = [
    "ERROR_CODES",
    "PACKAGED_OPENAPI",
    "SECURITY_HEADERS",
    "ApiError",
    "create_app",
    "openapi_document",
    "openapi_json",
]
