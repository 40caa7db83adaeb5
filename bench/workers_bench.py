"""Workers on the PostgreSQL store: throughput with 1, 2 and 4 ``snapcache worker``
processes, the warm path (10,000 fresh records) on diskcache and PostgreSQL side by side,
and bytes per record on each backend.

* **Workers.** The emulator runs in a process of its own (in the bench's process it would
  share the GIL with nothing but itself, but then the bench's own threads would slow it),
  with rate limits so high they never bind: what is measured is the CPU each URL costs.
  For each worker count, a fresh schema, ``snapcache enqueue`` of the same URLs, then that
  many ``snapcache worker --until-empty`` processes. URLs/s is taken over the span of the
  jobs' finishing times (the processes' start-up is reported apart), with the CPU time
  the workers, the emulator and the whole machine spent.
* **Warm.** 10,000 records fetched once into a diskcache folder, copied to PostgreSQL
  (``copy_store``), then the same passes on each: ``Fetcher.fetch_many`` and
  ``Fetcher.run`` over every URL (0 requests allowed), and single ``Fetcher.fetch`` calls.
* **Bytes per record.** The folder's files, and the PostgreSQL tables with their indexes
  and TOAST, over the number of records.

Needs a PostgreSQL server: ``--dsn`` (default ``$SNAPCACHE_TEST_DSN``, else
``postgresql://postgres@127.0.0.1:5432/test``); each store is a schema of its own, dropped
after. Without a server the section is skipped, saying why.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from snapcache import Fetcher  # noqa: E402
from snapcache.cache import SnapshotCache  # noqa: E402
from snapcache.config import Config, config_from_mapping  # noqa: E402

DEFAULT_DSN = os.environ.get("SNAPCACHE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
#: Budgets that never bind (the limiter still takes every token, as in production).
NO_LIMIT = 1e9


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _serve(n: int, ready: Any, stop: Any) -> None:
    """The emulator's process: ``n`` warm pages (bench/corpus.py), served until ``stop``."""
    import corpus

    from tests.wayback_emulator import WaybackEmulator

    emu = WaybackEmulator(load_recordings=False)
    urls = corpus.build_warm(emu, n)
    emu.start()
    ready.put((emu.base_url, urls, os.getpid()))
    stop.wait()
    emu.stop()


def _take_tokens(dsn: str, n: int, start_at: float, out: Any) -> None:
    """A process taking ``n`` tokens on each of 8 tasks from one shared bucket (a budget
    that never binds), from ``start_at`` on; puts its finishing time."""
    import asyncio

    from snapcache.pglimits import PostgresLimiterState
    from snapcache.transport import Pool, RateLimiter

    limiter = RateLimiter(PostgresLimiterState(dsn), {Pool.PLAYBACK: NO_LIMIT})

    async def one() -> None:
        for _ in range(n):
            await limiter.acquire("bench", Pool.PLAYBACK, 60)

    async def many() -> None:
        await asyncio.gather(*(one() for _ in range(8)))

    time.sleep(max(0.0, start_at - time.time()))
    asyncio.run(many())
    out.put(time.time())
    limiter.close()


def _token_rates(dsn: str, counts: list[int], n: int = 250) -> dict[int, float]:
    """Tokens a second the whole fleet can take from one PostgreSQL bucket, by processes."""
    ctx = multiprocessing.get_context("spawn")
    rates = {}
    for procs in counts:
        queue = ctx.Queue()
        start_at = time.time() + 3.0  # after every process has started
        workers = [ctx.Process(target=_take_tokens, args=(dsn, n, start_at, queue))
                   for _ in range(procs)]
        for proc in workers:
            proc.start()
        end = max(queue.get(timeout=300) for _ in workers)
        for proc in workers:
            proc.join(timeout=30)
        rates[procs] = procs * n * 8 / (end - start_at)
    return rates


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL server so far: its live processes, plus what its
    ended sessions spent (counted into the postmaster's children times). Every session
    counts, so other users of the server show up too."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().split(") ", 1)
        except OSError:
            continue
        if not name.endswith("(postgres"):
            continue
        fields = rest.split()
        total += (int(fields[11]) + int(fields[12])) / tick
        if fields[1] == "1" or not Path(f"/proc/{fields[1]}").exists():  # the postmaster
            total += (int(fields[13]) + int(fields[14])) / tick
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def _sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)
        return list(cursor.fetchall()) if cursor.description else []


def schema_dsn(dsn: str, schema: str) -> str:
    """``dsn`` with its ``search_path`` set to ``schema``: a store of its own on one server
    (the store's tables go in the first schema of the search path)."""
    from urllib.parse import quote

    option = quote(f"-csearch_path={schema}", safe="")
    return f"{dsn}{'&' if '?' in dsn else '?'}options={option}"


def _config(base_url: str, tmp: Path, *, dsn: str | None) -> Config:
    cache: dict[str, Any] = {"path": str(tmp / "store")}
    if dsn is not None:
        cache.update(backend="postgres", dsn=dsn)
    return config_from_mapping({
        "archive": {"base_url": base_url, "availability_url": f"{base_url}/wayback/available"},
        "rates": {"cdx_per_minute": NO_LIMIT, "playback_per_minute": NO_LIMIT,
                  "state_path": str(tmp / "ratelimit.sqlite")},
        "cache": cache,
    }, source="bench")


def _config_file(base_url: str, tmp: Path, dsn: str) -> Path:
    path = tmp / "workers.toml"
    path.write_text(
        f'[archive]\nbase_url = "{base_url}"\navailability_url = "{base_url}/wayback/available"\n'
        f'[rates]\ncdx_per_minute = {NO_LIMIT}\nplayback_per_minute = {NO_LIMIT}\n'
        f'state_path = "{tmp / "ratelimit.sqlite"}"\n'
        f'[cache]\nbackend = "postgres"\ndsn = "{dsn}"\npath = "{tmp / "store"}"\n'
        "[run]\nconcurrency = 8\n", encoding="utf-8")
    return path


def _workers_run(exe: str, cfg: Path, dsn: str, workers: int, n: int,
                 emulator_pid: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("SNAPCACHE_DSN", "SNAPCACHE_CONFIG")}
    queued = subprocess.run([exe, "--config", str(cfg), "enqueue", "--json", str(cfg.parent /
                             "urls.txt")], capture_output=True, text=True, env=env, check=True)
    assert json.loads(queued.stdout)["queued"] == n, queued.stdout
    emu_cpu = cpu_seconds(emulator_pid)
    pg_cpu = _postgres_cpu()
    busy, total = _machine_busy()
    before = os.times()
    started = time.perf_counter()
    procs = [subprocess.Popen([exe, "--config", str(cfg), "worker", "--until-empty", "--quiet",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(workers)]
    outs = [proc.communicate(timeout=1800) for proc in procs]
    wall = time.perf_counter() - started
    after = os.times()
    # What starting and stopping a worker costs (imports, connections), measured on the
    # now empty queue, is taken out of the per-URL figure.
    idle = os.times()
    subprocess.run([exe, "--config", str(cfg), "worker", "--until-empty", "--quiet"],
                   capture_output=True, env=env, check=True)
    idle_after = os.times()
    startup_cpu = (idle_after.children_user - idle.children_user
                   + idle_after.children_system - idle.children_system)
    busy2, total2 = _machine_busy()
    pg_cpu = _postgres_cpu() - pg_cpu
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    summaries = [json.loads(out) for out, _ in outs]
    ((first, last, done),) = _sql(dsn, "SELECT extract(epoch FROM min(finished_at)),"
                                       " extract(epoch FROM max(finished_at)), count(*)"
                                       " FROM snapcache_jobs WHERE state = 'done'")
    span = float(last) - float(first)
    worker_cpu = (after.children_user - before.children_user
                  + after.children_system - before.children_system) - workers * startup_cpu
    cores = os.cpu_count() or 1
    return {
        "workers": workers, "urls": n, "done": int(done), "wall_s": wall, "span_s": span,
        "urls_per_s": (int(done) - 1) / span if span > 0 else float("nan"),
        "startup_s": wall - span,
        "startup_cpu_s": startup_cpu,
        "claimed": [s["claimed"] for s in summaries],
        "worker_cpu_ms_per_url": worker_cpu / n * 1000,
        "emulator_cpu_ms_per_url": (cpu_seconds(emulator_pid) - emu_cpu) / n * 1000,
        "postgres_cpu_ms_per_url": pg_cpu / n * 1000,
        "load_before": os.getloadavg()[0],
        "machine_busy": (busy2 - busy) / ((total2 - total) or 1.0),
        "cores": cores,
    }


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed_passes(config: Config, urls: list[str], samples: int) -> dict[str, float]:
    """fetch_many, run and single fetches over fresh records; every figure with 0
    requests (checked by the caller on the emulator)."""
    out: dict[str, float] = {}
    with Fetcher(config) as f:
        started = time.perf_counter()
        records = f.fetch_many(urls)
        out["fetch_many_s"] = time.perf_counter() - started
        assert all(not isinstance(r, Exception) and r.status == "ok" for r in records)
        started = time.perf_counter()
        summary = f.run([u + "\n" for u in urls])
        out["run_s"] = time.perf_counter() - started
        assert summary.skipped_fresh == len(urls), summary.to_json_dict()
        for url in urls[:50]:
            f.fetch(url)
        times = []
        for url in urls[:samples]:
            started_ns = time.perf_counter_ns()
            f.fetch(url)
            times.append((time.perf_counter_ns() - started_ns) / 1000)
    out["fetch_median_us"] = statistics.median(times)
    out["fetch_p95_us"] = sorted(times)[int(0.95 * (len(times) - 1))]
    return out


def run_workers(args: argparse.Namespace, results: dict[str, Any], tmp: Path) -> None:
    """The workers section: fills ``results["workers"]`` and prints its tables."""
    dsn = args.dsn or DEFAULT_DSN
    try:
        _sql(dsn, "SELECT 1")
    except Exception as exc:  # no server: say so, measure nothing
        log(f"workers: skipped, no PostgreSQL at $SNAPCACHE_TEST_DSN/--dsn: {exc}")
        results["workers"] = {"skipped": str(exc)}
        return
    exe = str(Path(sys.executable).parent / "snapcache")
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    pages = args.workers_n if args.workers_only else max(args.warm_n, args.workers_n)
    server = ctx.Process(target=_serve, args=(pages, ready, stop), daemon=True)
    server.start()
    schemas: list[str] = []

    def new_store() -> str:
        schema = "bench_" + secrets.token_hex(6)
        _sql(dsn, f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        return schema_dsn(dsn, schema)

    try:
        base_url, urls, emulator_pid = ready.get(timeout=300)
        # -- workers -------------------------------------------------------------------
        sample = urls[: args.workers_n]
        runs = []
        for count in args.worker_counts:
            where = tmp / f"w{count}"
            where.mkdir()
            (where / "urls.txt").write_text("\n".join(sample) + "\n", encoding="utf-8")
            store = new_store()
            log(f"workers: {count} worker(s) over {len(sample)} URLs ...")
            runs.append(_workers_run(exe, _config_file(base_url, where, store), store, count,
                                     len(sample), emulator_pid))
        log("workers: tokens a second from one shared bucket ...")
        tokens = _token_rates(new_store(), args.worker_counts)
        if args.workers_only:
            results["workers"] = {"runs": runs, "token_rates": tokens}
            _print_runs(runs, len(sample), tokens)
            return
        # -- warm, both backends -------------------------------------------------------
        disk_tmp = tmp / "warm-disk"
        disk_tmp.mkdir()
        disk = _config(base_url, disk_tmp, dsn=None)
        log(f"workers: pre-filling {len(urls)} records (diskcache) ...")
        started = time.perf_counter()
        with Fetcher(disk) as f:
            filled = f.fetch_many(urls, concurrency=16)
        fill_s = time.perf_counter() - started
        assert all(not isinstance(r, Exception) and r.status == "ok" for r in filled)
        pg_dsn = new_store()
        from snapcache.cache.postgres import PostgresStore
        from snapcache.cache.transfer import copy_store

        with SnapshotCache(disk.cache_path) as source, PostgresStore(pg_dsn) as target:
            started = time.perf_counter()
            copy_store(source, target, target)
            copy_s = time.perf_counter() - started
        pg_tmp = tmp / "warm-pg"
        pg_tmp.mkdir()
        pg = _config(base_url, pg_tmp, dsn=pg_dsn)
        log("workers: warm passes on diskcache and PostgreSQL ...")
        warm = {"diskcache": _timed_passes(disk, urls, args.overhead_n),
                "postgres": _timed_passes(pg, urls, args.overhead_n)}
        records = len(urls)
        pg_bytes = int(_sql(pg_dsn, "SELECT sum(pg_total_relation_size(c.oid))"
                                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                                    " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                                    " AND c.relname LIKE 'snapcache%'")[0][0])
        disk_bytes = _folder_bytes(disk.cache_path)
        text_bytes = sum(len(r.preview or "") for r in filled if not isinstance(r, Exception))
    finally:
        stop.set()
        server.join(timeout=30)
        for schema in schemas:
            _sql(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    results["workers"] = {
        "runs": runs, "token_rates": tokens, "warm": warm, "warm_n": records,
        "prefill_s": fill_s, "copy_s": copy_s,
        "bytes_per_record": {"diskcache": disk_bytes / records, "postgres": pg_bytes / records},
        "preview_chars_per_record": text_bytes / records,
    }
    _print_runs(runs, len(sample), tokens)
    _print_warm(results["workers"])


def _print_runs(runs: list[dict[str, Any]], n: int, tokens: dict[int, float]) -> None:
    one = runs[0]["urls_per_s"]
    print(f"\n### Workers on PostgreSQL ({n} URLs, no rate limit, {runs[0]['cores']} CPUs)\n")
    print("workers  URLs/s  vs 1   wall s  start-up s  CPU ms/URL: workers  postgres  emulator"
          "  machine busy  load  jobs per worker")
    for r in runs:
        print(f"{r['workers']:>7}  {r['urls_per_s']:6.1f}  {r['urls_per_s'] / one:4.2f}x"
              f"  {r['wall_s']:6.1f}  {r['startup_s']:10.1f}  {r['worker_cpu_ms_per_url']:19.1f}"
              f"  {r['postgres_cpu_ms_per_url']:8.1f}  {r['emulator_cpu_ms_per_url']:8.1f}"
              f"  {r['machine_busy']:12.0%}  {r['load_before']:4.1f}  {r['claimed']}")
    print(f"  * worker CPU without each worker's start-up ({runs[0]['startup_cpu_s']:.2f} s: "
          "imports, connections); postgres: every session of the server, other users' "
          "included; load: the machine's 1-minute load average when the run started")
    print("  * tokens a second from one shared PostgreSQL bucket (8 takers per process): "
          + ", ".join(f"{p} process{'es' if p > 1 else ''} {r:,.0f}" for p, r in tokens.items()))


def _print_warm(w: dict[str, Any]) -> None:
    records = w["warm_n"]
    print(f"\n### Warm path ({records:,} fresh records, 0 requests)\n")
    print("figure                          diskcache   PostgreSQL")
    d, p = w["warm"]["diskcache"], w["warm"]["postgres"]
    print(f"Fetcher.fetch_many(urls) s      {d['fetch_many_s']:9.2f}   {p['fetch_many_s']:10.2f}")
    print(f"Fetcher.run(lines) s            {d['run_s']:9.2f}   {p['run_s']:10.2f}")
    print(f"Fetcher.fetch median us         {d['fetch_median_us']:9.0f}   "
          f"{p['fetch_median_us']:10.0f}")
    print(f"Fetcher.fetch p95 us            {d['fetch_p95_us']:9.0f}   {p['fetch_p95_us']:10.0f}")
    b = w["bytes_per_record"]
    print(f"bytes per record                {b['diskcache']:9,.0f}   {b['postgres']:10,.0f}")
    print(f"  * pre-fill {w['prefill_s']:.1f} s (diskcache, cold, concurrency 16); copy to "
          f"PostgreSQL {w['copy_s']:.1f} s; previews average "
          f"{w['preview_chars_per_record']:,.0f} characters")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    ap.add_argument("--warm-n", type=int, default=10_000)
    ap.add_argument("--overhead-n", type=int, default=2000)
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="snapcache-workers-") as d:
        run_workers(args, results, Path(d))
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This section's options (bench.py adds them too)."""
    ap.add_argument("--dsn", default=None,
                    help="PostgreSQL server for the workers and serve sections (default"
                    " $SNAPCACHE_TEST_DSN, else postgresql://postgres@127.0.0.1:5432/test)")
    ap.add_argument("--workers-n", type=int, default=1000,
                    help="URLs per worker run in the workers section")
    ap.add_argument("--worker-counts", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 2, 4], help="worker processes per run, e.g. 1,2,4")
    ap.add_argument("--workers-only", action="store_true",
                    help="workers section: only the worker runs (no warm path, no sizes)")


if __name__ == "__main__":
    sys.exit(main())
