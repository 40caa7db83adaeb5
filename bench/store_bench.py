"""The store at scale: ``stats``, ``export``, ``list`` and a warm ``run`` over stores of
10,000 and 100,000 records, each command a ``snapcache`` subprocess.

Stores are written through the store's public API (``ensure_identity`` then
``save_attempt``, as the engine does), with synthetic ok records of about 2 KB of text each,
all fresh. The warm run reads a source list of every URL and must make no request: its
archive is a loopback port nothing listens on. Peak RSS and CPU time are each
subprocess's own (GNU time), and a store's size is that of its folder after it is closed.

Run alone with ``python bench/store_bench.py --store-sizes 10000,100000``, or as the
``store`` section of ``bench/bench.py``. Building a store of 100,000 records takes a few
minutes, so built stores are kept under ``--store-keep`` (when given) and reused.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from snapcache.cache import Record, SnapshotCache, utc_now_iso  # noqa: E402

#: The issue's targets at 100,000 records, and the most a figure may grow from 10,000.
TARGETS_S = {"stats": 1.0, "export": 10.0, "run": 10.0}
TARGET_RSS_MB = 200.0
TARGET_GROWTH = 12.0

_WORDS = ("archive", "capture", "citation", "record", "preview", "resource", "source",
          "wayback", "fetch", "store", "report", "model", "weights", "policy", "public",
          "open", "access", "history", "snapshot", "text")


def url_of(i: int) -> str:
    """The URL of synthetic record ``i``."""
    return f"https://bench.example/{i // 1000}/document-{i}.html"


def resource_id(url: str) -> str:
    """snapcache's resource ID of ``url`` (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def text_of(i: int, size: int = 2000) -> str:
    """About ``size`` characters of words, different for each record."""
    words: list[str] = []
    n = 0
    k = i
    while n < size:
        word = _WORDS[k % len(_WORDS)]
        k = (k * 1103515245 + 12345) & 0x7FFFFFFF
        words.append(word)
        n += len(word) + 1
    return " ".join(words)[:size]


def build_store(path: Path, n: int) -> float:
    """Write ``n`` fresh ok records into a new store at ``path``; returns seconds taken."""
    t0 = time.perf_counter()
    with SnapshotCache(path) as store:
        for i in range(n):
            url = url_of(i)
            rid = resource_id(url)
            sid = store.ensure_identity(rid, url, mint=lambda i=i: f"sid_{i:010d}")
            now = utc_now_iso()
            text = text_of(i)
            stamp = f"2026{1 + i % 12:02d}{1 + i % 28:02d}120000"
            record = Record(
                resource_id=rid, stable_id=sid, url=url, status="ok", archived_status=200,
                capture_timestamp=stamp,
                archive_url=f"https://web.archive.org/web/{stamp}/{url}",
                raw_url=f"https://web.archive.org/web/{stamp}id_/{url}",
                original_url=url, fetched_at=now, content_type="text/html",
                content_length=8000 + i % 5000, title=f"Document {i}: {text[:40]}",
                preview=text, text_length=len(text), last_attempt_at=now, attempts=1,
                last_outcome="ok", archive="wayback", orig_content_type="text/html",
                sha256=hashlib.sha256(text.encode()).hexdigest(), created_at=now,
            )
            store.save_attempt(record, text=text, history_entry={
                "at": now, "outcome": "ok", "capture_timestamp": stamp,
                "archived_status": 200, "error": None,
            })
    return time.perf_counter() - t0


def read_through(path: Path) -> None:
    """Read every file under ``path`` once, so that the commands find the store in the
    OS's page cache, as they do right after it is built: a store reused from an earlier
    run may have been dropped from it meanwhile (the first command then reads 0.9 GB from
    disk, which times the disk, not snapcache)."""
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with file.open("rb") as fh:
            while fh.read(1 << 24):
                pass


def folder_bytes(path: Path) -> int:
    """Bytes of every regular file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class Timed:
    """One subprocess: wall seconds, seconds to its first line of output, CPU seconds and
    peak RSS (both its own, see :func:`timed`), lines written and exit code."""

    seconds: float
    first_line_s: float | None
    cpu_s: float
    rss_mb: float
    lines: int
    returncode: int


def snapcache_cmd() -> list[str]:
    """The ``snapcache`` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("snapcache")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snapcache.cli"]


#: GNU time, which reports its child's peak RSS and CPU time (see :func:`timed`).
GNU_TIME: Final = "/usr/bin/time"


def timed(args: Sequence[str]) -> Timed:
    """Run ``snapcache args``; its stdout is read (timing its first line), counted in lines
    and dropped, its stderr kept for a failure's message.

    Peak RSS and CPU time are the command's own, as GNU time reports them. Asked of this
    process directly (``os.wait4``, or ``getrusage(RUSAGE_CHILDREN)``), the peak would be at
    least this process's own size: the child is a copy of it until it starts snapcache.
    Without GNU time, that is what is reported.
    """
    use_time = os.access(GNU_TIME, os.X_OK)
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as usage_file:
        wrapper = [GNU_TIME, "-o", usage_file.name, "-f", "%M %U %S"] if use_time else []
        t0 = time.perf_counter()
        proc = subprocess.Popen([*wrapper, *snapcache_cmd(), *args], stdout=subprocess.PIPE,
                                stderr=err)
        assert proc.stdout is not None
        first: float | None = None
        lines = 0
        # Big reads, newlines counted: reading line by line here would be slower than the
        # command writing them (300 MB for an export of 100,000 records) and time this
        # loop instead of the command.
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 1 << 20):
            if first is None and b"\n" in chunk:
                first = time.perf_counter() - t0
            lines += chunk.count(b"\n")
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_mb, cpu_s = usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime
        if use_time:
            # GNU time adds "Command exited with non-zero status N" before its figures.
            kb, user, system = usage_file.read().split()[-3:]
            rss_mb, cpu_s = int(kb) / 1024.0, float(user) + float(system)
        if proc.returncode != 0:
            err.seek(0)
            print(f"  {' '.join(args)} exited {proc.returncode}: "
                  f"{err.read().decode(errors='replace')[-500:]}", file=sys.stderr)
    return Timed(seconds, first, cpu_s, rss_mb, lines, proc.returncode)


def compile_snapcache() -> None:
    """Byte-compile snapcache's modules where they are installed, as installing a package
    does. An editable install run with ``PYTHONDONTWRITEBYTECODE`` set (these machines set
    it) would otherwise compile every module it imports at every start, about 0.1 s of each
    command's time that no installed copy pays."""
    import snapcache
    import snapcache.cache

    for package in (snapcache, snapcache.cache):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def write_config(folder: Path, store: Path) -> Path:
    """A configuration whose archive is a loopback port nothing listens on."""
    config = folder / "config.toml"
    config.write_text(
        '[archive]\nbase_url = "http://127.0.0.1:9"\n'
        'availability_url = "http://127.0.0.1:9/wayback/available"\n'
        f'[rates]\nstate_path = "{folder / "ratelimit.sqlite"}"\n'
        f'[cache]\npath = "{store}"\n', encoding="utf-8")
    return config


def measure(folder: Path, n: int) -> dict[str, Any]:
    """Build (or reuse) a store of ``n`` records under ``folder`` and time every command."""
    store = folder / "store"
    built = folder / "built.json"
    if built.exists() and json.loads(built.read_text())["n"] == n:
        build_s = json.loads(built.read_text())["build_s"]
        print(f"store {n:,}: reusing {store}", file=sys.stderr)
        read_through(store)
    else:
        print(f"store {n:,}: building ...", file=sys.stderr, flush=True)
        build_s = build_store(store, n)
        built.write_text(json.dumps({"n": n, "build_s": build_s}))
    config = write_config(folder, store)
    sources = folder / "sources.txt"
    if not sources.exists():
        sources.write_text("".join(url_of(i) + "\n" for i in range(n)), encoding="utf-8")
    base = ["--config", str(config)]
    out: dict[str, Any] = {"n": n, "build_s": build_s,
                           "bytes_per_record": folder_bytes(store) / n,
                           "load_before": os.getloadavg()[0]}
    for name, args in (
        ("stats", [*base, "stats"]),
        ("export", [*base, "export"]),
        ("list", [*base, "list"]),
        ("run", [*base, "run", "--quiet", str(sources)]),
    ):
        print(f"store {n:,}: {name} ...", file=sys.stderr, flush=True)
        t = timed(args)
        out[name] = {"s": t.seconds, "first_line_s": t.first_line_s, "cpu_s": t.cpu_s,
                     "rss_mb": t.rss_mb, "lines": t.lines, "returncode": t.returncode}
    out["bytes_per_record"] = folder_bytes(store) / n
    out["load_after"] = os.getloadavg()[0]
    return out


COMMANDS = ("stats", "export", "list", "run")


def report(results: list[dict[str, Any]]) -> str:
    """The table of figures, one row per store size, then growth and targets."""
    lines = [
        "| records | stats | export | list: first line / all | warm run | CPU s (stats / export"
        " / list / run) | peak RSS MB (stats / export / list / run) | bytes per record |",
        "|" + "---|" * 8,
    ]
    for r in results:
        cpu = " / ".join(f"{r[k]['cpu_s']:.1f}" for k in COMMANDS)
        rss = " / ".join(f"{r[k]['rss_mb']:.0f}" for k in COMMANDS)
        first = r["list"]["first_line_s"]
        lines.append(
            f"| {r['n']:,} | {r['stats']['s']:.2f} s | {r['export']['s']:.2f} s"
            f" | {'-' if first is None else f'{first:.2f}'} s / {r['list']['s']:.2f} s"
            f" | {r['run']['s']:.2f} s | {cpu} | {rss} | {r['bytes_per_record']:,.0f} |")
    notes = [
        "snapcache byte-compiled before the commands run, as an installed copy is",
        "load average (1 min) before / after each size: " + ", ".join(
            f"{r['n']:,}: {r['load_before']:.1f} / {r['load_after']:.1f}" for r in results)
        + f" on {os.cpu_count()} CPUs (CPU seconds are each command's own)",
    ]
    bad = [f"{k} at {r['n']:,} exited {r[k]['returncode']}" for r in results for k in COMMANDS
           if r[k]["returncode"] != 0]
    notes.append("INVALID: " + "; ".join(bad) if bad else "every command exited 0")
    big = results[-1]
    for name, limit in TARGETS_S.items():
        value = big[name]["s"]
        notes.append(f"{name} at {big['n']:,}: {value:.2f} s, target < {limit:g} s: "
                     f"{'met' if value < limit else 'NOT met'}")
    first = big["list"]["first_line_s"]
    notes.append(f"list's first line at {big['n']:,}: "
                 + ("none" if first is None else f"{first:.2f} s")
                 + f" (all {big['list']['s']:.2f} s)")
    worst_rss = max(big[k]["rss_mb"] for k in COMMANDS)
    notes.append(f"peak RSS at {big['n']:,}: {worst_rss:.0f} MB, target < {TARGET_RSS_MB:g} MB:"
                 f" {'met' if worst_rss < TARGET_RSS_MB else 'NOT met'}")
    if len(results) > 1:
        small = results[0]
        growth = {k: big[k]["s"] / small[k]["s"] for k in COMMANDS}
        notes.append(
            f"growth from {small['n']:,} to {big['n']:,} records ({big['n'] / small['n']:g}x"
            f" the records): " + ", ".join(f"{k} {v:.1f}x" for k, v in growth.items())
            + f"; target within {TARGET_GROWTH:g}x: "
            + ("met" if max(growth.values()) <= TARGET_GROWTH else "NOT met"))
    return "\n".join(lines) + "\n\n" + "\n".join(f"* {n}" for n in notes)


def run_store(args: argparse.Namespace, results: dict[str, Any], tmp: Path) -> None:
    """The ``store`` section of bench.py: fills ``results['store']``."""
    keep = Path(args.store_keep) if args.store_keep else tmp
    compile_snapcache()
    figures = []
    for n in args.store_sizes:
        folder = keep / f"store-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        figures.append(measure(folder, n))
    text = report(figures)
    print("\n### Store at scale\n\n" + text, flush=True)
    results["store"] = figures
    results["store_table"] = text


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of the ``store`` section."""
    ap.add_argument("--store-sizes", type=lambda s: [int(x) for x in s.split(",")],
                    default=[10_000, 100_000], help="store section: record counts")
    ap.add_argument("--store-keep", default=None,
                    help="store section: keep built stores in this folder and reuse them")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="snapcache-store-bench-") as d:
        run_store(args, results, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
