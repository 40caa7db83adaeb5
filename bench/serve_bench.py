"""``snapcache serve`` under load: requests per second and latency of
``GET /v1/resources/{id}`` over a 10,000-record diskcache store.

The store is filled with synthetic records through ``SnapshotCache.save_attempt`` (the
store contract's write), the server runs as ``snapcache serve`` in its own process (as
shipped: uvicorn, access log on, to a file), and a small asyncio HTTP/1.1 client in this
process keeps ``--serve-connections`` keep-alive connections busy with requests for random
records, on 127.0.0.1 only. The load is bounded in time (``--serve-seconds``) after a
warm-up, and every response is checked (status and length).

Run it with ``./bench/run --sections serve`` or ``python bench/serve_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from snapcache.cache import Record, SnapshotCache  # noqa: E402
from snapcache.ids import mint_stable_id, resource_id  # noqa: E402


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fill_store(path: Path, n: int) -> list[str]:
    """``n`` synthetic records (previews of a realistic size); returns their IDs."""
    statuses = ("ok", "ok", "ok", "ok", "not_archived", "archived_error", "blocked", "error")
    words = ["archive", "capture", "source", "citation", "report", "policy", "model", "data",
             "open", "web", "page", "federal", "study"]
    rng = random.Random(7)
    ids = []
    with SnapshotCache(path) as store:
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
            store.save_attempt(record, text=preview * 4 if good else None,
                               history_entry={"at": record.last_attempt_at, "outcome": status})
            ids.append(record.resource_id)
    return ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               request: bytes) -> int:
    """Send one request on a kept-alive connection; return the status (body read fully)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _load(port: int, ids: list[str], connections: int, seconds: float,
                etags: dict[str, str] | None) -> dict[str, Any]:
    """Keep ``connections`` connections busy for ``seconds``; latencies in ms."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rng = random.Random(11)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                rid = rng.choice(ids)
                extra = f"If-None-Match: {etags[rid]}\r\n" if etags else ""
                request = (f"GET /v1/resources/{rid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"{extra}\r\n").encode()
                t0 = time.perf_counter()
                status = await _one(reader, writer, request)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies), "seconds": wall, "rps": len(latencies) / wall,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "max_ms": latencies[-1], "statuses": statuses,
    }


async def _etags(port: int, ids: list[str]) -> dict[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    found = {}
    try:
        for rid in ids:
            writer.write(f"GET /v1/resources/{rid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"etag:"):
                    found[rid] = line[5:].strip().decode()
                if line.lower().startswith(b"content-length:"):
                    length = int(line[15:])
            await reader.readexactly(length)
    finally:
        writer.close()
    return found


def run_serve(args: argparse.Namespace, results: dict[str, Any], tmp: Path,
              table: Any = None) -> None:
    """Fill the store, start ``snapcache serve``, load it; fills ``results["serve"]``."""
    n = args.serve_records
    _log(f"serve: filling a store with {n:,} synthetic records ...")
    t0 = time.perf_counter()
    ids = fill_store(tmp / "store", n)
    fill_s = time.perf_counter() - t0
    config = tmp / "serve.toml"
    config.write_text(f'[cache]\npath = "{tmp / "store"}"\n[rates]\n'
                      f'state_path = "{tmp / "ratelimit.sqlite"}"\n', encoding="utf-8")
    port = _free_port()
    log_file = (tmp / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "snapcache.cli", "--config", str(config), "serve",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("snapcache serve did not start") from None
                time.sleep(0.1)
        conns, secs = args.serve_connections, args.serve_seconds
        _log(f"serve: warm-up, then {secs:.0f} s at {conns} connections ...")
        asyncio.run(_load(port, ids, conns, 2.0, None))
        full = asyncio.run(_load(port, ids, conns, secs, None))
        sample = random.Random(3).sample(ids, 2000)
        etags = asyncio.run(_etags(port, sample))
        cached = asyncio.run(_load(port, sample, conns, secs / 2, etags))
        single = asyncio.run(_load(port, ids, 1, secs / 2, None))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_file.close()
    results["serve"] = {"records": n, "fill_s": fill_s, "connections": args.serve_connections,
                        "get": full, "get_304": cached, "get_one_connection": single}
    rows = [
        [f"GET /v1/resources/{{id}}, {conns} connections", f"{full['rps']:,.0f}",
         f"{full['p50_ms']:.1f}", f"{full['p99_ms']:.1f}", f"{full['requests']:,}",
         str(full["statuses"])],
        [f"same, If-None-Match matching (304), {conns} conns", f"{cached['rps']:,.0f}",
         f"{cached['p50_ms']:.1f}", f"{cached['p99_ms']:.1f}", f"{cached['requests']:,}",
         str(cached["statuses"])],
        ["GET /v1/resources/{id}, one connection", f"{single['rps']:,.0f}",
         f"{single['p50_ms']:.1f}", f"{single['p99_ms']:.1f}", f"{single['requests']:,}",
         str(single["statuses"])],
    ]
    notes = [f"{n:,} records in a diskcache store (filled through save_attempt in "
             f"{fill_s:.1f} s); `snapcache serve` as shipped (uvicorn, one process, access "
             f"log on); {args.serve_connections} keep-alive connections from an asyncio "
             f"client in another process; random IDs; {os.cpu_count()} CPUs shared by both "
             f"(load average {os.getloadavg()[0]:.1f} at the end)"]
    if table is not None:
        results["serve_table"] = table("snapcache serve", ["request", "req/s", "p50 ms",
                                                           "p99 ms", "requests", "statuses"],
                                       rows, notes)
    else:
        for row in rows:
            print("  ".join(row))
        print(*notes, sep="\n")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The serve section's options (shared with bench.py)."""
    ap.add_argument("--serve-records", type=int, default=10_000)
    ap.add_argument("--serve-connections", type=int, default=32)
    ap.add_argument("--serve-seconds", type=float, default=10.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    arguments = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="snapcache-serve-bench-") as d:
        run_serve(arguments, out, Path(d))
