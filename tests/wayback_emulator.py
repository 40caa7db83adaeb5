"""A loopback emulator of the Internet Archive's Wayback Machine, for tests.

Stdlib + PyYAML, on top of :mod:`snapcache.demo.wayback` and :mod:`snapcache.demo.server`
(URL keys, playback redirects, the CDX query pipeline and the reply writer, which the
packaged demo archive uses too).  Start it in-process::

    with WaybackEmulator() as emu:
        emu.add_capture("https://example.com/", "20240101000000", body=b"<html>...</html>")
        httpx.get(f"{emu.base_url}/web/20240101000000id_/https://example.com/")

What it emulates (see /work/shared/reference/wayback-api.md, sections 2, 3, 6, 7):

* ``GET /web/<ts><flag>/<url>`` playback: exact hits with ``Memento-Datetime``/``Link``,
  nearest-capture 302s without them, archived 3xx with same-ts/same-flag ``Location``,
  view-mode wrappers and redirect interstitials, never-archived 404, excluded 200 page,
  not-yet-replayable captures, the gzip double ``Content-Encoding`` quirk.
* verbatim replay of real recorded responses (EDGI ``wayback`` cassettes, cdx_toolkit JSONL)
  found under ``tests/data/recordings``, with the archive host rewritten to this emulator.
* ``GET /cdx/search/cdx`` (and ``/web/timemap/json|cdx``) with the usual parameters.
* ``GET /wayback/available``.
* per-pool sliding-window rate limits answering 429 without ``Retry-After``, with optional
  escalation to a "firewall" that drops connections; 5xx outages.
* fault injection, switchable per test and deterministic from a seed (:meth:`add_fault`):
  5xx bursts (the next N requests, or a seeded fraction), connections reset mid-body,
  bodies shorter than their ``Content-Length``, slow answers and mid-body stalls past a
  client's timeout, well-formed but truncated bodies (cut CDX JSON), dropped connections.
  Every request reaching the server is logged with its wall-clock time (``request_log``).

Run standalone: ``python tests/wayback_emulator.py --port 8765 --demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import html
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from snapcache.demo.cdx import cdx_reply, matching_keys, query_params
from snapcache.demo.server import ReplyHandler
from snapcache.demo.wayback import (
    ARCHIVE_HOSTS,
    CDX_FIELDS,
    PLAYBACK_RE,
    Capture,
    RecordedResponse,
    Reply,
    archive_page,
    capture_from_recording,
    format_http_date,
    found_redirect,
    http_reason,
    maybe_unquote,
    nearest_capture,
    never_archived,
    not_found,
    now_timestamp,
    pad_timestamp,
    replay,
    surt_urlkey,
    timestamp_seconds,
    url_key,
)

__all__ = [
    "CDX_FIELDS",
    "DEFAULT_RECORDINGS_DIR",
    "Capture",
    "EmulatorResponse",
    "RecordedResponse",
    "WaybackEmulator",
    "add_demo_captures",
    "format_http_date",
    "load_recordings",
    "parse_cdx_lines",
    "pdf_from_objects",
    "surt_urlkey",
    "url_key",
]

DEFAULT_RECORDINGS_DIR: Path = Path(__file__).resolve().parent / "data" / "recordings"

POOLS: tuple[str, ...] = ("cdx", "playback", "availability", "other")

RATE_LIMIT_BODY: bytes = (
    b"<html><body><h1>429 Too Many Requests</h1>\n"
    b"You have sent too many requests in a given amount of time.\n</body></html>"
)

_HOP_BY_HOP = frozenset({"content-encoding", "transfer-encoding", "content-length"})


def parse_cdx_lines(text: str) -> list[list[str]]:
    """Split CDX text output (one row per line, space separated) into rows."""
    return [line.split(" ") for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass
class EmulatorResponse(Reply):
    """A response to write; ``None`` instead of this means: drop the connection."""

    #: Fault injection: send only this many body bytes (Content-Length still says all).
    cut_at: int | None = None
    #: With ``cut_at``: end with a TCP reset (RST) instead of a clean close (FIN).
    reset: bool = False
    #: Seconds to wait before the status line (a slow archive).
    delay: float = 0.0
    #: Seconds to stall after ``cut_at`` body bytes, then send the rest (a stalled body).
    stall: float = 0.0


def _emulated(reply: Reply) -> EmulatorResponse:
    """A shared answer as one that fault injection can alter."""
    return EmulatorResponse(reply.status, reply.headers, reply.body, reply.reason)


FAULT_KINDS: tuple[str, ...] = ("status", "reset", "short", "slow", "stall", "truncate", "drop")


@dataclass
class Fault:
    """One injected fault (see :meth:`WaybackEmulator.add_fault`)."""

    kind: str
    pool: str | None = None
    match: str | None = None
    count: int | None = None
    fraction: float = 1.0
    status: int = 503
    delay: float = 0.0
    keep: float = 0.5
    hits: int = 0

    def wants(self, pool: str, path: str) -> bool:
        if self.pool is not None and self.pool != pool:
            return False
        if self.match is not None and self.match not in path:
            return False
        return self.count is None or self.hits < self.count


RouteHandler = Callable[[str, str, dict[str, str], bytes], "EmulatorResponse | None"]
"""An extension endpoint: (method, path, lower-cased headers, body) -> response."""


# --------------------------------------------------------------------------------------
# Recordings
# --------------------------------------------------------------------------------------


def _decode_body(raw: Any) -> bytes:
    if raw is None:
        return b""
    body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if body[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError, zlib.error):
            body = gzip.decompress(body)
    return body


def _flatten_headers(headers: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, values in headers.items():
        vals = values if isinstance(values, list) else [values]
        for v in vals:
            if name.lower() in _HOP_BY_HOP:
                continue
            out.append((str(name), str(v)))
    return out


def _path_of(uri: str) -> str | None:
    for host in ARCHIVE_HOSTS:
        if uri.startswith(host + "/web/"):
            return uri[len(host) :]
    return None


@lru_cache(maxsize=8)
def _load_recordings_cached(root: str) -> tuple[RecordedResponse, ...]:
    base = Path(root)
    out: list[RecordedResponse] = []
    if not base.is_dir():
        return ()
    loader: Any = getattr(yaml, "CLoader", yaml.Loader)
    for f in sorted(base.rglob("*.yaml")):
        with f.open("rb") as fh:
            data = yaml.load(fh, Loader=loader)  # trusted test data (!!binary)
        for inter in (data or {}).get("interactions", []):
            req, resp = inter["request"], inter["response"]
            path = _path_of(req["uri"])
            if path is None or path.startswith("/web/timemap"):
                continue
            out.append(
                RecordedResponse(
                    path=path,
                    status=int(resp["status"]["code"]),
                    reason=str(
                        resp["status"].get("message") or http_reason(resp["status"]["code"])
                    ),
                    headers=_flatten_headers(resp.get("headers") or {}),
                    body=_decode_body((resp.get("body") or {}).get("string")),
                    source=str(f.relative_to(base)),
                )
            )
    for f in sorted(base.rglob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            path = _path_of(rec.get("url", ""))
            if path is None or rec.get("request_params"):
                continue
            status = int(rec["response_status_code"])
            out.append(
                RecordedResponse(
                    path=path,
                    status=status,
                    reason=http_reason(status),
                    headers=_flatten_headers(rec.get("response_headers") or {}),
                    body=_decode_body(rec.get("response_text")),
                    source=str(f.relative_to(base)),
                )
            )
    return tuple(out)


def load_recordings(root: Path | str = DEFAULT_RECORDINGS_DIR) -> list[RecordedResponse]:
    """All recorded playback responses under ``root`` (parsed once per process)."""
    return list(_load_recordings_cached(str(Path(root).resolve())))


# --------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    emulator: WaybackEmulator

    def __init__(self, addr: tuple[str, int], emulator: WaybackEmulator) -> None:
        self.emulator = emulator
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.emulator.firewalled:
            self.emulator._note_dropped()
            with contextlib.suppress(OSError):  # RST instead of FIN, like a firewall reject
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:  # silence
        pass


class _Handler(ReplyHandler):
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)) if length else b""
        emu = self.server.emulator
        try:
            resp = emu._handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception as exc:  # pragma: no cover - defensive
            resp = EmulatorResponse(
                500,
                [("Content-Type", "text/plain; charset=utf-8")],
                f"emulator error: {exc!r}".encode(),
            )
        if resp is None:
            self.close_connection = True
            return
        self._write(resp)

    def _write(self, resp: EmulatorResponse) -> None:
        emu = self.server.emulator
        if resp.delay > 0 and emu._stopping.wait(resp.delay):
            self.close_connection = True
            return
        if resp.cut_at is not None:
            self.close_connection = True
        self.send_reply(resp, resp.body if resp.cut_at is None else resp.body[: resp.cut_at])
        if resp.cut_at is None or self.command == "HEAD":
            return
        if resp.stall > 0:
            if emu._stopping.wait(resp.stall):
                return
            with contextlib.suppress(OSError):
                self.wfile.write(resp.body[resp.cut_at :])
                self.wfile.flush()
            return
        if resp.reset:
            with contextlib.suppress(OSError):  # close() now sends RST, not FIN
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )

    do_GET = _dispatch
    do_HEAD = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
    do_OPTIONS = _dispatch


# --------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------


class WaybackEmulator:
    """In-process Wayback Machine emulator on 127.0.0.1 (see module docstring)."""

    def __init__(
        self,
        *,
        port: int = 0,
        cdx_per_minute: int | None = None,
        playback_per_minute: int | None = None,
        window_seconds: float = 60.0,
        load_recordings: bool = True,
        availability_per_minute: int | None = None,
        firewall_after_seconds: float | None = None,
        firewall_seconds: float = 3600.0,
        firewall_doubling: bool = True,
        recordings_dir: Path | str | None = None,
        seed: int = 0,
    ) -> None:
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._faults: list[Fault] = []
        self._fault_rng = random.Random(seed)
        #: How many requests each injected fault hit, by kind.
        self.fault_hits: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        #: (wall-clock time, pool, status or -1 for a dropped/cut answer) of every request
        #: that reached the server, in order: rate checks look at it.
        self.request_log: list[tuple[float, str, int]] = []
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._captures: dict[str, list[Capture]] = {}
        self._raw_cdx: dict[str, list[list[str]]] = {}
        self._excluded: list[str] = []
        self._outage: int | None = None
        self._recordings: dict[str, RecordedResponse] = {}
        self._routes: list[tuple[str, str, RouteHandler]] = []
        self.limits: dict[str, int | None] = {
            "cdx": cdx_per_minute,
            "playback": playback_per_minute,
            "availability": availability_per_minute,
            "other": None,
        }
        self.window_seconds = window_seconds
        self.firewall_after_seconds = firewall_after_seconds
        self.firewall_seconds = firewall_seconds
        self.firewall_doubling = firewall_doubling
        self._windows: dict[str, deque[float]] = {p: deque() for p in POOLS}
        self._limited_since: dict[str, float | None] = dict.fromkeys(POOLS)
        self._firewall_until: float = 0.0
        self.firewall_count: int = 0
        self.counts: dict[str, int] = dict.fromkeys(POOLS, 0)
        self.requests: list[tuple[str, str, str]] = []
        self.count_429: int = 0
        self.count_dropped: int = 0
        #: Response body bytes sent, per pool (what a refresh saves is measured here).
        self.body_bytes: dict[str, int] = dict.fromkeys(POOLS, 0)
        #: The same bytes per request path (a benchmark splits them by kind of URL).
        self.body_bytes_by_path: Counter[str] = Counter()
        if load_recordings:
            self.load_recordings(recordings_dir or DEFAULT_RECORDINGS_DIR)

    # ---- lifecycle ----------------------------------------------------------------

    def start(self) -> WaybackEmulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"wayback-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WaybackEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- configuration ------------------------------------------------------------

    def load_recordings(self, root: Path | str = DEFAULT_RECORDINGS_DIR) -> int:
        """Load recorded playback responses; returns how many distinct paths were added."""
        added = 0
        for rec in load_recordings(root):
            with self._lock:
                if rec.path in self._recordings:
                    continue
                self._recordings[rec.path] = rec
                added += 1
            cap = capture_from_recording(rec)
            if cap is not None:
                self._add_capture_obj(cap, replace=False)
            elif not rec.has_memento_datetime and b"has been excluded from the Wayback" in rec.body:
                # the real archive excludes such sites as a whole (see also the CDX 403
                # recording for the same site): exclude the host, not just this URL
                m = PLAYBACK_RE.match(rec.path[len("/web/") :])
                if m:
                    self.add_excluded(url_key(maybe_unquote(m.group(3))).split("/", 1)[0])
        return added

    @property
    def recorded_paths(self) -> set[str]:
        with self._lock:
            return set(self._recordings)

    @property
    def recorded_responses(self) -> dict[str, RecordedResponse]:
        with self._lock:
            return dict(self._recordings)

    def add_capture(
        self,
        url: str,
        timestamp: str,
        *,
        status: int = 200,
        body: bytes = b"",
        content_type: str | None = "text/html; charset=utf-8",
        location: str | None = None,
        headers: dict[str, str] | None = None,
        gzip_quirk: bool = False,
        replayable: bool = True,
        in_cdx: bool = True,
        mimetype: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        """Add a capture.  ``body`` is the payload; with ``gzip_quirk`` it is stored gzipped
        (pass already-gzipped bytes to control them exactly).  ``headers`` become
        ``X-Archive-Orig-*``.  ``replayable=False`` = listed in CDX but playback redirects
        to the nearest replayable capture; ``in_cdx=False`` = playable but not in CDX.
        ``content_encoding`` sends ``body`` exactly as given with that Content-Encoding
        header, whatever the client accepts (e.g. a gzip bomb announced as gzip)."""
        if not re.fullmatch(r"\d{1,14}", timestamp):
            raise ValueError(f"bad timestamp {timestamp!r}")
        stored = body
        if gzip_quirk and body[:2] != b"\x1f\x8b":
            stored = gzip.compress(body, mtime=0)
        cap = Capture(
            url=url,
            timestamp=pad_timestamp(timestamp),
            status=status,
            body=stored,
            content_type=content_type,
            location=location,
            orig_headers=list((headers or {}).items()),
            gzip_quirk=gzip_quirk,
            replayable=replayable,
            in_cdx=in_cdx,
            mimetype=mimetype,
            content_encoding=content_encoding,
        )
        self._add_capture_obj(cap, replace=True)

    def _add_capture_obj(self, cap: Capture, *, replace: bool) -> None:
        with self._lock:
            lst = self._captures.setdefault(cap.key, [])
            for i, old in enumerate(lst):
                if old.timestamp == cap.timestamp and old.url == cap.url:
                    if replace:
                        lst[i] = cap
                    return
            lst.append(cap)
            lst.sort(key=lambda c: c.timestamp)

    def captures_for(self, url: str) -> list[Capture]:
        with self._lock:
            return list(self._captures.get(url_key(url), []))

    def add_cdx_rows(self, url: str, rows: Iterable[list[str]]) -> None:
        """Append raw 7-field CDX rows (verbatim, CDX-only, never playable) under url's key."""
        k = url_key(url.rstrip("*"))
        with self._lock:
            lst = self._raw_cdx.setdefault(k, [])
            for row in rows:
                if len(row) != len(CDX_FIELDS):
                    raise ValueError(f"CDX row needs {len(CDX_FIELDS)} fields: {row!r}")
                lst.append([str(v) for v in row])

    def add_excluded(self, url_prefix: str) -> None:
        with self._lock:
            self._excluded.append(url_key(url_prefix.rstrip("*")))

    def set_outage(self, status: int | None) -> None:
        with self._lock:
            self._outage = status

    def set_rate_limits(
        self,
        *,
        cdx_per_minute: int | None = None,
        playback_per_minute: int | None = None,
        availability_per_minute: int | None = None,
        window_seconds: float | None = None,
    ) -> None:
        with self._lock:
            self.limits["cdx"] = cdx_per_minute
            self.limits["playback"] = playback_per_minute
            self.limits["availability"] = availability_per_minute
            if window_seconds is not None:
                self.window_seconds = window_seconds

    def set_firewall(self, seconds: float | None) -> None:
        """Drop every new connection for ``seconds`` (None/0 = lift the block now)."""
        with self._lock:
            self._firewall_until = time.monotonic() + seconds if seconds else 0.0

    @property
    def firewalled(self) -> bool:
        """True while new connections are dropped (escalation or :meth:`set_firewall`)."""
        with self._lock:
            return time.monotonic() < self._firewall_until

    @firewalled.setter
    def firewalled(self, value: bool) -> None:
        self.set_firewall(self.firewall_seconds if value else None)

    def reset_counters(self) -> None:
        """Zero counts/requests/count_429 (rate-limit windows are kept)."""
        with self._lock:
            self.counts = dict.fromkeys(POOLS, 0)
            self.requests = []
            self.count_429 = 0
            self.count_dropped = 0
            self.body_bytes = dict.fromkeys(POOLS, 0)
            self.body_bytes_by_path = Counter()
            self.request_log = []
            self.fault_hits = dict.fromkeys(FAULT_KINDS, 0)

    # ---- fault injection ------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        *,
        pool: str | None = None,
        match: str | None = None,
        count: int | None = None,
        fraction: float = 1.0,
        status: int = 503,
        delay: float = 0.0,
        keep: float = 0.5,
    ) -> Fault:
        """Inject a fault into the answers to matching requests, until :meth:`clear_faults`.

        A request matches when its pool is ``pool`` (any if None) and its path contains
        ``match`` (any if None); ``count`` limits the fault to the next N matching requests
        (a burst), and ``fraction`` hits only that share of them, drawn from the emulator's
        seeded random generator (``seed=`` at construction, or :meth:`set_fault_seed`), so a
        test replays the same faults every time. Kinds:

        * ``status``: answer ``status`` (503 burst, CDX 504 on heavy queries...) with an
          nginx error page, without ``Memento-Datetime``;
        * ``reset``: send the head and ``keep`` of the body, then a TCP reset;
        * ``short``: send ``keep`` of the body and close cleanly: the body is shorter than
          its ``Content-Length``;
        * ``slow``: wait ``delay`` seconds before answering;
        * ``stall``: send ``keep`` of the body, stall ``delay`` seconds, then the rest;
        * ``truncate``: a well-formed answer whose body is only its first ``keep`` share
          (a cut CDX JSON document);
        * ``drop``: close the connection without any answer.

        The first matching fault applies; 429s of the rate limit come before any fault.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        fault = Fault(kind, pool, match, count, fraction, status, delay, keep)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault (counters are kept)."""
        with self._lock:
            self._faults = []

    def set_fault_seed(self, seed: int) -> None:
        """Restart the random generator that decides which requests a fraction hits."""
        with self._lock:
            self._fault_rng = random.Random(seed)

    def _pick_fault(self, pool: str, path: str) -> Fault | None:
        """Caller holds the lock."""
        for fault in self._faults:
            if not fault.wants(pool, path):
                continue
            if fault.fraction < 1.0 and self._fault_rng.random() >= fault.fraction:
                continue
            fault.hits += 1
            self.fault_hits[fault.kind] += 1
            return fault
        return None

    def _apply_fault(self, fault: Fault, resp: EmulatorResponse | None) -> EmulatorResponse | None:
        if resp is None or fault.kind == "drop":
            return None
        keep = max(0, min(len(resp.body), int(len(resp.body) * fault.keep)))
        if fault.kind == "truncate":
            resp.body = resp.body[:keep]
        elif fault.kind in ("reset", "short"):
            resp.cut_at = keep
            resp.reset = fault.kind == "reset"
        elif fault.kind == "slow":
            resp.delay = fault.delay
        elif fault.kind == "stall":
            resp.cut_at = keep
            resp.stall = fault.delay
        return resp

    def reset_rate_limits(self) -> None:
        """Forget the sliding windows and lift any firewall block."""
        with self._lock:
            for dq in self._windows.values():
                dq.clear()
            self._limited_since = dict.fromkeys(POOLS)
            self._firewall_until = 0.0
            self.firewall_count = 0

    def _note_dropped(self) -> None:
        with self._lock:
            self.count_dropped += 1

    # ---- request handling -------------------------------------------------------------

    @staticmethod
    def pool_for(path: str) -> str:
        p = urlsplit(path).path if not path.startswith("/web/") else path
        if p.startswith("/cdx/") or p.startswith("/web/timemap"):
            return "cdx"
        if p.startswith("/web/"):
            return "playback"
        if p.startswith("/wayback/available"):
            return "availability"
        return "other"

    def add_route(self, prefix: str, pool: str, handler: RouteHandler) -> None:
        """Serve paths starting with ``prefix`` with ``handler(method, path, headers, body)``
        (headers lower-cased), counted under ``pool``. Routes are tried before the built-in
        endpoints, after the firewall, outage and rate-limit checks (extensions such as the
        Save Page Now emulation plug in here)."""
        with self._lock:
            self._routes.append((prefix, pool, handler))
            if pool not in self.counts:
                self.counts[pool] = 0
                self._windows[pool] = deque()
                self._limited_since[pool] = None
                self.limits.setdefault(pool, None)

    def _route_for(self, path: str) -> tuple[str, RouteHandler] | None:
        for prefix, pool, handler in self._routes:
            if path.startswith(prefix):
                return pool, handler
        return None

    def _handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> EmulatorResponse | None:
        route = self._route_for(path)
        pool = route[0] if route else self.pool_for(path)
        now = time.monotonic()
        with self._lock:
            if now < self._firewall_until:
                self.count_dropped += 1
                return None
            self.counts[pool] += 1
            self.requests.append((pool, method, path))
            outage = self._outage
            fault: Fault | None = None
            if outage is None:
                limited = self._rate_limited(pool, now)
                if limited is not None:
                    self.request_log.append((time.time(), pool, 429))
                    return limited
                fault = self._pick_fault(pool, path)
            status = outage
            if status is None and fault is not None and fault.kind == "status":
                status = fault.status
            if status is not None:
                self.request_log.append((time.time(), pool, status))
                return self._outage_response(status)
        resp = self._answer(method, path, pool, route, headers, body)
        if fault is not None:
            resp = self._apply_fault(fault, resp)
        with self._lock:
            logged = -1 if resp is None or resp.cut_at is not None else resp.status
            self.request_log.append((time.time(), pool, logged))
            if resp is not None and method != "HEAD":
                sent = len(resp.body) if resp.cut_at is None else min(resp.cut_at, len(resp.body))
                self.body_bytes[pool] = self.body_bytes.get(pool, 0) + sent
                self.body_bytes_by_path[path] += sent
        return resp

    def _answer(
        self,
        method: str,
        path: str,
        pool: str,
        route: tuple[str, RouteHandler] | None,
        headers: dict[str, str],
        body: bytes,
    ) -> EmulatorResponse | None:
        hdrs = {k.lower(): v for k, v in headers.items()}
        if route is not None:
            return route[1](method, path, hdrs, body)
        if method not in ("GET", "HEAD"):
            return _emulated(not_found())
        if pool == "cdx":
            return self._cdx(path)
        if pool == "playback":
            return self._playback(path, hdrs)
        if pool == "availability":
            return self._availability(path)
        return _emulated(not_found())

    def _rate_limited(self, pool: str, now: float) -> EmulatorResponse | None:
        """Caller holds the lock."""
        limit = self.limits.get(pool)
        if limit is None:
            return None
        dq = self._windows[pool]
        while dq and dq[0] <= now - self.window_seconds:
            dq.popleft()
        if len(dq) < limit:
            dq.append(now)
            self._limited_since[pool] = None
            return None
        self.count_429 += 1
        since = self._limited_since[pool]
        if since is None:
            self._limited_since[pool] = now
        elif self.firewall_after_seconds is not None and now - since > self.firewall_after_seconds:
            self.firewall_count += 1
            factor = 2 ** (self.firewall_count - 1) if self.firewall_doubling else 1
            self._firewall_until = now + self.firewall_seconds * factor
            self._limited_since = dict.fromkeys(POOLS)
        return EmulatorResponse(
            429,
            [
                ("Content-Type", "text/html"),
                ("Cache-Control", "no-cache"),
                ("X-ts", "429"),
            ],
            RATE_LIMIT_BODY,
            "Too Many Requests",
        )

    @staticmethod
    def _outage_response(status: int) -> EmulatorResponse:
        reason = "Service Temporarily Unavailable" if status == 503 else http_reason(status)
        body = (
            f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        ).encode()
        return EmulatorResponse(status, [("Content-Type", "text/html")], body, reason)

    def _is_excluded(self, key: str) -> bool:
        with self._lock:
            return any(key.startswith(p) or (key + "/").startswith(p) for p in self._excluded)

    # ---- playback -----------------------------------------------------------------------

    def _playback(self, path: str, hdrs: dict[str, str]) -> EmulatorResponse:
        with self._lock:
            rec = self._recordings.get(path)
        if rec is not None:
            return _emulated(replay(rec, self.base_url))

        rest = path[len("/web/") :]
        m = PLAYBACK_RE.match(rest)
        if m:
            ts_raw: str | None = m.group(1)
            flag, original = m.group(2) or "", m.group(3)
        else:
            ts_raw, flag, original = None, "", rest
        original = maybe_unquote(original)
        if not original:
            return _emulated(not_found())
        key = url_key(original)
        if self._is_excluded(key):
            return self._excluded_page(original)
        with self._lock:
            caps = [c for c in self._captures.get(key, []) if c.replayable]
        found = nearest_capture(caps, ts_raw, original)
        if found is None:
            return _emulated(never_archived(original))
        chosen, exact = found
        if not exact:
            return _emulated(found_redirect(
                f"{self.base_url}/web/{chosen.timestamp}{flag}/{chosen.url}", chosen.timestamp))
        return self._serve_capture(chosen, flag, hdrs)

    def _link_header(self, cap: Capture) -> str:
        base = self.base_url
        with self._lock:
            caps = list(self._captures.get(cap.key, []))
        idx = caps.index(cap)

        def memento(c: Capture, rel: str) -> str:
            when = format_http_date(c.timestamp)
            return f'<{base}/web/{c.timestamp}/{c.url}>; rel="{rel}"; datetime="{when}"'

        parts = [
            f'<{cap.url}>; rel="original"',
            f'<{base}/web/timemap/link/{cap.url}>; rel="timemap"; type="application/link-format"',
            f'<{base}/web/{cap.url}>; rel="timegate"',
            memento(caps[0], "first memento"),
        ]
        if idx > 1:
            parts.append(memento(caps[idx - 1], "prev memento"))
        parts.append(memento(cap, "memento"))
        if idx < len(caps) - 2:
            parts.append(memento(caps[idx + 1], "next memento"))
        parts.append(memento(caps[-1], "last memento"))
        return ", ".join(parts)

    def _serve_capture(self, cap: Capture, flag: str, hdrs: dict[str, str]) -> EmulatorResponse:
        src = cap.src or f"emulator-{cap.timestamp}.warc.gz"
        ctype_main = (cap.content_type or "").split(";", 1)[0].strip().lower()
        is_doc = ctype_main in ("text/html", "application/xhtml+xml", "application/pdf")
        if flag == "" and 300 <= cap.status < 400 and cap.target:
            return self._view_redirect_page(cap, src)
        if flag == "" and 200 <= cap.status < 300 and is_doc:
            return self._view_wrapper(cap, src)

        headers: list[tuple[str, str]] = []
        if cap.content_type is not None:
            headers.append(("Content-Type", cap.content_type))
        headers += [
            ("Memento-Datetime", format_http_date(cap.timestamp)),
            ("Link", self._link_header(cap)),
            ("x-archive-src", src),
            ("X-ts", str(cap.status)),
            ("Cache-Control", "max-age=1800"),
        ]
        orig_names = {k.lower() for k, _ in cap.orig_headers}
        if cap.content_type is not None and "content-type" not in orig_names:
            headers.append(("X-Archive-Orig-Content-Type", cap.content_type))
        if "date" not in orig_names:
            headers.append(("X-Archive-Orig-Date", format_http_date(cap.timestamp)))
        headers += [(f"X-Archive-Orig-{k}", v) for k, v in cap.orig_headers]
        if 300 <= cap.status < 400 and cap.target:
            headers.append(("Location", f"{self.base_url}/web/{cap.timestamp}{flag}/{cap.target}"))
        body = cap.body
        if cap.content_encoding is not None:
            headers.append(("Content-Encoding", cap.content_encoding))
        elif cap.gzip_quirk:
            if "gzip" in hdrs.get("accept-encoding", "").lower():
                headers += [("content-encoding", ""), ("Content-Encoding", "gzip")]
            else:
                body = cap.payload
        return EmulatorResponse(cap.status, headers, body, cap.reason)

    def _view_wrapper(self, cap: Capture, src: str) -> EmulatorResponse:
        base = self.base_url
        memento_url = f"{base}/web/{cap.timestamp}/{cap.url}"
        date = format_http_date(cap.timestamp)
        ctype_main = (cap.content_type or "").split(";", 1)[0].strip().lower()
        head = (
            "<!DOCTYPE html>\n<html><head>\n"
            '<script src="//archive.org/includes/athena.js" type="text/javascript"></script>\n'
            '<script type="text/javascript" src="/_static/js/wombat.js"></script>\n'
            f"<title>The Wayback Machine - {html.escape(memento_url)}</title>\n"
            "<!-- End Wayback Rewrite JS Include -->\n</head><body>\n"
            "<!-- BEGIN WAYBACK TOOLBAR INSERT -->\n"
            f'<div id="wm-ipp-base">The Wayback Machine - {html.escape(memento_url)}'
            f" | captured {html.escape(date)}</div>\n"
            "<!-- END WAYBACK TOOLBAR INSERT -->\n"
        ).encode()
        if ctype_main == "application/pdf":
            inner = (
                f'<iframe id="playback" src="{base}/web/{cap.timestamp}if_/{html.escape(cap.url)}"'
                ' width="100%" height="100%"></iframe>\n'
            ).encode()
        else:
            inner = cap.payload
        tail = (
            f"\n<!--\n     FILE ARCHIVED ON {date} AND RETRIEVED FROM THE\n"
            "     INTERNET ARCHIVE ON (emulator).\n-->\n</body></html>\n"
        ).encode()
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("x-archive-src", src),
            ("X-Archive-Guessed-Content-Type", ctype_main or "text/html"),
            ("X-Archive-Screenname", "0"),
            ("X-ts", str(cap.status)),
        ]
        return EmulatorResponse(200, headers, head + inner + tail)

    def _view_redirect_page(self, cap: Capture, src: str) -> EmulatorResponse:
        target = cap.target or ""
        view_target = f"/web/{cap.timestamp}/{target}"
        when = time.strftime("%H:%M:%S %B %d, %Y", time.gmtime(timestamp_seconds(cap.timestamp)))
        body = (
            '<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <title></title>\n'
            '  </head>\n  <body>\n<div id="error">\n'
            '  <script type="text/javascript">\n    function go() {\n'
            f'      document.location.href = "{html.escape(view_target)}";\n    }}\n'
            "    window.setTimeout(go,  5000);\n  </script>\n"
            '  <p class="code">Loading...</p>\n'
            f'  <p class="code shift target">{html.escape(cap.url)} |\n    {when}</p>\n'
            f'  <p class="code shift red">Got an HTTP {cap.status} response at crawl time</p>\n'
            '  <p class="code">Redirecting to...</p>\n'
            f'  <p class="code shift target">{html.escape(cap.location or target)}</p>\n'
            f'  <p class="impatient"><a href="{html.escape(view_target)}">Impatient?</a></p>\n'
            "</div>\n  </body>\n</html>\n"
        ).encode()
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("x-archive-src", src),
            ("X-ts", str(cap.status)),
        ]
        return EmulatorResponse(200, headers, body)

    def _excluded_page(self, original: str) -> EmulatorResponse:
        body = archive_page(
            "Wayback Machine",
            "<h2>Sorry.</h2> <p>This URL has been excluded from the Wayback Machine.</p>",
        )
        return EmulatorResponse(200, [("Content-Type", "text/html; charset=utf-8")], body)

    # ---- CDX ----------------------------------------------------------------------------

    def _cdx_candidates(self, url: str, match_type: str) -> list[dict[str, str]]:
        with self._lock:
            rows: list[dict[str, str]] = []
            for k in matching_keys(set(self._captures) | set(self._raw_cdx), url, match_type):
                rows += [c.cdx_row() for c in self._captures.get(k, []) if c.in_cdx]
                rows += [dict(zip(CDX_FIELDS, r, strict=True)) for r in self._raw_cdx.get(k, [])]
        return rows

    def _cdx_rows(self, url: str, match_type: str) -> list[dict[str, str]] | None:
        """The CDX rows a query sees, or None when the site is excluded (a 403)."""
        if self._is_excluded(url_key(url)):
            return None
        return self._cdx_candidates(url, match_type)

    def _cdx(self, path: str) -> EmulatorResponse:
        parts = urlsplit(path)
        multi = query_params(parts.query)
        if parts.path.startswith("/web/timemap/link/") or parts.path == "/web/timemap/link":
            url = multi.get("url", [""])[-1]
            original = parts.path[len("/web/timemap/link/") :] or url
            if parts.query and not url:
                original += "?" + parts.query
            return self._timemap_link(maybe_unquote(original))
        if parts.path in ("/web/timemap/json", "/web/timemap/cdx", "/web/timemap"):
            if parts.path.endswith("/json") and "output" not in multi:
                multi["output"] = ["json"]
        elif parts.path not in ("/cdx/search/cdx", "/cdx/search"):
            return _emulated(not_found())
        return _emulated(cdx_reply(multi, self._cdx_rows))

    def _timemap_link(self, original: str) -> EmulatorResponse:
        caps = [c for c in self.captures_for(original) if c.in_cdx]
        if not caps or self._is_excluded(url_key(original)):
            return EmulatorResponse(404, [("Content-Type", "text/plain; charset=utf-8")], b"")
        base = self.base_url
        lines = [
            f'<{caps[0].url}>; rel="original",',
            f'<{base}/web/timemap/link/{original}>; rel="self"; type="application/link-format";'
            f' from="{format_http_date(caps[0].timestamp)}",',
            f'<{base}>; rel="timegate",',
        ]
        for i, c in enumerate(caps):
            rel = "first memento" if i == 0 else "last memento" if i == len(caps) - 1 else "memento"
            lines.append(
                f'<{base}/web/{c.timestamp}/{c.url}>; rel="{rel}";'
                f' datetime="{format_http_date(c.timestamp)}",'
            )
        return EmulatorResponse(
            200, [("Content-Type", "application/link-format")], ("\n".join(lines) + "\n").encode()
        )

    # ---- availability -----------------------------------------------------------------

    def _availability(self, path: str) -> EmulatorResponse:
        parts = urlsplit(path)
        if parts.path.rstrip("/") != "/wayback/available":
            return _emulated(not_found())
        q = dict(parse_qsl(parts.query, keep_blank_values=True))
        url = q.get("url", "")
        data: dict[str, Any] = {"url": url, "archived_snapshots": {}}
        ts = q.get("timestamp")
        if url and not self._is_excluded(url_key(url)):
            caps = [c for c in self.captures_for(url) if c.replayable]
            if caps:
                target = timestamp_seconds(pad_timestamp(ts) if ts else now_timestamp())
                best = min(
                    caps, key=lambda c: (abs(timestamp_seconds(c.timestamp) - target), c.timestamp)
                )
                data["archived_snapshots"] = {
                    "closest": {
                        "status": str(best.status),
                        "available": True,
                        "url": f"http://127.0.0.1:{self.port}/web/{best.timestamp}/{best.url}",
                        "timestamp": best.timestamp,
                    }
                }
        if ts is not None:
            data["timestamp"] = ts
        body = json.dumps(data).encode()
        callback = q.get("callback")
        if callback:
            body = callback.encode() + b"(" + body + b")"
        return EmulatorResponse(200, [("Content-Type", "application/json")], body)


# --------------------------------------------------------------------------------------
# Demo data and CLI
# --------------------------------------------------------------------------------------

_DEMO_HTML = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Example Domain</title></head>
<body>
<h1>Example Domain</h1>
<p>This domain is for use in illustrative examples in documents. You may use this
domain in literature without prior coordination or asking for permission.</p>
<p><a href="https://www.iana.org/domains/example">More information...</a></p>
</body>
</html>
"""


def _tiny_pdf(text: str) -> bytes:
    """A minimal valid one-page PDF with one line of text (no dependencies)."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_from_objects(objs)


def pdf_from_objects(objs: list[bytes]) -> bytes:
    """A PDF file from its numbered objects (object 1 the catalog), with a correct xref."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def add_demo_captures(emu: WaybackEmulator) -> None:
    """A small demo data set (extend freely)."""
    emu.add_capture(
        "https://example.com/",
        "20240101000000",
        body=_DEMO_HTML,
        headers={"Server": "ECS (dcb/7F84)", "Content-Length": str(len(_DEMO_HTML))},
    )
    emu.add_capture(
        "http://example.com/", "20230615120000", body=_DEMO_HTML.replace(b"<h1>", b"<h1>Old ")
    )
    emu.add_capture(
        "https://example.com/old-page", "20240101000000", status=301, location="/", body=b""
    )
    emu.add_capture("https://example.com/gz", "20240101000000", body=_DEMO_HTML, gzip_quirk=True)
    emu.add_capture(
        "https://example.com/fresh", "20240101000000", body=_DEMO_HTML, replayable=False
    )
    emu.add_capture("https://example.com/fresh", "20231201000000", body=_DEMO_HTML)
    emu.add_capture(
        "https://example.com/report.pdf",
        "20240101000000",
        body=_tiny_pdf("Hello from the emulator"),
        content_type="application/pdf",
    )
    emu.add_capture("https://example.com/missing", "20240101000000", status=404, body=b"gone")
    emu.add_excluded("https://excluded.example.org/")
    # The wiki's seed resource, at the capture time the wiki showed (wiki-compat.md).
    emu.add_capture(
        "https://www.ntia.gov/sites/default/files/publications/ntia-ai-open-model-report.pdf",
        "20260408194323",
        body=_tiny_pdf(
            "Dual-Use Foundation Models with Widely Available Model Weights. NTIA Report."
        ),
        content_type="application/pdf",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback Wayback Machine emulator")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--demo", action="store_true", help="add the demo capture set")
    parser.add_argument("--no-recordings", action="store_true", help="do not load recordings")
    parser.add_argument("--cdx-per-minute", type=int, default=None)
    parser.add_argument("--playback-per-minute", type=int, default=None)
    args = parser.parse_args(argv)
    emu = WaybackEmulator(
        port=args.port,
        load_recordings=not args.no_recordings,
        cdx_per_minute=args.cdx_per_minute,
        playback_per_minute=args.playback_per_minute,
    )
    if args.demo:
        add_demo_captures(emu)
    emu.start()
    print(emu.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
