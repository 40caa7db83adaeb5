"""CDX answers, read row by row: the Internet Archive's JSON (one array per line) and text
(one row per line) forms, and pywb's JSON lines; and the choice of captures to try.

A CDX answer is capped by the transport at ``[archive] max_cdx_bytes`` before it gets
here, and it is never parsed as one document: each line is decoded and parsed on its own
(lines over :data:`MAX_LINE_BYTES` are skipped), so memory stays a small multiple of one
row and a damaged line (cut by a dropped connection, nested 100,000 deep, not UTF-8) costs
only itself. The archive layer runs this off the event loop.

CDX rows repeat, include revisits with status ``-``, impossible timestamps (month 00) and
junk originals (edgi wayback#40, REC bad_timestamp_cdx.txt, malformed_cdx.txt); the rows
are checked one by one in :func:`choose_captures`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from snapcache.cache.times import parse_timestamp14

from .untrusted import PARSE_ERRORS, capture_time_ok, same_resource

CDX_FIELDS: Final = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest",
                     "length")
#: A CDX row is a few hundred bytes (URLs reach 8 KB): a longer line is junk, skipped
#: unread.
MAX_LINE_BYTES: Final = 65536
#: pywb's CDX field names, mapped to the IA names :class:`CdxRow` uses.
_PYWB_FIELDS: Final = {"url": "original", "mime": "mimetype", "status": "statuscode"}


@dataclass(frozen=True, slots=True)
class CdxRow:
    """One CDX row, defensively parsed. ``status``/``length`` are None for ``-``."""

    urlkey: str
    timestamp: str
    original: str
    mimetype: str
    status: int | None
    digest: str
    length: int | None


def valid_timestamp(ts: str) -> bool:
    """True for a 14-digit timestamp that is a real, possible capture time (the CDX has
    month-00 rows; none is before 1991 or after tomorrow)."""
    return capture_time_ok(ts)


def _int_or_none(text: str) -> int | None:
    # isdigit() is True for other scripts' digits too; int() of a 5,000-digit string is
    # refused by Python: both are junk here.
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def _row_from_values(names: Sequence[str], values: Sequence[object]) -> CdxRow | None:
    if len(values) != len(names) or not all(isinstance(v, str) for v in values):
        return None
    data = dict(zip(names, (str(v) for v in values), strict=True))
    if "timestamp" not in data or "original" not in data:
        return None
    return CdxRow(
        urlkey=data.get("urlkey", ""),
        timestamp=data["timestamp"],
        original=data["original"],
        mimetype=data.get("mimetype", ""),
        status=_int_or_none(data.get("statuscode", "-")),
        digest=data.get("digest", ""),
        length=_int_or_none(data.get("length", "-")),
    )


def body_lines(body: bytes | str | Path, max_line: int = MAX_LINE_BYTES) -> Iterator[str]:
    """The lines of a body (in memory, or spilled to a file), one at a time, decoded
    (invalid UTF-8 replaced) and stripped. A line longer than ``max_line`` bytes is skipped
    whole, without ever being held."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    stream: io.BufferedIOBase
    with (body.open("rb") if isinstance(body, Path) else io.BytesIO(body)) as stream:
        while True:
            line = stream.readline(max_line + 1)
            if not line:
                return
            if len(line) > max_line and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of the long line
                    line = stream.readline(max_line + 1)
                continue
            yield line.decode("utf-8", "replace").strip()


def _json_value(text: str) -> object:
    """``text`` as JSON, or None for anything that is not (nested too deep included)."""
    try:
        return json.loads(text)
    except PARSE_ERRORS:
        return None


def _ia_json_row(line: str) -> list[object] | None:
    """One line of the IA's JSON answer (``[["urlkey",...],`` then ``["com,x)/",...],`` and
    a closing ``]``) as the row it holds, or None."""
    if line.startswith("[["):
        line = line[1:]
    if line.endswith(","):
        line = line[:-1]
    if line.endswith("]]"):
        line = line[:-1]
    if not line.startswith("[") or not line.endswith("]"):
        return None
    value = _json_value(line)
    return value if isinstance(value, list) else None


def iter_cdx(
    lines: Iterable[str], fields: Sequence[str] = CDX_FIELDS, *, compact: bool = True
) -> Iterator[CdxRow]:
    """The rows of an IA CDX answer given line by line: JSON (a header row first) or
    space-separated text. Malformed rows are skipped, not fatal; a cut answer keeps the
    rows that arrived whole. With ``compact``, a small JSON answer written on one line is
    read too."""
    names: Sequence[str] = fields
    json_form: bool | None = None
    first_row = True
    for line in lines:
        if not line:
            continue
        if json_form is None:
            json_form = line.startswith("[")
        if not json_form:
            row = _row_from_values(fields, line.split(" "))
            if row is not None:
                yield row
            continue
        values = _ia_json_row(line)
        if values is None:
            # A whole small answer on one line: [["urlkey",...],["com,x)/",...]].
            whole = _json_value(line) if first_row and compact else None
            if isinstance(whole, list) and all(isinstance(v, list) for v in whole):
                yield from iter_cdx([json.dumps(v) for v in whole], fields, compact=False)
            continue
        if first_row and "timestamp" in values and all(isinstance(v, str) for v in values):
            names = [str(v) for v in values]
            first_row = False
            continue
        first_row = False
        row = _row_from_values(names, values)
        if row is not None:
            yield row


def iter_pywb_cdx(lines: Iterable[str]) -> Iterator[CdxRow]:
    """The rows of a pywb CDX answer (``output=json``): one JSON object per line, with the
    keys ``urlkey``, ``timestamp``, ``url``, ``mime``, ``status``, ``digest``, ``length`` and
    more (``offset``, ``filename``, ``source``, ``access``, ``is_fuzzy``).

    Lines that are not JSON objects with string values are skipped (a cut connection loses
    only its last line). Rows whose ``access`` is not ``allow`` are dropped: pywb lists
    captures its access rules block (and refuses to replay them). A revisit's status is
    ``-`` as in the IA's CDX; a missing field reads as unknown.
    """
    for line in lines:
        if not line.startswith("{"):
            continue
        obj = _json_value(line)
        if not isinstance(obj, dict):
            continue
        if obj.get("access", "allow") != "allow":
            continue
        names = [_PYWB_FIELDS.get(str(k), str(k)) for k in obj]
        wanted = [(n, v) for n, v in zip(names, obj.values(), strict=True) if n in CDX_FIELDS]
        row = _row_from_values([n for n, _ in wanted], [v for _, v in wanted])
        if row is not None:
            yield row


def parse_cdx(body: str, fields: Sequence[str] = CDX_FIELDS) -> list[CdxRow]:
    """Parse a whole IA CDX answer (see :func:`iter_cdx`)."""
    return list(iter_cdx(body_lines(body), fields))


def parse_pywb_cdx(body: str) -> list[CdxRow]:
    """Parse a whole pywb CDX answer (see :func:`iter_pywb_cdx`)."""
    return list(iter_pywb_cdx(body_lines(body)))


def plausible_original(url: str) -> bool:
    """False for the junk originals the CDX holds (``http://mailto:...``, ``data:``...)."""
    if len(url) > 8192:
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return False
    if any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
        return False
    return "." in host or host == "localhost" or ":" in host


def _seconds(ts: str) -> float:
    return parse_timestamp14(ts).timestamp()


def choose_captures(
    rows: Iterable[CdxRow], at: str | None, limit: int = 2, *, requested: str | None = None
) -> list[CdxRow]:
    """The good captures to try, best first.

    Good means a 2xx status, a possible timestamp and a plausible original URL, which with
    ``requested`` must be that URL by the archive's own equivalence
    (:func:`~snapcache.untrusted.same_resource`): a row for another host or path is not a
    capture of the cited URL. Revisit rows (status ``-``) and duplicates are dropped. Best
    means newest when ``at`` is None, else closest to ``at`` in either direction (the
    archive's own rule), earlier on a tie. ``rows`` may be a generator: it is read once.
    """
    seen: set[tuple[str, str]] = set()
    good: list[CdxRow] = []
    for row in rows:
        if row.status is None or not 200 <= row.status < 300:
            continue
        if not valid_timestamp(row.timestamp) or not plausible_original(row.original):
            continue
        if requested is not None and not same_resource(row.original, requested):
            continue
        key = (row.timestamp, row.digest)
        if key in seen:
            continue
        seen.add(key)
        good.append(row)
    if at is None:
        good.sort(key=lambda r: r.timestamp, reverse=True)
    else:
        target = _seconds(at)
        good.sort(key=lambda r: (abs(_seconds(r.timestamp) - target), r.timestamp))
    return good[:limit]
