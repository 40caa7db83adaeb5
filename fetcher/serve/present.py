"""How the dashboard shows a record: the rows of the CLI's card (``snapcache show``), with
the same labels, values and formats, as data for the HTML templates.

The formats come from :mod:`snapcache.display`, which the CLI's card uses too (the server
may not import the CLI); ``tests/test_serve_dashboard.py`` checks that both give the same
text for the same record.
Every value passes :func:`clean`, and the templates escape it again for HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from snapcache.cache import Record
from snapcache.display import clean, content_note, human_iso, human_size, human_timestamp

__all__ = ["CardRow", "card_rows", "clean", "human_iso", "human_size", "human_timestamp",
           "safe_href", "title_of"]


def safe_href(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL a link may point at, else ``None`` (a stored value
    such as ``javascript:…`` is shown as text, never linked)."""
    if not url or any(ord(c) < 0x21 or c == "\x7f" for c in url):
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def title_of(record: Record) -> str:
    """The card's heading: the cleaned title, or "(no title)"."""
    return clean(record.title) or "(no title)"


@dataclass(frozen=True, slots=True)
class CardRow:
    """One labelled line of the card; ``href`` when the value is a link."""

    label: str
    value: str
    href: str | None = None


def card_rows(record: Record) -> list[CardRow]:
    """The card's lines after the title, in its order (the preview and IDs come apart)."""
    rows = [CardRow("URL", clean(record.url), safe_href(record.url))]
    if record.archive:
        rows.append(CardRow("Archive", clean(record.archive)))
    if record.archive_url:
        rows.append(CardRow("Archive URL", clean(record.archive_url),
                            safe_href(record.archive_url)))
    if record.original_url and record.original_url != record.url:
        rows.append(CardRow("Captured URL", clean(record.original_url),
                            safe_href(record.original_url)))
    archived = f"HTTP {record.archived_status}" if record.archived_status else "no capture"
    rows.append(CardRow("Outcome", f"{record.status} · archived status {archived}"))
    when = (f"Fetched {human_iso(record.fetched_at)}" if record.fetched_at
            else f"Checked {human_iso(record.last_attempt_at)}")
    if record.last_confirmed_at:
        when += f" · confirmed {human_iso(record.last_confirmed_at)}"
    rows.append(CardRow("Captured", f"{human_timestamp(record.capture_timestamp)} · {when}"))
    if record.status == "ok":
        rows.append(CardRow(
            "Size",
            f"{human_size(record.content_length)}"
            f"{' (cut at the size cap)' if record.body_truncated else ''}"
            f" · {clean(record.content_type) or 'unknown type'}",
        ))
    flagged = content_note(record)
    if flagged:
        rows.append(CardRow("Note", clean(flagged)))
    if record.preview_note:
        rows.append(CardRow("Note", clean(record.preview_note)))
    if record.error:
        rows.append(CardRow("Last error",
                            f"{clean(record.error)} ({human_iso(record.last_attempt_at)})"))
    return rows
