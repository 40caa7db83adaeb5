"""The benchmark corpus: generated captures loaded into the loopback emulator, with the
ground truth every tool is scored against.

Categories (each URL on its own host, so no category leaks into another):

* ``html``       one 200 capture of an HTML page
* ``pdf``        one 200 capture of a PDF (fpdf2, via tests/docgen.py)
* ``multi``      3 to 6 captures of 200, the newest one expected
* ``newer404``   one or two good captures, then a newer archived 404: the newest *good*
                 capture is expected
* ``redirect``   an archived 301 whose target has its own 200 capture a few minutes later:
                 the target's capture is expected (what a reader of the citation would see)
* ``unarchived`` never captured: ``not_archived`` expected
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.docgen import html_page, make_pdf  # noqa: E402

#: Default mix of the cold corpus (320 URLs). Chosen before measuring, not tuned.
DEFAULT_MIX: dict[str, int] = {
    "html": 100,
    "pdf": 50,
    "multi": 50,
    "newer404": 40,
    "redirect": 40,
    "unarchived": 40,
}

WORDS = (
    "archive", "citation", "report", "policy", "network", "data", "model", "public",
    "research", "analysis", "federal", "agency", "open", "access", "science", "climate",
    "health", "budget", "review", "survey", "energy", "water", "transport", "education",
    "history", "library", "record", "source", "evidence", "method",
)


@dataclass(frozen=True, slots=True)
class Truth:
    url: str
    category: str
    outcome: str  # ok | not_archived
    capture: str | None  # expected capture timestamp (14 digits) or None


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S")


def _rand_dt(rng: random.Random, lo: int = 2014, hi: int = 2025) -> datetime:
    start = datetime(lo, 1, 1, tzinfo=UTC)
    span = (datetime(hi, 12, 31, tzinfo=UTC) - start).total_seconds()
    return start + timedelta(seconds=rng.randrange(int(span)))


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def html_doc(rng: random.Random, title: str, paragraphs: int = 12) -> bytes:
    body = "</p><p>".join(_sentence(rng, rng.randint(25, 60)) for _ in range(paragraphs))
    return html_page(title, body)


def pdf_doc(rng: random.Random, title: str, pages: int = 3) -> bytes:
    return make_pdf(
        [" ".join(_sentence(rng, rng.randint(30, 60)) for _ in range(4)) for _ in range(pages)],
        title=title,
    )


def build(emu: Any, mix: dict[str, int] | None = None, seed: int = 6) -> list[Truth]:
    """Add the corpus to ``emu`` and return the ground truth, in a shuffled order."""
    rng = random.Random(seed)
    mix = mix or DEFAULT_MIX
    truth: list[Truth] = []
    pdf_cache: list[bytes] = []

    for i in range(mix.get("html", 0)):
        url = f"https://news{i}.example.org/articles/{i}/story.html"
        ts = _ts(_rand_dt(rng))
        emu.add_capture(url, ts, body=html_doc(rng, f"Story {i}"))
        truth.append(Truth(url, "html", "ok", ts))

    for i in range(mix.get("pdf", 0)):
        url = f"https://reports{i}.example.gov/files/report-{i}.pdf"
        ts = _ts(_rand_dt(rng))
        if len(pdf_cache) < 10:  # fpdf2 is slowish; ten distinct PDFs are plenty
            pdf_cache.append(pdf_doc(rng, f"Report {i}"))
        emu.add_capture(url, ts, body=pdf_cache[i % len(pdf_cache)],
                        content_type="application/pdf")
        truth.append(Truth(url, "pdf", "ok", ts))

    for i in range(mix.get("multi", 0)):
        url = f"https://blog{i}.example.com/posts/{i}"
        stamps = sorted({_ts(_rand_dt(rng)) for _ in range(rng.randint(3, 6))})
        for ts in stamps:
            emu.add_capture(url, ts, body=html_doc(rng, f"Post {i} at {ts}", 4))
        truth.append(Truth(url, "multi", "ok", stamps[-1]))

    for i in range(mix.get("newer404", 0)):
        url = f"https://agency{i}.example.gov/programs/{i}/"
        good = sorted({_ts(_rand_dt(rng, 2014, 2019)) for _ in range(rng.randint(1, 2))})
        for ts in good:
            emu.add_capture(url, ts, body=html_doc(rng, f"Program {i}", 6))
        gone = _ts(_rand_dt(rng, 2021, 2025))
        emu.add_capture(url, gone, status=404, body=b"<html><title>Not Found</title></html>")
        truth.append(Truth(url, "newer404", "ok", good[-1]))

    for i in range(mix.get("redirect", 0)):
        url = f"http://old{i}.example.edu/page/{i}"
        target = f"https://www.new{i}.example.edu/pages/{i}"
        when = _rand_dt(rng)
        emu.add_capture(url, _ts(when), status=301, body=b"", content_type="text/html",
                        location=target)
        tts = _ts(when + timedelta(minutes=rng.randint(1, 90)))
        emu.add_capture(target, tts, body=html_doc(rng, f"Moved page {i}", 5))
        truth.append(Truth(url, "redirect", "ok", tts))

    for i in range(mix.get("unarchived", 0)):
        truth.append(Truth(f"https://gone{i}.example.net/never/{i}", "unarchived",
                           "not_archived", None))

    rng.shuffle(truth)
    return truth


def build_warm(emu: Any, n: int) -> list[str]:
    """``n`` small single-capture HTML URLs for the warm-cache pass."""
    rng = random.Random(10_000)
    body = html_doc(rng, "Warm page", 3)
    urls = []
    for i in range(n):
        url = f"https://warm{i}.example.org/p/{i}"
        emu.add_capture(url, _ts(_rand_dt(rng)), body=body)
        urls.append(url)
    return urls
