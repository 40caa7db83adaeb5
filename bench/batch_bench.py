"""Batch runs (`Fetcher.run`, what `snapcache run` does): a cold run over the benchmark
corpus at scaled budgets, measured against the time those budgets allow, then a warm rerun.

The time the budgets allow is set by the busiest pool: a pool with rate r per second and a
bucket of b tokens needs at least (requests - b) / r seconds for its requests. A run that
keeps every pool that busy takes exactly that long; the ratio wall / allowed says how close
snapcache's pipelining gets (issue target: within 1.2x).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from snapcache import Fetcher  # noqa: E402
from snapcache.config import config_from_mapping  # noqa: E402
from snapcache.transport import RateLimiter  # noqa: E402

from tests.wayback_emulator import WaybackEmulator  # noqa: E402

REAL_CDX, REAL_PLAYBACK = 30, 600
POLITE = 0.8


def allowed_seconds(requests: dict[str, int], per_minute: dict[str, float]) -> float:
    """The least time the budgets allow for these requests (the busiest pool decides)."""
    worst = 0.0
    for pool, n in requests.items():
        rate = per_minute.get(pool)
        if not rate:
            continue
        burst = RateLimiter.burst(rate)
        worst = max(worst, max(0.0, n - burst) / (rate / 60.0))
    return worst


def run_batch(args: argparse.Namespace, results: dict[str, Any], tmp: Path) -> None:
    """Cold then warm `Fetcher.run` over the corpus; prints a table, fills ``results``."""
    k = args.scale
    emu = WaybackEmulator(load_recordings=False, cdx_per_minute=REAL_CDX,
                          playback_per_minute=REAL_PLAYBACK, window_seconds=60.0 / k)
    emu.start()
    rows: list[tuple[str, str]] = []
    try:
        truth = corpus.build(emu)
        source = tmp / "sources.txt"
        source.write_text("\n".join(t.url for t in truth) + "\n", encoding="utf-8")
        per_minute = {"cdx": POLITE * REAL_CDX * k, "playback": POLITE * REAL_PLAYBACK * k}
        config = config_from_mapping({
            "archive": {"base_url": emu.base_url,
                        "availability_url": f"{emu.base_url}/wayback/available"},
            "rates": {"cdx_per_minute": per_minute["cdx"],
                      "playback_per_minute": per_minute["playback"],
                      "pause_on_429": 60.0 / k, "state_path": str(tmp / "ratelimit.sqlite")},
            "cache": {"path": str(tmp / "store")},
            "run": {"concurrency": args.batch_concurrency},
        }, source="bench")
        with Fetcher(config) as f:
            started = time.perf_counter()
            cold = f.run(source)
            wall = time.perf_counter() - started
            requests = dict(cold.requests)
            allowed = allowed_seconds(requests, per_minute)
            correct = sum(
                1 for t in truth
                if (r := f.lookup(t.url)) is not None and r.status == t.outcome
                and (t.capture is None or r.capture_timestamp == t.capture)
            )
            emu.reset_counters()
            started = time.perf_counter()
            warm = f.run(source)
            warm_wall = time.perf_counter() - started
            warm_requests = sum(emu.counts.values())
            warm_fresh = warm.skipped_fresh
        n = len(truth)
        ratio = wall / allowed if allowed else float("nan")
        rows = [
            ("URLs (cold)", f"{n}"),
            ("correct outcome and capture", f"{correct}/{n}"),
            ("requests per pool", ", ".join(f"{p} {c}" for p, c in sorted(requests.items()))),
            ("429s met", f"{cold.rate_limited} (emulator answered {emu.count_429})"),
            ("wall s", f"{wall:.1f}"),
            ("time the budgets allow s", f"{allowed:.1f}"),
            ("wall / allowed (target <= 1.2)", f"{ratio:.2f}"),
        ]
        for pool, count in sorted(requests.items()):
            rate = per_minute.get(pool)
            if rate:
                achieved = count / wall * 60.0
                rows.append((f"{pool} rate achieved / allowed",
                             f"{achieved:.0f} / {rate:.0f} per min = {achieved / rate:.2f}"))
        rows += [
            ("warm rerun wall s", f"{warm_wall:.2f}"),
            ("warm rerun requests", f"{warm_requests} ({warm_fresh} skipped as fresh)"),
        ]
        results["batch"] = {
            "urls": n, "correct": correct, "requests": requests, "wall_s": wall,
            "allowed_s": allowed, "wall_over_allowed": ratio, "rate_limited": cold.rate_limited,
            "emulator_429": emu.count_429, "warm_wall_s": warm_wall,
            "warm_requests": warm_requests, "scale": k,
            "concurrency": args.batch_concurrency,
        }
    finally:
        emu.stop()
    width = max(len(a) for a, _ in rows)
    print(f"\n### Batch run (Fetcher.run, limits scaled x{k:g}, concurrency "
          f"{args.batch_concurrency})\n")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=12.0)
    ap.add_argument("--batch-concurrency", type=int, default=8)
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="snapcache-batch-") as d:
        run_batch(args, results, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
