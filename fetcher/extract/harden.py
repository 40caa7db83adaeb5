"""HTML hardening: one linear rewriting pass that runs before the HTML parser sees a page.

lexbor (like every spec-following HTML parser) has super-linear corner cases that a
hostile page can hit: measured with selectolax 1.0.2,
  * nesting 20,000 <div>/<section> takes 0.6 s, 50,000 takes 5.7 s (each block start
    tag scans the stack of open elements: quadratic), and 8 MB of "<div>" would take
    over an hour;
  * "<p><b id=N>x</p>" repeated 10,000 times takes 88 s and builds 840 MB of DOM (the
    "reconstruct the active formatting elements" step clones every open <b> again for
    each paragraph).
So before parsing we run one linear pass that tokenizes the way the HTML tokenizer does
(tags with quoted attributes, comments, bogus comments, raw-text elements, the script
double-escape states) and rewrites the markup:
  * formatting tags (a, b, i, font, ...) are dropped: they carry no text and are the only
    input to the cloning machinery;
  * <svg>/<math> become <x-svg>/<x-math>, so the parser never enters foreign content
    (where <style>, <script>, self-closing tags behave differently and the simple
    tokenizer model below would be wrong);
  * non-void self-closing tags get an explicit end tag (<path/> -> <path/></path>), so
    they cannot be used to nest;
  * an approximate depth of open elements is tracked and tags beyond MAX_DEPTH are
    dropped (the parser then never sees a deep stack);
  * a sentinel character is put inside block elements, which later becomes a line
    break: lexbor's text() joins text nodes, and a separator would also split inline
    runs ("Hello <b>world</b>" -> "Hello \\nworld").
Where the pass cannot be exact it errs towards treating bytes as markup (over-counting
depth), never towards skipping markup the parser would build.

:func:`prepare_html` is that pass; :data:`SENTINEL` is the line-break marker it plants and
:data:`MAX_DEPTH` the nesting it allows.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DEPTH", "SENTINEL", "prepare_html"]

#: Open elements beyond this depth are dropped (and the caller notes the cap).
MAX_DEPTH = 256
SENTINEL = "\ue000"  # private use: never produced by decoding real text, except &#xE000;

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


def prepare_html(html: str) -> tuple[str, bool]:
    """The linear rewriting pass described in the module docstring.

    Returns ``(html, depth_was_capped)``. A literal :data:`SENTINEL` in the input becomes
    a space first, so only the sentinels this pass plants (and any ``&#xE000;`` entity)
    turn into line breaks later.
    """
    html = html.replace(SENTINEL, " ")
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
                append(tag if not block else SENTINEL + tag)
            elif dropped_counts.get(name, 0) > 0:
                dropped_counts[name] -= 1
                append(SENTINEL if block else " ")
            else:
                if open_counts.get(name, 0) > 0:
                    open_counts[name] -= 1
                    depth -= 1
                append(SENTINEL + tag if block else tag)
            continue

        if name == "plaintext":  # everything after is text, for the tokenizer too
            append(tag)
            append(html[pos:])
            pos = n
            break
        if name in _VOID:
            append(tag + SENTINEL if name in _LINE_BREAK else tag)
            continue
        if name not in _SELF_LIMITING:
            if depth >= MAX_DEPTH:
                capped = True
                dropped_counts[name] = dropped_counts.get(name, 0) + 1
                append(SENTINEL if block else " ")
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
        append(tag + SENTINEL if block else tag)
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
