"""The junk-capture corpus (tests/data/junk): each page of MANIFEST.toml as the
:class:`~snapcache.junk.CaptureFacts` a fetch would have, for tests/test_junk.py and
bench/junk_bench.py, and as the captures the Wayback emulator serves, for
tests/test_junk_resolution.py and bench/junk_cost.py.

A page's title and text come from :func:`snapcache.extract.extract`, the extractor the
engine runs, over the file's bytes and the archived Content-Type; ``head`` is the first
:data:`~snapcache.junk.HEAD_BYTES` of the file, as the engine would pass them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapcache.extract import extract
from snapcache.junk import HEAD_BYTES, CaptureFacts, ContentFlag

if TYPE_CHECKING:
    from tests.wayback_emulator import WaybackEmulator

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


def entries() -> list[dict[str, Any]]:
    """The manifest's entries as written, in its order."""
    return list(tomllib.loads(MANIFEST.read_text(encoding="utf-8"))["page"])


def served_as_200(entry: dict[str, Any]) -> bool:
    """A page the archive replays as a 2xx capture (an error capture is not junk's case),
    reached by the cited URL or by its archived redirects."""
    status = int(entry.get("status", 200))
    chained = not entry.get("final") or bool(entry.get("redirects"))
    return 200 <= status < 300 and chained


def later(ts: str, minutes: int) -> str:
    """The 14-digit timestamp ``minutes`` after ``ts``."""
    when = datetime.strptime(ts, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return (when + timedelta(minutes=minutes)).strftime("%Y%m%d%H%M%S")


def add_page(emulator: WaybackEmulator, entry: dict[str, Any], ts: str) -> None:
    """The page as the archive holds it: a capture of the cited URL, or the end of its
    archived redirect chain (each hop a 302 capture a minute apart)."""
    body = (CORPUS / entry["file"]).read_bytes()
    headers = {k.lower().removeprefix("x-archive-orig-"): v
               for k, v in entry.get("headers", {}).items()}
    chain = [entry["requested"], *entry.get("redirects", [])]
    for i, (here, there) in enumerate(pairwise(chain)):
        emulator.add_capture(here, later(ts, i), status=302, body=b"", location=there)
    emulator.add_capture(chain[-1], later(ts, len(chain) - 1), status=int(entry.get("status", 200)),
                         body=body, headers=headers,
                         content_type=entry.get("content_type", DEFAULT_CONTENT_TYPE))
