"""Source lists: plain text, CSV/TSV with a header, or JSON Lines, read as a stream.

Every line is checked on its own. A bad line (not http(s), unparsable, control characters,
over 8 KB, not UTF-8, a bad ``at`` or ``stable_id``) becomes a :class:`SourceError` naming
its line number and reason; the lines around it are unaffected. Nothing is held in memory
beyond the current line, so a list of any length streams.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

from .errors import InputError
from .ids import MAX_URL_LENGTH, check_url, is_stable_id, normalize_timestamp

Format = Literal["text", "csv", "tsv", "jsonl"]
FORMATS: Final[tuple[str, ...]] = ("text", "csv", "tsv", "jsonl")
MAX_LINE_BYTES: Final = MAX_URL_LENGTH + 1024
"""A line longer than this is refused before it is parsed (8 KB URL plus other columns)."""


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One usable line of a source list."""

    line: int
    url: str
    stable_id: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True)
class SourceError:
    """One unusable line, with its number and why."""

    line: int
    reason: str


def _decode_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, str | SourceError]]:
    for number, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE_BYTES:
            yield number, SourceError(number, f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, SourceError(number, f"not valid UTF-8 (byte {exc.start})")
            continue
        yield number, text.rstrip("\r\n")


def detect_format(first_line: str) -> Format:
    """Guess a list's format from its first meaningful line."""
    stripped = first_line.strip()
    if stripped.startswith("{"):
        return "jsonl"
    for fmt, sep in (("tsv", "\t"), ("csv", ",")):
        if sep in stripped:
            cells = [c.strip().strip('"').lower() for c in stripped.split(sep)]
            if "url" in cells:
                return fmt  # type: ignore[return-value]
    return "text"


def _entry(number: int, url: object, stable_id: object = None, at: object = None
           ) -> SourceEntry | SourceError:
    if not isinstance(url, str):
        return SourceError(number, "missing url")
    try:
        checked = check_url(url)
        when = None
        if at not in (None, ""):
            if not isinstance(at, str):
                return SourceError(number, "at: expected a YYYYMMDD[hhmmss] string")
            when = normalize_timestamp(at)
    except InputError as exc:
        return SourceError(number, str(exc))
    sid: str | None = None
    if stable_id not in (None, ""):
        if not isinstance(stable_id, str) or not is_stable_id(stable_id.strip()):
            return SourceError(number, "stable_id: expected sid_ plus 10 letters or digits")
        sid = stable_id.strip()
    return SourceEntry(number, checked, sid, when)


def parse_sources(
    lines: Iterable[bytes], fmt: Format | None = None
) -> Iterator[SourceEntry | SourceError]:
    """Parse a source list given as raw byte lines, lazily, in order.

    ``fmt`` forces a format; otherwise it is detected from the first non-blank,
    non-comment line. Blank lines and ``#`` comments are skipped in every format.
    """
    header: list[str] | None = None
    fmt_used: Format | None = fmt
    for number, item in _decode_lines(lines):
        if isinstance(item, SourceError):
            yield item
            continue
        if not item.strip() or item.lstrip().startswith("#"):
            continue
        if fmt_used is None:
            fmt_used = detect_format(item)
        if fmt_used == "text":
            yield _entry(number, item.strip())
        elif fmt_used == "jsonl":
            yield _jsonl_entry(number, item)
        else:
            sep = "\t" if fmt_used == "tsv" else ","
            try:
                cells = next(csv.reader([item], delimiter=sep))
            except csv.Error as exc:
                yield SourceError(number, f"unparsable {fmt_used.upper()} line: {exc}")
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                if "url" not in header:
                    yield SourceError(number, f"{fmt_used.upper()} header has no 'url' column")
                    return
                continue
            if len(cells) > len(header):
                yield SourceError(number, f"{len(cells)} cells but the header has {len(header)}")
                continue
            row = dict(zip(header, cells, strict=False))
            yield _entry(number, row.get("url", "").strip() or None,
                         row.get("stable_id"), row.get("at"))


def _jsonl_entry(number: int, text: str) -> SourceEntry | SourceError:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return SourceError(number, f"unparsable JSON: {exc.args[0] if exc.args else exc}")
    if not isinstance(data, dict):
        return SourceError(number, "JSON line is not an object")
    return _entry(number, data.get("url"), data.get("stable_id"), data.get("at"))
