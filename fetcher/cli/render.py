"""How the ``snapcache`` commands show records: the human card and its size and time
formats. Everything from a record passes :func:`~snapcache.cli.common.clean` first.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import datetime
from typing import Final

import click
from snapcache.cache.records import Record
from snapcache.cache.times import parse_iso, parse_timestamp14

from ..extract import sanitize_text
from .common import clean

PREVIEW_EXCERPT: Final = 700


def human_size(size: int | None) -> str:
    """Bytes as B, KB or MB (1024-based, one decimal), for the card."""
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


def render_card(record: Record) -> str:
    """The human card for one record (plain text, control characters removed)."""
    lines: list[str] = []
    title = clean(record.title) or "(no title)"
    lines.append(title)
    lines.append(f"  URL:          {clean(record.url)}")
    if record.archive:
        lines.append(f"  Archive:      {clean(record.archive)}")
    if record.archive_url:
        lines.append(f"  Archive URL:  {clean(record.archive_url)}")
    if record.original_url and record.original_url != record.url:
        lines.append(f"  Captured URL: {clean(record.original_url)}")
    status = record.status
    archived = f"HTTP {record.archived_status}" if record.archived_status else "no capture"
    lines.append(f"  Outcome:      {status} · archived status {archived}")
    # A record without a fetched capture was still checked: say when, not "never".
    when = (
        f"Fetched {human_iso(record.fetched_at)}"
        if record.fetched_at
        else f"Checked {human_iso(record.last_attempt_at)}"
    )
    lines.append(f"  Captured:     {human_timestamp(record.capture_timestamp)} · {when}")
    if record.status == "ok":
        lines.append(
            f"  Size:         {human_size(record.content_length)}"
            f"{' (cut at the size cap)' if record.body_truncated else ''}"
            f" · {clean(record.content_type) or 'unknown type'}"
        )
    if record.preview_note:
        lines.append(f"  Note:         {clean(record.preview_note)}")
    if record.error:
        lines.append(
            f"  Last error:   {clean(record.error)} ({human_iso(record.last_attempt_at)})"
        )
    if record.preview:
        excerpt = sanitize_text(record.preview)
        if len(excerpt) > PREVIEW_EXCERPT:
            excerpt = excerpt[:PREVIEW_EXCERPT].rsplit(" ", 1)[0] + " …"
        lines.append("  Preview:")
        lines.extend(f"    {line}" for line in _wrap(excerpt, 92))
    lines.append(f"  Resource ID: {record.resource_id} | Stable ID: {record.stable_id}")
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or [""]


def emit_record(record: Record, as_json: bool) -> None:
    """Print one record: its JSON line, or its card and a blank line."""
    if as_json:
        click.echo(record.to_json())
    else:
        click.echo(render_card(record))
        click.echo()


__all__ = [
    "PREVIEW_EXCERPT",
    "emit_record",
    "human_iso",
    "human_size",
    "human_timestamp",
    "render_card",
]
