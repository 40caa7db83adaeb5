"""What a body is and how its bytes become text: type sniffing and charset decoding.

The type is decided by sniffing the bytes, never by the URL or the declared type alone
(the old wiki trusted the declared type and ended up storing the Wayback toolbar as the
preview of a PDF). Two kinds of text are no document and get no preview: an SVG is an image
(``image/svg+xml``, whatever was declared), and a style sheet, script or JSON body keeps its
declared type when its bytes agree with it (pywb's own sample archive replays all four, and
their "previews" were markup and source code). Charsets are decided the way browsers do,
with a few guards against the common server misconfigurations; see :func:`decode_html`.
Only the encodings of the WHATWG Encoding Standard can be chosen: a page cannot name one of
Python's other codecs.
"""

from __future__ import annotations

import codecs
import functools
import re
from typing import Final

import charset_normalizer

from .result import Kind

__all__ = [
    "ALLOWED_CODECS",
    "CODE_TYPES",
    "SVG_TYPE",
    "WHATWG_LABELS",
    "decode_body",
    "decode_html",
    "media_type",
    "no_preview_note",
    "sniff",
]

# How many leading bytes the sniffer looks at ("%PDF-" may sit anywhere in the first KB,
# as the PDF spec allows junk before the header).
_SNIFF_BYTES = 1024
# Statistical detection only looks at this much: it is slow and the head is representative.
_DETECT_BYTES = 64 * 1024
# <meta charset> must appear early; browsers look at 1024 bytes, we are a little lenient.
_META_SCAN_BYTES = 2048
# An SVG's root may follow an XML declaration, comments and a DOCTYPE with an internal
# subset (editors' exports declare entities there): look this far for it.
_SVG_SCAN_BYTES = 4096

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


#: The type of an SVG document, sniffed from its root element.
SVG_TYPE: Final = "image/svg+xml"
#: Declared types of code and data, kept when the bytes agree (see :func:`sniff`), and what
#: each is, for the note that says why there is no preview.
CODE_TYPES: Final[dict[str, str]] = {
    "text/css": "a style sheet",
    "application/javascript": "a script",
    "text/javascript": "a script",
    "application/x-javascript": "a script",
    "application/ecmascript": "a script",
    "text/ecmascript": "a script",
    "application/json": "JSON data",
    "text/json": "JSON data",
}
# Prolog items before an XML root, with what closes each (bounded: a DOCTYPE's internal
# subset closes with "]>").
_XML_PROLOG: tuple[tuple[str, str], ...] = (("<?", "?>"), ("<!--", "-->"))


def _code_kind(mime: str | None) -> str | None:
    """What a declared code or data type is ("a script"), or None for any other type."""
    if mime is None:
        return None
    if mime.endswith("+json"):
        return "JSON data"  # application/ld+json, application/geo+json...
    return CODE_TYPES.get(mime)


def no_preview_note(content_type: str) -> str:
    """The note of a body that gets no preview, saying why when the type says it."""
    if content_type == SVG_TYPE:
        return f"no preview for {content_type} (an image)"
    what = _code_kind(content_type)
    if what is not None:
        return f"no preview for {content_type} ({what}, not a document)"
    return f"no preview for {content_type}"


def _is_svg(text: str) -> bool:
    """Whether lower-cased ``text`` opens an SVG document: its root element, after any XML
    declaration, processing instructions, comments and an SVG DOCTYPE, is ``<svg``. An HTML
    page with an inline ``<svg>`` has ``<html>`` (or text) first and stays HTML."""
    pos = 0
    for _ in range(32):  # prolog items: a handful in real files, bounded for hostile ones
        while pos < len(text) and text[pos] in " \t\r\n\x0c":
            pos += 1
        rest = text[pos:pos + 16]
        if rest.startswith("<svg") and rest[4:5] in (" ", "\t", "\r", "\n", ">", "/", ""):
            return True
        if rest.startswith("<!doctype"):
            if not text.startswith("<!doctype svg", pos):
                return False
            close = text.find(">", pos)
            bracket = text.find("[", pos, close if close >= 0 else len(text))
            end = text.find("]>", bracket) + 1 if bracket >= 0 else close
            if end <= 0:
                return False
            pos = end + 1
            continue
        for opening, closing in _XML_PROLOG:
            if rest.startswith(opening):
                end = text.find(closing, pos + len(opening))
                if end < 0:
                    return False
                pos = end + len(closing)
                break
        else:
            return False
    return False


def _code_agrees(text: str, declared_mime: str | None) -> bool:
    """Whether a textual body agrees with a declared code or data type: JSON opens with
    ``{`` or ``[``; a script or a style sheet does not open with markup (an HTML error page
    served under a script's type does)."""
    kind = _code_kind(declared_mime)
    if kind is None or not text:
        return False
    if kind == "JSON data":
        return text[0] in "{["
    return text[0] != "<"


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
    """Decide (kind, content_type) from the first bytes. ``head`` must be non-empty.

    Text that is no document is ``"other"`` (no preview): an SVG root makes
    ``image/svg+xml`` whatever was declared; a body declared as a style sheet, a script or
    JSON (:data:`CODE_TYPES`, ``+json``) keeps that type when its bytes agree with it."""
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
        # Before the HTML markers: an SVG may hold a <title>, a script the string "<html".
        if _is_svg(_sniff_text(head[:_SVG_SCAN_BYTES])):
            return "other", SVG_TYPE
        if text.startswith(_HTML_PREFIXES) or (text.startswith("<!--") and "html" in text):
            return "html", "text/html"
        if declared_mime is not None and _code_agrees(text, declared_mime):
            return "other", declared_mime
        if any(marker in text for marker in _HTML_MARKERS) or declared_mime in _HTML_TYPES:
            return "html", "text/html"
        return "text", "text/plain"
    return "other", declared_mime or "application/octet-stream"


# --------------------------------------------------------------------------------------
# charsets
# --------------------------------------------------------------------------------------

# The WHATWG Encoding Standard's labels (https://encoding.spec.whatwg.org/#names-and-labels),
# each mapped to the Python codec that decodes it. This is an allow-list: a label not here
# falls back to detection, so no page can reach a Python-only codec ("punycode", whose
# decoder is quadratic, "idna", "rot13", "base64", "zlib_codec", "utf-7"...). Where
# browsers decode a label with a superset (ISO-8859-1 and US-ASCII as windows-1252, GB2312
# as GBK, Shift_JIS as windows-31j), so does this table: without that, "iso-8859-1" pages
# show C1 controls where the author meant curly quotes. The "replacement" encoding (ISO-2022-
# KR/CN, HZ) and x-user-defined have no useful Python codec: they fall back to detection too.
_WHATWG_ENCODINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("utf-8", ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8",
               "x-unicode20utf8")),
    ("cp866", ("866", "cp866", "csibm866", "ibm866")),
    ("iso8859-2", ("csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592",
                   "iso_8859-2", "iso_8859-2:1987", "l2", "latin2")),
    ("iso8859-3", ("csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593",
                   "iso_8859-3", "iso_8859-3:1988", "l3", "latin3")),
    ("iso8859-4", ("csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594",
                   "iso_8859-4", "iso_8859-4:1988", "l4", "latin4")),
    ("iso8859-5", ("csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5",
                   "iso88595", "iso_8859-5", "iso_8859-5:1988")),
    ("iso8859-6", ("arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic",
                   "ecma-114", "iso-8859-6", "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127",
                   "iso8859-6", "iso88596", "iso_8859-6", "iso_8859-6:1987")),
    ("iso8859-7", ("csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7",
                   "iso-ir-126", "iso8859-7", "iso88597", "iso_8859-7", "iso_8859-7:1987",
                   "sun_eu_greek")),
    ("iso8859-8", ("csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e",
                   "iso-ir-138", "iso8859-8", "iso88598", "iso_8859-8", "iso_8859-8:1988",
                   "visual", "csiso88598i", "iso-8859-8-i", "logical")),
    ("iso8859-10", ("csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910",
                    "l6", "latin6")),
    ("iso8859-13", ("iso-8859-13", "iso8859-13", "iso885913")),
    ("iso8859-14", ("iso-8859-14", "iso8859-14", "iso885914")),
    ("iso8859-15", ("csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15",
                    "l9")),
    ("iso8859-16", ("iso-8859-16",)),
    ("koi8-r", ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r")),
    ("koi8-u", ("koi8-ru", "koi8-u")),
    ("mac-roman", ("csmacintosh", "mac", "macintosh", "x-mac-roman")),
    ("cp874", ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874")),
    ("cp1250", ("cp1250", "windows-1250", "x-cp1250")),
    ("cp1251", ("cp1251", "windows-1251", "x-cp1251")),
    ("cp1252", ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819",
                "iso-8859-1", "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1",
                "iso_8859-1:1987", "l1", "latin1", "us-ascii", "windows-1252", "x-cp1252")),
    ("cp1253", ("cp1253", "windows-1253", "x-cp1253")),
    ("cp1254", ("cp1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599",
                "iso_8859-9", "iso_8859-9:1989", "l5", "latin5", "windows-1254", "x-cp1254")),
    ("cp1255", ("cp1255", "windows-1255", "x-cp1255")),
    ("cp1256", ("cp1256", "windows-1256", "x-cp1256")),
    ("cp1257", ("cp1257", "windows-1257", "x-cp1257")),
    ("cp1258", ("cp1258", "windows-1258", "x-cp1258")),
    ("mac-cyrillic", ("x-mac-cyrillic", "x-mac-ukrainian")),
    ("gbk", ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80",
             "gbk", "iso-ir-58", "x-gbk")),
    ("gb18030", ("gb18030",)),
    ("big5hkscs", ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5")),
    ("euc_jp", ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp")),
    ("iso2022_jp", ("csiso2022jp", "iso-2022-jp")),
    ("cp932", ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis",
               "windows-31j", "x-sjis")),
    ("cp949", ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987",
               "ks_c_5601-1989", "ksc5601", "ksc_5601", "windows-949")),
    ("utf-16-be", ("unicodefffe", "utf-16be")),
    ("utf-16-le", ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16",
                   "utf-16le")),
)
#: WHATWG label -> the canonical name of the Python codec that decodes it.
WHATWG_LABELS: Final[dict[str, str]] = {
    label: codecs.lookup(codec).name for codec, labels in _WHATWG_ENCODINGS for label in labels
}
#: Every Python codec a page can select (the values of :data:`WHATWG_LABELS`), plus the
#: UTF-32 and UTF-8-with-signature codecs a byte order mark selects.
ALLOWED_CODECS: Final[frozenset[str]] = frozenset(WHATWG_LABELS.values()) | frozenset(
    codecs.lookup(codec).name for _bom_bytes, codec in _BOMS
)


@functools.lru_cache(maxsize=256)
def _codec_for(label: str) -> str | None:
    """Python codec name for a WHATWG charset label, or None if it is not one.

    Matched as the standard says (ASCII whitespace stripped, ASCII case folded), quotes
    stripped too: servers send ``charset="utf-8"``."""
    return WHATWG_LABELS.get(label.strip().strip("\"'").strip().lower())


def _detected_codec(name: str) -> str | None:
    """The allowed codec for a name the statistical detector gave, or None.

    The detector names Python codecs ("cp1251", "shift_jis", "euc_kr"): one that is also a
    WHATWG label takes that label's codec (so "shift_jis" becomes windows-31j as a label
    would), and any other must be one of :data:`ALLOWED_CODECS`."""
    label = name.strip().lower()
    codec = _codec_for(label) or _codec_for(label.replace("_", "-"))
    if codec is not None:
        return codec
    try:
        canonical = codecs.lookup(label).name
    except LookupError:
        return None
    return canonical if canonical in ALLOWED_CODECS else None


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
    return _detected_codec(best.encoding)


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

    Order: BOM; the Content-Type charset if it is a WHATWG Encoding Standard label and
    decodes the bytes strictly; ``<meta charset>`` in the first 2048 bytes (same check);
    strict UTF-8; statistical detection (charset_normalizer) on the first 64 KB, preferring
    cp1252 for plausible Western text; finally cp1252 with replacement characters.
    ISO-8859-1 and US-ASCII labels mean cp1252, as in browsers. A single-byte label (whose
    strict decode can never fail) loses to UTF-8 when the bytes are valid UTF-8 containing
    non-ASCII, so a UTF-8 page mislabelled ``iso-8859-1`` does not turn into mojibake. A
    label that is not the standard's (``punycode``, ``utf-7``, ``base64``) counts as none.
    """
    return decode_body(data, declared_content_type, html=True)
