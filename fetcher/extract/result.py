"""What extraction returns, the bounds it works within, and how a result is put together.

:class:`ExtractLimits` holds the one set of default bounds (the ``[preview]`` section of the
configuration starts from these), :class:`Extraction` is the result, and the helpers here
are shared by the HTML, PDF and plain-text paths: title cleaning, the word-boundary cut of
the preview and :func:`finish`, which caps the text and joins the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from .sanitize import sanitize_text

__all__ = [
    "DEFAULT_WORKERS",
    "KINDS",
    "PDF_STOP_MARGIN",
    "TITLE_MAX_CHARS",
    "ExtractLimits",
    "Extraction",
    "Kind",
    "clean_title",
    "cut_at_word",
    "finish",
    "make_preview",
]

Kind = Literal["html", "pdf", "text", "other", "empty"]
#: Every :data:`Kind`, for checking one that crossed a process boundary.
KINDS: Final[frozenset[str]] = frozenset(get_args(Kind))

#: The version of what extraction makes of a body (type, title, text, preview, note). Bump
#: it whenever a change would give an existing capture a different preview: records carry
#: the version that made them, and a refresh fetches a record made by an older one in full
#: once, instead of only confirming its capture, so the improvement reaches it.
EXTRACTOR_VERSION: Final = 2
#: Seconds between the PDF's own time limit and the worker being killed.
PDF_STOP_MARGIN: Final = 5.0
#: Worker processes in an extraction pool unless told otherwise (``[preview] workers``).
#: Here, not in :mod:`.pool`, so that the configuration reads it without importing the
#: extractors.
DEFAULT_WORKERS: Final = 2


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Caps that keep one hostile document from using unbounded time or memory.

    These defaults are the only ones: the configuration's ``[preview]`` section
    (``PreviewConfig``) takes its defaults from here.
    """

    preview_chars: int = 3000  # cap on preview
    text_chars: int = 1_000_000  # cap on full text
    pdf_max_pages: int = 10  # first pages only
    pdf_max_seconds: float = 10.0  # checked between pages; stop and note when exceeded
    html_max_bytes: int = 4_000_000  # parse at most this many bytes of HTML / text
    # The next two bound a document whatever it does, in the extraction worker (pool.py):
    max_memory_mb: int = 512  # the worker's address space; past it the worker stops
    max_seconds: float = 15.0  # wall clock per document; past it the worker is killed

    @property
    def deadline_seconds(self) -> float:
        """The wall-clock limit the pool enforces: ``max_seconds``, but never less than
        ``pdf_max_seconds`` + 5 s, so that the gentler stop between PDF pages (which keeps
        the pages already read) always comes first."""
        return max(self.max_seconds, self.pdf_max_seconds + PDF_STOP_MARGIN)


@dataclass(frozen=True, slots=True)
class Extraction:
    """The result of :func:`extract`. Every string field is already sanitised."""

    kind: Kind
    content_type: str
    title: str | None
    text: str
    preview: str
    note: str | None
    charset: str | None
    pages: int | None


TITLE_MAX_CHARS = 500


def clean_title(raw: str | None) -> str | None:
    """Single-line, sanitised title capped at TITLE_MAX_CHARS; None when nothing is left."""
    if raw is None:
        return None
    title = sanitize_text(raw)
    if len(title) > TITLE_MAX_CHARS:
        title = cut_at_word(title, TITLE_MAX_CHARS)
    return title or None


def cut_at_word(text: str, limit: int) -> str:
    """First ``limit`` chars of ``text``, not ending in a partial word when avoidable."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace():
        # The cut fell inside a word: drop that partial word, unless the "word" is most of
        # the budget (a URL or a long token), where a hard cut keeps more information.
        space = max(cut.rfind(" "), cut.rfind("\n"))
        if space > limit // 2:
            cut = cut[:space]
    return cut.rstrip()


def make_preview(text: str, limit: int) -> str:
    """The preview of ``text``: at most ``limit`` chars, cut at a word, line breaks kept."""
    return sanitize_text(cut_at_word(text, limit), keep_newlines=True)


def finish(
    *,
    kind: Kind,
    content_type: str,
    title: str | None,
    text: str,
    notes: list[str],
    limits: ExtractLimits,
    charset: str | None = None,
    pages: int | None = None,
) -> Extraction:
    """Build the :class:`Extraction`: cap the text, derive the preview and join the notes
    (they can stack, e.g. a cut HTML document whose text is also truncated).

    ``notes`` is appended to in place when the text is capped.
    """
    if len(text) > limits.text_chars:
        text = text[: limits.text_chars].rstrip()
        notes.append(f"text truncated at {limits.text_chars} chars")
    return Extraction(
        kind=kind,
        content_type=content_type,
        title=title,
        text=text,
        preview=make_preview(text, limits.preview_chars) if text else "",
        note="; ".join(notes) if notes else None,
        charset=charset,
        pages=pages,
    )
