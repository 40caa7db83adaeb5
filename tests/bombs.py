"""Documents that cost far more to extract than they weigh: built at test time, in seconds."""

from __future__ import annotations

import zlib

from tests.wayback_emulator import pdf_from_objects

#: One unit of page content: a text object showing a short string (about 40 bytes).
_OPS = b"BT /F1 9 Tf 1 0 0 1 72 720 Tm (bomb) Tj ET\n"


def flate_bomb(inflated: int, unit: bytes = _OPS, block: int = 1 << 20) -> bytes:
    """A zlib stream inflating to about ``inflated`` bytes of ``unit`` repeated.

    Built without holding the inflated bytes: after a full flush the compressor's output
    for the same block is always the same bytes, so one compressed block is repeated and
    the Adler-32 trailer is computed over the whole (as tests/docgen.py's gzip_bomb does)."""
    chunk = unit * max(1, block // len(unit))
    comp = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    first = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    middle = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    end = comp.flush()[:-4]  # the final empty block, without the Adler-32 trailer
    count = max(2, inflated // len(chunk))
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(chunk, adler)
    return first + middle * (count - 1) + end + adler.to_bytes(4, "big")


def pdf_bomb(inflated: int = 400_000_000) -> bytes:
    """A valid one-page PDF whose content stream is a Flate stream inflating to
    ``inflated`` bytes (400 MB by default) of text operators: about 1 MB on disk."""
    stream = flate_bomb(inflated)
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" /Filter /FlateDecode >>\nstream\n"
        + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def pdf_time_bomb(uses: int = 1000, form_bytes: int = 1_000_000) -> bytes:
    """A 3 KB one-page PDF that keeps PDFium busy for about a minute in little memory: the
    page draws, ``uses`` times, a form whose content stream inflates to ``form_bytes`` of
    save/restore operators, and each drawing parses it again. It all happens inside one
    page, where the check of ``pdf_max_seconds`` between pages never runs."""
    form = flate_bomb(form_bytes, b"q Q ")
    page = zlib.compress(b"/Fm0 Do " * uses)
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /XObject << /Fm0 5 0 R >> >> >>",
        b"<< /Length " + str(len(page)).encode() + b" /Filter /FlateDecode >>\nstream\n"
        + page + b"\nendstream",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] /Length "
        + str(len(form)).encode() + b" /Filter /FlateDecode >>\nstream\n" + form
        + b"\nendstream",
    ])


def punycode_page(size: int = 1_000_000) -> bytes:
    """An HTML page of about ``size`` bytes that is valid punycode and says so in a
    ``<meta charset>``: Python's punycode decoder is quadratic in its length."""
    words = "word \u00e9 " * (size // 7)
    source = (
        "<html><head><meta charset='punycode'><title>Punycode page</title></head><body>"
        f"<p>{words}</p></body></html>"
    )
    return source.encode("punycode")
