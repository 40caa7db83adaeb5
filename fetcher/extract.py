"""Bytes -> title, preview and text for HTML, PDF and plain-text captures.

This module knows nothing of HTTP or storage: it is handed the raw body of a capture (or
the path of a file holding it) and the Content-Type the archive declared, and returns an
:class:`Extraction`. The type is decided by sniffing the bytes, never by the URL or the
declared type alone: the old wiki trusted the declared type and ended up storing the
Wayback toolbar as the preview of a PDF.

Hostile or broken documents never raise; they give an :class:`Extraction` whose ``note``
says why the preview is empty or partial. Only programmer errors raise (e.g. a path that
does not exist -> ``FileNotFoundError``).
"""

from __future__ import annotations

import codecs
import functools
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import charset_normalizer
import pypdfium2 as pdfium
from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = [
    "ExtractLimits",
    "Extraction",
    "decode_html",
    "extract",
    "sanitize_text",
]

Kind = Literal["html", "pdf", "text", "other", "empty"]


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Caps that keep one hostile document from using unbounded time or memory."""

    preview_chars: int = 3000  # cap on preview
    text_chars: int = 1_000_000  # cap on full text
    pdf_max_pages: int = 10  # first pages only
    pdf_max_seconds: float = 10.0  # checked between pages; stop and note when exceeded
    html_max_bytes: int = 4_000_000  # parse at most this many bytes of HTML / text


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

# How many leading bytes the sniffer looks at ("%PDF-" may sit anywhere in the first KB,
# as the PDF spec allows junk before the header).
_SNIFF_BYTES = 1024
# Bytes read from a file before deciding its type (covers BOM + sniff window + slack).
_HEAD_BYTES = 4096
# Statistical detection only looks at this much: it is slow and the head is representative.
_DETECT_BYTES = 64 * 1024
# <meta charset> must appear early; browsers look at 1024 bytes, we are a little lenient.
_META_SCAN_BYTES = 2048

# --------------------------------------------------------------------------------------
# sanitising
# --------------------------------------------------------------------------------------

# Terminal escape sequences, 7-bit (ESC ...) and 8-bit (C1) forms. Strings that a terminal
# would swallow up to a terminator (OSC, DCS, SOS, PM, APC) are removed up to that
# terminator, or to the end of the line when unterminated, so a stray "ESC ]" cannot eat a
# whole document but "ESC ]0;evil BEL" disappears completely.
_ANSI_RE = re.compile(
    r"""
      (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?                              # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*       # OSC, DCS, SOS, PM, APC
      (?:\x07|\x1b\\|\x9c)?                                          #   ... and terminator
    | \x1b[ -/]*[0-~]?                                               # other ESC sequences
    """,
    re.VERBOSE,
)
# Line breaks in all their spellings become "\n" before control characters are removed,
# so "a\rb" (old Mac, PDF text) keeps its line break instead of becoming "ab".
_NEWLINE_RE = re.compile(r"\r\n|[\r\v\f\x85\u2028\u2029]")
# Everything a terminal or a later UTF-8 encoder could choke on: C0 (except \t \n), DEL,
# C1, bidi embeddings/overrides/isolates (text spoofing), lone surrogates (unencodable),
# BOM / zero-width no-break space and the noncharacters U+FFFE / U+FFFF.
_UNSAFE_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufeff\ufffe\uffff]"
)
# Horizontal whitespace, including the Unicode spaces HTML and PDF text are full of.
_HSPACE_RE = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_SPACE_AROUND_NL_RE = re.compile(r" *\n *")
_MANY_NL_RE = re.compile(r"\n{3,}")


def sanitize_text(text: str, *, keep_newlines: bool = False) -> str:
    """Make ``text`` safe to print on a terminal and pleasant to read.

    Removes ANSI/VT escape sequences (CSI, OSC, DCS, ... in 7-bit and C1 forms), every other
    C0/C1 control character, bidi override/isolate characters (U+202A-U+202E,
    U+2066-U+2069), lone surrogates and noncharacters. Runs of spaces and tabs collapse to one
    space. With ``keep_newlines`` line breaks survive (normalised to ``"\\n"``, with runs of 3+
    collapsed to a blank line); without it, every line break becomes a space. The result is
    stripped.
    """
    text = _ANSI_RE.sub("", text)
    text = _NEWLINE_RE.sub("\n", text)
    if not keep_newlines:
        text = text.replace("\n", " ")
    text = _UNSAFE_RE.sub("", text)
    text = _HSPACE_RE.sub(" ", text)
    if keep_newlines:
        text = _SPACE_AROUND_NL_RE.sub("\n", text)
        text = _MANY_NL_RE.sub("\n\n", text)
    return text.strip()


def _title(raw: str | None) -> str | None:
    """Single-line, sanitised title capped at TITLE_MAX_CHARS; None when nothing is left."""
    if raw is None:
        return None
    title = sanitize_text(raw)
    if len(title) > TITLE_MAX_CHARS:
        title = _cut_at_word(title, TITLE_MAX_CHARS)
    return title or None


def _cut_at_word(text: str, limit: int) -> str:
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


def _preview(text: str, limit: int) -> str:
    return sanitize_text(_cut_at_word(text, limit), keep_newlines=True)


# --------------------------------------------------------------------------------------
# result assembly
# --------------------------------------------------------------------------------------


def _finish(
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
    """Cap the text, derive the preview and join the notes (they can stack, e.g. a cut
    HTML document whose text is also truncated)."""
    if len(text) > limits.text_chars:
        text = text[: limits.text_chars].rstrip()
        notes.append(f"text truncated at {limits.text_chars} chars")
    return Extraction(
        kind=kind,
        content_type=content_type,
        title=title,
        text=text,
        preview=_preview(text, limits.preview_chars) if text else "",
        note="; ".join(notes) if notes else None,
        charset=charset,
        pages=pages,
    )


# --------------------------------------------------------------------------------------
# content type and sniffing
# --------------------------------------------------------------------------------------

_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_CHARSET_PARAM_RE = re.compile(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", re.IGNORECASE)


def _media_type(declared: str | None) -> str | None:
    """The declared MIME type without parameters, lower-cased; None if absent or malformed
    (a header full of escape codes must not end up in a note)."""
    if not declared:
        return None
    mime = declared.split(";", 1)[0].strip().lower()
    return mime if _MIME_RE.match(mime) else None


def _declared_charset(declared: str | None) -> str | None:
    if not declared:
        return None
    m = _CHARSET_PARAM_RE.search(declared)
    return m.group(1) if m else None


# Well-known binary signatures, so a PNG declared as text/html is reported as image/png.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"(\xb5/\xfd", "application/zstd"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"\x00asm", "application/wasm"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/x-msdownload"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
)

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 before UTF-16: the UTF-32-LE BOM starts with the UTF-16-LE one.
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)

_WS_BYTES = b" \t\r\n\x0c"
_HTML_PREFIXES = ("<!doctype html", "<html", "<head", "<body")
_HTML_MARKERS = ("<html", "<title", "<body")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# C0 controls that do not occur in real text (\t \n \v \f \r and ESC, common in logs, do).
_BINARY_CONTROLS = frozenset(
    set(range(0x01, 0x09)) | set(range(0x0E, 0x1B)) | {0x1C, 0x1D, 0x1E, 0x1F, 0x7F}
)


def _bom(data: bytes) -> str | None:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    return None


def _magic_type(head: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _looks_textual(head: bytes) -> bool:
    """Heuristic: no NUL bytes (unless UTF-16/32 announced by a BOM) and almost no C0
    controls. Legacy 8-bit text (cp1252, KOI8-R, Shift_JIS) passes; images and archives
    do not."""
    if not head:
        return True
    if _bom(head) is not None:
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for b in head if b in _BINARY_CONTROLS)
    return controls * 50 <= len(head)


def _sniff_text(head: bytes) -> str:
    """Lower-cased head as text for marker matching, BOM and leading whitespace skipped."""
    codec = _bom(head)
    if codec is not None and codec.startswith("utf-") and codec != "utf-8-sig":
        text = head.decode(codec, errors="ignore")
    else:
        # latin-1 maps every byte to one char: ASCII markers survive whatever the charset.
        text = head[3:].decode("latin-1") if codec == "utf-8-sig" else head.decode("latin-1")
    return text.lstrip(" \t\r\n\x0c\ufeff").lower()


def _sniff(head: bytes, declared_mime: str | None) -> tuple[Kind, str]:
    """Decide (kind, content_type) from the first bytes. ``head`` must be non-empty."""
    window = head[:_SNIFF_BYTES]
    start = window.lstrip(_WS_BYTES)
    if start.startswith(b"\xef\xbb\xbf"):
        start = start[3:].lstrip(_WS_BYTES)
    if start.startswith(b"%PDF-"):
        return "pdf", "application/pdf"
    magic = _magic_type(start)
    if magic is not None:
        return "other", magic
    if b"%PDF-" in window:
        return "pdf", "application/pdf"
    textual = _looks_textual(window)
    if not textual and declared_mime in _HTML_TYPES:
        # Declared HTML and marked up as HTML, with stray NUL or control bytes (seen in old
        # captures, and planted in hostile ones): browsers render it, so it is HTML. The
        # bytes themselves are removed with every other control character later.
        text = _sniff_text(window.replace(b"\x00", b""))
        textual = text.startswith(_HTML_PREFIXES) or any(m in text for m in _HTML_MARKERS)
    if textual:
        text = _sniff_text(window)
        if (
            text.startswith(_HTML_PREFIXES)
            or (text.startswith("<!--") and "html" in text)
            or any(marker in text for marker in _HTML_MARKERS)
            or declared_mime in _HTML_TYPES
        ):
            return "html", "text/html"
        return "text", "text/plain"
    return "other", declared_mime or "application/octet-stream"


# --------------------------------------------------------------------------------------
# charsets
# --------------------------------------------------------------------------------------

# Labels browsers decode with a superset codec (WHATWG Encoding Standard). Without this,
# "iso-8859-1" pages show C1 controls where the author meant curly quotes.
_LABEL_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "cp819": "cp1252",
    "ibm819": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gbk",
    "gb_2312-80": "gbk",
    "x-gbk": "gbk",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
}
# UTF-7 is a classic XSS vector and browsers refuse it; the rest are Python codecs that
# are not character encodings in the HTML sense.
_REFUSED_CODECS = frozenset({"utf-7", "utf_7", "unicode-escape", "raw-unicode-escape"})
_LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,39}$")


@functools.lru_cache(maxsize=256)
def _codec_for(label: str) -> str | None:
    """Python codec name for a charset label, or None if unknown/refused."""
    label = label.strip().strip("\"'").lower()
    if not _LABEL_RE.match(label):
        return None
    label = _LABEL_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    # codecs.lookup also knows "base64", "rot13", "zlib"...: not text encodings.
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


@functools.lru_cache(maxsize=256)
def _single_byte(codec: str) -> bool:
    """True for 8-bit codecs (cp1252, iso8859-x, koi8-r...): these decode almost any bytes
    "successfully", so a strict decode proves nothing about them."""
    if codec.startswith("utf"):
        return False
    try:
        return len(bytes(range(0x80, 0x100)).decode(codec, errors="replace")) == 128
    except (LookupError, ValueError):
        return False


def _try_decode(data: bytes, codec: str, *, truncated: bool) -> str | None:
    """Strict decode, or None. For a document we cut, an incomplete multi-byte sequence at
    the very end is expected and ignored (an incremental decoder leaves it pending)."""
    try:
        if truncated:
            return codecs.getincrementaldecoder(codec)(errors="strict").decode(data, final=False)
        return data.decode(codec, errors="strict")
    except (UnicodeError, LookupError, ValueError):
        return None


def _has_high_bytes(data: bytes) -> bool:
    return not data.isascii()


def _decode_declared(data: bytes, codec: str | None, *, truncated: bool) -> str | None:
    """Decode with a declared codec if it is trustworthy for these bytes.

    Bytes that are valid UTF-8 and contain non-ASCII are almost never legacy 8-bit text by
    accident ("Ã©" pairs are rare in real cp1252 prose), while "utf-8 labelled iso-8859-1"
    is a very common server misconfiguration. A legacy label therefore loses to UTF-8 when
    the bytes are valid multi-byte UTF-8; any label loses when its strict decode fails.
    That holds for the multi-byte legacy codecs too: UTF-8 labelled Shift_JIS decodes
    "successfully" as cp932 into half-width katakana mojibake ("Grüße" -> "Grﾃｼﾃ歹"),
    while real Shift_JIS, GBK or Big5 text is almost never valid UTF-8.
    """
    if codec is None:
        return None
    if not codec.startswith("utf") and _has_high_bytes(data):
        as_utf8 = _try_decode(data, "utf-8", truncated=truncated)
        if as_utf8 is not None:
            return None  # let the caller's UTF-8 step take it
    return _try_decode(data, codec, truncated=truncated)


_META_CHARSET_RE = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9._:-]+)""", re.I)
_TAG_STRIP_RE = re.compile(r"<[^<>]*>")


def _meta_codec(data: bytes) -> str | None:
    m = _META_CHARSET_RE.search(data[:_META_SCAN_BYTES])
    if m is None:
        return None
    codec = _codec_for(m.group(1).decode("ascii", errors="ignore"))
    # A <meta> we could read as ASCII cannot be in UTF-16/32; browsers treat that as UTF-8.
    if codec is not None and codec.startswith(("utf-16", "utf-32")):
        codec = "utf-8"
    return codec


def _plausible_western(text: str) -> bool:
    """Does cp1252-decoded text look like a Western European language?

    Statistical detectors are poor on short Latin text (charset_normalizer 3.5 reports
    cp1257 or cp1006 for "café naïve" in cp1252), while browsers default to windows-1252.
    Cyrillic/Greek/Hebrew in 8-bit codepages decode under cp1252 as runs of accented
    letters (a high share of non-ASCII letters); Central European codepages produce symbols
    such as "¿" "³" "¹" inside words. Neither passes this check.
    """
    sample = _TAG_STRIP_RE.sub(" ", text[:_DETECT_BYTES])
    ascii_letters = 0
    other_letters = 0
    prev = " "
    for i, ch in enumerate(sample):
        if ch.isascii():
            if ch.isalpha():
                ascii_letters += 1
        elif ch.isalpha():
            other_letters += 1
        elif (
            prev.isalpha()
            and i + 1 < len(sample)
            and sample[i + 1].isalpha()
            and ch not in "\u2019\u2018\u00b7\u2013\u2014\u00ad"
        ):
            return False  # a symbol glued inside a word: only apostrophes/dashes belong
        prev = ch
    letters = ascii_letters + other_letters
    return letters > 0 and other_letters <= 0.3 * letters


def _detect(data: bytes) -> str | None:
    """Statistical detection on the head of the document; None when hopeless."""
    try:
        best = charset_normalizer.from_bytes(data[:_DETECT_BYTES]).best()
    except Exception:  # a detector bug must not sink the extraction
        return None
    if best is None:
        return None
    return _codec_for(best.encoding)


def _decode(
    data: bytes, declared_content_type: str | None, *, html: bool, truncated: bool = False
) -> tuple[str, str]:
    """Shared charset logic for HTML and plain text; see :func:`decode_html`."""
    # 1. A BOM is unambiguous and browsers let it override everything (WHATWG "BOM
    #    sniffing"), so it goes first: a mislabelled header cannot outvote it.
    bom = _bom(data)
    if bom is not None:
        text = _try_decode(data, bom, truncated=truncated)
        if text is not None:
            return text.lstrip("\ufeff"), "utf-8" if bom == "utf-8-sig" else bom
    # 2. The HTTP header, if it names a known codec that decodes these bytes.
    declared = _declared_charset(declared_content_type)
    header_codec = _codec_for(declared) if declared else None
    text = _decode_declared(data, header_codec, truncated=truncated)
    if text is not None and header_codec is not None:
        return text, header_codec
    # 3. <meta charset> / <meta http-equiv content="...charset=..."> (same strict check).
    if html:
        meta_codec = _meta_codec(data)
        text = _decode_declared(data, meta_codec, truncated=truncated)
        if text is not None and meta_codec is not None:
            return text, meta_codec
    # 4. Strict UTF-8: the modern default and unmistakable when it validates.
    text = _try_decode(data, "utf-8", truncated=truncated)
    if text is not None:
        return text, "utf-8"
    # 5. Statistics, with a windows-1252 preference for text that plausibly is Western.
    detected = _detect(data)
    cp1252 = data.decode("cp1252", errors="replace")
    if detected is not None and detected != "cp1252":
        plausible = "\ufffd" not in cp1252 and _plausible_western(cp1252)
        if not (_single_byte(detected) and plausible):
            return data.decode(detected, errors="replace"), detected
    # 6. Last resort: what browsers use for undeclared legacy pages.
    return cp1252, "cp1252"


def decode_html(data: bytes, declared_content_type: str | None) -> tuple[str, str]:
    """Decode an HTML document; returns ``(text, codec name used)``.

    Order: BOM; the Content-Type charset if it is a known codec and decodes the bytes
    strictly; ``<meta charset>`` in the first 2048 bytes (same check); strict UTF-8;
    statistical detection (charset_normalizer) on the first 64 KB, preferring cp1252 for
    plausible Western text; finally cp1252 with replacement characters. ISO-8859-1 and
    US-ASCII labels mean cp1252, as in browsers. A single-byte label (whose strict decode
    can never fail) loses to UTF-8 when the bytes are valid UTF-8 containing non-ASCII, so a
    UTF-8 page mislabelled ``iso-8859-1`` does not turn into mojibake.
    """
    return _decode(data, declared_content_type, html=True)


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------
#
# lexbor (like every spec-following HTML parser) has super-linear corner cases that a
# hostile page can hit: measured with selectolax 1.0.2,
#   * nesting 20,000 <div>/<section> takes 0.6 s, 50,000 takes 5.7 s (each block start
#     tag scans the stack of open elements: quadratic), and 8 MB of "<div>" would take
#     over an hour;
#   * "<p><b id=N>x</p>" repeated 10,000 times takes 88 s and builds 840 MB of DOM (the
#     "reconstruct the active formatting elements" step clones every open <b> again for
#     each paragraph).
# So before parsing we run one linear pass that tokenizes the way the HTML tokenizer does
# (tags with quoted attributes, comments, bogus comments, raw-text elements, the script
# double-escape states) and rewrites the markup:
#   * formatting tags (a, b, i, font, ...) are dropped: they carry no text and are the only
#     input to the cloning machinery;
#   * <svg>/<math> become <x-svg>/<x-math>, so the parser never enters foreign content
#     (where <style>, <script>, self-closing tags behave differently and the simple
#     tokenizer model below would be wrong);
#   * non-void self-closing tags get an explicit end tag (<path/> -> <path/></path>), so
#     they cannot be used to nest;
#   * an approximate depth of open elements is tracked and tags beyond _MAX_DEPTH are
#     dropped (the parser then never sees a deep stack);
#   * a sentinel character is put inside block elements, which later becomes a line
#     break: lexbor's text() joins text nodes, and a separator would also split inline
#     runs ("Hello <b>world</b>" -> "Hello \nworld").
# Where the pass cannot be exact it errs towards treating bytes as markup (over-counting
# depth), never towards skipping markup the parser would build.

_MAX_DEPTH = 256
_SENTINEL = "\ue000"  # private use: never produced by decoding real text, except &#xE000;

_VOID = frozenset(
    [
        "area",
        "base",
        "basefont",
        "bgsound",
        "br",
        "col",
        "embed",
        "frame",
        "hr",
        "image",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_FORMATTING = frozenset(
    [
        "a",
        "b",
        "big",
        "code",
        "em",
        "font",
        "i",
        "nobr",
        "s",
        "small",
        "strike",
        "strong",
        "tt",
        "u",
    ]
)
# Elements that close their own kind implicitly and cannot pile up on the stack alone.
_SELF_LIMITING = frozenset(
    [
        "p",
        "li",
        "dt",
        "dd",
        "option",
        "optgroup",
        "tr",
        "td",
        "th",
        "tbody",
        "thead",
        "tfoot",
        "colgroup",
        "rb",
        "rt",
        "rp",
        "rtc",
        "html",
        "head",
        "body",
    ]
)
_RAW_TEXT = frozenset(["style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"])
# Elements whose text forms its own line; the sentinel goes *inside* them (after the start
# tag, before the end tag) so it is never text in table context (foster parenting).
_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "li",
        "listing",
        "main",
        "menu",
        "nav",
        "p",
        "pre",
        "section",
        "summary",
        "td",
        "th",
    ]
)
_LINE_BREAK = frozenset({"br", "hr"})
_FOREIGN_RENAME = {"svg": "x-svg", "math": "x-math"}

# "<" followed by what starts a tag, an end tag, a comment or a bogus comment.
_MARKUP_RE = re.compile(r"<(?:(!--)|([!?])|(/)(?![A-Za-z])|(/?)([A-Za-z][^\t\n\x0c\r />]*))")
# Attributes as the tokenizer reads them: names start with anything but ws / ">" (even
# "=" or a quote), values may be quoted; "/" not before ">" is ignored. Possessive
# quantifiers keep this linear. Group 1 = self-closing flag.
_ATTRS_RE = re.compile(
    r"""(?:[\t\n\x0c\r ]++|/(?!>)"""
    r"""|[^\t\n\x0c\r />][^\t\n\x0c\r />=]*+"""
    r"""(?:[\t\n\x0c\r ]*+=[\t\n\x0c\r ]*+(?:"[^"]*+"|'[^']*+'|[^\t\n\x0c\r >]*+))?+)*+"""
    r"""(/?)>"""
)
_COMMENT_END_RE = re.compile(r"--!?>")
_END_TAG_RES: dict[str, re.Pattern[str]] = {
    name: re.compile(rf"</{name}(?=[\t\n\x0c\r />])", re.IGNORECASE)
    for name in (*_RAW_TEXT, "script")
}
_SCRIPT_EVENT_RE = re.compile(r"<!--|</script(?=[\t\n\x0c\r />])", re.IGNORECASE)
_SCRIPT_ESCAPED_RE = re.compile(
    r"-->|</script(?=[\t\n\x0c\r />])|<script(?=[\t\n\x0c\r />])", re.IGNORECASE
)
_SCRIPT_DOUBLE_RE = re.compile(r"-->|</script(?=[\t\n\x0c\r />])", re.IGNORECASE)


def _script_end(html: str, pos: int) -> int:
    """Index of the "</script" that ends a script element whose content starts at ``pos``
    (len(html) if none), following the tokenizer's escaped / double-escaped states."""
    state = "data"
    while True:
        if state == "data":
            m = _SCRIPT_EVENT_RE.search(html, pos)
            if m is None:
                return len(html)
            if m.group(0) == "<!--":
                state, pos = "escaped", m.start() + 2  # "<!-->" ends at once: see "-->"
                continue
            return m.start()
        if state == "escaped":
            m = _SCRIPT_ESCAPED_RE.search(html, pos)
            if m is None:
                return len(html)
            token = m.group(0).lower()
            if token == "-->":
                state = "data"
            elif token.startswith("</"):
                return m.start()
            else:
                state = "double"
            pos = m.end()
            continue
        m = _SCRIPT_DOUBLE_RE.search(html, pos)
        if m is None:
            return len(html)
        state = "data" if m.group(0) == "-->" else "escaped"
        pos = m.end()


def _prepare_html(html: str) -> tuple[str, bool]:
    """The linear rewriting pass described above; returns (html, depth_was_capped)."""
    html = html.replace(_SENTINEL, " ")
    out: list[str] = []
    append = out.append
    pos = 0
    n = len(html)
    depth = 0
    capped = False
    open_counts: dict[str, int] = {}
    dropped_counts: dict[str, int] = {}
    while pos < n:
        m = _MARKUP_RE.search(html, pos)
        if m is None:
            break
        start = m.start()
        if m.group(1):  # <!-- comment -->, including the abrupt "<!-->" and "<!--->"
            after = m.end()
            if html.startswith(">", after):
                end = after + 1
            elif html.startswith("->", after):
                end = after + 2
            else:
                cm = _COMMENT_END_RE.search(html, after)
                end = n if cm is None else cm.end()
            append(html[pos:end])
            pos = end
            continue
        if m.group(2) or m.group(3):  # <!doctype>, <?...>, </ 3>: bogus comment up to ">"
            gt = html.find(">", m.end())
            end = n if gt < 0 else gt + 1
            append(html[pos:end])
            pos = end
            continue
        closing = bool(m.group(4))
        name = m.group(5).lower()
        am = _ATTRS_RE.match(html, m.end())
        if am is None:  # EOF inside the tag: the tokenizer drops it and everything after
            append(html[pos:start])
            pos = n
            break
        tag_end = am.end()
        self_closing = bool(am.group(1))
        append(html[pos:start])
        pos = tag_end
        tag = html[start:tag_end]

        if name in _FORMATTING:
            continue  # dropped, see the comment block above
        if name in _FOREIGN_RENAME:
            new = _FOREIGN_RENAME[name]
            tag = tag[: m.start(5) - start] + new + tag[m.end(5) - start :]
        block = name in _BLOCK

        if closing:
            if name in _VOID or name in _SELF_LIMITING:
                append(tag if not block else _SENTINEL + tag)
            elif dropped_counts.get(name, 0) > 0:
                dropped_counts[name] -= 1
                append(_SENTINEL if block else " ")
            else:
                if open_counts.get(name, 0) > 0:
                    open_counts[name] -= 1
                    depth -= 1
                append(_SENTINEL + tag if block else tag)
            continue

        if name == "plaintext":  # everything after is text, for the tokenizer too
            append(tag)
            append(html[pos:])
            pos = n
            break
        if name in _VOID:
            append(tag + _SENTINEL if name in _LINE_BREAK else tag)
            continue
        if name not in _SELF_LIMITING:
            if depth >= _MAX_DEPTH:
                capped = True
                dropped_counts[name] = dropped_counts.get(name, 0) + 1
                append(_SENTINEL if block else " ")
                if name == "script" or name in _RAW_TEXT:
                    pos = _skip_raw(html, name, pos)  # keep the tokenizer in step
                continue
            depth += 1
            open_counts[name] = open_counts.get(name, 0) + 1
        if self_closing:
            # "<div/>" is an open tag in HTML; close it explicitly so it cannot nest.
            end_name = _FOREIGN_RENAME.get(name, m.group(5))
            append(tag + "</" + end_name + ">")
            if name not in _SELF_LIMITING:
                depth -= 1
                open_counts[name] -= 1
            continue
        append(tag + _SENTINEL if block else tag)
        if name == "script" or name in _RAW_TEXT:
            end = _skip_raw(html, name, pos)
            append(html[pos:end])
            pos = end
    append(html[pos:])
    return "".join(out), capped


def _skip_raw(html: str, name: str, pos: int) -> int:
    """End of the raw text of a script / style / textarea / title ... element."""
    if name == "script":
        return _script_end(html, pos)
    m = _END_TAG_RES[name].search(html, pos)
    return len(html) if m is None else m.start()


# Removed before the main text is taken: chrome, scripts, hidden content.
_BOILERPLATE = (
    "script, style, noscript, nav, header, footer, aside, form, template, svg, x-svg, "
    "iframe, [hidden], [aria-hidden='true' i]"
)
_WHITESPACE_RUN_RE = re.compile(r"[\t\n\x0c\r \u00a0]+")
_MIN_MAIN_CHARS = 200


def _node_text(node: LexborNode, max_chars: int) -> str:
    """Text of a node with block boundaries as line breaks and whitespace collapsed.

    Only ``max_chars`` of raw text are cleaned (the result is capped below that anyway):
    each regex pass copies the string, and on a 30 MB page those copies were the peak.
    """
    raw = node.text(deep=True)
    if len(raw) > max_chars:
        raw = raw[:max_chars]
    # Source newlines are just whitespace in HTML; only the sentinels mark real breaks.
    raw = _WHITESPACE_RUN_RE.sub(" ", raw).replace(_SENTINEL, "\n")
    text = sanitize_text(raw, keep_newlines=True)
    return text.replace("\n\n", "\n")


def _html_title(tree: LexborHTMLParser) -> str | None:
    for selector in ("head > title", "title"):
        node = tree.css_first(selector)
        if node is not None:
            title = _title(node.text().replace(_SENTINEL, " "))
            if title:
                return title
    for selector in ('meta[property="og:title" i]', 'meta[name="og:title" i]'):
        node = tree.css_first(selector)
        if node is not None:
            title = _title(node.attributes.get("content"))
            if title:
                return title
    node = tree.css_first("h1")
    if node is not None:
        return _title(node.text().replace(_SENTINEL, " "))
    return None


def _extract_html(
    data: bytes, declared: str | None, truncated: bool, text_chars: int
) -> tuple[str | None, str, str, list[str]]:
    """(title, text, charset, notes) of an HTML document."""
    notes: list[str] = []
    html, charset = _decode(data, declared, html=True, truncated=truncated)
    prepared, capped = _prepare_html(html)
    del html  # one copy of the document at a time: the peak is what bounds memory
    if capped:
        notes.append(f"HTML nesting capped at {_MAX_DEPTH} levels")
    tree = LexborHTMLParser(prepared)
    # Icons' <title>s must not become the page title: drop SVG before looking.
    for node in tree.css("x-svg"):
        node.decompose()
    title = _html_title(tree)
    for node in tree.css(_BOILERPLATE):
        try:
            node.decompose()
        except Exception:  # selectolax refuses to remove the root (<html hidden>)
            continue
    text = ""
    # Whitespace runs collapse, so read a few times the text cap of raw text.
    budget = max(4 * text_chars, 4096)
    for selector in ("main", "article"):
        for node in tree.css(selector):
            candidate = _node_text(node, budget)
            if len(candidate) > _MIN_MAIN_CHARS:
                text = candidate
                break
        if text:
            break
    if not text:
        root = tree.body or tree.root
        text = _node_text(root, budget) if root is not None else ""
    return title, text, charset, notes


# --------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------

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


def _extract_pdf(
    source: bytes | str, limits: ExtractLimits, clock: Callable[[], float]
) -> tuple[str | None, str, int | None, list[str]]:
    """(title, text, pages, notes). Never raises for bad documents."""
    started = clock()
    notes: list[str] = []
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(source)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) in _PDF_PASSWORD_ERRORS:
                return None, "", None, ["encrypted PDF"]
            return None, "", None, [f"corrupt PDF: {_short_reason(exc)}"]
        except (OSError, ValueError, TypeError, MemoryError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            return None, "", None, [f"corrupt PDF: {_short_reason(exc)}"]
        try:
            pages = len(doc)
            meta_title: str | None = None
            try:
                meta_title = _title(str(doc.get_metadata_value("Title") or ""))
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
                    break  # _finish() cuts and notes; no point reading further
            if pages > read:
                notes.append(f"PDF: read {read} of {pages} pages")
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
        title = _title(first_line)
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


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------


def extract(
    body: bytes | os.PathLike[str] | str,
    declared_content_type: str | None,
    limits: ExtractLimits = ExtractLimits(),  # frozen, so safe as a default
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

    declared_mime = _media_type(declared_content_type)
    if not head:
        return _finish(
            kind="empty",
            content_type=declared_mime or "application/octet-stream",
            title=None,
            text="",
            notes=["empty body"],
            limits=limits,
        )

    kind, content_type = _sniff(head, declared_mime)

    if kind == "pdf":
        title, text, pages, notes = _extract_pdf(path if path is not None else data, limits, clock)
        return _finish(
            kind="pdf",
            content_type=content_type,
            title=title,
            text=text,
            notes=notes,
            limits=limits,
            pages=pages,
        )

    if kind == "other":
        return _finish(
            kind="other",
            content_type=content_type,
            title=None,
            text="",
            notes=[f"no preview for {content_type}"],
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
        title, text, charset, notes = _extract_html(
            data, declared_content_type, truncated, limits.text_chars
        )
        if truncated:
            notes.insert(0, f"HTML cut at {cap} bytes")
        return _finish(
            kind="html",
            content_type=content_type,
            title=title,
            text=text,
            notes=notes,
            limits=limits,
            charset=charset,
        )

    decoded, charset = _decode(data, declared_content_type, html=False, truncated=truncated)
    notes = [f"text cut at {cap} bytes"] if truncated else []
    return _finish(
        kind="text",
        content_type=content_type,
        title=None,
        text=sanitize_text(decoded, keep_newlines=True),
        notes=notes,
        limits=limits,
        charset=charset,
    )
