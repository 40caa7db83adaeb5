"""The OpenAPI 3.1 document of the HTTP API, built from the code it describes.

The record schema comes from the :class:`~snapcache.cache.Record` dataclass itself (a new
field appears here without anyone editing this file), the error codes from
:data:`~snapcache.serve.errors.ERROR_CODES`, the bounds from the configuration. The copy
in the repository, ``fetcher/serve/openapi.json``, is written by
``snapcache serve --write-openapi PATH``; a test fails when it differs from
:func:`openapi_document`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

from snapcache.cache import Record
from snapcache.cache.records import STATUSES
from snapcache.config import ServeConfig

from .errors import ERROR_CODES
from .jobs import MAX_PENDING_URLS
from .write import MAX_URL_CHARS, URL_PATTERN

__all__ = ["API_VERSION", "PACKAGED_OPENAPI", "openapi_document", "openapi_json",
           "record_schema"]

#: The version of the ``/v1`` API (not of the package): bumped when the API changes.
API_VERSION: Final = "1.0.0"
#: The copy kept in the repository and shipped in the package.
PACKAGED_OPENAPI: Final = Path(__file__).with_name("openapi.json")

_ID_PATTERN: Final = r"^([0-9a-f]{16}|(sid_)?[A-Za-z0-9]{10})$"
_ANNOTATIONS: Final[dict[str, dict[str, Any]]] = {
    "str": {"type": "string"},
    "str | None": {"type": ["string", "null"]},
    "int": {"type": "integer"},
    "int | None": {"type": ["integer", "null"]},
    "bool": {"type": "boolean"},
    "list[str]": {"type": "array", "items": {"type": "string"}},
    "list[dict[str, str | int | None]]": {"type": "array", "items": {
        "type": "object", "additionalProperties": {"type": ["string", "integer", "null"]}}},
    "Status": {"type": "string", "enum": list(STATUSES)},
    "Status | None": {"type": ["string", "null"], "enum": [*STATUSES, None]},
}


def record_schema() -> dict[str, Any]:
    """The JSON schema of a record: every field of :class:`Record`, in its order, all
    present (``fetch --json`` prints them all), nothing else."""
    properties: dict[str, Any] = {}
    for f in fields(Record):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if annotation not in _ANNOTATIONS:
            raise TypeError(f"Record.{f.name}: no JSON schema for {annotation!r}; "
                            "add it to snapcache.serve.openapi")
        properties[f.name] = dict(_ANNOTATIONS[annotation])
    properties["resource_id"]["pattern"] = "^[0-9a-f]{16}$"
    return {
        "type": "object",
        "description": "A record, with exactly the fields of `snapcache fetch --json`.",
        "properties": properties,
        "required": [f.name for f in fields(Record)],
        "additionalProperties": False,
    }


def _error(*codes: str) -> dict[str, Any]:
    text = "; ".join(f"`{c}`: {ERROR_CODES[c][1]}" for c in codes)
    return {"description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(ref: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
    if headers:
        out["headers"] = headers
    return out


_ENTITY_HEADERS: Final = {
    "ETag": {"description": "Entity tag of the body", "required": True,
             "schema": {"type": "string"}},
    "Cache-Control": {"description": "max-age until the record goes stale under the "
                                     "configured TTLs (capped), or no-cache",
                      "required": True, "schema": {"type": "string"}},
}
_IF_NONE_MATCH: Final = {"name": "If-None-Match", "in": "header", "required": False,
                         "description": "ETags already held: a match answers 304",
                         "schema": {"type": "string", "maxLength": 1024}}
_ID_PARAM: Final = {"name": "id", "in": "path", "required": True,
                    "description": "A resource ID (16 hex digits) or a stable ID "
                                   "(sid_ + 10 letters or digits, or the bare 10 of older data)",
                    "schema": {"type": "string", "pattern": _ID_PATTERN}}
_NOT_MODIFIED: Final = {"description": "Not modified: the If-None-Match ETag is current",
                        "headers": _ENTITY_HEADERS}


def _schemas(serve: ServeConfig) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "url": {"type": "string"},
            "resource_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "href": {"type": "string", "description": "Where to read the record"},
            "state": {"type": "string",
                      "enum": ["queued", "running", "done", "fresh", "deferred", "failed"]},
            "reason": {"type": "string"},
            "outcome": {"type": ["string", "null"], "enum": [*STATUSES, None]},
            "error": {"type": ["string", "null"]},
        },
        "required": ["url", "resource_id", "href", "state", "reason", "outcome", "error"],
        "additionalProperties": False,
    }
    return {
        "Record": record_schema(),
        "Page": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Record"},
                          "maxItems": serve.max_page_size},
                "next_cursor": {"type": ["string", "null"],
                                "description": "Pass as ?cursor= for the next page; null "
                                               "on the last"},
            },
            "required": ["items", "next_cursor"],
            "additionalProperties": False,
        },
        "Stats": {
            "type": "object",
            "description": "The fields of `snapcache stats --json`.",
            "properties": {
                "records": {"type": "integer", "minimum": 0},
                "outcomes": {"type": "object",
                             "propertyNames": {"enum": list(STATUSES)},
                             "additionalProperties": {"type": "integer", "minimum": 0}},
                "oldest_fetch": {"type": ["string", "null"]},
                "newest_fetch": {"type": ["string", "null"]},
                "cache_bytes": {"type": "integer", "minimum": 0},
                "cache_path": {"type": "string"},
            },
            "required": ["records", "outcomes", "oldest_fetch", "newest_fetch",
                         "cache_bytes", "cache_path"],
            "additionalProperties": False,
        },
        "FetchRequest": {
            "type": "object",
            "properties": {
                "urls": {"type": "array", "minItems": 1, "maxItems": serve.max_fetch_urls,
                         "items": {"type": "string", "pattern": URL_PATTERN,
                                   "maxLength": MAX_URL_CHARS}},
                "force": {"type": "boolean", "default": False,
                          "description": "Fetch even records that are still fresh"},
            },
            "required": ["urls"],
            "additionalProperties": False,
        },
        "JobItem": item,
        "Job": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "href": {"type": "string"},
                "created_at": {"type": "string"},
                "state": {"type": "string", "enum": ["queued", "running", "done"]},
                "force": {"type": "boolean"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/JobItem"}},
            },
            "required": ["id", "href", "created_at", "state", "force", "items"],
            "additionalProperties": False,
        },
        "Error": {
            "type": "object",
            "properties": {"error": {
                "type": "object",
                "properties": {"code": {"type": "string", "enum": sorted(ERROR_CODES)},
                               "message": {"type": "string"}},
                "required": ["code", "message"],
                "additionalProperties": False,
            }},
            "required": ["error"],
            "additionalProperties": False,
        },
    }


def openapi_document(serve: ServeConfig | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server with these ``[serve]`` bounds (the defaults
    give the document kept in the repository)."""
    serve = serve or ServeConfig()
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    codes = "\n".join(f"* `{code}` ({status}): {text}"
                      for code, (status, text) in ERROR_CODES.items())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "snapcache",
            "version": API_VERSION,
            "description": (
                "Records of cited sources resolved to Wayback Machine captures. Reads are "
                "open; writes need the bearer token set by `[serve] token` (off without one)."
                f"\n\nEvery error is `{{\"error\": {{\"code\": ..., \"message\": ...}}}}`:\n\n"
                f"{codes}"
            ),
        },
        "paths": {
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Liveness: the store answers",
                "responses": {
                    "200": {"description": "The server and its store answer", "content": {
                        "application/json": {"schema": {
                            "type": "object", "properties": {"status": {"const": "ok"}},
                            "required": ["status"], "additionalProperties": False}}}},
                    "400": _error("invalid_parameter"),
                    "503": _error("store_unavailable"),
                }}},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "The OpenAPI document", "content": {
                    "application/json": {"schema": {"type": "object"}}}}}}},
            "/v1/stats": {"get": {
                "operationId": "getStats", "summary": "Counts per outcome, as `snapcache stats`",
                "responses": {"200": _json("Stats", "The statistics"),
                              "400": _error("invalid_parameter"),
                              "503": _error("store_unavailable")}}},
            "/v1/resources": {"get": {
                "operationId": "listResources",
                "summary": "Records by URL (aliases included), or every record page by page",
                "description": "In ascending resource-ID order, a stable order across pages.",
                "parameters": [
                    {"name": "url", "in": "query", "required": False,
                     "description": "The record of this URL (current or alias): 0 or 1 items",
                     "schema": {"type": "string", "minLength": 1, "maxLength": 8192}},
                    {"name": "status", "in": "query", "required": False, "style": "form",
                     "explode": True,
                     "description": "Only records whose status or latest outcome is one of "
                                    "these (repeatable)",
                     "schema": {"type": "array",
                                "items": {"type": "string", "enum": list(STATUSES)}}},
                    {"name": "limit", "in": "query", "required": False,
                     "description": f"Records per page (default {serve.page_size})",
                     "schema": {"type": "integer", "minimum": 1,
                                "maximum": serve.max_page_size}},
                    {"name": "cursor", "in": "query", "required": False,
                     "description": "The next_cursor of the previous page (opaque), with "
                                    "the same status filter; not with url",
                     "schema": {"type": "string", "maxLength": 512}},
                ],
                "responses": {
                    "200": _json("Page", "One page of records",
                                 {"ETag": _ENTITY_HEADERS["ETag"]}),
                    "304": {"description": "Not modified"},
                    "400": _error("invalid_parameter", "invalid_cursor"),
                    "503": _error("store_unavailable"),
                }}},
            "/v1/resources/{id}": {"get": {
                "operationId": "getResource", "summary": "One record",
                "parameters": [_ID_PARAM, _IF_NONE_MATCH],
                "responses": {
                    "200": _json("Record", "The record", _ENTITY_HEADERS),
                    "304": _NOT_MODIFIED,
                    "400": _error("invalid_id", "invalid_parameter"),
                    "404": _error("not_found"),
                    "503": _error("store_unavailable"),
                }}},
            "/v1/resources/{id}/text": {"get": {
                "operationId": "getResourceText", "summary": "The full extracted text",
                "parameters": [_ID_PARAM, _IF_NONE_MATCH],
                "responses": {
                    "200": {"description": "The text as stored", "headers": _ENTITY_HEADERS,
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "304": _NOT_MODIFIED,
                    "400": _error("invalid_id", "invalid_parameter"),
                    "404": _error("not_found", "no_text"),
                    "503": _error("store_unavailable"),
                }}},
            "/v1/fetch": {"post": {
                "operationId": "fetch",
                "summary": "Fetch URLs in the background (write token required)",
                "description": (
                    "Answers at once with each URL's resource ID and the job to follow. "
                    "Records that are still fresh are not fetched unless `force`. At most "
                    f"{MAX_PENDING_URLS} URLs wait at once."),
                "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/FetchRequest"}}}},
                "responses": {
                    "202": _json("Job", "Accepted", {"Location": {
                        "description": "The job's URL", "required": True,
                        "schema": {"type": "string"}}}),
                    "400": _error("invalid_body", "invalid_url", "invalid_parameter"),
                    "401": _error("unauthorized"),
                    "403": _error("write_disabled"),
                    "413": _error("payload_too_large"),
                    "415": _error("unsupported_media_type"),
                    "429": _error("queue_full"),
                }}},
            "/v1/jobs/{id}": {"get": {
                "operationId": "getJob", "summary": "Where each URL of a job stands",
                "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string", "maxLength": 100}}],
                "responses": {
                    "200": _json("Job", "The job"),
                    "400": _error("invalid_parameter"),
                    "401": _error("unauthorized"),
                    "403": _error("write_disabled"),
                    "404": _error("not_found"),
                }}},
        },
        "components": {
            "schemas": _schemas(serve),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_json(serve: ServeConfig | None = None) -> str:
    """:func:`openapi_document` as the text kept in the repository (sorted keys, indent 2)."""
    return json.dumps(openapi_document(serve), indent=2, ensure_ascii=False) + "\n"
