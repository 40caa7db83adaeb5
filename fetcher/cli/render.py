"""How the ``snapcache`` commands show records: the human card and its size and time
formats. Everything from a record passes :func:`~snapcache.cli.common.clean` first.
"""

from __future__ import annotations

import textwrap
from typing import Final

import click
from snapcache.cache.records import Record

from ..display import clean, content_note, human_iso, human_size, human_timestamp
from ..extract import sanitize_text

PREVIEW_EXCERPT: Final = 700


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
    if record.last_confirmed_at:
        when += f" · confirmed {human_iso(record.last_confirmed_at)}"
    lines.append(f"  Captured:     {human_timestamp(record.capture_timestamp)} · {when}")
    if record.status == "ok":
        lines.append(
            f"  Size:         {human_size(record.content_length)}"
            f"{' (cut at the size cap)' if record.body_truncated else ''}"
            f" · {clean(record.content_type) or 'unknown type'}"
        )
    flagged = content_note(record)
    if flagged:
        lines.append(f"  Note:         {clean(flagged)}")
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
