"""Source lists: plain text, CSV/TSV with a header, or JSON Lines, read as a stream.

Every entry is checked on its own. A bad line (not http(s), unparsable, control characters,
over 8 KB, not UTF-8, a bad ``at`` or ``stable_id``) becomes a :class:`SourceError` naming
its line number and reason; the entries around it are unaffected.

CSV and TSV go through the :mod:`csv` module, so a quoted cell may span lines (a note with a
line break in a spreadsheet export): such a record is one entry, numbered by the line it
starts on. Nothing is held in memory beyond the current record, so a list of any length
streams; a record is bounded too (:data:`MAX_RECORD_CHARS`), so an unclosed quote cannot
swallow the list.
"""

from __future__ import annotations

import csv
import itertools
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
MAX_RECORD_CHARS: Final = 100_000
"""A CSV/TSV record (its quoted cells may span lines) longer than this ends the list: past
it, where the quoted cell ends is anyone's guess, and guessing wrong would fetch the text of
a cell as a URL. Below the :mod:`csv` module's own field limit (131,072 characters)."""


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


_Numbered = Iterator[tuple[int, str | SourceError]]


def _decode_lines(lines: Iterable[bytes]) -> _Numbered:
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


def _skipped(text: str) -> bool:
    """Blank lines and ``#`` comments, skipped in every format (between CSV records)."""
    return not text.strip() or text.lstrip().startswith("#")


def detect_format(first_line: str) -> Format:
    """Guess a list's format from its first meaningful line.

    ``{`` starts JSON Lines. A line with a tab or a comma is a TSV or CSV header, unless
    it is a URL (URLs may hold commas): the header must then have a ``url`` column, and a
    header without one is an error naming its columns, never read as URLs.
    """
    stripped = first_line.strip()
    if stripped.startswith("{"):
        return "jsonl"
    separated: list[tuple[Format, str]] = [("tsv", "\t"), ("csv", ",")]
    for fmt, sep in separated:
        if sep in stripped and "url" in _header_cells(stripped, sep):
            return fmt
    if stripped.lower().startswith(("http://", "https://")):
        return "text"
    for fmt, sep in separated:
        if sep in stripped:
            return fmt
    return "text"


def _header_cells(line: str, sep: str) -> list[str]:
    return [c.strip().strip('"').lower() for c in line.split(sep)]


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
    non-comment line. Blank lines and ``#`` comments are skipped in every format (in CSV
    and TSV, between records: inside a quoted cell they are the cell's text).
    """
    numbered = _decode_lines(lines)
    for number, item in numbered:
        if isinstance(item, SourceError):
            yield item
            continue
        if _skipped(item):
            continue
        fmt_used = fmt or detect_format(item)
        rest = itertools.chain([(number, item)], numbered)
        if fmt_used == "text":
            yield from _text_entries(rest)
        elif fmt_used == "jsonl":
            yield from _jsonl_entries(rest)
        else:
            yield from _table_entries(rest, fmt_used)
        return


def _text_entries(numbered: _Numbered) -> Iterator[SourceEntry | SourceError]:
    for number, item in numbered:
        if isinstance(item, SourceError):
            yield item
        elif not _skipped(item):
            yield _entry(number, item.strip())


def _jsonl_entries(numbered: _Numbered) -> Iterator[SourceEntry | SourceError]:
    for number, item in numbered:
        if isinstance(item, SourceError):
            yield item
        elif not _skipped(item):
            yield _jsonl_entry(number, item)


def _jsonl_entry(number: int, text: str) -> SourceEntry | SourceError:
    try:
        data = json.loads(text)
    except RecursionError:
        # A line nested thousands deep (8 KB of "[" is enough) exhausts the parser's stack:
        # that line is bad, not the run.
        return SourceError(number, "unparsable JSON: nested too deeply")
    except ValueError as exc:
        return SourceError(number, f"unparsable JSON: {exc.args[0] if exc.args else exc}")
    if not isinstance(data, dict):
        return SourceError(number, "JSON line is not an object")
    return _entry(number, data.get("url"), data.get("stable_id"), data.get("at"))


class _RecordTooLongError(Exception):
    """Internal: a CSV/TSV record grew past :data:`MAX_RECORD_CHARS`."""


class _RecordLines:
    """The decoded lines of a CSV/TSV list, fed to :func:`csv.reader`, which pulls a
    record's further lines itself while a quoted cell is open.

    It notes where the record being read starts, skips blank lines and comments between
    records, keeps unusable lines (too long, not UTF-8) aside to be reported in order, and
    stops a record that grows past :data:`MAX_RECORD_CHARS`.
    """

    def __init__(self, numbered: _Numbered) -> None:
        self.numbered = numbered
        self.start: int | None = None
        """The line the record being read starts on (None between records)."""
        self.chars = 0
        self.bad: list[SourceError] = []
        """Unusable lines met and not yet reported."""
        self.spoiled: SourceError | None = None
        """An unusable line inside the record being read (the record cannot be trusted)."""
        self.unclosed = False
        """The list ended inside a quoted cell."""

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        while True:
            try:
                number, item = next(self.numbered)
            except StopIteration:
                # The reader asks for more only while a quoted cell is open.
                self.unclosed = self.start is not None
                raise
            if isinstance(item, SourceError):
                self.bad.append(item)
                if self.start is None:
                    continue
                self.spoiled = self.spoiled or item
                return "\n"  # keep the record's shape; it is reported, not used
            if self.start is None:
                if _skipped(item):
                    continue
                self.start, self.chars = number, 0
            self.chars += len(item) + 1
            if self.chars > MAX_RECORD_CHARS:
                raise _RecordTooLongError
            return item + "\n"

    def next_record(self) -> tuple[int, SourceError | None]:
        """Begin the next record: return where the last one started and what spoiled it."""
        start, spoiled = self.start or 0, self.spoiled
        self.start, self.spoiled, self.unclosed = None, None, False
        return start, spoiled

    def take_bad(self) -> list[SourceError]:
        """The unusable lines met so far, to report now (in line order)."""
        bad, self.bad = self.bad, []
        return bad


def _table_entries(numbered: _Numbered, fmt: Format) -> Iterator[SourceEntry | SourceError]:
    name = fmt.upper()
    feed = _RecordLines(numbered)
    reader = csv.reader(feed, delimiter="\t" if fmt == "tsv" else ",")
    header: list[str] | None = None
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except _RecordTooLongError:
            start, _ = feed.next_record()
            yield from feed.take_bad()
            yield SourceError(start, f"{name} record longer than {MAX_RECORD_CHARS} characters"
                              " (a quoted cell never closed?); the rest of the list is not read")
            return
        except csv.Error as exc:
            start, _ = feed.next_record()
            yield from feed.take_bad()
            yield SourceError(start, f"unparsable {name} record: {exc}")
            continue
        unclosed = feed.unclosed
        start, spoiled = feed.next_record()
        yield from feed.take_bad()
        if unclosed:
            yield SourceError(start, f"{name} record has a quoted cell that is never closed")
            return
        if spoiled is not None:
            yield SourceError(start, f"{name} record skipped: its line {spoiled.line} is"
                              " unusable")
            continue
        if not cells:
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            if "url" not in header:
                found = ", ".join(repr(c.strip()) for c in cells)
                yield SourceError(start, f"{name} header has no 'url' column"
                                  f" (columns found: {found})")
                return
            continue
        if len(cells) > len(header):
            yield SourceError(start, f"{len(cells)} cells but the header has {len(header)}")
            continue
        row = dict(zip(header, cells, strict=False))
        yield _entry(start, row.get("url", "").strip() or None,
                     row.get("stable_id"), row.get("at"))
    yield from feed.take_bad()
