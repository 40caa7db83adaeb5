"""snapcache benchmarks against edgi `wayback` and `waybackpy`, on one loopback archive.

Run with ``./bench/run`` (it builds bench/.venv). Everything goes to 127.0.0.1: the
Wayback emulator from tests/wayback_emulator.py, started in this process.

Sections (``--sections``, default all):

* ``cold``     cold resolution and fetch of a mixed corpus, the three tools side by side,
               under the archive's per-minute limits scaled by ``--scale``
* ``batch``    ``Fetcher.run`` (what ``snapcache run`` does) cold over the same corpus,
               against the time the scaled budgets allow, then a warm rerun
* ``refresh``  the cold corpus into a store, every record made stale by configuration and
               run again (``snapcache run`` subprocesses), beside the peers' second full
               pass, at the same scaled budgets (bench/refresh_bench.py)
* ``warm``     a second pass over 10,000 fresh records (zero requests allowed)
* ``overhead`` one ``Fetcher.fetch`` of a cached record vs a raw cache read
* ``extract``  preview throughput, PDF preview time, peak RSS on big documents
* ``serve``    ``snapcache serve``: req/s and latency of GET /v1/resources/{id} over 10,000
               records, on diskcache and on PostgreSQL (bench/serve_bench.py; PostgreSQL
               is skipped, saying why, without a server at ``--dsn``)
* ``pool``     per-document cost of the bounded extraction workers vs in-process
* ``workers``  ``snapcache worker`` on the PostgreSQL store: URLs/s with 1, 2 and 4 workers
               (no rate limit), the warm path on diskcache and PostgreSQL side by side,
               bytes per record on each (bench/workers_bench.py; needs a server, ``--dsn``)
* ``store``    stats, export, list and a warm run over stores of 10,000 and 100,000
               records, each a ``snapcache`` subprocess (bench/store_bench.py)
* ``junk``     the junk-capture classifier on its corpus (tests/data/junk): precision and
               recall per flag and overall, microseconds per page (bench/junk_bench.py);
               then the corpus resolved end to end on the emulator at the scaled limits:
               requests, bytes and minutes per URL, the extra playback requests per flagged
               URL, and whether each outcome is right (bench/junk_cost.py)

Figures are printed as tables and written to bench/results/latest.json. The targets are
compared in a final table; they are never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
import peers  # noqa: E402
import refresh_bench  # noqa: E402
import store_bench  # noqa: E402
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
from snapcache.config import Config, config_from_mapping  # noqa: E402

from tests.wayback_emulator import WaybackEmulator  # noqa: E402

TARGET_RATIO = 0.3
#: Issue 13: a warm pass over 10,000 fresh records, by fetch_many and by run, each.
TARGET_WARM_S = 1.0
#: Warm passes of each kind; the best is the figure, every one is kept.
WARM_PASSES = 3
TARGET_PDF_MS = 100.0
TARGET_RSS_MB = 200.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table(title: str, header: list[str], rows: list[list[Any]], notes: list[str] = ()) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)

    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    out = [f"\n### {title}\n", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
           line]
    for r in cells:
        out.append("  ".join(
            (c.rjust(w) if i else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths,
                                                                                strict=True))
        ))
    out += [f"  * {n}" for n in notes]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def snapcache_config(base_url: str, tmp: Path, *, cdx_pm: float, playback_pm: float,
                     pause: float) -> Config:
    return config_from_mapping({
        "archive": {"base_url": base_url, "availability_url": f"{base_url}/wayback/available"},
        "rates": {"cdx_per_minute": cdx_pm, "playback_per_minute": playback_pm,
                  "pause_on_429": pause, "state_path": str(tmp / "ratelimit.sqlite")},
        "cache": {"path": str(tmp / "store")},
    }, source="bench")


# ------------------------------------------------------------------------------------------
# cold


def run_cold(args: argparse.Namespace, results: dict[str, Any]) -> None:
    k = args.scale
    window = 60.0 / k
    emu = WaybackEmulator(load_recordings=False, cdx_per_minute=REAL_CDX,
                          playback_per_minute=REAL_PLAYBACK, window_seconds=window)
    emu.start()
    try:
        truth = corpus.build(emu)
        urls = [t.url for t in truth]
        n = len(urls)
        keys = category_keys(emu, truth)
        mix = Counter(t.category for t in truth)
        log(f"cold: {n} URLs {dict(mix)}; emulator limits {REAL_CDX} CDX and {REAL_PLAYBACK} "
            f"playback per {window:.2f} s window (= real limits x{k})")

        tools: list[tuple[str, Callable[[], Callable[[list[str]], list[peers.Result]]], str]] = []

        def snap_factory() -> Callable[[list[str]], list[peers.Result]]:
            def go(us: list[str]) -> list[peers.Result]:
                with tempfile.TemporaryDirectory(prefix="bench-snap-") as d:
                    cfg = snapcache_config(emu.base_url, Path(d), cdx_pm=POLITE_CDX * k,
                                           playback_pm=POLITE_PLAYBACK * k, pause=60.0 / k)
                    with Fetcher(cfg) as f:
                        recs = f.fetch_many(us, concurrency=args.concurrency)
                out = []
                for r in recs:
                    if isinstance(r, Exception):
                        out.append(peers.Result("error", error=str(r)))
                    else:
                        out.append(peers.Result(r.status, r.capture_timestamp,
                                                r.content_length or 0, r.error))
                return out
            return go

        def edgi_factory() -> Callable[[list[str]], list[peers.Result]]:
            def go(us: list[str]) -> list[peers.Result]:
                one, close = peers.edgi_runner(emu.base_url, POLITE_CDX * k / 60,
                                               POLITE_PLAYBACK * k / 60)
                try:
                    return peers.run_threads(one, us, args.concurrency)
                finally:
                    close()
            return go

        def wbpy_factory(paced: bool
                         ) -> Callable[[], Callable[[list[str]], list[peers.Result]]]:
            def factory() -> Callable[[list[str]], list[peers.Result]]:
                def go(us: list[str]) -> list[peers.Result]:
                    pace = (POLITE_CDX * k / 60, POLITE_PLAYBACK * k / 60) if paced else None
                    one, close = peers.waybackpy_runner(emu.base_url, pace=pace)
                    try:
                        return peers.run_threads(one, us, args.concurrency)
                    finally:
                        close()
                return go
            return factory

        tools.append(("snapcache", snap_factory,
                      f"Fetcher.fetch_many(concurrency={args.concurrency}); rates 80% of the "
                      "scaled limits, pause_on_429 scaled, other settings default"))
        tools.append(("edgi wayback", edgi_factory,
                      "search(url, filter_field='statuscode:200'), last row, "
                      "get_memento(row, mode=original); RateLimit 80% of the scaled limits"))
        tools.append(("waybackpy", wbpy_factory(False),
                      "WaybackMachineCDXServerAPI(url, filters=['statuscode:200']).newest(), "
                      "then requests.get(.../web/<ts>id_/<original>); waybackpy has no rate "
                      "limit, so none is applied"))
        tools.append(("waybackpy paced", wbpy_factory(True),
                      "as waybackpy, plus the pacing a careful user would add: edgi-style "
                      "RateLimit at 80% of the scaled limits before each CDX call and each GET"))

        per_tool: dict[str, Any] = {}
        for name, factory, how in tools:
            if args.only_tool and name not in args.only_tool:
                continue
            time.sleep(window)  # let the previous tool's window drain
            emu.reset_rate_limits()
            emu.reset_counters()
            log(f"cold: {name} ...")
            go = factory()
            t0 = time.perf_counter()
            res = go(urls)
            wall = time.perf_counter() - t0
            counts = dict(emu.counts)
            reqs = list(emu.requests)
            n429 = emu.count_429
            ok_out = sum(r.outcome == t.outcome for r, t in zip(res, truth, strict=True))
            ok_cap = sum(r.outcome == t.outcome and r.capture == t.capture
                         for r, t in zip(res, truth, strict=True))
            by_cat: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
            for r, t in zip(res, truth, strict=True):
                c = by_cat[t.category]
                c["n"] += 1
                c["outcome_ok"] += r.outcome == t.outcome
                c["capture_ok"] += r.outcome == t.outcome and r.capture == t.capture
            for pool, _method, path in reqs:
                by_cat[category_of_request(path, keys)][pool] += 1
            outcomes = Counter(r.outcome for r in res)
            errors = Counter((r.error or "")[:70] for r in res if r.outcome == "error")
            per_tool[name] = {
                "how": how, "n": n, "wall_s": wall, "counts": counts, "count_429": n429,
                "outcome_correct_pct": 100 * ok_out / n, "capture_correct_pct": 100 * ok_cap / n,
                "cdx_per_url": counts["cdx"] / n, "playback_per_url": counts["playback"] / n,
                "availability_per_url": counts["availability"] / n,
                "projected_min_per_1000": projected_minutes(counts, n),
                "outcomes": dict(outcomes), "top_errors": errors.most_common(3),
                "by_category": {c: dict(v) for c, v in by_cat.items()},
            }
            log(f"cold: {name}: {wall:.1f} s, {counts}, 429s {n429}, outcomes {dict(outcomes)}")
    finally:
        emu.stop()

    snap = per_tool.get("snapcache")
    rows = []
    for name, r in per_tool.items():
        ratio = snap["projected_min_per_1000"] / r["projected_min_per_1000"] if snap else None
        rows.append([name, f"{r['outcome_correct_pct']:.1f}%", f"{r['capture_correct_pct']:.1f}%",
                     f"{r['cdx_per_url']:.3f}", f"{r['playback_per_url']:.3f}", r["count_429"],
                     f"{r['wall_s']:.1f}", f"{r['projected_min_per_1000']:.1f}",
                     "-" if name == "snapcache" or ratio is None else f"{ratio:.2f}"])
    notes = [f"{n} URLs: " + ", ".join(f"{c} {v}" for c, v in mix.items()),
             f"limits scaled x{k}: emulator allows {REAL_CDX} CDX / {REAL_PLAYBACK} playback per "
             f"{window:.2f} s; tools budgeted at 80% of that",
             "projected = (CDX requests / 24 + playback requests / 480) per 1,000 URLs, i.e. "
             "minutes at the real limits' 80%; requests answered 429 count too",
             "ratio = snapcache's projected minutes / this tool's"]
    notes += [f"{name}: {r['how']}" for name, r in per_tool.items()]
    results["cold_table"] = table(
        "Cold resolution and fetch (same corpus, same scaled budgets)",
        ["tool", "outcome ok", "capture ok", "CDX/URL", "playback/URL", "429s", "wall s",
         "min/1000 URLs", "snapcache ratio"], rows, notes)

    cats = list(corpus.DEFAULT_MIX)
    rows = []
    for name, r in per_tool.items():
        for c in cats:
            b = r["by_category"].get(c)
            if not b:
                continue
            rows.append([name, c, f"{b['outcome_ok']:.0f}/{b['n']:.0f}",
                         f"{b['capture_ok']:.0f}/{b['n']:.0f}",
                         f"{b.get('cdx', 0) / b['n']:.2f}", f"{b.get('playback', 0) / b['n']:.2f}",
                         f"{projected_minutes(b, int(b['n'])):.1f}"])
    results["cold_category_table"] = table(
        "Cold run by category (requests per URL of that category)",
        ["tool", "category", "outcome ok", "capture ok", "CDX/URL", "playback/URL",
         "min/1000"], rows,
        ["a category's min/1000 is what a corpus made only of such URLs would cost"])
    results["cold"] = per_tool


# ------------------------------------------------------------------------------------------
# warm + overhead


def run_warm(args: argparse.Namespace, results: dict[str, Any], tmp: Path) -> None:
    emu = WaybackEmulator(load_recordings=False)
    emu.start()
    try:
        urls = corpus.build_warm(emu, args.warm_n)
        cfg = snapcache_config(emu.base_url, tmp, cdx_pm=1e7, playback_pm=1e7, pause=1.0)
        log(f"warm: pre-filling {len(urls)} records from the emulator (no limits) ...")
        t0 = time.perf_counter()
        with Fetcher(cfg) as f:
            recs = f.fetch_many(urls, concurrency=16)
        fill = time.perf_counter() - t0
        bad = [r for r in recs if isinstance(r, Exception) or r.status != "ok"]
        fill_counts = dict(emu.counts)
        emu.reset_counters()
        log(f"warm: pre-fill {fill:.1f} s, {fill_counts}, {len(bad)} not ok; timing "
            f"{WARM_PASSES} passes of each")
        # Each figure is the best of WARM_PASSES passes, fetch_many and run in turn, each in
        # a new Fetcher; every pass is kept in the results. On a machine shared with other
        # jobs one pass varies by a third from the next, and others' work only ever adds.
        pass_samples: list[float] = []
        run_samples: list[float] = []
        # The same run with an on_result that takes every fresh line's record: it reads
        # and parses each record, where a run without one plans from the store's facts.
        records_samples: list[float] = []
        opens: list[float] = []
        ok2 = len(urls)
        run_fresh: int | None = None
        run_note = "Fetcher.run: every pass skipped every URL as fresh"
        for _ in range(WARM_PASSES):
            t0 = time.perf_counter()
            f = Fetcher(cfg)
            opens.append(time.perf_counter() - t0)
            try:
                t1 = time.perf_counter()
                recs2 = f.fetch_many(urls)
                pass_samples.append(time.perf_counter() - t1)
            finally:
                f.close()
            ok2 = min(ok2, sum(not isinstance(r, Exception) and r.status == "ok"
                               for r in recs2))
            del recs2
            with Fetcher(cfg) as f:
                t1 = time.perf_counter()
                summary = f.run([u + "\n" for u in urls])
                run_samples.append(time.perf_counter() - t1)
            if summary.skipped_fresh != len(urls):
                run_note = f"Fetcher.run: only {summary.skipped_fresh} skipped as fresh"
            run_fresh = summary.skipped_fresh if run_fresh is None else min(
                run_fresh, summary.skipped_fresh)
            given: list[int] = [0]

            def take(event: Any, given: list[int] = given) -> None:
                given[0] += event.record is not None

            with Fetcher(cfg) as f:
                t1 = time.perf_counter()
                summary = f.run([u + "\n" for u in urls], on_result=take)
                records_samples.append(time.perf_counter() - t1)
            if given[0] != len(urls):
                run_note = f"Fetcher.run(on_result): only {given[0]} records given"
        t_open, t_pass, run_s = min(opens), min(pass_samples), min(run_samples)
        # Requests during the passes: fetch_many and run alike must make none.
        total_requests = sum(emu.counts.values())
        run_requests = total_requests

        # overhead: one Fetcher.fetch of a cached record vs the cache read beneath it
        from snapcache.cache import SnapshotCache
        from snapcache.ids import resource_id

        sample = urls[: args.overhead_n]
        with Fetcher(cfg) as f:
            for u in sample[:50]:
                f.fetch(u)
            fetch_us = []
            for u in sample:
                s = time.perf_counter_ns()
                f.fetch(u)
                fetch_us.append((time.perf_counter_ns() - s) / 1000)
        with SnapshotCache(cfg.cache_path) as store:
            get_us, full_us = [], []
            rids = [resource_id(u) for u in sample]
            for rid in rids[:50]:
                store.get(rid)
            for u, rid in zip(sample, rids, strict=True):
                s = time.perf_counter_ns()
                store.get(rid)
                get_us.append((time.perf_counter_ns() - s) / 1000)
                s = time.perf_counter_ns()
                store.get(store.resource_id_for_url(u) or rid)
                full_us.append((time.perf_counter_ns() - s) / 1000)
        overhead_requests = sum(emu.counts.values())
    finally:
        emu.stop()

    results["warm"] = {
        "n": len(urls), "prefill_s": fill, "prefill_counts": fill_counts,
        "prefill_not_ok": len(bad), "open_s": t_open, "pass_s": t_pass,
        "requests_during_pass": total_requests, "ok": ok2,
        "urls_per_s": len(urls) / t_pass, "run_s": run_s, "run_fresh": run_fresh,
        "run_requests": run_requests, "run_note": run_note,
        "pass_samples": pass_samples, "run_samples": run_samples,
        "run_records_s": min(records_samples), "run_records_samples": records_samples,
    }
    valid = total_requests == 0 and ok2 == len(urls)
    results["warm"]["valid"] = valid
    results["warm_table"] = table(
        "Warm run (records fresh in the store)",
        ["figure", "value"],
        [["URLs", len(urls)],
         [f"Fetcher.fetch_many(urls) wall s, best of {WARM_PASSES}", f"{t_pass:.2f}"],
         ["  every pass", " / ".join(f"{x:.2f}" for x in pass_samples)],
         ["URLs per second", f"{len(urls) / t_pass:,.0f}"],
         ["records ok (worst pass)", f"{ok2}/{len(urls)}"],
         [f"Fetcher.run(lines) wall s, best of {WARM_PASSES}", f"{run_s:.2f}"],
         ["  every pass", " / ".join(f"{x:.2f}" for x in run_samples)],
         [f"Fetcher.run(lines, on_result) with every record, best of {WARM_PASSES}",
          f"{min(records_samples):.2f}"],
         ["  every pass", " / ".join(f"{x:.2f}" for x in records_samples)],
         ["requests sent during every pass", total_requests],
         ["Fetcher() open s (not in the pass)", f"{t_open:.3f}"],
         ["pre-fill (cold, no limits, concurrency 16) s", f"{fill:.1f}"],
         ["pre-fill URLs per second", f"{len(urls) / fill:,.0f}"]],
        ["pre-fill: every record fetched from the emulator once, 2 playback requests each "
         "(budgets raised); then fetch_many and Fetcher.run over the same URLs in turn, "
         f"{WARM_PASSES} times, each in a new Fetcher",
         "pre-fill speed is bounded by the in-process emulator (stdlib http.server sharing "
         "the GIL, ~140 requests/s on its own), not a figure of snapcache's",
         run_note,
         "VALID: zero requests and every record ok" if valid else
         "INVALID: the pass sent requests or returned non-ok records"])

    med = statistics.median
    results["overhead"] = {
        "n": len(sample), "fetch_cached_median_us": med(fetch_us),
        "fetch_cached_p95_us": sorted(fetch_us)[int(0.95 * (len(fetch_us) - 1))],
        "cache_get_median_us": med(get_us), "cache_url_lookup_get_median_us": med(full_us),
        "requests": overhead_requests,
    }
    o = results["overhead"]
    results["overhead_table"] = table(
        "Library overhead (cached record, median of "
        f"{len(sample)})",
        ["operation", "median us", "vs raw read"],
        [["Fetcher.fetch(url), fresh record", f"{o['fetch_cached_median_us']:.0f}",
          f"{o['fetch_cached_median_us'] / o['cache_get_median_us']:.1f}x"],
         ["SnapshotCache.resource_id_for_url + get", f"{o['cache_url_lookup_get_median_us']:.0f}",
          f"{o['cache_url_lookup_get_median_us'] / o['cache_get_median_us']:.1f}x"],
         ["SnapshotCache.get(resource_id) (raw read)", f"{o['cache_get_median_us']:.0f}", "1.0x"]],
        [f"p95 of Fetcher.fetch: {o['fetch_cached_p95_us']:.0f} us; "
         f"requests sent: {o['requests']}"])


# ------------------------------------------------------------------------------------------
# extraction


def run_extract(args: argparse.Namespace, results: dict[str, Any], tmp: Path) -> None:
    import extract_bench

    log("extract: ...")
    r = extract_bench.run(tmp, log=log)
    results["extract"] = r
    results["extract_table"] = table(
        "Extraction",
        ["figure", "value"],
        [[f"HTML docs/s, 1 thread ({r['html_doc_kb']:.0f} KB pages)",
          f"{r['html_docs_per_s_1']:,.0f}"],
         ["HTML docs/s, 2 processes", f"{r['html_docs_per_s_pool2']:,.0f}"],
         [f"PDF docs/s, 1 thread ({r['pdf_doc_pages']}-page, {r['pdf_doc_kb']:.0f} KB)",
          f"{r['pdf_docs_per_s_1']:,.0f}"],
         ["PDF docs/s, 2 processes", f"{r['pdf_docs_per_s_pool2']:,.0f}"],
         ["PDF preview median ms (10-page docs)", f"{r['pdf_preview_median_ms']:.1f}"],
         ["PDF preview p95 ms (10-page docs)", f"{r['pdf_preview_p95_ms']:.1f}"],
         [f"{r['big_pdf_mb']:.0f} MB PDF from a path: median ms (3 runs)",
          f"{r['big_pdf_median_ms']:.1f}"],
         [f"{r['big_pdf_mb']:.0f} MB PDF: peak RSS MB", f"{r['big_pdf_peak_rss_mb']:.0f}"],
         [f"{r['big_html_mb']:.0f} MB one-line HTML from a path: s",
          f"{r['big_html']['seconds']:.2f}"],
         [f"{r['big_html_mb']:.0f} MB one-line HTML: peak RSS MB",
          f"{r['big_html_peak_rss_mb']:.0f}"],
         ["RSS after importing the extractor MB", f"{r['baseline_rss_mb']:.0f}"]],
        [f"{os.cpu_count()} CPUs; the 2-process pool is warmed before timing",
         f"big PDF note: {r['big_pdf']['note']}", f"big HTML note: {r['big_html']['note']}",
         "peak RSS = VmHWM of a fresh subprocess that imports fetcher.extract and extracts "
         "once (ru_maxrss is not used: on Linux it carries the parent's peak across exec)"])


def run_pool(args: argparse.Namespace, results: dict[str, Any]) -> None:
    import extract_bench

    log("pool: ...")
    r = extract_bench.pool_overhead(log=log)
    results["pool"] = r
    results["pool_table"] = table(
        "Extraction in the bounded worker pool (one warm worker) vs in-process",
        ["document", "in-process ms", "pool ms", "overhead ms", "CPU ms in-process",
         "CPU ms pool"],
        [[f"HTML page ({r['html_doc_kb']:.0f} KB), median", f"{r['html_inproc_ms']:.2f}",
          f"{r['html_pool_ms']:.2f}", f"{r['html_overhead_ms']:.2f}",
          f"{r['html_inproc_cpu_ms']:.2f}", f"{r['html_pool_cpu_ms']:.2f}"],
         [f"10-page PDF ({r['pdf_doc_kb']:.0f} KB), median", f"{r['pdf_inproc_ms']:.2f}",
          f"{r['pdf_pool_ms']:.2f}", f"{r['pdf_overhead_ms']:.2f}",
          f"{r['pdf_inproc_cpu_ms']:.2f}", f"{r['pdf_pool_cpu_ms']:.2f}"]],
        ["wall ms: medians, each document in-process then through the pool in turn; CPU ms: "
         "means, the caller's alone vs the caller's plus the worker's (the machine's load "
         f"does not inflate these; load average at the end: {os.getloadavg()[0]:.1f})",
         f"first document on a new pool (starts a worker): {r['first_doc_cold_pool_ms']:.0f} ms",
         f"PDF bomb ({r['bomb_kb']:.0f} KB, one page inflating to 400 MB): stopped in "
         f"{r['bomb_s']:.2f} s, the caller's RSS grew {r['bomb_parent_rss_growth_mb']:.0f} MB; "
         f"note: {r['bomb_note']}"])


# ------------------------------------------------------------------------------------------
# junk captures


def run_junk(args: argparse.Namespace, results: dict[str, Any]) -> None:
    import junk_bench

    log("junk: ...")
    r = junk_bench.run(log=log)
    results["junk"] = r
    notes = [f"{r['pages']} pages written for the corpus, {r['look_alikes']} of them look-alikes "
             "that must get no flag; precision must be 1.000 (a false flag hides a real capture)",
             f"classify_capture: {r['us_per_page_median']:.1f} us of CPU per page (median of "
             f"{r['rounds']} rounds over the corpus, extraction not included), slowest corpus "
             f"page {r['us_slowest_corpus_page']:.1f} us, a page that makes every rule read "
             f"all it may (64 KiB head, 6,000 characters) {r['us_worst_case_page']:.1f} us"]
    notes += [f"MISTAKE {m['file']}: expected {m['expected']}, got {m['got']}"
              for m in r["mistakes"]]
    results["junk_table"] = table(
        "Junk captures: the classifier on its corpus",
        ["flag", "pages", "tp", "fp", "fn", "precision", "recall"],
        junk_bench.rows(r), notes)

    import junk_cost

    k = args.scale

    def config_for(base_url: str, tmp: Path) -> Config:
        return snapcache_config(base_url, tmp, cdx_pm=POLITE_CDX * k,
                                playback_pm=POLITE_PLAYBACK * k, pause=60.0 / k)

    c = junk_cost.run(scale=k, concurrency=args.concurrency, config_for=config_for, log=log)
    results["junk_cost"] = c
    results["junk_cost_table"] = table(
        "Junk captures: what stepping back costs (requests per URL, by group and flag)",
        junk_cost.HEADER, junk_cost.rows(c), junk_cost.notes(c))


# ------------------------------------------------------------------------------------------
# targets


def targets(results: dict[str, Any]) -> None:
    rows: list[list[Any]] = []

    def row(name: str, target: str, value: str, met: bool | None) -> None:
        rows.append([name, target, value, "n/a" if met is None else ("met" if met else "MISSED")])

    cold = results.get("cold", {})
    snap = cold.get("snapcache")
    for peer in ("edgi wayback", "waybackpy", "waybackpy paced"):
        p = cold.get(peer)
        if not (snap and p):
            continue
        ratio = snap["projected_min_per_1000"] / p["projected_min_per_1000"]
        as_good = (snap["outcome_correct_pct"] >= p["outcome_correct_pct"]
                   and snap["capture_correct_pct"] >= p["capture_correct_pct"])
        row(f"min/1000 URLs vs {peer}", f"<= {TARGET_RATIO}x, correctness >=",
            f"{ratio:.2f}x ({snap['projected_min_per_1000']:.1f} vs "
            f"{p['projected_min_per_1000']:.1f}); capture ok {snap['capture_correct_pct']:.0f}% "
            f"vs {p['capture_correct_pct']:.0f}%",
            ratio <= TARGET_RATIO and as_good)
    if snap:
        row("snapcache 429s (defaults, scaled)", "0", str(snap["count_429"]),
            snap["count_429"] == 0)
    for name, target, value, met in refresh_bench.target_rows(results):
        row(name, target, value, met)
    warm = results.get("warm")
    if warm:
        row(f"warm {warm['n']:,} records, fetch_many", f"< {TARGET_WARM_S} s",
            f"{warm['pass_s']:.2f} s, {warm['requests_during_pass']} requests",
            warm["valid"] and warm["pass_s"] < TARGET_WARM_S)
        if warm.get("run_s") is not None:
            row(f"warm {warm['n']:,} records, Fetcher.run", f"< {TARGET_WARM_S} s",
                f"{warm['run_s']:.2f} s, {warm['run_requests']} requests",
                warm["run_requests"] == 0 and warm["run_s"] < TARGET_WARM_S)
    sizes = results.get("store")
    if sizes:
        big = sizes[-1]
        for name, limit in store_bench.TARGETS_S.items():
            row(f"snapcache {name} at {big['n']:,} records", f"< {limit:g} s",
                f"{big[name]['s']:.2f} s (CPU {big[name]['cpu_s']:.2f} s)",
                big[name]["returncode"] == 0 and big[name]["s"] < limit)
    ex = results.get("extract")
    if ex:
        row("PDF preview median (10-page docs)", f"< {TARGET_PDF_MS:.0f} ms",
            f"{ex['pdf_preview_median_ms']:.1f} ms", ex["pdf_preview_median_ms"] < TARGET_PDF_MS)
        row("PDF preview median (80 MB PDF)", f"< {TARGET_PDF_MS:.0f} ms",
            f"{ex['big_pdf_median_ms']:.1f} ms", ex["big_pdf_median_ms"] < TARGET_PDF_MS)
        row("peak RSS, 80 MB PDF", f"< {TARGET_RSS_MB:.0f} MB",
            f"{ex['big_pdf_peak_rss_mb']:.0f} MB", ex["big_pdf_peak_rss_mb"] < TARGET_RSS_MB)
        row("peak RSS, 30 MB one-line HTML", f"< {TARGET_RSS_MB:.0f} MB",
            f"{ex['big_html_peak_rss_mb']:.0f} MB", ex["big_html_peak_rss_mb"] < TARGET_RSS_MB)
    junk = results.get("junk")
    if junk:
        row("junk classifier precision on its corpus", "1.000 (no false flag)",
            f"{junk['precision']:.3f} ({junk['false_flags']} false flags, recall "
            f"{junk['recall']:.3f})", junk["false_flags"] == 0)
    cost = results.get("junk_cost")
    if cost:
        right = ", ".join(f"{g} {t['right']}/{t['n']}" for g, t in cost["groups"].items())
        row("junk resolution: outcomes right", "all",
            f"{right}; +{cost['extra_playback_per_flagged_url']:.2f} playback, "
            f"{cost['extra_cdx_per_flagged_url']:+.2f} CDX per flagged URL", cost["all_right"])
    results["targets_table"] = table("Targets", ["figure", "target", "measured", "result"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections",
                    default="cold,batch,refresh,warm,extract,pool,serve,workers,store,junk",
                    help="comma list of cold, batch, refresh, warm (includes overhead), extract, "
                    "pool, serve, workers, store, junk")
    ap.add_argument("--batch-concurrency", type=int, default=8,
                    help="concurrency of the batch (Fetcher.run) section")
    ap.add_argument("--scale", type=float, default=12.0,
                    help="speed-up of the archive's per-minute limits (<= 15: see README)")
    ap.add_argument("--concurrency", type=int, default=4,
                    help="concurrent URLs per tool in the cold run (snapcache's default is 4)")
    ap.add_argument("--warm-n", type=int, default=10_000)
    ap.add_argument("--overhead-n", type=int, default=2000)
    ap.add_argument("--only-tool", action="append",
                    help="cold and refresh runs: only these tools (the refresh section runs "
                    "snapcache whatever this says)")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    import serve_bench
    import workers_bench

    serve_bench.add_arguments(ap)
    workers_bench.add_arguments(ap)
    store_bench.add_arguments(ap)
    args = ap.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}

    import importlib.metadata as md

    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "scale": args.scale, "concurrency": args.concurrency,
        "versions": {p: md.version(p) for p in ("snapcache", "wayback", "waybackpy", "httpx",
                                                "requests", "pypdfium2", "selectolax")},
    }
    print(f"# snapcache benchmarks ({results['when']}, Python {results['python']}, "
          f"{results['cpus']} CPUs; " +
          ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ")")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="snapcache-bench-") as d:
        tmp = Path(d)
        if "cold" in sections:
            run_cold(args, results)
        if "batch" in sections:
            from batch_bench import run_batch

            (tmp / "batch").mkdir()
            run_batch(args, results, tmp / "batch")
        if "refresh" in sections:
            (tmp / "refresh").mkdir()
            refresh_bench.run_refresh(args, results, tmp / "refresh", table)
        if "warm" in sections:
            (tmp / "warm").mkdir()
            run_warm(args, results, tmp / "warm")
        if "extract" in sections:
            (tmp / "extract").mkdir()
            run_extract(args, results, tmp / "extract")
        if "serve" in sections:
            (tmp / "serve").mkdir()
            serve_bench.run_serve(args, results, tmp / "serve", table)
        if "pool" in sections:
            run_pool(args, results)
        if "workers" in sections:
            (tmp / "workers").mkdir()
            workers_bench.run_workers(args, results, tmp / "workers")
        if "store" in sections:
            store_bench.run_store(args, results, tmp / "store")
        if "junk" in sections:
            run_junk(args, results)
    targets(results)
    results["total_s"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\n(total {results['total_s']:.0f} s; JSON written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
