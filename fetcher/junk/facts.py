"""The facts the junk classifier reads, its answer, and the page view its rules share.

:class:`CaptureFacts` is what a fetch knows of one capture, :class:`ContentFlag` what the
classifier may answer (with :func:`describe` and :func:`is_junk`), and :class:`PageView`
the facts as the rules of :mod:`snapcache.junk.rules` read them: lower-cased, bounded,
each view computed once and only when a rule asks.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import SplitResult, urlsplit

from ..untrusted import same_resource

__all__ = ["HEAD_BYTES", "PROSE_LINE", "TEXT_SCAN_CHARS", "TITLE_CHARS", "CaptureFacts",
           "ContentFlag", "PageView", "describe", "is_junk", "split_url"]


class ContentFlag(StrEnum):
    """Why a capture is not the cited document (or, for ``script_shell``, has no text)."""

    CHALLENGE = "challenge"
    WAF_BLOCK = "waf_block"
    PARKED = "parked"
    SOFT_404 = "soft_404"
    REDIRECTED_HOME = "redirected_home"
    CONSENT_WALL = "consent_wall"
    LOGIN_WALL = "login_wall"
    SCRIPT_SHELL = "script_shell"
    URL_MISMATCH = "url_mismatch"


_DESCRIPTIONS: Final[Mapping[ContentFlag, str]] = {
    ContentFlag.CHALLENGE: "a bot challenge page",
    ContentFlag.WAF_BLOCK: "a firewall block page",
    ContentFlag.PARKED: "a parked domain",
    ContentFlag.SOFT_404: "a 'not found' page",
    ContentFlag.REDIRECTED_HOME: "a redirect to the site's home page",
    ContentFlag.CONSENT_WALL: "a cookie-consent page",
    ContentFlag.LOGIN_WALL: "a sign-in page",
    ContentFlag.SCRIPT_SHELL: "a page with no text (built by scripts)",
    ContentFlag.URL_MISMATCH: "a capture of another URL",
}


def describe(flag: ContentFlag) -> str:
    """A short human phrase for ``flag`` ("a bot challenge page"), for cards and notes."""
    return _DESCRIPTIONS[flag]


def is_junk(flag: ContentFlag | None) -> bool:
    """Whether ``flag`` makes a capture not good: every flag but ``script_shell`` (a page
    built by scripts is still the page, only without a preview) and None."""
    return flag is not None and flag is not ContentFlag.SCRIPT_SHELL


#: The classifier reads at most this many leading bytes of the body, whatever it is given.
HEAD_BYTES: Final = 64 * 1024
#: ... at most this many leading characters of the extracted text ...
TEXT_SCAN_CHARS: Final = 6000
#: ... and at most this many characters of the title.
TITLE_CHARS: Final = 300
#: A block of text longer than this is a paragraph of prose ...
PROSE_LINE: Final = 250
#: At most this many headers are looked at (an archive may replay hundreds).
_MAX_HEADERS: Final = 256


@dataclass(frozen=True, slots=True)
class CaptureFacts:
    """What is known of one capture after its fetch and extraction.

    ``redirects`` are the ORIGINAL URLs the archived redirect chain went through (not replay
    URLs), in order; ``final_url`` is the original URL of the capture that was fetched (None:
    the requested one, or the last redirect). ``headers`` are the archived response headers
    with lower-case names, plain or as the Wayback Machine replays them
    (``x-archive-orig-<name>``): both spellings are read. ``text_length`` is the length of
    the whole extracted text when ``text`` is only its beginning (None: ``len(text)``).
    ``head`` is a prefix of the raw body; only :data:`HEAD_BYTES` of it are read.
    """

    requested_url: str
    final_url: str | None = None
    redirects: tuple[str, ...] = ()
    archived_status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    title: str | None = None
    text: str = ""
    text_length: int | None = None
    head: bytes = b""


# --- normalised views of the facts, computed once and only when a rule asks -----------

# Title separators: "Page not found | Site", "Site - Page not found", "Error 404: Not found".
_TITLE_SPLIT_RE: Final = re.compile(r"\s*[|\u2013\u2014\u00b7\u00bb:]\s*|\s+-\s+")
_PUNCT_RE: Final = re.compile(r"[!?.,*\"()\[\]]")
# Curly quotes as straight ones (str.replace: a translate table costs ten times more).
_QUOTES: Final = (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"'))
_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
_ORIG: Final = "x-archive-orig-"
#: The headers a rule reads (the others are not kept).
_READ_HEADERS: Final = frozenset({"cf-mitigated", "x-amzn-waf-action", "x-sucuri-block",
                                  "server"})


def _normal(value: str, limit: int) -> str:
    """Lower case, straight quotes, single spaces, at most ``limit`` characters."""
    value = value[: limit * 2]
    for curly, straight in _QUOTES:
        if curly in value:
            value = value.replace(curly, straight)
    return " ".join(value.split()).lower()[:limit]


def split_url(url: str | None) -> SplitResult | None:
    """``url`` split, or None for what is no http(s) URL with a host (or too long, or with
    a port out of range)."""
    if not url or len(url) > 8192:
        return None
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # a bad port raises here, not in a rule
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts


class PageView:
    """The facts as the rules read them (each view computed at most once)."""

    def __init__(self, facts: CaptureFacts) -> None:
        self.facts = facts
        self.text_len = len(facts.text) if facts.text_length is None else facts.text_length
        mime = (facts.content_type or "").split(";", 1)[0].strip().lower()
        # Content rules read a page: an image or a PDF is judged by its URLs only.
        self.is_page = mime in _HTML_TYPES or not mime

    @functools.cached_property
    def title(self) -> str:
        """The title, normalised (lower case, straight quotes, single spaces), capped."""
        return _normal(self.facts.title or "", TITLE_CHARS)

    @functools.cached_property
    def title_parts(self) -> tuple[str, ...]:
        """The title's parts between separators, without punctuation ("Oops! That page
        can't be found." -> "oops that page can't be found")."""
        parts = (_PUNCT_RE.sub("", p).strip() for p in _TITLE_SPLIT_RE.split(self.title))
        return tuple(p for p in parts if p)

    @functools.cached_property
    def text(self) -> str:
        """The first :data:`TEXT_SCAN_CHARS` of the text, normalised like the title."""
        return _normal(self.facts.text, TEXT_SCAN_CHARS)

    @functools.cached_property
    def prose(self) -> int:
        """Characters of text in blocks (lines) longer than :data:`PROSE_LINE`: paragraphs
        of an article, which interstitials and error pages do not have."""
        lines = self.facts.text[:TEXT_SCAN_CHARS].split("\n")
        return sum(len(line) for line in lines if len(line) > PROSE_LINE)

    def in_markup(self, markers: tuple[str, ...]) -> bool:
        """Whether one of ``markers`` is in the bytes but not in the visible text: in a
        script, an attribute or a frame, where a vendor puts it, and not quoted in a post
        about the vendor."""
        return any(m in self.head and m not in self.text for m in markers)

    @functools.cached_property
    def head(self) -> str:
        """The first :data:`HEAD_BYTES` of the body, lower case. latin-1 maps each byte to
        one character: ASCII markers survive whatever the charset."""
        return self.facts.head[:HEAD_BYTES].decode("latin-1").lower()

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        """The archived headers by lower-case name, values lower case. Where the Wayback
        Machine replays an archived header as ``x-archive-orig-<name>``, a plain ``<name>``
        is the archive's own (its ``server``): the archived one wins."""
        found: dict[str, str] = {}
        for name, value in itertools.islice(self.facts.headers.items(), _MAX_HEADERS):
            key = name.lower()
            if key.startswith(_ORIG):
                key = key[len(_ORIG):]
                if key in _READ_HEADERS:
                    found[key] = value[:200].strip().lower()
            elif key in _READ_HEADERS:
                found.setdefault(key, value[:200].strip().lower())
        return found

    @functools.cached_property
    def requested(self) -> SplitResult | None:
        """The requested URL, split (None if it is no http(s) URL)."""
        return split_url(self.facts.requested_url)

    @functools.cached_property
    def final_url(self) -> str | None:
        """Where the capture ended: the final URL, else the chain's last hop, else None."""
        facts = self.facts
        return facts.final_url or (facts.redirects[-1] if facts.redirects else None)

    @functools.cached_property
    def final(self) -> SplitResult | None:
        """:attr:`final_url`, split."""
        return split_url(self.final_url)

    @functools.cached_property
    def moved(self) -> bool:
        """Whether the capture is of another page than the requested one."""
        if self.final_url is None or self.requested is None or self.final is None:
            return False
        return not same_resource(self.facts.requested_url, self.final_url)

    def header(self, name: str) -> str:
        """The archived header ``name`` (lower case), or ""."""
        return self.headers.get(name, "")


