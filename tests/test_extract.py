"""Tests for snapcache.extract. Every document is generated here (fpdf2, Pillow, strings)."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from snapcache.config import PreviewConfig
from snapcache.extract import (
    Extraction,
    ExtractLimits,
    decode_html,
    extract,
    sanitize_text,
)
from snapcache.extract.harden import MAX_DEPTH, SENTINEL, prepare_html
from snapcache.extract.sniff import media_type, sniff

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


# ----------------------------------------------------------------------------- helpers


def make_pdf(
    pages: list[str],
    *,
    title: str | None = None,
    user_password: str | None = None,
) -> bytes:
    pdf = FPDF()
    if title is not None:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 8, text)
    if user_password is not None:
        pdf.set_encryption(owner_password="owner-pw", user_password=user_password)
    return bytes(pdf.output())


def make_png(size: tuple[int, int] = (64, 48)) -> bytes:
    img = Image.new("RGB", size, (200, 30, 30))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_image_only_pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.image(io.BytesIO(make_png((120, 80))), x=10, y=10, w=120)
    return bytes(pdf.output())


def html_page(body: str, head: str = "<title>Test page</title>") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"


def assert_clean(ex: Extraction) -> None:
    for value in (ex.title or "", ex.preview, ex.text, ex.note or ""):
        assert "\x1b" not in value
        assert not CONTROL_RE.search(value), repr(value)
    assert "\n" not in (ex.title or "")
    assert "\n" not in (ex.note or "")


# ----------------------------------------------------------------------------- PDF


def test_pdf_multipage_text_and_metadata_title() -> None:
    body = make_pdf([f"Intro. {SENTENCE}", "Second page text.", "Third page."], title="Report")
    ex = extract(body, "application/pdf")
    assert ex.kind == "pdf"
    assert ex.content_type == "application/pdf"
    assert ex.title == "Report"
    assert ex.pages == 3
    assert SENTENCE in ex.text
    assert ex.text.index(SENTENCE) < ex.text.index("Second page text.")
    assert "\n\n" in ex.text  # pages are joined with a blank line
    assert SENTENCE in ex.preview
    assert ex.note is None
    assert ex.charset is None


def test_pdf_title_falls_back_to_first_line() -> None:
    body = make_pdf(["Annual Figures 2025\nSome body text follows here."])
    ex = extract(body, None)
    assert ex.kind == "pdf"
    assert ex.title == "Annual Figures 2025"


def test_pdf_declared_as_html_is_still_pdf() -> None:
    # The Wayback toolbar case: the archive labels the raw capture text/html.
    body = make_pdf([SENTENCE], title="NTIA report")
    ex = extract(body, "text/html; charset=utf-8")
    assert ex.kind == "pdf"
    assert ex.content_type == "application/pdf"
    assert SENTENCE in ex.preview
    assert "Wayback" not in ex.preview


def test_pdf_header_after_junk_within_first_kb() -> None:
    body = b"\r\n\r\n" + b"x" * 300 + b"\n" + make_pdf([SENTENCE])
    ex = extract(body, "application/octet-stream")
    assert ex.kind == "pdf"
    assert SENTENCE in ex.text


def test_pdf_encrypted() -> None:
    body = make_pdf([SENTENCE], user_password="secret")
    ex = extract(body, "application/pdf")
    assert ex.kind == "pdf"
    assert ex.note == "encrypted PDF"
    assert ex.preview == ""
    assert ex.text == ""
    assert SENTENCE not in (ex.title or "")


def test_pdf_image_only() -> None:
    ex = extract(make_image_only_pdf(), "application/pdf")
    assert ex.kind == "pdf"
    assert ex.pages == 1
    assert ex.preview == ""
    assert ex.note == "image-only PDF: no text layer"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[:200],
        lambda b: b[:9] + bytes((x * 7 + 13) % 256 for x in b[9:]),
        lambda b: b"%PDF-1.7\n" + b"\x00garbage\xff" * 50,
    ],
    ids=["truncated-half", "truncated-200", "garbled", "header-only"],
)
def test_pdf_corrupt(mangle: Callable[[bytes], bytes]) -> None:
    ex = extract(mangle(make_pdf([SENTENCE, "more"])), "application/pdf")
    assert ex.kind == "pdf"
    assert ex.preview == ""
    assert ex.note is not None and ex.note.startswith("corrupt PDF: ")
    assert_clean(ex)


def test_pdf_page_limit() -> None:
    body = make_pdf([f"Page number {i + 1} says hello." for i in range(30)])
    ex = extract(body, "application/pdf", ExtractLimits(pdf_max_pages=3))
    assert ex.pages == 30
    assert ex.note == "PDF: read 3 of 30 pages"
    assert "Page number 3 says hello." in ex.text
    assert "Page number 4" not in ex.text


def test_pdf_time_limit_checked_between_pages() -> None:
    body = make_pdf([f"Page {i + 1}." for i in range(5)])
    ticks = itertools.count(step=4.0)  # each clock reading is 4 s later than the last
    ex = extract(body, None, ExtractLimits(pdf_max_seconds=10.0), clock=lambda: next(ticks))
    assert ex.kind == "pdf"
    assert ex.note is not None
    assert "PDF extraction stopped after 10.0 s" in ex.note
    assert "Page 1." in ex.text
    assert "Page 5." not in ex.text


def test_pdf_from_path(tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(make_pdf([SENTENCE], title="From disk"))
    for arg in (path, str(path)):
        ex = extract(arg, "application/pdf")
        assert ex.kind == "pdf"
        assert ex.title == "From disk"
        assert SENTENCE in ex.text


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        extract(tmp_path / "nope.pdf", None)


# ----------------------------------------------------------------------------- HTML


BOILERPLATE_PAGE = html_page(
    """
    <header>SITE HEADER Logo</header>
    <nav><a href="/">NAVIGATION LINK</a></nav>
    <script>var SCRIPT_TEXT = 1;</script>
    <style>.STYLE_TEXT { color: red }</style>
    <noscript>NOSCRIPT TEXT</noscript>
    <main>
      <h1>Main Heading</h1>
      <p>First paragraph of the article, with <b>bold</b> and <a href="#">a link</a>.</p>
      <p>Second   paragraph
         spread over lines.</p>
      <div hidden>HIDDEN DIV</div><span aria-hidden="true">ARIA HIDDEN</span>
      <form>FORM TEXT <input name=q></form>
      <p>Third paragraph pads the main element past two hundred characters so that it is
      preferred over the body as the main content of this page, as real articles are.</p>
    </main>
    <aside>ASIDE TEXT</aside>
    <footer>FOOTER TEXT Copyright</footer>
    """,
    head='<title>Page &amp; Title</title><meta property="og:title" content="OG">',
)


def test_html_title_and_boilerplate_removed() -> None:
    ex = extract(BOILERPLATE_PAGE.encode(), "text/html; charset=utf-8")
    assert ex.kind == "html"
    assert ex.content_type == "text/html"
    assert ex.charset == "utf-8"
    assert ex.title == "Page & Title"
    for junk in (
        "SITE HEADER",
        "NAVIGATION",
        "SCRIPT_TEXT",
        "STYLE_TEXT",
        "NOSCRIPT",
        "HIDDEN DIV",
        "ARIA HIDDEN",
        "FORM TEXT",
        "ASIDE",
        "FOOTER",
    ):
        assert junk not in ex.text, junk
    assert "First paragraph of the article, with bold and a link." in ex.text
    # Paragraphs are lines; whitespace inside a paragraph is collapsed.
    assert "\nSecond paragraph spread over lines.\n" in ex.text
    assert ex.preview.startswith("Main Heading\nFirst paragraph")
    assert ex.note is None


def test_html_body_used_when_main_is_trivial() -> None:
    page = html_page("<main>tiny</main><div>Body text outside main element.</div>")
    ex = extract(page.encode(), None)
    assert "tiny" in ex.text
    assert "Body text outside main element." in ex.text


def test_html_title_fallbacks() -> None:
    og = html_page("<p>x</p>", head='<meta property="og:title" content="From OG">')
    assert extract(og.encode(), None).title == "From OG"
    h1 = html_page("<header><h1>From <em>H1</em></h1></header><p>x</p>", head="")
    assert extract(h1.encode(), None).title == "From H1"
    assert extract(html_page("<p>x</p>", head="").encode(), None).title is None


def test_html_inline_and_block_text() -> None:
    page = html_page(
        "<p>Hello <b>wor</b>ld!</p><ul><li>one</li><li>two</li></ul>line<br>break"
        "<table><tr><td>cell A</td><td>cell B</td></tr></table>"
    )
    ex = extract(page.encode(), None)
    assert ex.text.split("\n") == [
        "Hello world!",
        "one",
        "two",
        "line",
        "break",
        "cell A",
        "cell B",
    ]


def test_html_sniffed_without_declared_type() -> None:
    for prefix in ("  \n<!doctype HTML>", "<HTML>", "<head>", "<body>", "<!-- c --><html>"):
        ex = extract((prefix + "<p>Hi there</p>").encode(), "application/octet-stream")
        assert ex.kind == "html", prefix
        assert ex.text == "Hi there"
    ex = extract(b"<p>Just a fragment</p>", "text/html")
    assert ex.kind == "html"
    assert ex.text == "Just a fragment"


# ------------------------------------------------------------------ HTML charsets


def test_charset_from_header() -> None:
    body = html_page("<p>Привет, мир</p>").encode("koi8-r")
    ex = extract(body, "text/html; charset=KOI8-R")
    assert ex.charset == "koi8-r"
    assert "Привет, мир" in ex.text


def test_charset_from_meta() -> None:
    body = html_page("<p>Grüße aus Köln</p>", head='<meta charset="iso-8859-15">').encode(
        "iso-8859-15"
    )
    ex = extract(body, "text/html")
    assert ex.charset == "iso8859-15"
    assert "Grüße aus Köln" in ex.text
    http_equiv = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    body = html_page("<p>Пример</p>", head=http_equiv).encode("cp1251")
    assert extract(body, None).text == "Пример"


def test_charset_from_bom() -> None:
    page = html_page("<p>naïve café</p>")
    for data, expected in (
        (b"\xef\xbb\xbf" + page.encode("utf-8"), "utf-8"),
        (page.encode("utf-16"), "utf-16"),
    ):
        # The BOM wins even over a header that names another charset.
        ex = extract(data, "text/html; charset=iso-8859-1")
        assert ex.kind == "html"
        assert ex.charset == expected
        assert ex.text == "naïve café"
        assert ex.title == "Test page"


def test_undeclared_cp1252_page() -> None:
    body = html_page("<p>Un café naïve — “quoted” déjà vu</p>").encode("cp1252")
    ex = extract(body, "text/html")
    assert ex.charset == "cp1252"
    assert ex.text == "Un café naïve — “quoted” déjà vu"


def test_header_says_utf8_but_bytes_are_cp1252() -> None:
    body = html_page("<p>Le café est très bon, une idée naïve.</p>").encode("cp1252")
    text, charset = decode_html(body, "text/html; charset=utf-8")
    assert "\ufffd" not in text
    assert charset == "cp1252"
    ex = extract(body, "text/html; charset=utf-8")
    assert "café" in ex.text and "naïve" in ex.text and "très" in ex.text
    assert "\ufffd" not in ex.text


def test_header_says_latin1_but_bytes_are_utf8() -> None:
    # A single-byte label decodes any bytes "successfully", so the strict check cannot
    # reject it; valid multi-byte UTF-8 wins instead (cp1252 prose is essentially never
    # valid UTF-8 with non-ASCII in it).
    body = html_page("<p>naïve café — 東京</p>").encode("utf-8")
    text, charset = decode_html(body, "text/html; charset=ISO-8859-1")
    assert charset == "utf-8"
    assert "naïve café — 東京" in text
    # ... while a real latin-1 page keeps its label, mapped to cp1252 as browsers do.
    latin = html_page("<p>naïve café</p>").encode("latin-1")
    text, charset = decode_html(latin, "text/html; charset=ISO-8859-1")
    assert charset == "cp1252"
    assert "naïve café" in text


def test_unknown_or_dangerous_charset_labels_ignored() -> None:
    body = html_page("<p>plain +ADw-script+AD4- text é</p>").encode("utf-8")
    for label in ("utf-7", "base64", "rot13", "no-such-charset", "\x1b[31m"):
        text, charset = decode_html(body, f"text/html; charset={label}")
        assert charset == "utf-8", label
        assert "+ADw-script+AD4-" in text


def test_legacy_cyrillic_detected() -> None:
    body = html_page("<p>Привет, как дела? Это тестовая страница на русском языке.</p>")
    ex = extract(body.encode("cp1251"), None)
    assert "Привет, как дела?" in ex.text


# ----------------------------------------------------------------- sanitising


def test_sanitize_text_removes_escapes_and_controls() -> None:
    dirty = (
        "a\x1b[31mred\x1b[0m \x1b]0;evil title\x07b \x1b]8;;http://x\x1b\\link"
        " \x9b2Jc \x9d0;t\x9c d\u202eevil\u202c \u2066iso\u2069 e\x00f\x7fg\x85h"
    )
    clean = sanitize_text(dirty)
    assert clean == "ared b link c devil iso efg h"
    assert sanitize_text("  lots \t of\t\tspace  ") == "lots of space"
    assert sanitize_text("a\r\nb\rc\n\n\n\n\nd", keep_newlines=True) == "a\nb\nc\n\nd"
    assert sanitize_text("a\nb") == "a b"
    assert sanitize_text("unterminated \x1b]0;rest of line\nnext", keep_newlines=True) == (
        "unterminated\nnext"
    )


def test_ansi_in_html_title_and_body_removed() -> None:
    page = html_page(
        "<p>Safe \x1b[2J\x1b[31mred\x1b[0m text\x9b1m and \x1b]0;pwned\x07more.</p>",
        head="<title>Evil\x1b]0;owned\x07 \x1b[5mtitle\u202e\x07</title>",
    )
    ex = extract(page.encode(), "text/html")
    assert ex.title == "Evil title"
    assert ex.text == "Safe red text and more."
    assert_clean(ex)


def test_control_chars_in_pdf_title_removed() -> None:
    # ESC itself cannot be smuggled through a UTF-16 PDF string (U+001B starts a language
    # tag there and PDFium drops the rest), but C1 CSI, BEL and bidi overrides can.
    body = make_pdf([SENTENCE], title="Bad\u202e title\x9b31m end\x07 東")
    ex = extract(body, None)
    assert ex.title == "Bad title end 東"
    assert_clean(ex)


# ---------------------------------------------------------- caps and previews


def test_preview_cut_at_word_boundary() -> None:
    words = " ".join(f"word{i:04d}" for i in range(2000))  # 8 chars + space each
    ex = extract(html_page(f"<p>{words}</p>").encode(), None, ExtractLimits(preview_chars=95))
    assert len(ex.preview) <= 95
    # 10 words = 89 chars; the 11th would be cut at "word00", so it is left out.
    assert ex.preview == " ".join(f"word{i:04d}" for i in range(10))
    assert ex.text == words
    assert ex.note is None


def test_preview_hard_cut_for_one_long_token() -> None:
    ex = extract(b"x" * 500, "text/plain", ExtractLimits(preview_chars=100))
    assert ex.preview == "x" * 100


def test_text_cap_note() -> None:
    ex = extract(("abc " * 1000).encode(), "text/plain", ExtractLimits(text_chars=100))
    assert len(ex.text) <= 100
    assert ex.note == "text truncated at 100 chars"


def test_title_capped() -> None:
    page = html_page("<p>x</p>", head=f"<title>{'long ' * 300}</title>")
    ex = extract(page.encode(), None)
    assert ex.title is not None
    assert len(ex.title) <= 500
    assert not ex.title.endswith(" ")


# ------------------------------------------------------- other kinds of body


def test_empty_body() -> None:
    for body in (b"", bytearray()):
        ex = extract(bytes(body), "text/html")
        assert ex.kind == "empty"
        assert ex.note == "empty body"
        assert ex.preview == "" and ex.text == "" and ex.title is None


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert extract(path, None).kind == "empty"


def test_png_is_other() -> None:
    ex = extract(make_png(), "image/png")
    assert ex.kind == "other"
    assert ex.content_type == "image/png"
    assert ex.note == "no preview for image/png"
    assert ex.preview == ""
    # Sniffed by bytes: a PNG mislabelled as HTML is still a PNG.
    assert extract(make_png(), "text/html").content_type == "image/png"


def test_binary_uses_declared_type_or_octet_stream() -> None:
    blob = bytes(range(256)) * 4
    ex = extract(blob, "application/x-thing; q=1")
    assert (ex.kind, ex.content_type) == ("other", "application/x-thing")
    ex = extract(blob, None)
    assert ex.note == "no preview for application/octet-stream"
    ex = extract(blob, "evil/\x1b[31mtype")  # malformed header never reaches the note
    assert ex.content_type == "application/octet-stream"


def test_plain_text() -> None:
    body = "Line one.\r\nLine two has café.\n\n\n\nAfter gap.".encode("cp1252")
    ex = extract(body, "text/plain")
    assert ex.kind == "text"
    assert ex.content_type == "text/plain"
    assert ex.title is None
    assert ex.charset == "cp1252"
    assert ex.text == "Line one.\nLine two has café.\n\nAfter gap."
    ex = extract(b"just some words", None)
    assert (ex.kind, ex.charset, ex.text) == ("text", "utf-8", "just some words")


def test_text_and_html_from_path_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(html_page("<p>" + "abcdefgh " * 2000 + "</p>").encode())
    ex = extract(path, "text/html", ExtractLimits(html_max_bytes=1000))
    assert ex.kind == "html"
    assert ex.note == "HTML cut at 1000 bytes"
    assert 0 < len(ex.text) < 1000
    text_path = tmp_path / "notes.txt"
    text_path.write_bytes(b"hello " * 1000)
    ex = extract(str(text_path), None, ExtractLimits(html_max_bytes=100))
    assert ex.kind == "text"
    assert ex.note == "text cut at 100 bytes"


def test_cut_inside_multibyte_char_stays_utf8() -> None:
    body = html_page("<p>" + "é" * 1000 + "</p>").encode("utf-8")
    # Cut in the middle of a two-byte sequence: still UTF-8, no mojibake.
    ex = extract(body, None, ExtractLimits(html_max_bytes=501))
    assert ex.charset == "utf-8"
    assert set(ex.text) == {"é"}


# ------------------------------------------------------ hostile documents


def test_deeply_nested_html() -> None:
    depth = 50_000
    page = "<html><body>" + "<div>" * depth + "bottom text" + "</div>" * depth + "</body></html>"
    ex = extract(page.encode(), "text/html")
    assert ex.kind == "html"
    assert ex.text == "bottom text"
    assert ex.note is not None and "nesting capped" in ex.note


def test_deeply_nested_inline_and_unknown_elements() -> None:
    page = "<body>" + "<span><x-el><section/>" * 20_000 + "end"
    ex = extract(page.encode(), None)
    assert ex.text.endswith("end")


def test_formatting_element_bomb() -> None:
    # "<p><b id=N>x</p>" makes a spec parser clone every open <b> for each paragraph
    # (quadratic DOM growth: 10,000 repetitions -> 840 MB in lexbor).
    page = "<body>" + "".join(f"<p><b id={i}>x</p>" for i in range(20_000))
    ex = extract(page.encode(), None)
    assert ex.text == "\n".join(["x"] * 20_000)


def test_raw_text_tricks_do_not_hide_markup() -> None:
    # Script double-escaping and ">" in a quoted attribute are tokenized as browsers do.
    page = (
        '<body><div title="a>b<script>">kept 1</div>'
        "<script><!--<script></script><style></script><p>kept 2</p></style>"
        "<svg><style><p>kept 3</p></style></svg><p>kept 4</p>"
    )
    ex = extract(page.encode(), None)
    for word in ("kept 1", "kept 2", "kept 4"):
        assert word in ex.text


def test_thirty_megabyte_single_line() -> None:
    page = b"<html><head><title>Big</title></head><body><p>" + b"word " * 6_000_000 + b"</p>"
    assert len(page) > 30_000_000
    ex = extract(page, "text/html")
    assert ex.kind == "html"
    assert ex.title == "Big"
    assert ex.note is not None
    assert "HTML cut at 4000000 bytes" in ex.note
    assert "text truncated at 1000000 chars" in ex.note
    assert len(ex.text) <= 1_000_000
    assert len(ex.preview) <= 3000 and ex.preview.endswith("word")


# ------------------------------------------------------ the hardening pass and the sniffer


@pytest.mark.parametrize(
    ("html", "prepared"),
    [
        # Formatting tags go; block elements get a sentinel inside, never in inline runs.
        ("<p>Hello <b>world</b></p>", f"<p>{SENTINEL}Hello world{SENTINEL}</p>"),
        # No foreign content: <svg> is renamed (an unquoted "1/" is a value, not "/>").
        (
            "<svg><path d=1/><title>icon</title></svg>",
            "<x-svg><path d=1/><title>icon</title></x-svg>",
        ),
        ("<div/>x", "<div/></div>x"),  # a self-closing non-void tag cannot nest
        # Script contents (with its escaped states) and comments are not markup.
        (
            '<script>var a="<b>";<!--<script></script>--></script><b>x</b>',
            '<script>var a="<b>";<!--<script></script>--></script>x',
        ),
        ("<!-- <b> --><textarea><b></textarea>", "<!-- <b> --><textarea><b></textarea>"),
        (f"a{SENTINEL}b<br>c", f"a b<br>{SENTINEL}c"),  # only planted sentinels survive
        ("<b", ""),  # EOF inside a tag: the tokenizer drops it
        ("<plaintext><b>x", "<plaintext><b>x"),  # everything after is text
    ],
)
def test_prepare_html_rewrites(html: str, prepared: str) -> None:
    assert prepare_html(html) == (prepared, False)


def test_prepare_html_caps_depth() -> None:
    out, capped = prepare_html("<div>" * 300 + "x" + "</div>" * 300)
    assert capped
    assert out.count("<div>") == out.count("</div>") == MAX_DEPTH


@pytest.mark.parametrize(
    ("head", "declared", "expected"),
    [
        (b"%PDF-1.7", None, ("pdf", "application/pdf")),
        (b"junk" * 10 + b"%PDF-1.4", None, ("pdf", "application/pdf")),
        (b"\n\n  <!DOCTYPE html><p>", None, ("html", "text/html")),
        (b"\x89PNG\r\n\x1a\n", "text/html", ("other", "image/png")),
        (b"hello", None, ("text", "text/plain")),
        (b"hello", "text/html", ("html", "text/html")),
        (b"\x00<html>x", "text/html", ("html", "text/html")),
        (b"\x00\x01\x02\x03", None, ("other", "application/octet-stream")),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None, ("other", "image/svg+xml")),
        (b"<svg>", "text/plain", ("other", "image/svg+xml")),
        (b"<svgx>", None, ("text", "text/plain")),
        (b"<!DOCTYPE svg><svg>", "text/html", ("other", "image/svg+xml")),
        (b"<!DOCTYPE html><svg>", None, ("html", "text/html")),
        (b"<?xml version='1.0'?><rss>", None, ("text", "text/plain")),
        (b"body { color: red }", "text/css", ("other", "text/css")),
        (b"var a = 1;", "text/javascript", ("other", "text/javascript")),
        (b'{"a": 1}', "application/json", ("other", "application/json")),
        (b'[{"@id": "x"}]', "application/ld+json", ("other", "application/ld+json")),
        (b"plain words", "application/json", ("text", "text/plain")),
        (b"<html><p>oops", "text/css", ("html", "text/html")),
        (b"body { color: red }", None, ("text", "text/plain")),
    ],
)
def test_sniff(head: bytes, declared: str | None, expected: tuple[str, str]) -> None:
    assert sniff(head, declared) == expected


# ----------------------------------------------------------------------------- SVG and code

SVG = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b"<!-- Generator: an editor's export -->\n"
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [\n'
    b'  <!ENTITY ns_flows "http://ns.example/Flows/">\n]>\n'
    b'<svg version="1.1" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40">\n'
    b"<title>Harbour Authority logo</title><desc>A lighthouse and the name</desc>\n"
    b'<path d="M0 0h100v40H0z" fill="#036"/><text x="10" y="25">Harbour</text></svg>\n'
)


@pytest.mark.parametrize("declared", ["image/svg+xml", "text/plain", "text/html", None])
def test_an_svg_is_an_image_with_no_preview_whatever_was_declared(declared: str | None) -> None:
    # Its <title> and <text> would otherwise make it an HTML page with a markup preview.
    ex = extract(SVG, declared)
    assert (ex.kind, ex.content_type) == ("other", "image/svg+xml")
    assert (ex.title, ex.text, ex.preview) == (None, "", "")
    assert ex.note == "no preview for image/svg+xml (an image)"


def test_an_html_page_with_an_inline_svg_stays_a_page() -> None:
    body = html_page("<svg><title>icon</title></svg><p>" + SENTENCE + "</p>").encode()
    ex = extract(body, "image/svg+xml")
    assert (ex.kind, ex.content_type) == ("html", "text/html")
    assert SENTENCE in ex.text


def test_an_svg_root_after_a_long_or_unclosed_prolog_is_not_guessed() -> None:
    # A comment that never closes, or a root past the scan window: text, as before.
    assert extract(b"<!-- never closed <svg>", None).kind == "text"
    assert extract(b"<!--" + b"x" * 5000 + b"--><svg>", None).kind == "text"


@pytest.mark.parametrize(
    ("body", "declared", "what"),
    [
        (b"/* Site styles */\n@font-face { font-family: x; }\nbody { margin: 0 }",
         "text/css", "a style sheet"),
        (b"/*! lib v1.9 | (c) 2012 */\n(function(e){var t='<html><title>x</title>'})(window);",
         "application/x-javascript", "a script"),
        (b"function go() { return 1; }", "application/javascript; charset=utf-8", "a script"),
        (b"  \n  // menu\nvar open = false;", "text/javascript", "a script"),
        (b'{\n  "args": {},\n  "form": {"foo": "bar"}\n}', "application/json", "JSON data"),
        (b'[{"type": "Feature"}]', "application/geo+json", "JSON data"),
    ],
)
def test_code_keeps_its_archived_type_and_says_why_there_is_no_preview(
    body: bytes, declared: str, what: str
) -> None:
    mime = declared.split(";")[0]
    ex = extract(body, declared)
    assert (ex.kind, ex.content_type) == ("other", mime)
    assert (ex.title, ex.text, ex.preview) == (None, "", "")
    assert ex.note == f"no preview for {mime} ({what}, not a document)"


def test_code_types_over_bytes_that_disagree_are_sniffed_as_before() -> None:
    # An HTML error page served under a script's type is a page; words under JSON's, text.
    page = html_page("<h1>Not here</h1><p>" + SENTENCE + "</p>").encode()
    ex = extract(page, "application/javascript")
    assert (ex.kind, ex.content_type) == ("html", "text/html")
    ex = extract(b"Service unavailable, try later", "application/json")
    assert (ex.kind, ex.content_type, ex.text) == ("text", "text/plain",
                                                   "Service unavailable, try later")


def test_pywb_sample_archive_svg_css_js_and_json_get_no_markup_preview() -> None:
    # pywb installs its sample archive beside the interpreter: the captures that showed
    # their markup and source code as previews.
    import sys

    from warcio.archiveiterator import ArchiveIterator

    warcs = Path(sys.prefix) / "sample_archive" / "warcs"
    if not (warcs / "iana.warc.gz").exists():
        pytest.skip("pywb's sample archive is not installed beside this interpreter")
    seen: dict[str, str] = {}
    for name in ("iana.warc.gz", "post-test.warc.gz"):
        with (warcs / name).open("rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type != "response" or record.http_headers is None:
                    continue
                declared = record.http_headers.get_header("Content-Type")
                ex = extract(record.content_stream().read(), declared)
                if ex.kind == "empty":
                    continue
                seen[media_type(declared) or ""] = ex.content_type
                if ex.content_type != "text/html":
                    assert ex.preview == "", (declared, ex.preview[:40])
    assert seen["image/svg+xml"] == "image/svg+xml"
    assert seen["text/css"] == "text/css"
    assert seen["application/x-javascript"] == "application/x-javascript"
    assert seen["application/json"] == "application/json"
    assert "text/plain" not in seen.values()


def test_media_type() -> None:
    assert media_type("Text/HTML; charset=x") == "text/html"
    assert media_type("\x1b[31m/x") is None
    assert media_type(None) is None


def test_preview_config_defaults_are_the_extract_limits() -> None:
    assert PreviewConfig().extract_limits() == ExtractLimits()
    custom = PreviewConfig(
        max_chars=5, max_text_chars=6, pdf_max_pages=7, pdf_max_seconds=8.5, html_max_bytes=9
    )
    assert custom.extract_limits() == ExtractLimits(
        preview_chars=5, text_chars=6, pdf_max_pages=7, pdf_max_seconds=8.5, html_max_bytes=9
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=500).map(lambda s: ("<html><title>" + s + "</title>" + s).encode()),
        st.text(max_size=500).map(lambda s: s.encode("utf-8", errors="surrogatepass")),
        st.binary(max_size=600).map(lambda b: b"%PDF-1.4\n" + b),
    ),
    declared=st.one_of(
        st.none(),
        st.sampled_from(["text/html", "text/plain; charset=utf-16", "application/pdf"]),
        st.text(max_size=40),
    ),
)
def test_property_never_raises_and_output_is_clean(body: bytes, declared: str | None) -> None:
    ex = extract(body, declared, ExtractLimits(preview_chars=200))
    assert ex.kind in ("html", "pdf", "text", "other", "empty")
    assert_clean(ex)
    assert len(ex.preview) <= 200
    assert len(ex.title or "") <= 500
