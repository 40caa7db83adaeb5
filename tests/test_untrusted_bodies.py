"""Every byte an archive returns is untrusted: bodies and timing from a hostile archive
(tests/hostile_archive.py, on 127.0.0.1).

Findings covered: 2 (a 100 MB CDX answer held whole and parsed on the event loop),
9 (gzip that loses data silently), 10 (no time bound per URL).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache import AsyncFetcher, Fetcher

from tests.conftest import emulator_config
from tests.hostile_archive import Answer, HostileArchive, http_date, memento, replay_path
from tests.test_cli import write_config

TS = "20240101000000"
GOOD = "20230101000000"
URL = "https://x.example/page"
FIRST = replay_path(TS, URL)
CDX = "/cdx/search/cdx"
HTML = b"<html><head><title>Parts</title></head><body><p>part one. "


@pytest.fixture
def archive() -> Iterator[HostileArchive]:
    with HostileArchive() as server:
        yield server


def config(tmp_path: Path, server: HostileArchive, **sections: dict[str, Any]) -> Any:
    sections.setdefault("retry", {"max_attempts": 2, "initial_backoff": 0.01,
                                  "max_backoff": 0.02})
    return emulator_config(tmp_path, server.base_url, **sections)


def fetch(tmp_path: Path, server: HostileArchive, **sections: Any) -> Any:
    with Fetcher(config(tmp_path, server, **sections)) as f:
        return f.fetch(URL, at=TS)


def served(body: bytes, *, encoding: bool = False, **answer: Any) -> Answer:
    headers = [("Content-Type", "text/html; charset=utf-8"),
               ("Memento-Datetime", http_date(TS)), ("Link", f'<{URL}>; rel="original"')]
    if encoding:
        headers.append(("Content-Encoding", "gzip"))
    return Answer(200, headers, body, **answer)


# --- finding 2: CDX answers ---------------------------------------------------------------

HEADER_ROW = b'[["urlkey","timestamp","original","mimetype","statuscode","digest","length"],\n'


def cdx_stream(total: int, good_first: bool = True) -> Iterator[bytes]:
    """An IA JSON CDX answer of ``total`` bytes, streamed a megabyte at a time: a good row
    for URL first, then rows for other pages (never held whole, here or there)."""
    yield HEADER_ROW
    sent = len(HEADER_ROW)
    if good_first:
        row = json.dumps(["k", GOOD, URL, "text/html", "200", "G", "10"]).encode() + b",\n"
        yield row
        sent += len(row)
    filler = b"".join(
        json.dumps(["k", GOOD, f"https://x.example/other/{i}", "text/html", "200", f"D{i}",
                    "10"]).encode() + b",\n" for i in range(5000))
    while sent < total:
        piece = filler[: total - sent]
        yield piece
        sent += len(piece)


def script_cdx_case(archive: HostileArchive, total: int) -> None:
    archive.script(FIRST, memento(TS, status=404, original=URL))
    archive.script(CDX, Answer(200, [("Content-Type", "application/json")],
                               cdx_stream(total)))
    archive.script(replay_path(GOOD, URL), memento(GOOD, original=URL))


#: Runs the CLI and reports its own peak RSS (kB) on stderr when it exits.
# VmHWM, the peak of this process's own memory: Linux's ru_maxrss survives exec, so in a
# child of a large pytest process it would report the parent's size at fork.
PEAK_RSS_WRAPPER = """
import atexit, re, sys
def _peak():
    with open("/proc/self/status") as fh:
        kb = int(re.search(r"VmHWM:\\s+(\\d+)", fh.read()).group(1))
    sys.stderr.write("\\nPEAK_RSS_KB %d\\n" % kb)
atexit.register(_peak)
sys.argv[0] = "snapcache"
from snapcache.cli import main
main()
"""


def test_a_100_mb_cdx_answer_is_cut_and_read_row_by_row(tmp_path: Path,
                                                        archive: HostileArchive) -> None:
    script_cdx_case(archive, 100_000_000)
    cfg = write_config(tmp_path, archive.base_url)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_WRAPPER, "--config", str(cfg), "fetch", URL,
         "--at", TS, "--json"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "ok" and record["capture_timestamp"] == GOOD, record
    match = re.search(r"PEAK_RSS_KB (\d+)", done.stderr)
    assert match is not None, done.stderr
    peak_mb = int(match.group(1)) / 1024
    print(f"\nRELIABILITY 100 MB CDX answer: peak RSS {peak_mb:.0f} MB, {elapsed:.1f} s")
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
    assert elapsed < 30


def test_a_cdx_answer_is_parsed_off_the_event_loop(tmp_path: Path,
                                                   archive: HostileArchive) -> None:
    # An answer right at its cap (8 MB here: ~70,000 rows) is parsed in a worker thread,
    # row by row: the event loop keeps ticking meanwhile.
    script_cdx_case(archive, 8_000_000)
    cfg = config(tmp_path, archive, archive={"max_cdx_bytes": 8_000_000})

    async def main() -> tuple[Any, float]:
        worst = 0.0
        stop = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal worst
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                worst = max(worst, time.perf_counter() - before - 0.01)

        beat = asyncio.create_task(heartbeat())
        async with AsyncFetcher(cfg) as f:
            record = await f.fetch(URL, at=TS)
        stop.set()
        await beat
        return record, worst

    record, worst = asyncio.run(main())
    assert record.status == "ok" and record.capture_timestamp == GOOD
    assert worst < 0.5, f"the event loop stalled {worst:.2f} s"


def test_a_cdx_answer_over_its_cap_keeps_the_rows_that_arrived(
    tmp_path: Path, archive: HostileArchive
) -> None:
    script_cdx_case(archive, 3_000_000)
    record = fetch(tmp_path, archive, archive={"max_cdx_bytes": 100_000})
    assert record.status == "ok" and record.capture_timestamp == GOOD


# --- finding 9: gzip ----------------------------------------------------------------------


def two_members() -> bytes:
    return gzip.compress(HTML) + gzip.compress(b"part two.</p></body></html>")


@pytest.mark.parametrize("encoding", [True, False], ids=["content-encoding", "raw-payload"])
def test_every_gzip_member_is_inflated(tmp_path: Path, archive: HostileArchive,
                                       encoding: bool) -> None:
    archive.script(FIRST, served(two_members(), encoding=encoding))
    record = fetch(tmp_path, archive)
    assert record.status == "ok"
    assert "part one" in record.preview and "part two" in record.preview, record.preview
    assert record.content_length == len(HTML) + len(b"part two.</p></body></html>")
    assert not record.body_truncated and record.preview_note is None


@pytest.mark.parametrize("chunks", [(1,), (1, 1, 1), (2,), (1, 9)])
def test_gzip_is_recognised_however_the_network_splits_it(
    tmp_path: Path, archive: HostileArchive, chunks: tuple[int, ...]
) -> None:
    archive.script(FIRST, served(two_members(), chunks=chunks, chunk_delay=0.05))
    record = fetch(tmp_path, archive)
    assert record.content_type == "text/html", record
    assert "part one" in record.preview and "part two" in record.preview


def test_a_one_byte_body_is_kept(tmp_path: Path, archive: HostileArchive) -> None:
    archive.script(FIRST, served(b"\x1f"))
    record = fetch(tmp_path, archive)
    assert record.status == "ok" and record.content_length == 1


#: Text that does not compress to nothing: cutting its gzip loses only its end.
WORDS = b" ".join(b"word%d" % i for i in range(20_000))


def damaged() -> bytes:
    data = bytearray(gzip.compress(HTML + WORDS + b" tail</p></body></html>"))
    data[len(data) // 2: len(data) // 2 + 8] = b"\xff" * 8
    return bytes(data)


@pytest.mark.parametrize(("body", "note"), [
    (damaged(), "damaged"),
    (gzip.compress(HTML + WORDS)[:-30], "cut short"),
    (gzip.compress(HTML) + b"junk after the gzip data", "not gzip"),
    (gzip.compress(HTML) + b"\x1f", "not gzip"),
], ids=["damaged", "cut", "trailing-junk", "trailing-byte"])
def test_a_body_whose_inflation_failed_is_marked(
    tmp_path: Path, archive: HostileArchive, body: bytes, note: str
) -> None:
    archive.script(FIRST, served(body, encoding=True, content_length=False))
    record = fetch(tmp_path, archive)
    assert record.status == "ok", record
    assert record.body_truncated, record
    assert record.preview_note is not None and note in record.preview_note, record.preview_note
    assert "part one" in record.preview


def test_nul_padding_after_gzip_is_harmless(tmp_path: Path, archive: HostileArchive) -> None:
    archive.script(FIRST, served(gzip.compress(HTML) + b"\0" * 100, encoding=True))
    record = fetch(tmp_path, archive)
    assert not record.body_truncated and record.preview_note is None


def test_many_empty_gzip_members_are_bounded(tmp_path: Path, archive: HostileArchive) -> None:
    empty = gzip.compress(b"")
    archive.script(FIRST, served(gzip.compress(HTML) + empty * 20_000, encoding=True))
    started = time.monotonic()
    record = fetch(tmp_path, archive)
    assert time.monotonic() - started < 10
    assert record.body_truncated and "gzip members" in (record.preview_note or "")


def test_a_stream_of_empty_deflate_blocks_is_cut(tmp_path: Path,
                                                 archive: HostileArchive) -> None:
    # Stored blocks of length 0: input without end that inflates to nothing.
    head = gzip.compress(HTML)[:10]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(HTML) + compressor.flush(zlib.Z_SYNC_FLUSH)
    empty_block = b"\x00\x00\x00\xff\xff"

    def body() -> Iterator[bytes]:
        yield head + start
        for _ in range(400):
            yield empty_block * 10_000

    archive.script(FIRST, Answer(200, [("Memento-Datetime", http_date(TS)),
                                       ("Content-Encoding", "gzip"),
                                       ("Content-Type", "text/html")], body()))
    record = fetch(tmp_path, archive, archive={"max_body_bytes": 1_000_000})
    assert record.status == "ok" and record.body_truncated
    assert "compressed data larger than" in (record.preview_note or "")


# --- finding 10: a deadline per URL -------------------------------------------------------


def test_a_url_has_a_deadline_over_all_its_hops(tmp_path: Path,
                                                archive: HostileArchive) -> None:
    # Every hop answers just under request_timeout with one more nearest-capture redirect.
    def slow_hop(request: Any) -> Answer:
        step = int(request.path.split("/")[2][:14]) - int(TS) + 1
        return Answer(302, [("Location", replay_path(str(int(TS) + step), URL))], delay=0.4)

    archive.script_prefix("/web/", slow_hop)
    started = time.monotonic()
    record = fetch(tmp_path, archive, archive={"request_timeout": 0.5, "url_deadline": 1.5,
                                               "max_redirects": 100})
    elapsed = time.monotonic() - started
    assert record.status == "error" and record.last_outcome == "error", record
    assert record.error is not None and "took longer than 1.5 s" in record.error
    assert elapsed < 4, elapsed
    assert 3 <= len(archive.requests) <= 5


def test_past_its_deadline_a_chain_tries_no_other_archive(
    tmp_path: Path, archive: HostileArchive
) -> None:
    from snapcache.config import config_from_mapping

    archive.script_prefix("/web/", Answer(503, delay=0.3))
    archive.script_prefix("/coll/", memento(TS, original=URL))
    doc = {
        "archive": {"base_url": archive.base_url, "url_deadline": 0.5},
        "archives": [{"name": "second", "base_url": archive.base_url, "dialect": "pywb",
                      "collection": "coll"}],
        "rates": {"state_path": str(tmp_path / "rl.sqlite")},
        "retry": {"max_attempts": 10, "initial_backoff": 0.05, "max_backoff": 0.1},
        "cache": {"path": str(tmp_path / "store")},
    }
    with Fetcher(config_from_mapping(doc, source="test")) as f:
        record = f.fetch(URL, at=TS)
    assert record.status == "error" and "took longer than" in (record.error or ""), record
    assert not any(p.startswith("/coll/") for p in archive.paths())


def test_waiting_for_a_rate_token_does_not_count(tmp_path: Path,
                                                 archive: HostileArchive) -> None:
    # Two URLs on a budget of one request every 2 s: the second waits ~2 s for its token,
    # longer than its 0.8 s deadline, and is still fetched.
    urls = [URL, "https://x.example/second"]
    for url in urls:
        archive.script(replay_path(TS, url), memento(TS, original=url))
    cfg = config(tmp_path, archive, archive={"url_deadline": 0.8},
                 rates={"playback_per_minute": 30.0})
    with Fetcher(cfg) as f:
        records = [f.fetch(u, at=TS) for u in urls]
    assert [r.status for r in records] == ["ok", "ok"], [r.error for r in records]
