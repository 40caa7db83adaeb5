"""What stepping back past junk captures costs: the junk corpus's pages resolved end to end
on the Wayback emulator, in requests, bytes and projected minutes per URL.

Every corpus page the archive would replay as a 2xx capture (tests/data/junk, served as
tests/junk_corpus.py's :func:`~tests.junk_corpus.add_page` serves it: the newest capture of
its cited URL, with its archived headers and redirect chain) is resolved by
``Fetcher.fetch_many`` in three groups, each on a fresh emulator at the archive's limits
scaled like the ``cold`` section (bench/costs.py), with a fresh store:

* ``a``: each junk page as the newest capture, an older real capture (a plain HTML
  document of a few KB) before it: the record must keep the older capture and name the
  junk in ``skipped`` (a script shell is kept, flagged);
* ``b``: each junk page with no older capture: ``archived_error`` with ``content_flag``
  (a script shell is ``ok``, flagged);
* ``c``: each look-alike as the newest capture, an older capture before it: ``ok`` with the
  newest capture, no flag, nothing skipped.

The requests and response bodies the emulator counted are attributed to the corpus page
whose URLs they name. The extra playback requests per flagged URL are group ``a``'s playback
per URL less group ``c``'s; per flag, group ``a``'s less group ``b``'s (the same URLs and
redirect chains, without the older capture) is what replaying the older capture costs.
bench.py's ``junk`` section prints the figures (:data:`HEADER`, :func:`rows`, :func:`notes`).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from costs import REAL_CDX, REAL_PLAYBACK, category_of_request, projected_minutes  # noqa: E402
from snapcache import Fetcher, Record, SnapcacheError  # noqa: E402
from snapcache.config import Config  # noqa: E402

from tests.docgen import html_page  # noqa: E402
from tests.junk_corpus import add_page, entries, served_as_200  # noqa: E402
from tests.wayback_emulator import WaybackEmulator, url_key  # noqa: E402

OLD = "20190305120000"
NEW = "20240611080000"
#: The older real capture: a plain article page of about 4 KB.
REAL_PAGE = html_page(
    "Harbour works report",
    " ".join(["The council published the full report on the harbour works."] * 60))
SCRIPT_SHELL = "script_shell"
GROUPS: dict[str, str] = {
    "a": "junk newest, an older real capture",
    "b": "junk only",
    "c": "look-alike newest, an older capture",
}

#: A configuration for an emulator's base URL and a private folder (store, limiter state).
ConfigFor = Callable[[str, Path], Config]


@dataclass
class Case:
    """One corpus page in one group, and what its resolution cost and gave."""

    url: str
    expect: str  # the flag, or "none" for a look-alike
    playback: int = 0
    cdx: int = 0
    body_bytes: int = 0
    wrong: str | None = None  # why the outcome is not the expected one
    paths: list[str] = field(default_factory=list)


def pages(group: str) -> list[dict[str, Any]]:
    """The manifest entries a group serves: junk pages for ``a`` and ``b``, look-alikes for
    ``c``; only pages the archive replays as 2xx captures."""
    junk = group in ("a", "b")
    return [e for e in entries()
            if served_as_200(e) and (e["expect"] != "none") == junk]


def check(group: str, expect: str, rec: Record | SnapcacheError) -> str | None:
    """None when the record is the one the group expects, else what is wrong with it."""
    if isinstance(rec, SnapcacheError):
        return f"raised {type(rec).__name__}: {rec}"
    got = (f"status={rec.status} capture={rec.capture_timestamp} "
           f"content_flag={rec.content_flag} skipped={rec.skipped}")
    newest = rec.capture_timestamp is not None and rec.capture_timestamp >= NEW
    if expect == SCRIPT_SHELL and group in ("a", "b"):
        # Nothing better to show: the newest capture stays, flagged.
        right = (rec.status == "ok" and rec.content_flag == SCRIPT_SHELL and newest
                 and not rec.skipped)
    elif group == "a":
        right = (rec.status == "ok" and rec.capture_timestamp == OLD
                 and rec.content_flag is None
                 and [s.get("flag") for s in rec.skipped] == [expect])
    elif group == "b":
        right = rec.status == "archived_error" and rec.content_flag == expect and newest
    else:
        right = (rec.status == "ok" and newest and rec.content_flag is None
                 and not rec.skipped)
    return None if right else got


def run_group(group: str, *, scale: float, concurrency: int, config_for: ConfigFor,
              log: Callable[[str], None]) -> dict[str, Any]:
    """Serve the group's pages on a fresh emulator and resolve them all: per-page cases and
    the group's totals."""
    window = 60.0 / scale
    chosen = pages(group)
    cases = [Case(e["requested"], e["expect"]) for e in chosen]
    owner: dict[str, int] = {}
    for i, e in enumerate(chosen):
        for u in (e["requested"], *e.get("redirects", ())):
            if owner.setdefault(url_key(u), i) != i:
                raise ValueError(f"two pages of group {group} share the URL {u}")
    keys = {k: str(i) for k, i in owner.items()}
    with WaybackEmulator(load_recordings=False, cdx_per_minute=REAL_CDX,
                         playback_per_minute=REAL_PLAYBACK, window_seconds=window) as emu:
        for e in chosen:
            if group != "b":
                emu.add_capture(e["requested"], OLD, body=REAL_PAGE)
            add_page(emu, e, NEW)
        log(f"  junk cost: group {group} ({GROUPS[group]}), {len(cases)} URLs ...")
        with tempfile.TemporaryDirectory(prefix="bench-junk-") as d:
            t0 = time.perf_counter()
            with Fetcher(config_for(emu.base_url, Path(d))) as f:
                records = f.fetch_many([c.url for c in cases], concurrency=concurrency)
            wall = time.perf_counter() - t0
        counts = dict(emu.counts)
        body = dict(emu.body_bytes)
        n429 = emu.count_429
        unattributed = 0
        for pool, _method, path in emu.requests:
            who = category_of_request(path, keys)
            if who == "?":
                unattributed += 1
                continue
            case = cases[int(who)]
            case.paths.append(path)
            if pool == "playback":
                case.playback += 1
            elif pool == "cdx":
                case.cdx += 1
        for path, sent in emu.body_bytes_by_path.items():
            who = category_of_request(path, keys)
            if who != "?":
                cases[int(who)].body_bytes += sent
    for case, rec in zip(cases, records, strict=True):
        case.wrong = check(group, case.expect, rec)
    n = len(cases)
    return {
        "group": group, "what": GROUPS[group], "n": n, "cases": cases, "wall_s": wall,
        "counts": counts, "body_bytes": body, "count_429": n429,
        "unattributed_requests": unattributed,
        "right": sum(c.wrong is None for c in cases),
        "playback_per_url": counts.get("playback", 0) / n,
        "cdx_per_url": counts.get("cdx", 0) / n,
        "kb_per_url": sum(body.values()) / n / 1000,
        "projected_min_per_1000": projected_minutes(counts, n),
    }


def _summary(cases: Sequence[Case]) -> dict[str, Any]:
    n = len(cases)
    counts = {"playback": sum(c.playback for c in cases), "cdx": sum(c.cdx for c in cases)}
    return {
        "n": n, "right": sum(c.wrong is None for c in cases),
        "playback_per_url": counts["playback"] / n, "cdx_per_url": counts["cdx"] / n,
        "kb_per_url": sum(c.body_bytes for c in cases) / n / 1000,
        "projected_min_per_1000": projected_minutes(counts, n),
    }


def run(*, scale: float, concurrency: int, config_for: ConfigFor,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """The three groups resolved: figures per group and per flag, the extra requests per
    flagged URL, and every wrong outcome with its request paths."""
    groups = {g: run_group(g, scale=scale, concurrency=concurrency, config_for=config_for,
                           log=log) for g in GROUPS}
    per_flag: dict[str, dict[str, dict[str, Any]]] = {}
    for g, res in groups.items():
        flags: dict[str, list[Case]] = defaultdict(list)
        for c in res["cases"]:
            flags[c.expect].append(c)
        per_flag[g] = {flag: _summary(cs) for flag, cs in flags.items()}
    # Groups a and b resolve the same URLs through the same archived redirects; a's walk
    # differs only in finding the older capture when it steps back.
    for flag, ra in per_flag["a"].items():
        rb = per_flag["b"][flag]
        ra["extra_playback_per_url"] = ra["playback_per_url"] - rb["playback_per_url"]
        ra["extra_cdx_per_url"] = ra["cdx_per_url"] - rb["cdx_per_url"]
        ra["extra_kb_per_url"] = ra["kb_per_url"] - rb["kb_per_url"]
    ga, gb, gc = groups["a"], groups["b"], groups["c"]
    wrong = [{"group": g, "url": c.url, "flag": c.expect, "record": c.wrong, "paths": c.paths}
             for g, res in groups.items() for c in res["cases"] if c.wrong is not None]
    return {
        "scale": scale, "concurrency": concurrency,
        "groups": {g: {**{k: v for k, v in res.items() if k != "cases"},
                       "cdx_urls": [c.url for c in res["cases"] if c.cdx]}
                   for g, res in groups.items()},
        "per_flag": per_flag,
        "extra_playback_per_flagged_url": ga["playback_per_url"] - gc["playback_per_url"],
        "extra_cdx_per_flagged_url": ga["cdx_per_url"] - gc["cdx_per_url"],
        "extra_kb_per_flagged_url": ga["kb_per_url"] - gc["kb_per_url"],
        "step_back_playback_per_url": ga["playback_per_url"] - gb["playback_per_url"],
        "step_back_cdx_per_url": ga["cdx_per_url"] - gb["cdx_per_url"],
        "all_right": not wrong,
        "wrong": wrong,
    }


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def rows(res: dict[str, Any]) -> list[list[str]]:
    """The per-flag table's rows: each group's flags, then the group's totals."""
    out: list[list[str]] = []
    for g, flags in res["per_flag"].items():
        for flag, r in flags.items():
            out.append([f"{g}: {flag}", f"{r['right']}/{r['n']}", _fmt(r["playback_per_url"]),
                        _fmt(r["cdx_per_url"]), _fmt(r["kb_per_url"], ".1f"),
                        _fmt(r["projected_min_per_1000"], ".1f"),
                        _fmt(r.get("extra_playback_per_url"), "+.2f")])
        t = res["groups"][g]
        out.append([f"{g}: all ({t['what']})", f"{t['right']}/{t['n']}",
                    _fmt(t["playback_per_url"]), _fmt(t["cdx_per_url"]),
                    _fmt(t["kb_per_url"], ".1f"), _fmt(t["projected_min_per_1000"], ".1f"),
                    _fmt(res["step_back_playback_per_url"], "+.2f") if g == "a" else "-"])
    return out


HEADER = ["group: flag", "outcome right", "playback/URL", "CDX/URL", "body KB/URL",
          "min/1000 URLs", "playback a - b"]


def notes(res: dict[str, Any]) -> list[str]:
    """The table's notes: what each group is, the headline figures, anything wrong."""
    groups = res["groups"]
    out = [f"group {g}: {t['what']}; {t['n']} URLs, {t['count_429']} 429s, {t['wall_s']:.1f} s "
           f"wall, requests {t['counts']}" for g, t in groups.items()]
    out.append(
        f"limits scaled x{res['scale']:g} as in the cold section, snapcache at 80% of them, "
        f"fetch_many(concurrency={res['concurrency']}), a fresh emulator and store per group; "
        "body KB = response bodies the emulator sent (headers not counted)")
    out.append(
        "extra playback per flagged URL = group a's playback/URL - group c's = "
        f"{res['extra_playback_per_flagged_url']:.2f} (CDX "
        f"{res['extra_cdx_per_flagged_url']:+.2f}, body {res['extra_kb_per_flagged_url']:+.1f} "
        "KB, most of it the older capture's); more of the junk pages than of the look-alikes "
        "come through archived redirects, each a playback request or two either way; the junk "
        "pages themselves are group b's body KB/URL")
    out.append(
        "playback a - b: the same URLs and redirect chains, with and without the older "
        "capture: what replaying it on the way back costs (a junk capture with no older one "
        "stops where its Link header names none, without a request)")
    asked = {u for t in groups.values() for u in t["cdx_urls"]}
    if asked:
        out.append("the CDX was asked for " + ", ".join(sorted(asked)) + " (stepping back by "
                   "the Link headers ended without an answer, so the CDX decided)")
    unattributed = sum(t["unattributed_requests"] for t in groups.values())
    if unattributed:
        out.append(f"{unattributed} requests named no corpus URL (counted in the totals only)")
    out += [f"WRONG group {w['group']} {w['flag']} {w['url']}: {w['record']}; requests "
            f"{w['paths']}" for w in res["wrong"]]
    return out
