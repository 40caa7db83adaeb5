"""How records' values are shown to people, by the command line and the dashboard alike:
text without control characters, sizes, and archive and ISO times. One copy, below both
(the dashboard may not import the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from snapcache.cache import Record, parse_iso, parse_timestamp14

from .extract import sanitize_text
from .junk import ContentFlag, describe

__all__ = ["clean", "content_note", "human_day", "human_iso", "human_size", "human_timestamp"]


def clean(value: object) -> str:
    """``value`` as text safe for a terminal or a page (control characters and escape
    sequences removed; None is ""). Titles and previews come from hostile documents, URLs
    and errors from the archive: everything shown passes here."""
    return sanitize_text(str(value)) if value is not None else ""


def human_size(size: int | None) -> str:
    """Bytes as B, KB or MB (1024-based, one decimal), as on the record card."""
    if size is None:
        return "size unknown"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _human(text: str, parse: Callable[[str], datetime]) -> str:
    # A stored time that does not parse is shown as it is rather than hidden.
    try:
        dt = parse(text)
    except ValueError:
        return text
    return f"{dt:%b} {dt.day}, {dt:%Y %H:%M} UTC"


def human_timestamp(ts: str | None) -> str:
    """A 14-digit archive timestamp as ``Apr 8, 2026 19:43 UTC``."""
    return _human(ts, parse_timestamp14) if ts else "unknown"


def human_iso(iso: str | None) -> str:
    """An ISO 8601 UTC time as ``Nov 29, 2026 11:27 UTC``."""
    return _human(iso, parse_iso) if iso else "never"


def human_day(ts: str | None) -> str:
    """A 14-digit archive timestamp as a day, ``Mar 3, 2025``."""
    if not ts:
        return "unknown date"
    try:
        dt = parse_timestamp14(ts)
    except ValueError:
        return ts
    return f"{dt:%b} {dt.day}, {dt:%Y}"


def _phrase(flag: object) -> str:
    """The human phrase of a stored flag (one this release does not know is shown as is)."""
    try:
        return describe(ContentFlag(str(flag)))
    except ValueError:
        return f"flagged {clean(flag)!r}"


def content_note(record: Record) -> str | None:
    """Why the capture shown is not the newest, or not plainly the document: the card's
    note for ``content_flag`` and ``skipped`` (None when there is nothing to say)."""
    newest = record.skipped[0] if record.skipped else None
    if record.status == "ok" and newest is not None:
        shown = human_day(record.capture_timestamp)
        when = newest.get("capture_timestamp")
        also = f" (and {len(record.skipped) - 1} more)" if len(record.skipped) > 1 else ""
        return (f"the newest capture ({human_day(str(when)) if when else 'undated'}) was "
                f"{_phrase(newest.get('flag'))}{also}; showing {shown}")
    if record.status == "ok" and record.content_flag:
        return (f"the capture is {_phrase(record.content_flag)}: there is no preview, and "
                "no better capture to show")
    if record.content_flag:
        return f"no capture is the document: the newest was {_phrase(record.content_flag)}"
    return None
