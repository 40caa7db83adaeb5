"""Every byte an archive returns is untrusted: headers and redirects from a hostile archive
(tests/hostile_archive.py, on 127.0.0.1) never crash a fetch, never become a wrong record,
and never reach a terminal or an export unclean.

Findings covered: 3 (exceptions on archive bytes), 5 (the Link header's quadratic regex),
7 (wrong records accepted as ok).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from snapcache import Fetcher
from snapcache.capture import (
    Hop,
    HopKind,
    Walk,
    WalkEnd,
    earlier_capture,
    link_original,
    memento_timestamp,
)
from snapcache.cdx import parse_cdx, parse_pywb_cdx
from snapcache.errors import ArchiveProtocolError
from snapcache.runner import RunEvent
from snapcache.untrusted import (
    LINK_MAX_ENTRIES,
    clean_text,
    parse_link_header,
    same_resource,
    strict_memento_timestamp,
    url_key,
)

from tests.conftest import emulator_config
from tests.hostile_archive import Answer, HostileArchive, http_date, memento, replay_path
from tests.test_cli import snapcache_exe, write_config

TS = "20240101000000"
URL = "https://x.example/page"
FIRST = replay_path(TS, URL)
CDX = "/cdx/search/cdx"
#: What no stored or printed text may contain: escapes and control characters.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def archive() -> Iterator[HostileArchive]:
    with HostileArchive() as server:
        yield server


def config(tmp_path: Path, archive: HostileArchive, **sections: dict[str, Any]) -> Any:
    sections.setdefault("retry", {"max_attempts": 2, "initial_backoff": 0.01,
                                  "max_backoff": 0.02})
    return emulator_config(tmp_path, archive.base_url, **sections)


def fetch(tmp_path: Path, archive: HostileArchive, url: str = URL, **sections: Any) -> Any:
    with Fetcher(config(tmp_path, archive, **sections)) as f:
        return f.fetch(url, at=TS)


def assert_recorded_error(tmp_path: Path, archive: HostileArchive, record: Any,
                          fragment: str) -> None:
    """An error attempt, stored with its message, fresh for the error TTL (not retried on
    the next run at once, and never a final outcome)."""
    assert record.status == "error" and record.last_outcome == "error", record
    assert record.error and fragment in record.error, record.error
    assert "internal error" not in record.error
    with Fetcher(config(tmp_path, archive)) as f:
        stored = f.lookup(URL)
        assert stored is not None and stored.last_outcome == "error"
        sent = len(archive.requests)
        again = f.fetch(URL, at=TS)
        assert len(archive.requests) == sent and again.attempts == stored.attempts


# --- finding 3: exceptions on archive bytes -----------------------------------------------


@pytest.mark.parametrize("with_memento", [False, True], ids=["nearest", "archived"])
def test_a_location_of_mailto_is_a_recorded_error_not_a_traceback(
    tmp_path: Path, archive: HostileArchive, with_memento: bool
) -> None:
    # httpx raises InvalidURL preparing the redirect it would follow (pywb replays a page
    # that redirected to mailto: exactly so).
    headers = [("Location", "mailto:someone@x.example")]
    if with_memento:
        headers.append(("Memento-Datetime", http_date(TS)))
    archive.script(FIRST, Answer(302, headers))
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "unusable answer from the archive")
    assert archive.paths() == [FIRST], "an unusable answer is not retried"


def test_a_run_records_every_url_that_gives_up(tmp_path: Path,
                                               archive: HostileArchive) -> None:
    urls = [f"https://x.example/{i}" for i in range(3)]

    def answer(request: Any) -> Answer:
        # Whatever the timestamp (a run asks for "now"): a mailto: redirect, a date that
        # overflows, and an archived 404 whose CDX answer is nested 100,000 deep.
        if request.path.endswith("/0"):
            return Answer(302, [("Location", "mailto:a@b.example")])
        if request.path.endswith("/1"):
            return Answer(200, [("Memento-Datetime", "Fri, 31 Dec 9999 23:59:59 -2359")],
                          b"x")
        return memento(TS, status=404, original=urls[2])

    archive.script_prefix("/web/", answer)
    archive.script(CDX, Answer(200, body=b"[" * 100_000))
    events: list[RunEvent] = []
    with Fetcher(config(tmp_path, archive)) as f:
        summary = f.run(urls, on_result=events.append)
        stored = [f.lookup(u) for u in urls]
        sent = len(archive.requests)
        for url in urls:
            f.fetch(url)
        due = [len(archive.requests) != sent] * 3
    assert len(events) == 3
    assert all(e.record is not None for e in events), [e.reason for e in events]
    assert not any("not stored" in (e.reason or "") for e in events)
    assert summary.outcomes["error"] == 2 and summary.outcomes["archived_error"] == 1
    assert [s.last_outcome if s else None for s in stored] == ["error", "error",
                                                               "archived_error"]
    assert due == [False, False, False], "each is fresh for its TTL: no retry on every run"


def test_a_memento_datetime_that_overflows_is_an_error_and_leaves_no_spill(
    tmp_path: Path, archive: HostileArchive
) -> None:
    body = b"<html>" + b"x" * 9_000_000 + b"</html>"  # past SPILL_BYTES: spilled to a file
    archive.script(FIRST, Answer(200, [("Memento-Datetime", "Fri, 31 Dec 9999 23:59:59 -2359"),
                                       ("Content-Type", "text/html")], body))
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "Memento-Datetime")
    spill_dir = tmp_path / "store" / "tmp"
    assert not spill_dir.exists() or not any(spill_dir.iterdir()), list(spill_dir.iterdir())


@pytest.mark.parametrize("body", [
    b"[" * 100_000,
    b'[["urlkey","timestamp","original","mimetype","statuscode","digest","length"],\n'
    + b"[" * 50_000 + b"\n]",
    b'[["urlkey","timestamp","original","mimetype","statuscode","digest","length"],\n'
    b'["x)/page","20230101000000","https://x.example/page","text/html","' + b"2" * 5000
    + b'","D","1"]]',
], ids=["nested", "nested-row", "5000-digit-status"])
def test_a_cdx_answer_that_breaks_the_parser_is_no_traceback(
    tmp_path: Path, archive: HostileArchive, body: bytes
) -> None:
    archive.script(FIRST, memento(TS, status=404, original=URL))
    archive.script(CDX, Answer(200, [("Content-Type", "application/json")], body))
    record = fetch(tmp_path, archive)
    # The CDX had nothing usable: the newest capture, an archived 404, is the outcome.
    assert record.status == "archived_error" and record.archived_status == 404, record


def test_the_cdx_parsers_survive_recursion_and_huge_numbers() -> None:
    deep = "[" * 100_000
    assert parse_cdx(deep) == []
    assert parse_pywb_cdx('{"a":' * 100_000) == []
    good = '["x)/","20230101000000","https://x.example/","text/html","200","D","12"]'
    text = "[" + "\n".join([good + ",", "[" * 5000 + ",", good.replace("D", "E") + "]"])
    assert [r.digest for r in parse_cdx(text)] == ["D", "E"]
    assert parse_cdx(f"x)/ 20230101000000 https://x.example/ t {'9' * 5000} D 1")[0].status \
        is None


def test_a_malformed_answer_is_a_transient_error_retried_then_recorded(
    tmp_path: Path, archive: HostileArchive
) -> None:
    archive.script(FIRST, Answer(raw=b"HTTP/1.1 2x0 Broken\r\nfoo\r\n\r\n"))
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "RemoteProtocolError")
    assert archive.paths() == [FIRST, FIRST]  # max_attempts = 2


# --- finding 5: the Link header ---------------------------------------------------------

ADVERSARIAL_LINKS = [
    "<" * 90_000,
    "<>" * 45_000,
    "<a>;" * 22_000,
    "<a>; rel=" + "x" * 90_000,
    '<a>; rel="' + "x" * 90_000,
    '<a>; datetime="' * 6_000,
    ";" * 90_000,
    "," * 90_000,
    "<a>, " * 18_000,
    "<a" + "; rel=memento" * 7_000,
    '<a>; rel="memento"; x=<<<<' + "<" * 90_000,
    "<a>; x" + "<" * 90_000,
    '<https://x/>; rel="original", ' * 3_000,
]


@pytest.mark.parametrize("header", ADVERSARIAL_LINKS, ids=range(len(ADVERSARIAL_LINKS)))
def test_link_headers_are_read_in_linear_time(header: str) -> None:
    started = time.perf_counter()
    entries = parse_link_header(header)
    link_original(header)
    earlier_capture(header, TS)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert len(entries) <= LINK_MAX_ENTRIES


def test_the_link_parser_reads_what_archives_send() -> None:
    header = (
        '<https://x.example/a>; rel="original", '
        '<http://a.example/web/timemap/link/https://x.example/a>; rel="timemap"; '
        'type="application/link-format", '
        '<http://a.example/web/20200101000000/https://x.example/a>; rel="first memento"; '
        'datetime="Wed, 01 Jan 2020 00:00:00 GMT", '
        '<http://a.example/web/20210101000000/https://x.example/a>; rel="prev memento"; '
        'datetime="Fri, 01 Jan 2021 00:00:00 GMT", '
        '<http://a.example/web/20220101000000/https://x.example/a>; rel=memento; '
        'datetime="Sat, 01 Jan 2022 00:00:00 GMT"'
    )
    entries = parse_link_header(header)
    assert [e.rels for e in entries] == [("original",), ("timemap",), ("first", "memento"),
                                         ("prev", "memento"), ("memento",)]
    assert link_original(header) == "https://x.example/a"
    earlier = earlier_capture(header, "20220101000000")
    assert earlier.timestamp == "20210101000000"
    # Entries are capped in number; an entry cut by the length cap is dropped.
    many = ", ".join(f'<https://x/{i}>; rel="memento"' for i in range(500))
    assert len(parse_link_header(many)) == LINK_MAX_ENTRIES
    assert parse_link_header('<a>; rel="x", <b>; rel="y', max_chars=20) == \
        parse_link_header('<a>; rel="x"')


def test_a_90_kb_link_header_costs_a_fetch_nothing(tmp_path: Path,
                                                   archive: HostileArchive) -> None:
    archive.script(FIRST, memento(TS, headers=[("Link", "<" * 90_000)]))
    started = time.monotonic()
    record = fetch(tmp_path, archive)
    assert record.status == "ok"
    assert time.monotonic() - started < 5


def test_other_regexes_on_archive_input_are_linear() -> None:
    from snapcache.archive import original_from_replay_url

    for text in ("/web/1" * 30_000, "/web/" + "1" * 90_000 + "x", "/web/11111111111111ab" * 5000):
        started = time.perf_counter()
        original_from_replay_url(text)
        original_from_replay_url(text, "/web/")
        assert time.perf_counter() - started < 1.0
    for value in ("Mon, " * 20_000, "1 " * 50_000, "0" * 100_000):
        started = time.perf_counter()
        with pytest.raises(ArchiveProtocolError):
            strict_memento_timestamp(value)
        assert time.perf_counter() - started < 1.0
    started = time.perf_counter()
    clean_text("\x1b[" * 100_000)
    url_key("https://x.example/" + "%2" * 50_000)
    assert time.perf_counter() - started < 1.0


# --- finding 7: wrong records accepted as ok ----------------------------------------------


def cdx_rows(*rows: tuple[str, str, str]) -> bytes:
    """An IA JSON CDX answer, one array per line: (timestamp, original, status) rows."""
    head = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"]
    lines = [json.dumps(head)] + [
        json.dumps(["k", ts, original, "text/html", status, f"D{i}", "100"])
        for i, (ts, original, status) in enumerate(rows)
    ]
    return ("[" + ",\n".join(lines) + "]\n").encode()


def test_a_cdx_row_for_another_host_is_not_the_cited_urls_capture(
    tmp_path: Path, archive: HostileArchive
) -> None:
    archive.script(FIRST, memento(TS, status=404, original=URL))
    archive.script(CDX, Answer(200, body=cdx_rows(
        ("20230101000000", "https://evil.example/page", "200"))))
    archive.script(replay_path("20230101000000", "https://evil.example/page"), memento(
        "20230101000000", original="https://evil.example/page"))
    record = fetch(tmp_path, archive)
    assert record.status == "archived_error" and record.archived_status == 404
    assert not any("evil" in p for p in archive.paths()), archive.paths()


def test_a_memento_whose_link_names_another_url_is_not_stored_as_ok(
    tmp_path: Path, archive: HostileArchive
) -> None:
    archive.script(FIRST, memento(TS, original="https://evil.example/page"))
    archive.script(CDX, Answer(200, body=b""))
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "capture of another URL")
    assert "evil.example" in record.error
    assert record.original_url is None and record.capture_timestamp is None
    # Issue 15's name for it: no final outcome (it says nothing about this URL), flagged.
    assert record.content_flag == "url_mismatch"
    assert record.skipped == [{"capture_timestamp": TS, "flag": "url_mismatch",
                               "archived_status": 200, "url": "https://evil.example/page"}]


def test_after_a_foreign_capture_the_next_candidate_is_tried(
    tmp_path: Path, archive: HostileArchive
) -> None:
    good = "20230101000000"
    archive.script(FIRST, memento(TS, original="https://evil.example/page"))
    archive.script(CDX, Answer(200, body=cdx_rows(
        (good, "http://WWW.X.example:80/page/", "200"))))
    archive.script(replay_path(good, "http://WWW.X.example:80/page/"),
                   memento(good, original="http://www.x.example/page/"))
    record = fetch(tmp_path, archive)
    assert record.status == "ok" and record.capture_timestamp == good, record
    assert record.original_url == "http://www.x.example/page/"
    assert record.content_flag is None
    assert [(e["flag"], e["capture_timestamp"]) for e in record.skipped] == [
        ("url_mismatch", TS)]


def test_a_nearest_redirect_to_another_urls_capture_is_refused(
    tmp_path: Path, archive: HostileArchive
) -> None:
    other = replay_path(TS, "https://evil.example/")
    archive.script(FIRST, Answer(302, [("Location", other)]))
    archive.script(CDX, Answer(200, body=b""))
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "capture of another URL")
    assert other not in archive.paths()


def test_an_archived_redirect_leads_to_its_targets_capture(
    tmp_path: Path, archive: HostileArchive
) -> None:
    target = "https://y.example/moved"
    archive.script(FIRST, Answer(301, [("Location", replay_path(TS, target)),
                                       ("Memento-Datetime", http_date(TS)),
                                       ("Link", f'<{URL}>; rel="original"')]))
    archive.script(replay_path(TS, target), memento(TS, original=target))
    record = fetch(tmp_path, archive)
    assert record.status == "ok" and record.original_url == target, record


@pytest.mark.parametrize("location", ["/save/status/spn2-abc", "/other/path",
                                      "/cdx/search/cdx?url=x.example"])
def test_a_nearest_redirect_off_the_replay_path_is_never_followed(
    tmp_path: Path, archive: HostileArchive, location: str
) -> None:
    archive.script(FIRST, Answer(302, [("Location", location)]))
    archive.script_all(memento(TS, original=URL))  # whatever else is asked: a good capture
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "outside the archive's replay path")
    assert archive.paths() == [FIRST]


def test_a_redirect_to_another_scheme_is_refused(tmp_path: Path,
                                                 archive: HostileArchive) -> None:
    other = archive.base_url.replace("http://", "https://") + replay_path("20230101000000", URL)
    archive.script(FIRST, Answer(302, [("Location", other)]))
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "redirect from http to https refused")
    walk = Walk("https://a.example/web/1id_/https://x/", frozenset({"a.example"}),
                replay_paths=("/web/",), scheme="https")
    assert walk.step(Hop(HopKind.NEAREST_REDIRECT, 302, walk.start,
                         location="http://a.example/web/2id_/https://x/")) is None
    assert walk.end is WalkEnd.OFF_ARCHIVE


@pytest.mark.parametrize("value", [
    "Mon, 01 Jan 0001 00:00:00 GMT",
    "Tue, 31 Dec 0999 23:59:59 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Fri, 31 Dec 9999 23:59:59 -2359",
    "Sat, 01 Jan 1990 00:00:00 GMT",
    "yesterday",
    "",
])
def test_an_impossible_memento_datetime_is_a_protocol_error(
    tmp_path: Path, archive: HostileArchive, value: str
) -> None:
    archive.script(FIRST, Answer(200, [("Memento-Datetime", value)], b"<html>x</html>"))
    record = fetch(tmp_path, archive)
    assert_recorded_error(tmp_path, archive, record, "Memento-Datetime")
    assert record.capture_timestamp is None


def test_memento_datetimes_are_read_strictly() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert strict_memento_timestamp("Tue, 27 Oct 2020 21:55:55 GMT", now) == "20201027215555"
    assert strict_memento_timestamp("Tue, 27 Oct 2020 23:55:55 +0200", now) == "20201027215555"
    assert strict_memento_timestamp("27 Oct 2020 21:55:55 UTC", now) == "20201027215555"
    soon = format_datetime(now + timedelta(hours=20), usegmt=True)
    assert len(strict_memento_timestamp(soon, now)) == 14
    for bad in ("Mon, 01 Jan 0001 00:00:00 GMT", "Tue, 31 Dec 0999 23:59:59 GMT",
                format_datetime(now + timedelta(days=2), usegmt=True),
                "Tue, 32 Oct 2020 21:55:55 GMT", "Tue, 27 Foo 2020 21:55:55 GMT",
                "Tue, 27 Oct 2020 21:55:55 +9999", "Tue, 27 Oct 2020 21:55:55"):
        with pytest.raises(ArchiveProtocolError):
            strict_memento_timestamp(bad, now)
        assert memento_timestamp(bad, now) is None


def test_url_equivalence_is_the_archives() -> None:
    same = [
        ("https://x.example/a?b=2&a=1", "http://WWW.X.Example:80/a/?a=1&b=2#frag"),
        ("https://x.example", "https://x.example/"),
        ("https://x.example:443/%7Euser", "http://www2.x.example/~user"),
    ]
    for a, b in same:
        assert same_resource(a, b), (a, b)
    different = [
        ("https://x.example/a", "https://evil.example/a"),
        ("https://x.example/a", "https://x.example/b"),
        ("https://x.example:8080/a", "https://x.example/a"),
        ("https://x.example/a?x=1", "https://x.example/a"),
        ("https://x.example/a", "mailto:x@x.example"),
        ("https://x.example/a", ""),
    ]
    for a, b in different:
        assert not same_resource(a, b), (a, b)


# --- archive strings in outputs -------------------------------------------------------


def test_archive_strings_reach_no_output_unclean(tmp_path: Path,
                                                 archive: HostileArchive) -> None:
    evil = "\u009b31m\u009b2J\u202eevil\u0085"
    urls = [f"https://x.example/{i}" for i in range(3)]
    # An ok capture whose headers carry C1 escapes (as UTF-8: the HTTP client passes them).
    archive.script_prefix(f"/web/{TS}id_/{urls[0]}", memento(
        TS, original=urls[0], headers=[("X-Archive-Orig-Content-Type", f"text/html{evil}")]))
    # A redirect refused, quoting its Location; a capture of another URL named by its Link.
    archive.script_prefix(f"/web/{TS}id_/{urls[1]}", Answer(
        302, [("Location", f"https://elsewhere.example/{evil}" + "x" * 20_000)]))
    archive.script_prefix(f"/web/{TS}id_/{urls[2]}", memento(
        TS, original=f"https://x.example/{evil}"))
    archive.script(CDX, Answer(200, body=b""))
    cfg = write_config(tmp_path, archive.base_url)
    outputs = []
    for url in urls:
        done = _cli("--config", str(cfg), "fetch", url, "--at", TS)
        outputs.append(done.stdout)
    for fmt in ("csv", "jsonl"):
        done = _cli("--config", str(cfg), "export", "--format", fmt)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    outputs.append(_cli("--config", str(cfg), "list").stdout)
    for text in outputs:
        assert not UNSAFE.search(json.loads(json.dumps(text))), repr(text[:500])
    exported = _cli("--config", str(cfg), "export", "--format", "jsonl").stdout
    records = [json.loads(line) for line in exported.splitlines()]
    assert len(records) == 3
    for record in records:
        for value in record.values():
            if isinstance(value, str):
                assert not UNSAFE.search(value), value
                assert len(value) <= 8192 + 512
    assert any("evil" in (r["error"] or "") for r in records)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([snapcache_exe(), *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


# --- the transport's one boundary, class by class -----------------------------------------


def _unicode_error() -> Exception:
    return UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")


@pytest.mark.parametrize(("raised", "mapped"), [
    (lambda: httpx.InvalidURL("bad Location"), "ArchiveProtocolError"),
    (lambda: httpx.DecodingError("bad gzip"), "ArchiveProtocolError"),
    (lambda: httpx.TooManyRedirects("loop"), "ArchiveProtocolError"),
    (lambda: httpx.CookieConflict("two"), "ArchiveProtocolError"),
    (lambda: httpx.StreamClosed(), "ArchiveProtocolError"),
    (lambda: ValueError("bad header"), "ArchiveProtocolError"),
    (lambda: OverflowError("date"), "ArchiveProtocolError"),
    (_unicode_error, "ArchiveProtocolError"),
    (lambda: LookupError("charset"), "ArchiveProtocolError"),
    (lambda: httpx.RemoteProtocolError("illegal status line"), "TransientError"),
    (lambda: httpx.ReadError("reset"), "TransientError"),
    (lambda: httpx.ReadTimeout("slow"), "TransientError"),
    (lambda: httpx.ProxyError("proxy"), "TransientError"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_the_transport_maps_every_client_exception_on_an_answer(
    tmp_path: Path, raised: Any, mapped: str
) -> None:
    from snapcache.errors import SnapcacheError
    from snapcache.transport import FULL, Pool, Transport

    def handler(request: httpx.Request) -> httpx.Response:
        raise raised()

    base = "http://127.0.0.1:9"
    cfg = emulator_config(tmp_path, base)
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    transport = Transport(cfg, client=client, tmpdir=tmp_path / "tmp")

    async def go() -> None:
        try:
            await transport.request("GET", f"{base}/web/{TS}id_/{URL}", Pool.PLAYBACK,
                                    want_body=lambda s, h: FULL)
        finally:
            await transport.aclose()

    with pytest.raises(SnapcacheError) as caught:
        asyncio.run(go())
    assert type(caught.value).__name__ == mapped, repr(caught.value)
