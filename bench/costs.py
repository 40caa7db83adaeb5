"""What a run costs on the real archive: its limits, the minutes a run's requests would take
there, and which kind of corpus URL each request was spent on.

Shared by the ``cold`` section (bench/bench.py) and the ``refresh`` section
(bench/refresh_bench.py), so both project their figures the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpus import Truth  # noqa: E402

from tests.wayback_emulator import WaybackEmulator, url_key  # noqa: E402

# The Internet Archive's limits per minute per IP, and the 80% everyone is asked to use.
REAL_CDX, REAL_PLAYBACK = 30, 600
POLITE_CDX, POLITE_PLAYBACK = 0.8 * REAL_CDX, 0.8 * REAL_PLAYBACK


def projected_minutes(counts: Mapping[str, float], n: int) -> float:
    """Minutes per 1,000 URLs under the real limits at 80%, from requests spent per URL."""
    return (counts.get("cdx", 0) / POLITE_CDX + counts.get("playback", 0) / POLITE_PLAYBACK) \
        * 1000 / n


def category_keys(emu: WaybackEmulator, truth: Iterable[Truth]) -> dict[str, str]:
    """The corpus category of each URL key a tool may request: the corpus URLs, and the
    targets their archived redirects lead to (counted as ``redirect``)."""
    keys: dict[str, str] = {}
    for t in truth:
        keys[url_key(t.url)] = t.category
        if t.category == "redirect":
            for cap in emu.captures_for(t.url):
                if cap.target:
                    keys[url_key(cap.target)] = "redirect"
    return keys


def category_of_request(path: str, keys: Mapping[str, str]) -> str:
    """The category of the URL a CDX or playback request ``path`` asked about ("?" when it
    names no corpus URL)."""
    if path.startswith("/cdx/"):
        q = parse_qs(urlsplit(path).query)
        url = (q.get("url") or [""])[0]
    else:
        rest = path[len("/web/"):]
        url = rest.split("/", 1)[1] if "/" in rest else rest
    return keys.get(url_key(url), "?")
