"""Documents generated at test time: PDFs (fpdf2) and HTML pages."""

from __future__ import annotations

from fpdf import FPDF

NTIA_URL = "https://www.ntia.gov/sites/default/files/publications/ntia-ai-open-model-report.pdf"
NTIA_TS = "20260408194323"
NTIA_SENTENCE = "Dual-Use Foundation Models with Widely Available Model Weights"


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A text PDF with one paragraph per page."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def ntia_pdf() -> bytes:
    """A stand-in for the NTIA report the wiki cites, with its real title."""
    return make_pdf(
        [
            f"{NTIA_SENTENCE}. NTIA Report, July 2024. The National Telecommunications and "
            "Information Administration examines the risks and benefits of open model weights.",
            "Executive summary. Open foundation models allow broad access to capability.",
        ],
        title="NTIA AI Open Model Report",
    )


def html_page(title: str, body: str, *, charset: str = "utf-8") -> bytes:
    """A page with boilerplate (nav, script, footer) around a main article."""
    return (
        f"<!doctype html><html><head><meta charset='{charset}'><title>{title}</title>"
        "<script>var tracking = 'SCRIPT-TEXT';</script><style>.x{color:red}</style></head>"
        "<body><nav>Home | About | NAV-TEXT</nav><header>HEADER-TEXT</header>"
        f"<main><h1>{title}</h1><p>{body}</p></main>"
        "<footer>FOOTER-TEXT</footer></body></html>"
    ).encode(charset)


# --- hostile documents (tests/test_hostile.py) ------------------------------------------


def encrypted_pdf(text: str = "Secret text behind a password.") -> bytes:
    """A PDF that needs a user password to open."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    pdf.set_encryption(owner_password="owner-pw", user_password="user-pw")
    return bytes(pdf.output())


def image_only_pdf() -> bytes:
    """A scanned-looking PDF: one image, no text layer."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (40, 90, 200)).save(buf, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(io.BytesIO(buf.getvalue()), x=10, y=10, w=120)
    return bytes(pdf.output())


def large_pdf(min_bytes: int, text: str = "Large report, first page.") -> bytes:
    """A PDF of at least ``min_bytes``: a text page, then a page holding a noise image that
    does not compress (so the file is as large as asked without thousands of pages)."""
    import io
    import os

    from PIL import Image

    side = int((min_bytes / 3) ** 0.5) + 16
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    noise.save(buf, format="PNG", compress_level=0)
    pdf = FPDF()
    pdf.set_title("Large report")
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, text)
    pdf.add_page()
    pdf.image(io.BytesIO(buf.getvalue()), x=10, y=10, w=180)
    data = bytes(pdf.output())
    assert len(data) >= min_bytes, len(data)
    return data


def many_page_pdf(pages: int, words_per_page: int = 400) -> bytes:
    """A PDF whose text extraction takes long in total: many pages dense with text."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=6)
    line = " ".join(f"w{i}" for i in range(words_per_page))
    for number in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 3, f"Page {number}. {line}")
    return bytes(pdf.output())


def gzip_bomb(inflated: int = 2 << 30, block: int = 1 << 20) -> bytes:
    """A valid gzip stream of ``inflated`` zero bytes (2 GiB by default) in about 2 MB.

    Built in under a second: after a full flush the compressor's output for the next block
    of zeros is always the same bytes, so that block is repeated and the trailer's CRC-32 and
    size are computed for the whole."""
    import struct
    import zlib

    zeros = bytes(block)
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    middle = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    end = comp.flush()[:-8]  # the final empty block, without the trailer
    count = inflated // block
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, (count * block) & 0xFFFFFFFF)
    return first + middle * (count - 1) + end + trailer


def deep_html(levels: int = 50_000) -> bytes:
    """An HTML page with ``levels`` nested <div>s around its text."""
    return (
        "<!doctype html><html><head><title>Deep page</title></head><body>"
        + "<div>" * levels + "Deep text at the bottom." + "</div>" * levels
        + "</body></html>"
    ).encode()


def single_line_html(size: int = 30_000_000) -> bytes:
    """An HTML page of ``size`` bytes on one line, no line break anywhere."""
    head = b"<!doctype html><html><head><title>One long line</title></head><body><p>"
    tail = b"</p></body></html>"
    words = b"lorem ipsum dolor sit amet "
    body = (words * (size // len(words) + 1))[: size - len(head) - len(tail)]
    return head + body + tail


def slow_pdf(pages: int = 200, ops_per_page: int = 20_000) -> bytes:
    """A small PDF that is slow to extract: every page shares one compressed content stream
    of ``ops_per_page`` text-showing operators, so the file stays small while text
    extraction does ``pages * ops_per_page`` operations."""
    import zlib

    ops = "".join(
        f"1 0 0 1 {(i * 7) % 560 + 20} {(i * 13) % 760 + 20} Tm (w{i % 97}) Tj "
        for i in range(ops_per_page)
    )
    stream = zlib.compress(f"BT /F1 4 Tf {ops}ET".encode("latin-1"), 9)
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length " + str(len(stream)).encode() + b" /Filter /FlateDecode >>\nstream\n"
        + stream + b"\nendstream",
    ]
    font = 4 + pages
    for _ in range(pages):
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R"
            f" /Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    from tests.wayback_emulator import pdf_from_objects

    return pdf_from_objects(objs)
