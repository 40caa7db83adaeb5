"""The junk-capture corpus (tests/data/junk): each page of MANIFEST.toml as the
:class:`~snapcache.junk.CaptureFacts` a fetch would have, for tests/test_junk.py and
bench/junk_bench.py.

A page's title and text come from :func:`snapcache.extract.extract`, the extractor the
engine runs, over the file's bytes and the archived Content-Type; ``head`` is the first
:data:`~snapcache.junk.HEAD_BYTES` of the file, as the engine would pass them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from snapcache.extract import extract
from snapcache.junk import HEAD_BYTES, CaptureFacts, ContentFlag

CORPUS = Path(__file__).resolve().parent / "data" / "junk"
MANIFEST = CORPUS / "MANIFEST.toml"
DEFAULT_CONTENT_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Page:
    """One manifest entry: the facts of its capture and the expected answer."""

    file: str
    facts: CaptureFacts
    expect: ContentFlag | None
    why: str


def load() -> list[Page]:
    """Every page of the manifest, in its order, with its facts extracted."""
    data = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    pages: list[Page] = []
    for entry in data["page"]:
        body = (CORPUS / entry["file"]).read_bytes()
        declared = entry.get("content_type", DEFAULT_CONTENT_TYPE)
        ex = extract(body, declared)
        facts = CaptureFacts(
            requested_url=entry["requested"],
            final_url=entry.get("final"),
            redirects=tuple(entry.get("redirects", ())),
            archived_status=entry.get("status", 200),
            headers={k.lower(): v for k, v in entry.get("headers", {}).items()},
            content_type=ex.content_type,
            title=ex.title,
            text=ex.text,
            text_length=len(ex.text),
            head=body[:HEAD_BYTES],
        )
        expect = None if entry["expect"] == "none" else ContentFlag(entry["expect"])
        pages.append(Page(entry["file"], facts, expect, entry["why"]))
    return pages
