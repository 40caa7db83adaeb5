"""The CDX server's answers (``/cdx/search/cdx``), from the rows of an archive's index:
the query pipeline the demo archive and the test suite's emulator share."""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from .wayback import (
    CDX_FIELDS,
    Headers,
    Reply,
    pad_timestamp,
    surt_urlkey,
    timestamp_seconds,
    url_key,
)

#: The CDX rows a query may see for (url, matchType), or None when the site is blocked.
RowsFor = Callable[[str, str], "list[dict[str, str]] | None"]

CDX_BLOCKED_MESSAGE: str = (
    "org.archive.util.io.RuntimeIOException: "
    "org.archive.wayback.exception.AdministrativeAccessControlException: Blocked Site Error"
)


def matching_keys(keys: Iterable[str], url: str, match_type: str) -> list[str]:
    """The index keys a CDX query for ``url`` covers under ``matchType`` (exact, prefix,
    host or domain), in the CDX server's order (by SURT key)."""
    qkey = url_key(url)
    qhost = qkey.split("/", 1)[0]

    def matches(k: str) -> bool:
        if match_type == "prefix":
            return k.startswith(qkey)
        khost = k.split("/", 1)[0]
        if match_type == "host":
            return khost == qhost
        if match_type == "domain":
            return khost == qhost or khost.endswith("." + qhost)
        return k == qkey

    return sorted((k for k in keys if matches(k)), key=surt_urlkey)


def query_params(query: str) -> dict[str, list[str]]:
    """A query string's parameters, each with every value it was given, in order."""
    multi: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        multi.setdefault(k, []).append(v)
    return multi


def _cdx_error(status: int, message: str) -> Reply:
    return Reply(status, [("Content-Type", "text/plain;charset=UTF-8")], (message + "\n").encode())


def encode_resume_key(urlkey: str, ts: str) -> str:
    """2026 format: base64url(zlib("<urlkey> <last returned ts>"))."""
    return base64.urlsafe_b64encode(zlib.compress(f"{urlkey} {ts}".encode())).decode()


def decode_resume_key(key: str) -> tuple[str, str]:
    """The (urlkey, timestamp) of a resume key; ValueError if it is not one."""
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))).decode()
    except (zlib.error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(key) from exc
    urlkey, _, ts = raw.rpartition(" ")
    return urlkey, ts


def cdx_reply(multi: Mapping[str, list[str]], rows_for: RowsFor) -> Reply:
    """The CDX server's answer to a query (``/cdx/search/cdx``) with parameters ``multi``.

    ``rows_for(url, match_type)`` gives the candidate rows, in index order, or None for a
    blocked site (answered 403 with the archive's runtime-error header). Then, as the real
    server does: ``from``/``to``, ``filter`` (regex or ``~`` substring, ``!`` negated),
    ``collapse``, ``sort=closest``/``reverse``, ``resumeKey``, ``offset``, ``showNumPages``,
    ``page``, ``limit`` (negative: the last rows), ``fl`` and ``output=json``.
    """

    def one(name: str, default: str | None = None) -> str | None:
        vals = multi.get(name)
        return vals[-1] if vals else default

    url = one("url")
    if not url:
        return _cdx_error(400, "java.lang.IllegalArgumentException: url is required")
    match_type = (one("matchType") or "exact").lower()
    if url.endswith("*"):
        url, match_type = url[:-1], "prefix"
    if url.startswith("*."):
        url, match_type = url[2:], "domain"
    candidates = rows_for(url, match_type)
    if candidates is None:
        return Reply(
            403,
            [
                ("Content-Type", "text/plain;charset=UTF-8"),
                ("X-Archive-Wayback-Runtime-Error", CDX_BLOCKED_MESSAGE),
                ("X-ts", "403"),
            ],
            (CDX_BLOCKED_MESSAGE + "\n").encode(),
            "Forbidden",
        )
    rows = candidates

    fl_raw = one("fl")
    fl = [f.strip() for f in fl_raw.split(",") if f.strip()] if fl_raw else list(CDX_FIELDS)
    for f in fl:
        if f not in CDX_FIELDS:
            return _cdx_error(400, f"java.lang.IllegalArgumentException: bad field {f}")

    frm, to = one("from"), one("to")
    if frm:
        lo = pad_timestamp(frm)
        rows = [r for r in rows if r["timestamp"] >= lo]
    if to:
        hi = pad_timestamp(to, "9")
        rows = [r for r in rows if r["timestamp"] <= hi]

    for spec in multi.get("filter", []):
        substring = spec.startswith("~")
        s = spec[1:] if substring else spec
        negate = s.startswith("!")
        s = s[1:] if negate else s
        fname, _, pattern = s.partition(":")
        if fname.isdigit() and int(fname) < len(CDX_FIELDS):
            fname = CDX_FIELDS[int(fname)]
        if fname not in CDX_FIELDS:
            return _cdx_error(400, f"java.lang.IllegalArgumentException: bad filter {spec}")
        if substring:
            rows = [r for r in rows if (pattern in r[fname]) != negate]
        else:
            try:
                rx = re.compile(pattern)
            except re.error:
                return _cdx_error(400, f"java.util.regex.PatternSyntaxException: {pattern}")
            rows = [r for r in rows if (rx.fullmatch(r[fname]) is not None) != negate]

    for spec in multi.get("collapse", []):
        fname, _, n = spec.partition(":")
        if fname not in CDX_FIELDS:
            continue
        width = int(n) if n.isdigit() else None
        collapsed: list[dict[str, str]] = []
        last: str | None = None
        for r in rows:
            v = r[fname][:width] if width is not None else r[fname]
            if v != last:
                collapsed.append(r)
            last = v
        rows = collapsed

    sort = (one("sort") or "default").lower()
    closest = one("closest")
    if closest and sort == "closest":
        target = timestamp_seconds(closest)
        rows = sorted(rows, key=lambda r: abs(timestamp_seconds(r["timestamp"]) - target))
    elif sort == "reverse":
        rows = list(reversed(rows))

    resume = one("resumeKey")
    if resume:
        try:
            rk_urlkey, rk_ts = decode_resume_key(resume)
        except ValueError:
            return _cdx_error(400, "java.lang.IllegalArgumentException: bad resumeKey")
        pos = max(
            (i for i, r in enumerate(rows) if (r["urlkey"], r["timestamp"]) == (rk_urlkey, rk_ts)),
            default=-1,
        )
        rows = rows[pos + 1 :]

    offset = one("offset")
    if offset and offset.isdigit():
        rows = rows[int(offset) :]

    if one("showNumPages", "false") == "true":
        return Reply(200, [("Content-Type", "text/plain")], b"1\n")
    page = one("page")
    if page and page.isdigit() and int(page) > 0:
        rows = []

    resume_key: str | None = None
    limit_raw = one("limit")
    if limit_raw:
        try:
            limit = int(limit_raw)
        except ValueError:
            return _cdx_error(400, "java.lang.NumberFormatException: limit")
        if limit >= 0:
            if len(rows) > limit and limit > 0 and one("showResumeKey", "false") == "true":
                last_row = rows[limit - 1]
                resume_key = encode_resume_key(last_row["urlkey"], last_row["timestamp"])
            rows = rows[:limit]
        else:
            rows = rows[limit:]

    table = [[r[f] for f in fl] for r in rows]
    headers: Headers = [("X-location", "cdx"), ("X-Page-Cache", "BYPASS")]
    if (one("output") or "").lower() == "json":
        out_rows: list[list[str]] = [list(fl), *table] if table else []
        if resume_key is not None:
            out_rows += [[], [resume_key]]
        body = (
            "[" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in out_rows) + "]\n"
        ).encode()
        headers.insert(0, ("Content-Type", "application/json"))
    else:
        text = "".join(" ".join(r) + "\n" for r in table)
        if resume_key is not None:
            text += "\n" + resume_key + "\n"
        body = text.encode("utf-8")
        headers.insert(0, ("Content-Type", "text/plain;charset=UTF-8"))
    return Reply(200, headers, body)


__all__ = [
    "CDX_BLOCKED_MESSAGE",
    "RowsFor",
    "cdx_reply",
    "decode_resume_key",
    "encode_resume_key",
    "matching_keys",
    "query_params",
]
