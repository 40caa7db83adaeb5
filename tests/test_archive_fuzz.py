"""Seeded random archive answers through ``fetch``: statuses, headers, bodies and CDX rows
from the hostile archive (tests/hostile_archive.py, 127.0.0.1), 2,000 URLs and more.

Every answer is drawn from a fixed seed and the request's own path, so a failing case can be
replayed. Promised: no traceback (every URL gives a record), every attempt stored with an
outcome or an error (never an "internal error", which would mean an exception reached the
engine unmapped), no control character in any stored string, every capture time 14 digits
from 1991 to tomorrow, no spill file left behind.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from snapcache import Fetcher
from snapcache.cache import Record
from snapcache.untrusted import capture_time_ok

from tests.conftest import emulator_config
from tests.hostile_archive import Answer, HostileArchive, Request, http_date

COUNT = 2000
SEED = 20261207
TS = "20240101000000"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
STATUSES = ("ok", "not_archived", "archived_error", "blocked", "error")
EVIL = "\u009b31m\u202e\x85"


def url_of(i: int) -> str:
    return f"https://f{i}.example/p/{i}?a=1&b=2"


class Fuzzer:
    """Answers each request from ``random.Random(seed, path, how many times it was asked)``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.asked: Counter[str] = Counter()

    def __call__(self, request: Request) -> Answer:
        self.asked[request.target] += 1
        rng = random.Random(f"{SEED}|{request.target}|{self.asked[request.target]}")
        if request.path.startswith("/cdx/"):
            return self.cdx(rng, request)
        return self.playback(rng, request)

    # --- pieces ---------------------------------------------------------------------------

    def original(self, rng: random.Random, request: Request) -> str:
        """The URL this request is a replay of (from its path), or another one."""
        match = re.match(r"/web/\d+(?:[a-z]{2}_)?/(.*)", request.target)
        url = match.group(1) if match else url_of(0)
        return rng.choice([
            url, url, url, url.replace("https://", "http://www."), url.upper(),
            "https://evil.example/", f"https://f1.example/{EVIL}", "mailto:x@y.example",
            url + "x" * rng.choice([1, 5000]), "", "<>", url.replace("&", "&amp;"),
        ])

    def timestamp(self, rng: random.Random) -> str:
        return rng.choice([TS, "20230101000000", "20200229120000", "19960101000000",
                           str(rng.randint(19910101000000, 20251231235959)),
                           "20231301000000", "00000000000000", "2023", "99991231235959"])

    def memento_datetime(self, rng: random.Random) -> str:
        good = http_date(rng.choice([TS, "20230101000000", "19961231235959"]))
        return rng.choice([good] * 16 + [
            "Fri, 31 Dec 9999 23:59:59 -2359", "Mon, 01 Jan 0001 00:00:00 GMT",
            "Tue, 31 Dec 0999 23:59:59 GMT", "garbage", "", "Thu, 01 Jan 1970 00:00:00 GMT",
            good.replace("GMT", "+1400"), good.replace("GMT", "-0000"), good + EVIL,
            "Mon, 99 Jan 2020 00:00:00 GMT", "Mon, 01 Jan 2020 25:61:61 GMT",
        ])

    def location(self, rng: random.Random, request: Request) -> str:
        ts = self.timestamp(rng)
        original = self.original(rng, request)
        return rng.choice([
            f"/web/{ts}id_/{original}", f"/web/{ts}id_/{original}",
            f"{self.base}/web/{ts}id_/{original}", f"/web/{ts}/{original}",
            "mailto:someone@x.example", "/save/status/spn2-" + "a" * 32, "/other/path",
            "http://[x", "//evil.example/web/1id_/x", "https://evil.example/",
            self.base.replace("http://", "https://") + f"/web/{ts}id_/{original}",
            "", " ", "javascript:alert(1)", f"/web/{ts}id_/{original}{EVIL}",
            "/web/" + "1" * 5000, "../" * 50 + "save/", "/web/%2e%2e/cdx/search/cdx",
            f"/web/{ts}id_/" + "https://x.example/" + "a" * 30_000,
        ])

    def link(self, rng: random.Random, request: Request) -> str:
        original = self.original(rng, request)
        when = self.memento_datetime(rng)
        return rng.choice([
            f'<{original}>; rel="original"',
            f'<{original}>; rel="original", <{self.base}/web/20200101000000/{original}>; '
            f'rel="first memento"; datetime="{when}", '
            f'<{self.base}/web/20210101000000/{original}>; rel="prev memento"; '
            f'datetime="{when}"',
            "<" * rng.choice([10, 50_000]), '<a>; rel="' * 100, f"<{original}>",
            f'<{original}>; rel=original; datetime="{EVIL}"',
        ])

    def body(self, rng: random.Random) -> tuple[bytes, list[tuple[str, str]]]:
        html = (f"<html><head><title>T{rng.random()}{EVIL}</title></head><body>"
                + "words " * rng.randint(0, 2000) + "</body></html>").encode()
        kind = rng.randrange(12)
        if kind == 0:
            return gzip.compress(html), [("Content-Encoding", "gzip")]
        if kind == 1:
            return gzip.compress(html) + gzip.compress(html), []
        if kind == 2:
            data = bytearray(gzip.compress(html))
            data[len(data) // 2:len(data) // 2 + 4] = b"\xff\x00\xff\x00"
            return bytes(data), [("Content-Encoding", "gzip")]
        if kind == 3:
            return gzip.compress(html)[: rng.randint(1, 30)], [("Content-Encoding", "gzip")]
        if kind == 4:
            return rng.randbytes(rng.randint(0, 3000)), []
        if kind == 5:
            return b"", []
        if kind == 6:
            return b"%PDF-1.4\n" + rng.randbytes(500), [("Content-Type", "application/pdf")]
        if kind == 7 and rng.random() < 0.05:
            return b"<html>" + b"x" * 9_000_000 + b"</html>", []  # spilled to a file
        return html, []

    def headers(self, rng: random.Random, request: Request) -> list[tuple[str, str]]:
        pool: list[Callable[[], tuple[str, str]]] = [
            lambda: ("Content-Type", rng.choice(["text/html", "text/html; charset=bogus-9",
                                                 f"text/{EVIL}", "", "application/gzip",
                                                 "x" * 3000])),
            lambda: ("X-Archive-Orig-Content-Type", "text/html" + rng.choice(["", EVIL])),
            lambda: ("Set-Cookie", rng.choice(["a=b; expires=Fri, 31 Dec 9999 23:59:59 GMT",
                                               "=;;;", "x" * 2000, "a=b; max-age=-1e400"])),
            lambda: ("X-Archive-Wayback-Runtime-Error", rng.choice([
                "AccessControlException", "ResourceNotInArchive", f"Weird{EVIL}"])),
            lambda: ("X-Archive-Redirect-Reason", f"found capture at {EVIL}"),
            lambda: ("Content-Encoding", rng.choice(["br", "deflate", "gzip, gzip", "zstd"])),
            lambda: (f"X-{rng.randint(0, 99)}", rng.choice([EVIL, "\u00ff" * 100, "v"])),
            lambda: ("Link", self.link(rng, request)),
        ]
        return [rng.choice(pool)() for _ in range(rng.randint(0, 3))]

    # --- answers ----------------------------------------------------------------------------

    def playback(self, rng: random.Random, request: Request) -> Answer:
        roll = rng.random()
        extra = self.headers(rng, request)
        if roll < 0.03:
            return Answer(raw=rng.choice([
                b"HTTP/1.1 2x0 Broken\r\n\r\n", b"garbage\r\n\r\n", b"",
                b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort",
                b"HTTP/1.1 200 OK\r\nMemento-Datetime: " + http_date(TS).encode()
                + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            ]))
        if roll < 0.35:  # a capture
            body, more = self.body(rng)
            status = rng.choice([200] * 6 + [404, 500, 503, 429, 403, 204, 999, 302])
            headers = [("Memento-Datetime", self.memento_datetime(rng)),
                       ("Content-Type", "text/html; charset=utf-8")]
            if rng.random() < 0.8:
                headers.append(("Link", self.link(rng, request)))
            if 300 <= status < 400:
                headers.append(("Location", self.location(rng, request)))
            return Answer(status, [*headers, *more, *extra], body,
                          chunks=rng.choice([(), (1,), (1, 1), (3, 7)]),
                          content_length=rng.random() < 0.9)
        if roll < 0.6:  # a redirect: the nearest capture, or a captured one
            headers = [("Location", self.location(rng, request))]
            if rng.random() < 0.4:
                headers.append(("Memento-Datetime", self.memento_datetime(rng)))
                headers.append(("Link", self.link(rng, request)))
            return Answer(rng.choice([301, 302, 303, 307, 308, 300, 304]), [*headers, *extra])
        if roll < 0.8:
            return Answer(404, extra, b"not archived")
        status = rng.choice([200, 403, 451, 429, 500, 502, 503, 504, 999, 100, 418, 0])
        body = rng.choice([b"URL has been excluded", b"", b"<html>view mode</html>"])
        return Answer(status, extra, body)

    def cdx(self, rng: random.Random, request: Request) -> Answer:
        url = request.query.get("url", url_of(0))
        roll = rng.random()
        if roll < 0.05:
            return Answer(rng.choice([403, 500, 503, 404]))
        if roll < 0.1:
            return Answer(200, body=rng.choice([
                b"[" * 100_000, b'{"a":' * 50_000, rng.randbytes(5000), b"", b"[]",
                b'[["urlkey","timestamp"]]', b"\xff\xfe" * 1000,
            ]))
        rows: list[list[str]] = []
        for _ in range(rng.randint(0, 12)):
            original = rng.choice([url, url, url.replace("https://", "http://www."),
                                   "https://evil.example/", "mailto:a@b", f"{url}{EVIL}"])
            rows.append(["k", self.timestamp(rng), original, "text/html",
                         rng.choice(["200", "200", "-", "404", "2" * 30, "abc", "301"]),
                         f"D{rng.randint(0, 3)}", rng.choice(["1", "-", "9" * 5000])])
        head = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest",
                "length"]
        form = rng.randrange(4)
        if form == 0:  # the IA's JSON, one array per line
            lines = [json.dumps(head)] + [json.dumps(r) for r in rows]
            if rng.random() < 0.2:
                lines.insert(rng.randint(1, len(lines)), "[" * 3000)
            body = ("[" + ",\n".join(lines) + "]\n").encode()
            if rng.random() < 0.2:
                body = body[: rng.randint(0, len(body))]  # a dropped connection
        elif form == 1:  # text
            body = "\n".join(" ".join(r) for r in rows).encode()
        elif form == 2:  # one line
            body = json.dumps([head, *rows]).encode()
        else:  # pywb's JSON lines
            body = "\n".join(json.dumps(dict(zip(
                ["urlkey", "timestamp", "url", "mime", "status", "digest", "length"], r,
                strict=True))) for r in rows).encode()
        return Answer(200, [("Content-Type", "application/json")], body)


def check_record(record: Record, base: str) -> None:
    assert record.last_outcome in STATUSES and record.status in STATUSES, record
    if record.status == "error" or record.last_outcome == "error":
        assert record.error, record
        assert "internal error" not in record.error, record.error
    for name, value in record.to_json_dict().items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str):
                assert not UNSAFE.search(item), (name, item[:200])
                assert len(item) <= 8192 + 512 or name in ("preview",), (name, len(item))
    if record.capture_timestamp is not None:
        assert capture_time_ok(record.capture_timestamp), record.capture_timestamp
    for url in (record.archive_url, record.raw_url):
        assert url is None or url.startswith(base + "/web/"), url


def test_two_thousand_random_archive_answers_never_crash_a_fetch(tmp_path: Path) -> None:
    with HostileArchive() as archive:
        fuzzer = Fuzzer(archive.base_url)
        archive.script_all(fuzzer)
        config = emulator_config(
            tmp_path, archive.base_url,
            archive={"max_redirects": 4, "request_timeout": 5.0, "read_timeout": 5.0,
                     "url_deadline": 20.0},
            rates={"cdx_per_minute": 6_000_000.0, "playback_per_minute": 6_000_000.0,
                   "pause_on_429": 0.0},
            retry={"max_attempts": 2, "initial_backoff": 0.001, "max_backoff": 0.002,
                   "max_total_seconds": 5.0},
        )
        urls = [url_of(i) for i in range(COUNT)]
        started = time.monotonic()
        with Fetcher(config) as f:
            results = f.fetch_many(urls, at=TS, concurrency=8)
            stored = [f.lookup(u) for u in urls]
        elapsed = time.monotonic() - started
        requests = len(archive.requests)

    crashed = [r for r in results if not isinstance(r, Record)]
    assert not crashed, crashed[:5]
    outcomes: Counter[str] = Counter()
    for url, record, kept in zip(urls, results, stored, strict=True):
        assert isinstance(record, Record)
        check_record(record, archive.base_url)
        assert kept is not None and kept.url == url and kept.attempts == 1, (url, kept)
        outcomes[record.last_outcome or "?"] += 1
    spill = tmp_path / "store" / "tmp"
    assert not spill.exists() or not any(spill.iterdir())
    print(f"\nRELIABILITY archive fuzz: {COUNT} URLs, {requests} random answers, "
          f"{elapsed:.1f} s, outcomes {dict(outcomes)}, 0 tracebacks")
    assert set(outcomes) >= {"ok", "error", "archived_error", "not_archived"}, outcomes
    assert requests >= COUNT
    assert elapsed < 120  # about 60 s on a 2-core machine
