"""PDF extraction with PDFium (pypdfium2): title and the text of the first pages.

A PDF is read from bytes or straight from its file (large PDFs stay out of Python memory);
the page count and a time budget bound the work, and a broken page or document becomes a
note, never an exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pypdfium2 as pdfium

from .result import ExtractLimits, clean_title
from .sanitize import sanitize_text

__all__ = ["extract_pdf"]

# PDFium is not thread-safe, not even across different documents (pypdfium2 docs: doing so
# "would crash or corrupt the process"); callers may run extract() in worker threads.
_PDFIUM_LOCK = threading.Lock()
_PDF_PASSWORD_ERRORS = frozenset(
    code
    for code in (
        getattr(pdfium.raw, "FPDF_ERR_PASSWORD", 4),
        getattr(pdfium.raw, "FPDF_ERR_SECURITY", 5),
    )
    if isinstance(code, int)
)


def _short_reason(exc: BaseException) -> str:
    reason = sanitize_text(str(exc)) or type(exc).__name__
    return reason[:120]


def extract_pdf(
    source: bytes | str, limits: ExtractLimits, clock: Callable[[], float]
) -> tuple[str | None, str, int | None, list[str]]:
    """(title, text, pages, notes) of a PDF given as bytes or a file path.

    Reads at most ``limits.pdf_max_pages`` pages and stops between pages once
    ``limits.pdf_max_seconds`` (measured with ``clock``) have passed. Never raises for bad
    documents; a missing file (``FileNotFoundError``) is the caller's bug and escapes, and
    so does ``MemoryError``: running out of room is the process's limit, which the
    extraction worker reports as such, not a property of the document.
    """
    started = clock()
    notes: list[str] = []
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(source)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) in _PDF_PASSWORD_ERRORS:
                return None, "", None, ["encrypted PDF"]
            return None, "", None, [f"corrupt PDF: {_short_reason(exc)}"]
        except (OSError, ValueError, TypeError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            return None, "", None, [f"corrupt PDF: {_short_reason(exc)}"]
        try:
            pages = len(doc)
            meta_title: str | None = None
            try:
                meta_title = clean_title(str(doc.get_metadata_value("Title") or ""))
            except Exception:  # broken Info dictionary: fall back to the first line
                meta_title = None
            parts: list[str] = []
            total = 0
            to_read = min(pages, max(limits.pdf_max_pages, 0))
            read = 0
            for index in range(to_read):
                if clock() - started > limits.pdf_max_seconds:
                    notes.append(f"PDF extraction stopped after {limits.pdf_max_seconds:.1f} s")
                    break
                try:
                    page_text = _pdf_page_text(doc, index)
                except MemoryError:
                    raise  # not the page's fault: the worker's memory limit (pool.py)
                except Exception as exc:  # one broken page should not lose the others
                    notes.append(f"PDF page {index + 1} unreadable: {_short_reason(exc)}")
                    read += 1
                    continue
                read += 1
                cleaned = sanitize_text(page_text, keep_newlines=True)
                if cleaned:
                    parts.append(cleaned)
                    total += len(cleaned) + 2
                if total > limits.text_chars:
                    break  # finish() cuts and notes; no point reading further
            if pages > read:
                notes.append(f"PDF: read {read} of {pages} pages")
        except MemoryError:
            raise
        except Exception as exc:  # pdfium can fail mid-way on damaged files
            return None, "", None, [f"corrupt PDF: {_short_reason(exc)}"]
        finally:
            doc.close()
    text = "\n\n".join(parts)
    if pages == 0:
        notes.insert(0, "PDF has no pages")
    elif not text and read > 0:
        notes.insert(0, "image-only PDF: no text layer")
    title = meta_title
    if title is None:
        first_line = next((line for line in text.split("\n") if line.strip()), None)
        title = clean_title(first_line)
    return title, text, pages, notes


def _pdf_page_text(doc: object, index: int) -> str:
    page = doc[index]  # type: ignore[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()
