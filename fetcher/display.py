"""How records' values are shown to people, by the command line and the dashboard alike:
text without control characters, sizes, and archive and ISO times. One copy, below both
(the dashboard may not import the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from snapcache.cache import parse_iso, parse_timestamp14

from .extract import sanitize_text

__all__ = ["clean", "human_iso", "human_size", "human_timestamp"]


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
