"""What a body is and how its bytes become text: type sniffing and charset decoding.

The type is decided by sniffing the bytes, never by the URL or the declared type alone
(the old wiki trusted the declared type and ended up storing the Wayback toolbar as the
preview of a PDF). Charsets are decided the way browsers do, with a few guards against the
common server misconfigurations; see :func:`decode_html`.
"""

from __future__ import annotations

import codecs
import functools
import re

import charset_normalizer

from .result import Kind

__all__ = ["decode_body", "decode_html", "media_type", "sniff"]

# How many leading bytes the sniffer looks at ("%PDF-" may sit anywhere in the first KB,
# as the PDF spec allows junk before the header).
_SNIFF_BYTES = 1024
# Statistical detection only looks at this much: it is slow and the head is representative.
_DETECT_BYTES = 64 * 1024
# <meta charset> must appear early; browsers look at 1024 bytes, we are a little lenient.
_META_SCAN_BYTES = 2048

# --------------------------------------------------------------------------------------
# content type and sniffing
# --------------------------------------------------------------------------------------

_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_CHARSET_PARAM_RE = re.compile(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", re.IGNORECASE)


def media_type(declared: str | None) -> str | None:
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


def sniff(head: bytes, declared_mime: str | None) -> tuple[Kind, str]:
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


def decode_body(
    data: bytes, declared_content_type: str | None, *, html: bool, truncated: bool = False
) -> tuple[str, str]:
    """Decode a body; returns ``(text, codec name used)``.

    The charset logic shared by HTML and plain text, in :func:`decode_html`'s order; only
    with ``html`` is ``<meta charset>`` consulted. ``truncated`` says the bytes were cut
    short, so an incomplete multi-byte sequence at the very end is not held against a codec.
    """
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
    return decode_body(data, declared_content_type, html=True)
