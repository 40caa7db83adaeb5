"""The entry point: :func:`extract` sniffs a body and hands it to the HTML, PDF or text path."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final

from .html import extract_html
from .pdf import extract_pdf
from .result import Extraction, ExtractLimits, finish
from .sanitize import sanitize_text
from .sniff import decode_body, media_type, no_preview_note, sniff

__all__ = ["extract"]

# Bytes read from a file before deciding its type (covers BOM + sniff window + slack).
_HEAD_BYTES = 4096
# The default bounds; ExtractLimits is frozen, so one shared instance is safe.
_DEFAULT_LIMITS: Final = ExtractLimits()


def extract(
    body: bytes | os.PathLike[str] | str,
    declared_content_type: str | None,
    limits: ExtractLimits = _DEFAULT_LIMITS,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Extraction:
    """Extract title, text and preview from a capture body.

    ``body`` is the raw bytes, or a filesystem path (``str`` or path-like) to read them from:
    a PDF path goes straight to PDFium so large PDFs are not held in Python memory, and at
    most ``limits.html_max_bytes`` of an HTML/text file are read. The type is sniffed from
    the bytes (``declared_content_type`` only breaks ties for HTML and names the type of
    unknown binary bodies). Broken or hostile content never raises: the ``note`` says what
    happened. ``clock`` exists for tests of the PDF time limit.
    """
    path: str | None = None
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        head = data[:_HEAD_BYTES]
    else:
        path = os.fspath(body)
        with open(path, "rb") as fh:  # FileNotFoundError is the caller's bug: let it out
            head = fh.read(_HEAD_BYTES)
        data = b""

    declared_mime = media_type(declared_content_type)
    if not head:
        return finish(
            kind="empty",
            content_type=declared_mime or "application/octet-stream",
            title=None,
            text="",
            notes=["empty body"],
            limits=limits,
        )

    kind, content_type = sniff(head, declared_mime)

    if kind == "pdf":
        title, text, pages, notes = extract_pdf(path if path is not None else data, limits, clock)
        return finish(
            kind="pdf",
            content_type=content_type,
            title=title,
            text=text,
            notes=notes,
            limits=limits,
            pages=pages,
        )

    if kind == "other":
        return finish(
            kind="other",
            content_type=content_type,
            title=None,
            text="",
            notes=[no_preview_note(content_type)],
            limits=limits,
        )

    # HTML and text: never decode or parse more than html_max_bytes.
    cap = max(limits.html_max_bytes, 0)
    if path is not None:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    truncated = len(data) > cap
    if truncated:
        data = data[:cap]

    if kind == "html":
        title, text, charset, notes = extract_html(
            data, declared_content_type, truncated, limits.text_chars
        )
        if truncated:
            notes.insert(0, f"HTML cut at {cap} bytes")
        return finish(
            kind="html",
            content_type=content_type,
            title=title,
            text=text,
            notes=notes,
            limits=limits,
            charset=charset,
        )

    decoded, charset = decode_body(data, declared_content_type, html=False, truncated=truncated)
    notes = [f"text cut at {cap} bytes"] if truncated else []
    return finish(
        kind="text",
        content_type=content_type,
        title=None,
        text=sanitize_text(decoded, keep_newlines=True),
        notes=notes,
        limits=limits,
        charset=charset,
    )
