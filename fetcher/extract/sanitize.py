"""Terminal-safe text: every string the extractor returns goes through :func:`sanitize_text`.

Captures are hostile input, and their titles and previews end up printed on terminals and
stored in records, so escape sequences, control and bidi characters must not survive.
"""

from __future__ import annotations

import re

__all__ = ["sanitize_text"]

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
