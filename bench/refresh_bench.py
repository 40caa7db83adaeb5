"""Refresh: the cold corpus fetched into a store, every record made stale by configuration,
and the same list run again; beside the peers, whose refresh is a second full pass.

snapcache runs as ``snapcache run`` subprocesses (what cron runs), against the in-process
emulator at the archive's limits scaled by ``--scale`` and budgets at 80% of them, as in the
``cold`` section. The first run fills a store; the second reads a configuration whose every
TTL is 0 (``[cache] ttl_ok_days = 0`` …), so every record is stale and refreshed: a good
record whose capture is still the newest is only confirmed (no body). The peers keep no
store, so each runs the corpus twice with the same client objects (a long-lived process) and
the second pass is measured.

Measured per pass: requests per pool, response body bytes (``emulator.body_bytes``, headers
not counted), 429s, and the outcome and capture of every URL against the corpus truth (for
snapcache, read from its store after the run). Run with ``./bench/run --sections refresh``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
import peers  # noqa: E402
from costs import (  # noqa: E402
    POLITE_CDX,
    POLITE_PLAYBACK,
    REAL_CDX,
    REAL_PLAYBACK,
    category_keys,
    category_of_request,
    projected_minutes,
)
from snapcache import Fetcher  # noqa: E402
from snapcache.cache import Record  # noqa: E402
from snapcache.config import load_config  # noqa: E402
from store_bench import snapcache_cmd  # noqa: E402

from tests.wayback_emulator import WaybackEmulator  # noqa: E402

#: Issue 13's targets for records whose newest capture is the stored one.
TARGET_UNCHANGED_PLAYBACK = 1.1
TARGET_UNCHANGED_BYTES = 0.03
#: The corpus categories whose newest good capture is the stored one, reached without an
#: archived redirect or a newer error capture in the way.
UNCHANGED = ("html", "pdf", "multi")
#: Every TTL at 0: each record is stale the moment it is stored.
STALE: dict[str, float] = {"ttl_ok_days": 0.0, "ttl_blocked_days": 0.0,
                           "ttl_not_archived_days": 0.0, "ttl_archived_error_days": 0.0,
                           "ttl_error_hours": 0.0}
PEERS = ("edgi wayback", "waybackpy", "waybackpy paced")

Table = Callable[..., str]
Scored = tuple[str, str | None]  # (outcome, capture timestamp) of one URL


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Pass:
    """What one pass over the corpus cost, and how right it came out."""

    n: int
    wall_s: float
    counts: dict[str, int]
    body_bytes: dict[str, int]
    count_429: int
    outcome_ok: int
    capture_ok: int
    #: Per category: n, cdx, playback, bytes, outcome_ok, capture_ok (and snapcache's
    #: confirmed, refetched).
    by_category: dict[str, dict[str, float]]
    extra: dict[str, Any] = field(default_factory=dict)

    def per_url(self, pool: str) -> float:
        return self.counts.get(pool, 0) / self.n

    @property
    def kb_per_url(self) -> float:
        return sum(self.body_bytes.values()) / self.n / 1000

    @property
    def minutes(self) -> float:
        return projected_minutes(self.counts, self.n)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cdx_per_url": self.per_url("cdx"),
                "playback_per_url": self.per_url("playback"), "kb_per_url": self.kb_per_url,
                "projected_min_per_1000": self.minutes,
                "capture_correct_pct": 100 * self.capture_ok / self.n}


def measure(emu: WaybackEmulator, keys: dict[str, str], truth: Sequence[corpus.Truth],
            scored: Sequence[Scored], wall: float,
            marks: dict[str, Sequence[bool]] | None = None) -> Pass:
    """The emulator's counters since its last reset, and ``scored`` against ``truth``;
    ``marks`` are per-URL flags (e.g. confirmed) also summed per category."""
    by_cat: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for i, ((outcome, capture), t) in enumerate(zip(scored, truth, strict=True)):
        c = by_cat[t.category]
        c["n"] += 1
        c["outcome_ok"] += outcome == t.outcome
        c["capture_ok"] += outcome == t.outcome and capture == t.capture
        for name, flags in (marks or {}).items():
            c[name] += flags[i]
    for pool, _method, path in list(emu.requests):
        by_cat[category_of_request(path, keys)][pool] += 1
    for path, sent in list(emu.body_bytes_by_path.items()):
        by_cat[category_of_request(path, keys)]["bytes"] += sent
    return Pass(
        n=len(truth), wall_s=wall, counts=dict(emu.counts), body_bytes=dict(emu.body_bytes),
        count_429=emu.count_429,
        outcome_ok=sum(o == t.outcome for (o, _), t in zip(scored, truth, strict=True)),
        capture_ok=sum(o == t.outcome and c == t.capture
                       for (o, c), t in zip(scored, truth, strict=True)),
        by_category={c: dict(v) for c, v in by_cat.items()},
    )


def between_passes(emu: WaybackEmulator, window: float) -> None:
    """Let the previous pass's window drain, then count afresh."""
    time.sleep(window)
    emu.reset_rate_limits()
    emu.reset_counters()


# ------------------------------------------------------------------------------------------
# snapcache: `snapcache run`, cold then refresh


def write_config(path: Path, emu: WaybackEmulator, tmp: Path, k: float,
                 cache: dict[str, float]) -> Path:
    """A configuration at 80% of the scaled limits (pause_on_429 scaled too); ``cache``
    adds keys to ``[cache]``."""
    lines = [
        "[archive]", f'base_url = "{emu.base_url}"',
        f'availability_url = "{emu.base_url}/wayback/available"',
        "[rates]", f"cdx_per_minute = {POLITE_CDX * k}",
        f"playback_per_minute = {POLITE_PLAYBACK * k}", f"pause_on_429 = {60.0 / k}",
        f'state_path = "{tmp / "ratelimit.sqlite"}"',
        "[cache]", f'path = "{tmp / "store"}"', *(f"{key} = {v}" for key, v in cache.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def snapcache_run(config: Path, sources: Path, concurrency: int) -> tuple[dict[str, Any], float]:
    """``snapcache run --json`` in a subprocess: its summary and wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*snapcache_cmd(), "--config", str(config), "run", "--json", "--quiet",
         "--concurrency", str(concurrency), str(sources)],
        capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"snapcache run exited {proc.returncode}: {proc.stderr[-800:]}")
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary, wall


def stored(config: Path, truth: Sequence[corpus.Truth]) -> list[Record | None]:
    """The stored record of each corpus URL (no request)."""
    with Fetcher(load_config(config)) as f:
        return [f.lookup(t.url) for t in truth]


def scored_records(records: Sequence[Record | None]) -> list[Scored]:
    return [("missing", None) if r is None else (r.status, r.capture_timestamp)
            for r in records]


def run_snapcache(emu: WaybackEmulator, keys: dict[str, str], truth: Sequence[corpus.Truth],
                  tmp: Path, k: float, concurrency: int) -> tuple[Pass, Pass]:
    """A cold run into a new store, then the refresh of every record; both measured."""
    sources = tmp / "sources.txt"
    sources.write_text("".join(t.url + "\n" for t in truth), encoding="utf-8")
    cold_cfg = write_config(tmp / "cold.toml", emu, tmp, k, {})
    stale_cfg = write_config(tmp / "stale.toml", emu, tmp, k, STALE)

    between_passes(emu, 60.0 / k)
    log("refresh: snapcache cold run ...")
    summary, wall = snapcache_run(cold_cfg, sources, concurrency)
    before = stored(cold_cfg, truth)
    cold = measure(emu, keys, truth, scored_records(before), wall)
    cold.extra = {"summary": summary}
    log(f"refresh: snapcache cold: {wall:.1f} s, {cold.counts}, 429s {cold.count_429}")

    between_passes(emu, 60.0 / k)
    log("refresh: snapcache refresh (every TTL 0) ...")
    summary, wall = snapcache_run(stale_cfg, sources, concurrency)
    after = stored(stale_cfg, truth)
    confirmed = [r is not None and r.last_confirmed_at is not None
                 and r.last_confirmed_at == r.last_attempt_at for r in after]
    refetched = [a is not None and b is not None and a.fetched_at != b.fetched_at
                 for a, b in zip(after, before, strict=True)]
    kept = [b is not None and b.status == "ok" and a is not None
            and a.capture_timestamp == b.capture_timestamp
            for a, b in zip(after, before, strict=True)]
    refresh = measure(emu, keys, truth, scored_records(after), wall,
                      {"confirmed": confirmed, "refetched": refetched})
    refresh.extra = {
        "summary": summary, "confirmed_in_store": sum(confirmed),
        "refetched_in_full": sum(refetched),
        "ok_before": sum(b is not None and b.status == "ok" for b in before),
        "ok_kept_capture": sum(kept),
    }
    log(f"refresh: snapcache refresh: {wall:.1f} s, {refresh.counts}, 429s "
        f"{refresh.count_429}, summary confirmed {summary.get('confirmed')}")
    return cold, refresh


# ------------------------------------------------------------------------------------------
# the peers: two full passes each


def peer_runner(name: str, base_url: str, k: float
                ) -> tuple[Callable[[str], peers.Result], Callable[[], None]]:
    """The peer as the ``cold`` section runs it, budgeted at 80% of the scaled limits
    (waybackpy as shipped has no pacing)."""
    cdx_ps, playback_ps = POLITE_CDX * k / 60, POLITE_PLAYBACK * k / 60
    if name == "edgi wayback":
        return peers.edgi_runner(base_url, cdx_ps, playback_ps)
    if name == "waybackpy":
        return peers.waybackpy_runner(base_url)
    if name == "waybackpy paced":
        return peers.waybackpy_runner(base_url, pace=(cdx_ps, playback_ps))
    raise ValueError(f"unknown peer {name!r}")


def run_peer(name: str, emu: WaybackEmulator, keys: dict[str, str],
             truth: Sequence[corpus.Truth], k: float, concurrency: int) -> tuple[Pass, Pass]:
    """Two passes with the same clients: the first fills nothing (no store), the second is
    the peer's refresh."""
    urls = [t.url for t in truth]
    one, close = peer_runner(name, emu.base_url, k)
    passes: list[Pass] = []
    try:
        for which in ("first", "second"):
            between_passes(emu, 60.0 / k)
            log(f"refresh: {name} {which} pass ...")
            t0 = time.perf_counter()
            res = peers.run_threads(one, urls, concurrency)
            wall = time.perf_counter() - t0
            p = measure(emu, keys, truth, [(r.outcome, r.capture) for r in res], wall)
            p.extra = {"outcomes": dict(Counter(r.outcome for r in res))}
            passes.append(p)
            log(f"refresh: {name} {which}: {wall:.1f} s, {p.counts}, 429s {p.count_429}")
    finally:
        close()
    return passes[0], passes[1]


# ------------------------------------------------------------------------------------------
# the section


def unchanged_totals(p: Pass) -> dict[str, float]:
    """``p``'s per-category figures summed over :data:`UNCHANGED`."""
    totals: dict[str, float] = defaultdict(float)
    for c in UNCHANGED:
        for key, value in p.by_category.get(c, {}).items():
            totals[key] += value
    return dict(totals)


def unchanged_figures(cold: Pass, refresh: Pass) -> dict[str, float]:
    """Playback per URL and bytes against the cold run's, over :data:`UNCHANGED`."""
    r, c = unchanged_totals(refresh), unchanged_totals(cold)
    n = r["n"]
    return {"n": n, "playback_per_url": r.get("playback", 0) / n,
            "cdx_per_url": r.get("cdx", 0) / n, "bytes_per_url": r.get("bytes", 0) / n,
            "cold_bytes_per_url": c.get("bytes", 0) / n,
            "bytes_ratio": r.get("bytes", 0) / c["bytes"] if c.get("bytes") else 0.0,
            "confirmed": r.get("confirmed", 0), "capture_ok": r.get("capture_ok", 0)}


def run_refresh(args: argparse.Namespace, results: dict[str, Any], tmp: Path,
                table: Table) -> None:
    """The ``refresh`` section: prints its tables and fills ``results``."""
    k = args.scale
    emu = WaybackEmulator(load_recordings=False, cdx_per_minute=REAL_CDX,
                          playback_per_minute=REAL_PLAYBACK, window_seconds=60.0 / k)
    emu.start()
    try:
        truth = corpus.build(emu)
        keys = category_keys(emu, truth)
        log(f"refresh: {len(truth)} URLs; limits x{k:g}, concurrency {args.concurrency}")
        cold, refresh = run_snapcache(emu, keys, truth, tmp, k, args.concurrency)
        peer_passes = {name: run_peer(name, emu, keys, truth, k, args.concurrency)
                       for name in PEERS
                       if not args.only_tool or name in args.only_tool}
    finally:
        emu.stop()

    unchanged = unchanged_figures(cold, refresh)
    results["refresh"] = {
        "scale": k, "concurrency": args.concurrency, "unchanged_categories": list(UNCHANGED),
        "snapcache": {"cold": cold.as_dict(), "refresh": refresh.as_dict()},
        "peers": {name: {"first": a.as_dict(), "second": b.as_dict()}
                  for name, (a, b) in peer_passes.items()},
        "unchanged": unchanged,
    }
    report(results, truth, cold, refresh, peer_passes, unchanged, table)


def report(results: dict[str, Any], truth: Sequence[corpus.Truth], cold: Pass, refresh: Pass,
           peer_passes: dict[str, tuple[Pass, Pass]], unchanged: dict[str, float],
           table: Table) -> None:
    """The two tables of the section, kept in ``results``."""
    def row(name: str, p: Pass) -> list[Any]:
        return [name, f"{p.per_url('playback'):.3f}", f"{p.per_url('cdx'):.3f}",
                f"{p.kb_per_url:.2f}", f"{p.minutes:.1f}", p.count_429,
                f"{100 * p.capture_ok / p.n:.1f}%", f"{p.wall_s:.1f}"]

    s = refresh.extra["summary"]
    rows = [row("snapcache refresh", refresh)]
    rows += [row(f"{name} (2nd pass)", second) for name, (_first, second) in peer_passes.items()]
    rows.append(row("snapcache cold (reference)", cold))
    mix = Counter(t.category for t in truth)
    notes = [
        f"{cold.n} URLs: " + ", ".join(f"{c} {mix[c]}" for c in corpus.DEFAULT_MIX if mix[c]),
        "snapcache: `snapcache run --json` subprocesses; cold into a new store, then a "
        "configuration with every [cache] TTL at 0 so every record is stale",
        f"snapcache refresh: run summary confirmed {s.get('confirmed')}, refreshed "
        f"{s.get('refreshed')}; in the store {refresh.extra['confirmed_in_store']} confirmed, "
        f"{refresh.extra['refetched_in_full']} fetched in full again, "
        f"{refresh.extra['ok_kept_capture']}/{refresh.extra['ok_before']} ok records kept "
        "their capture_timestamp",
        "peers keep no store: each ran the corpus twice with the same clients, the second "
        "pass shown (first pass: " + "; ".join(
            f"{n} {a.per_url('cdx'):.3f} CDX + {a.per_url('playback'):.3f} playback/URL, "
            f"{a.kb_per_url:.2f} KB/URL" for n, (a, _b) in peer_passes.items()) + ")",
        "KB/URL: response bodies of every pool (CDX answers included), 1 KB = 1,000 bytes; "
        "headers are not counted",
        "min/1000 URLs = (CDX requests / 24 + playback requests / 480) per 1,000 URLs",
    ]
    results["refresh_table"] = table(
        "Refresh: the same URLs again, every record stale (peers: a second full pass)",
        ["tool", "playback/URL", "CDX/URL", "KB/URL", "min/1000 URLs", "429s", "capture ok",
         "wall s"], rows, notes)

    def cat_row(name: str, r: dict[str, float], c: dict[str, float]) -> list[Any]:
        n = r["n"]
        ratio = f"{100 * r.get('bytes', 0) / c['bytes']:.2f}%" if c.get("bytes") else "-"
        return [name, f"{n:.0f}", f"{r.get('confirmed', 0):.0f}",
                f"{r['capture_ok']:.0f}/{n:.0f}", f"{r.get('playback', 0) / n:.2f}",
                f"{r.get('cdx', 0) / n:.2f}", f"{projected_minutes(r, int(n)):.1f}",
                f"{r.get('bytes', 0) / n:,.0f}", f"{c.get('playback', 0) / n:.2f}",
                f"{c.get('bytes', 0) / n:,.0f}", ratio]

    rows = [cat_row(c, refresh.by_category[c], cold.by_category[c])
            for c in corpus.DEFAULT_MIX if c in refresh.by_category]
    rows.append(cat_row("unchanged (" + ", ".join(UNCHANGED) + ")",
                        unchanged_totals(refresh), unchanged_totals(cold)))
    results["refresh_category_table"] = table(
        "snapcache refresh by category (per URL of that category)",
        ["category", "URLs", "confirmed", "capture ok", "playback/URL", "CDX/URL", "min/1000",
         "bytes/URL", "cold playback/URL", "cold bytes/URL", "bytes vs cold"], rows,
        [f"issue 13's target for unchanged records: <= {TARGET_UNCHANGED_PLAYBACK} playback "
         f"requests per URL and <= {100 * TARGET_UNCHANGED_BYTES:.0f}% of the cold run's bytes",
         "confirmed: records whose last attempt only confirmed the stored capture",
         "cold: this section's snapcache cold run (the reference row above); a category's "
         "min/1000 is what a corpus made only of such URLs would cost"])


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """Rows for the benchmark's targets table (none when the section did not run)."""
    r = results.get("refresh")
    if not r:
        return []
    u = r["unchanged"]
    refresh = r["snapcache"]["refresh"]
    return [
        ("refresh of unchanged records: playback/URL", f"<= {TARGET_UNCHANGED_PLAYBACK}",
         f"{u['playback_per_url']:.3f} ({', '.join(r['unchanged_categories'])})",
         u["playback_per_url"] <= TARGET_UNCHANGED_PLAYBACK),
        ("refresh of unchanged records: bytes vs cold",
         f"<= {100 * TARGET_UNCHANGED_BYTES:.0f}%", f"{100 * u['bytes_ratio']:.2f}%",
         u["bytes_ratio"] <= TARGET_UNCHANGED_BYTES),
        ("snapcache refresh 429s (scaled)", "0", str(refresh["count_429"]),
         refresh["count_429"] == 0),
    ]
