"""HTML extraction: title and main text of a page, parsed with selectolax (lexbor).

The markup is hardened first (:mod:`.harden`), so the parser never sees the inputs that
make it slow; boilerplate (navigation, scripts, hidden content) is removed before the text
is taken, and ``<main>`` / ``<article>`` win over the whole body when they hold enough.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from .harden import MAX_DEPTH, SENTINEL, prepare_html
from .result import clean_title
from .sanitize import sanitize_text
from .sniff import decode_body

__all__ = ["extract_html"]

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
    raw = _WHITESPACE_RUN_RE.sub(" ", raw).replace(SENTINEL, "\n")
    text = sanitize_text(raw, keep_newlines=True)
    return text.replace("\n\n", "\n")


def _html_title(tree: LexborHTMLParser) -> str | None:
    for selector in ("head > title", "title"):
        node = tree.css_first(selector)
        if node is not None:
            title = clean_title(node.text().replace(SENTINEL, " "))
            if title:
                return title
    for selector in ('meta[property="og:title" i]', 'meta[name="og:title" i]'):
        node = tree.css_first(selector)
        if node is not None:
            title = clean_title(node.attributes.get("content"))
            if title:
                return title
    node = tree.css_first("h1")
    if node is not None:
        return clean_title(node.text().replace(SENTINEL, " "))
    return None


def extract_html(
    data: bytes, declared: str | None, truncated: bool, text_chars: int
) -> tuple[str | None, str, str, list[str]]:
    """(title, text, charset, notes) of an HTML document.

    ``data`` is the body, already capped (``truncated`` says it was cut), ``declared`` the
    Content-Type the archive gave. ``text_chars`` bounds how much raw text is cleaned; the
    caller still caps the result.
    """
    notes: list[str] = []
    html, charset = decode_body(data, declared, html=True, truncated=truncated)
    prepared, capped = prepare_html(html)
    del html  # one copy of the document at a time: the peak is what bounds memory
    if capped:
        notes.append(f"HTML nesting capped at {MAX_DEPTH} levels")
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
