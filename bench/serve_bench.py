"""``snapcache serve`` under load: requests per second and latency of
``GET /v1/resources/{id}`` over a 10,000-record store, on diskcache and on PostgreSQL.

For each backend the store is filled with the same synthetic records through
``save_attempt`` (the store contract's write), the server runs as ``snapcache serve`` in its
own process (as shipped: uvicorn, access log on, to a file) with a configuration file that
names the store, and a small asyncio HTTP/1.1 client in this process keeps
``--serve-connections`` keep-alive connections busy with requests for random records, on
127.0.0.1 only. The load is bounded in time (``--serve-seconds``) after a warm-up; every
response's status is counted, and any other than the one expected is an error. Before the
load, a sample of records is checked: each served body must parse, name the resource asked
for and be the stored record's JSON byte for byte, and a few must equal what
``snapcache show --json`` prints.

PostgreSQL: ``--dsn`` (default ``$SNAPCACHE_TEST_DSN``, else
``postgresql://postgres@127.0.0.1:5432/test``). The store is a schema of its own
(``serve_bench_`` and random hex), dropped afterwards, so no other data is touched. Without
a reachable server that backend is skipped, saying why.

Run it with ``./bench/run --sections serve`` or ``python bench/serve_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from snapcache.cache import Record, Store  # noqa: E402
from snapcache.config import load_config  # noqa: E402
from snapcache.ids import mint_stable_id, resource_id  # noqa: E402
from snapcache.stores import open_store  # noqa: E402
from workers_bench import DEFAULT_DSN, cpu_seconds, schema_dsn  # noqa: E402

#: Records whose served body is compared with the stored record, and how many of them with
#: the output of ``snapcache show --json`` (a process each).
CHECK_SAMPLE = 50
CHECK_SHOW = 3
#: Writers filling the PostgreSQL store: each write is a few round trips, so a few
#: connections at once shorten the fill (the store is thread-safe). The folder store is
#: filled by one, as a run on one host writes it.
PG_FILL_THREADS = 4
#: The server's PostgreSQL sessions carry this name, so that their CPU time can be told
#: from other sessions on the same server.
PG_APPLICATION = "snapcache-serve-bench"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic_records(n: int) -> list[tuple[Record, str | None]]:
    """``n`` synthetic records (previews of a realistic size), each with its text."""
    statuses = ("ok", "ok", "ok", "ok", "not_archived", "archived_error", "blocked", "error")
    words = ["archive", "capture", "source", "citation", "report", "policy", "model", "data",
             "open", "web", "page", "federal", "study"]
    rng = random.Random(7)
    out = []
    for i in range(n):
        url = f"https://site{i % 313}.example.org/articles/{i}/index.html"
        status = statuses[i % len(statuses)]
        good = status == "ok"
        ts = f"20{10 + i % 16:02d}0{1 + i % 9}15120000"
        preview = " ".join(rng.choice(words) for _ in range(400))[:3000] if good else ""
        record = Record(
            resource_id=resource_id(url), stable_id=mint_stable_id(), url=url,
            status=status,  # type: ignore[arg-type]
            archived_status=200 if good else None,
            capture_timestamp=ts if good else None,
            archive_url=f"https://web.archive.org/web/{ts}/{url}" if good else None,
            raw_url=f"https://web.archive.org/web/{ts}id_/{url}" if good else None,
            original_url=url if good else None,
            fetched_at="2026-11-29T11:40:00Z" if good else None,
            content_type="text/html" if good else None,
            content_length=48_000 if good else None, title=f"Article {i}",
            preview=preview, text_length=len(preview) * 4,
            error="connect failed" if status == "error" else None,
            last_attempt_at="2026-11-29T11:40:00Z", attempts=1,
            last_outcome=status,  # type: ignore[arg-type]
            archive="ia", created_at="2026-11-29T11:40:00Z",
        )
        out.append((record, preview * 4 if good else None))
    return out


def fill_store(store: Store, n: int, *, threads: int = 1) -> list[str]:
    """Write ``n`` synthetic records into ``store`` through ``save_attempt``; their IDs."""
    items = synthetic_records(n)

    def write(item: tuple[Record, str | None]) -> None:
        record, text = item
        store.save_attempt(record, text=text,
                           history_entry={"at": record.last_attempt_at,
                                          "outcome": record.status})

    if threads == 1:
        for item in items:
            write(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(write, items))
    return [record.resource_id for record, _ in items]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _child_env() -> dict[str, str]:
    """This environment without the variables that would point snapcache elsewhere."""
    return {**{k: v for k, v in os.environ.items()
               if k not in ("SNAPCACHE_DSN", "SNAPCACHE_CONFIG")}, "PYTHONUNBUFFERED": "1"}


def _write_config(path: Path, cache: dict[str, str], state_path: Path) -> Path:
    """A configuration file with this ``[cache]`` section (JSON strings are TOML strings)."""
    lines = ["[cache]", *(f"{k} = {json.dumps(v)}" for k, v in cache.items()),
             "[rates]", f"state_path = {json.dumps(str(state_path))}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def _server(config: Path, log_path: Path) -> Iterator[tuple[int, int]]:
    """``snapcache serve`` as shipped, on a free loopback port; yields its port and
    process ID."""
    port = _free_port()
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "snapcache.cli", "--config", str(config), "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT, env=_child_env())
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        tail = log_path.read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"snapcache serve did not start:\n{tail}") from None
                    time.sleep(0.1)
            yield port, server.pid
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)


def _request(rid: str, etag: str | None = None) -> bytes:
    extra = f"If-None-Match: {etag}\r\n" if etag else ""
    return f"GET /v1/resources/{rid} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               request: bytes) -> tuple[int, str | None, bytes]:
    """Send one request on a kept-alive connection; its status, ETag and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    etag = None
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"etag":
            etag = value.strip().decode()
    body = await reader.readexactly(length) if length else b""
    return status, etag, body


#: What a broken exchange raises (a reset connection, a truncated or garbled response).
_BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


async def _load(port: int, ids: list[str], connections: int, seconds: float,
                etags: dict[str, str] | None, expect: int) -> dict[str, Any]:
    """Keep ``connections`` connections busy for ``seconds``; latencies in ms. A response
    whose status is not ``expect`` or a broken exchange counts as an error (the
    connection is then opened again)."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    broken: dict[str, int] = {}
    rng = random.Random(11)

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while time.perf_counter() < deadline:
                rid = rng.choice(ids)
                request = _request(rid, etags[rid] if etags else None)
                t0 = time.perf_counter()
                try:
                    if conn is None:
                        conn = await asyncio.open_connection("127.0.0.1", port)
                    status, _, _ = await _one(*conn, request)
                except _BROKEN as exc:
                    broken[type(exc).__name__] = broken.get(type(exc).__name__, 0) + 1
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            if conn is not None:
                conn[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies), "seconds": wall, "rps": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) if latencies else math.nan,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] if latencies else math.nan,
        "max_ms": latencies[-1] if latencies else math.nan, "statuses": statuses,
        "broken": broken,
        "errors": sum(n for s, n in statuses.items() if s != expect) + sum(broken.values()),
    }


async def _get_each(port: int, ids: list[str]) -> list[tuple[int, str | None, bytes]]:
    """One GET per ID, in turn, on one connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return [await _one(reader, writer, _request(rid)) for rid in ids]
    finally:
        writer.close()


def _check(port: int, config: Path, store: Store, ids: list[str]) -> dict[str, Any]:
    """Served records against the store and ``show --json``; the problems found."""
    sample = random.Random(5).sample(ids, min(CHECK_SAMPLE, len(ids)))
    answers = asyncio.run(_get_each(port, sample))
    problems: list[str] = []
    for rid, (status, _, body) in zip(sample, answers, strict=True):
        if status != 200:
            problems.append(f"{rid}: status {status}")
            continue
        try:
            served = json.loads(body)
        except ValueError:
            problems.append(f"{rid}: the body is not JSON")
            continue
        if served.get("resource_id") != rid:
            problems.append(f"{rid}: the body names {served.get('resource_id')!r}")
        stored = store.get(rid)
        if stored is None or body != stored.to_json().encode("utf-8"):
            problems.append(f"{rid}: the body is not the stored record's JSON")
    for rid, (_, _, body) in list(zip(sample, answers, strict=True))[:CHECK_SHOW]:
        shown = subprocess.run(
            [sys.executable, "-m", "snapcache.cli", "--config", str(config), "show", "--json",
             rid], capture_output=True, env=_child_env(), timeout=300, check=False)
        if shown.returncode != 0 or shown.stdout.rstrip(b"\n") != body:
            problems.append(f"{rid}: served body differs from `snapcache show --json` "
                            f"(exit {shown.returncode})")
    return {"sampled": len(sample), "show_json_compared": min(CHECK_SHOW, len(sample)),
            "problems": problems}


def _postgres_sessions_cpu(dsn: str) -> float | None:
    """CPU seconds the server's PostgreSQL sessions (named :data:`PG_APPLICATION`) have
    spent so far; None when none runs on this machine (a server elsewhere). Only live
    sessions count: the server's pool keeps its connections open during a load."""
    from snapcache.cache.postgres.dsn import connect

    with connect(dsn) as conn:
        pids = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (PG_APPLICATION,)).fetchall()]
    total, found = 0.0, False
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue  # the same number, but another machine's process
            total += cpu_seconds(pid)
            found = True
        except OSError:  # ended meanwhile, or no such process here
            continue
    return total if found else None


def _cpu_load(port: int, server_pid: int, postgres_dsn: str | None, ids: list[str],
              connections: int, seconds: float, etags: dict[str, str] | None,
              expect: int) -> dict[str, Any]:
    """:func:`_load`, with the CPU each party spent per request: the server process, its
    PostgreSQL sessions (when ``postgres_dsn`` is given) and this client."""
    server_cpu = cpu_seconds(server_pid)
    pg_cpu = _postgres_sessions_cpu(postgres_dsn) if postgres_dsn else None
    client_cpu = time.process_time()
    out = asyncio.run(_load(port, ids, connections, seconds, etags, expect))
    per = 1000 / max(out["requests"], 1)
    out["server_cpu_ms"] = (cpu_seconds(server_pid) - server_cpu) * per
    out["client_cpu_ms"] = (time.process_time() - client_cpu) * per
    pg_after = _postgres_sessions_cpu(postgres_dsn) if postgres_dsn else None
    out["postgres_cpu_ms"] = (None if pg_cpu is None or pg_after is None
                              else (pg_after - pg_cpu) * per)
    return out


def _measure(args: argparse.Namespace, config: Path, store: Store, ids: list[str],
             log_path: Path, name: str, postgres_dsn: str | None) -> dict[str, Any]:
    """Serve ``store`` (named by ``config``), check a sample, then the three loads."""
    conns, secs = args.serve_connections, args.serve_seconds
    with _server(config, log_path) as (port, pid):
        check = _check(port, config, store, ids)
        _log(f"serve: {name}: sample check "
             f"{'ok' if not check['problems'] else 'FAILED: ' + '; '.join(check['problems'])}"
             f"; warm-up, then {secs:.0f} s at {conns} connections ...")
        asyncio.run(_load(port, ids, conns, 2.0, None, 200))
        full = _cpu_load(port, pid, postgres_dsn, ids, conns, secs, None, 200)
        sample = random.Random(3).sample(ids, min(2000, len(ids)))
        etags = {rid: etag for rid, (_, etag, _) in
                 zip(sample, asyncio.run(_get_each(port, sample)), strict=True) if etag}
        cached = _cpu_load(port, pid, postgres_dsn, list(etags), conns, secs / 2, etags, 304)
        single = _cpu_load(port, pid, postgres_dsn, ids, 1, secs / 2, None, 200)
    return {"check": check, "get": full, "get_304": cached, "get_one_connection": single,
            "load_average": os.getloadavg()[0]}


def _run_diskcache(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n = args.serve_records
    config = _write_config(tmp / "diskcache.toml", {"path": str(tmp / "store")},
                           tmp / "ratelimit.sqlite")
    with open_store(load_config(config)) as store:
        _log(f"serve: diskcache: filling a store with {n:,} synthetic records ...")
        t0 = time.perf_counter()
        ids = fill_store(store, n)
        fill_s = time.perf_counter() - t0
        out = _measure(args, config, store, ids, tmp / "server-diskcache.log", "diskcache",
                       None)
    return {"fill_s": fill_s, "fill_threads": 1, **out}


def postgres_unreachable(dsn: str) -> str | None:
    """Why the PostgreSQL server at ``dsn`` cannot be used, or None when it can."""
    try:
        from snapcache.cache.postgres.dsn import connect
    except ImportError as exc:
        return f"the postgres extra is not installed ({exc})"
    try:
        with connect(dsn, {"connect_timeout": 5}) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure: the reason is the report
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _with_application(dsn: str) -> str:
    """``dsn`` (a URI) naming its sessions :data:`PG_APPLICATION`."""
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={PG_APPLICATION}"


def _run_postgres(args: argparse.Namespace, tmp: Path, dsn: str) -> dict[str, Any]:
    from snapcache.cache.postgres.dsn import connect

    n = args.serve_records
    schema = "serve_bench_" + secrets.token_hex(6)
    with connect(dsn) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        config = _write_config(tmp / "postgres.toml",
                               {"backend": "postgres",
                                "dsn": _with_application(schema_dsn(dsn, schema)),
                                "path": str(tmp / "unused-store")}, tmp / "ratelimit.sqlite")
        with open_store(load_config(config)) as store:
            _log(f"serve: PostgreSQL: filling schema {schema} with {n:,} synthetic records "
                 f"({PG_FILL_THREADS} writers) ...")
            t0 = time.perf_counter()
            ids = fill_store(store, n, threads=PG_FILL_THREADS)
            fill_s = time.perf_counter() - t0
            out = _measure(args, config, store, ids, tmp / "server-postgres.log", "PostgreSQL",
                           dsn)
    finally:
        with connect(dsn) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return {"fill_s": fill_s, "fill_threads": PG_FILL_THREADS, "schema": schema, **out}


def _plain_table(title: str, header: list[str], rows: list[list[Any]],
                 notes: list[str]) -> str:
    """The table as bench.py prints it, for a run of this file alone."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [f"\n### {title}\n", "  ".join(h.ljust(w) for h, w in zip(header, widths,
                                                                     strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    lines += [f"  * {note}" for note in notes]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def run_serve(args: argparse.Namespace, results: dict[str, Any], tmp: Path,
              table: Callable[..., str] | None = None) -> None:
    """Fill a store on each backend, serve it, load it; fills ``results["serve"]``."""
    conns = args.serve_connections
    backends: dict[str, dict[str, Any]] = {}
    (tmp / "diskcache").mkdir()
    backends["diskcache"] = _run_diskcache(args, tmp / "diskcache")
    dsn = args.dsn or DEFAULT_DSN
    reason = postgres_unreachable(dsn)
    if reason is None:
        (tmp / "postgres").mkdir()
        backends["postgres"] = _run_postgres(args, tmp / "postgres", dsn)
    else:
        _log(f"serve: PostgreSQL skipped: {reason}")
        backends["postgres"] = {"skipped": reason}
    results["serve"] = {"records": args.serve_records, "connections": conns,
                        "seconds": args.serve_seconds, "backends": backends}

    labels = {"diskcache": "diskcache", "postgres": "PostgreSQL"}
    loads = [("get", f"{conns} connections, 200 with the record"),
             ("get_304", f"{conns} connections, If-None-Match matching (304)"),
             ("get_one_connection", "one connection at a time")]
    rows: list[list[Any]] = []
    notes = []
    for key, b in backends.items():
        if "skipped" in b:
            rows.append([f"{labels[key]}: skipped", *["-"] * 8])
            notes.append(f"{labels[key]} skipped: {b['skipped']}")
            continue
        for load, label in loads:
            r = b[load]
            rows.append([f"{labels[key]}, {label}", f"{r['rps']:,.0f}", f"{r['p50_ms']:.1f}",
                         f"{r['p99_ms']:.1f}", f"{r['requests']:,}", f"{r['errors']:,}",
                         f"{r['server_cpu_ms']:.2f}",
                         "-" if r["postgres_cpu_ms"] is None else f"{r['postgres_cpu_ms']:.2f}",
                         f"{r['client_cpu_ms']:.2f}"])
        check = b["check"]
        verdict = ("ok: status 200, JSON naming the ID asked for, byte for byte the stored "
                   f"record, {check['show_json_compared']} equal to `snapcache show --json`"
                   if not check["problems"] else "FAILED: " + "; ".join(check["problems"]))
        notes.append(f"{labels[key]}: filled through save_attempt in {b['fill_s']:.1f} s "
                     f"({b['fill_threads']} writer{'s' if b['fill_threads'] > 1 else ''}); "
                     f"{check['sampled']} served records checked, {verdict}; load average "
                     f"{b['load_average']:.1f} after its loads")
    notes.append(f"{args.serve_records:,} records per store; `snapcache serve` as shipped "
                 f"(uvicorn, one process, access log on); keep-alive connections from an "
                 f"asyncio client in another process, random IDs, {args.serve_seconds:.0f} s "
                 f"at {conns} connections, half that for the others; errors: any status but "
                 f"the one expected, or a broken connection; CPU per request: the server "
                 f"process, its PostgreSQL sessions, this client; {os.cpu_count()} CPUs "
                 "shared by the three and other jobs")
    results["serve_table"] = (table or _plain_table)(
        "snapcache serve: GET /v1/resources/{id}",
        ["backend, load", "req/s", "p50 ms", "p99 ms", "requests", "errors",
         "CPU ms/req: server", "PostgreSQL", "client"], rows, notes)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The serve section's options (shared with bench.py, which adds ``--dsn`` through
    workers_bench)."""
    ap.add_argument("--serve-records", type=int, default=10_000)
    ap.add_argument("--serve-connections", type=int, default=32)
    ap.add_argument("--serve-seconds", type=float, default=10.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--dsn", default=None,
                        help="PostgreSQL server (default $SNAPCACHE_TEST_DSN, else "
                        "postgresql://postgres@127.0.0.1:5432/test)")
    arguments = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="snapcache-serve-bench-") as d:
        run_serve(arguments, out, Path(d))
