"""The demo archive: a small Wayback Machine on 127.0.0.1 that serves real recorded
captures, enough to try snapcache without internet access.

It answers what snapcache asks an archive: ``/web/<ts>id_/<url>`` playback (a recorded
response verbatim, or the archive's 302 to the nearest capture, or its "never archived"
404) and ``/cdx/search/cdx`` queries. The recordings ship with the package under
``data/<source>/recordings.jsonl``, each source's LICENSE beside them (see
:mod:`snapcache.demo`).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from .cdx import cdx_reply, matching_keys, query_params
from .wayback import (
    PLAYBACK_RE,
    Capture,
    RecordedResponse,
    Reply,
    capture_from_recording,
    found_redirect,
    http_reason,
    maybe_unquote,
    nearest_capture,
    never_archived,
    not_found,
    replay,
    url_key,
    wire_headers,
)

#: The file of recordings in each source's folder under ``data/``.
RECORDINGS_FILE = "recordings.jsonl"


def load_demo_recordings() -> list[RecordedResponse]:
    """Every recorded response shipped with the package, source by source."""
    data = files(__package__ or "snapcache.demo") / "data"
    out: list[RecordedResponse] = []
    for folder in sorted(data.iterdir(), key=lambda f: f.name):
        recordings = folder / RECORDINGS_FILE
        if not recordings.is_file():
            continue
        for line in recordings.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(RecordedResponse.from_json_dict(json.loads(line)))
    return out


class DemoArchive:
    """The archive's answers, from recorded responses (by default the shipped ones)."""

    def __init__(self, recordings: Iterable[RecordedResponse] | None = None) -> None:
        listed = load_demo_recordings() if recordings is None else list(recordings)
        self.recordings: dict[str, RecordedResponse] = {r.path: r for r in listed}
        self.captures: dict[str, list[Capture]] = {}
        for rec in self.recordings.values():
            cap = capture_from_recording(rec)
            if cap is not None:
                self.captures.setdefault(cap.key, []).append(cap)
        for caps in self.captures.values():
            caps.sort(key=lambda c: c.timestamp)

    def answer(self, method: str, path: str, base_url: str) -> Reply:
        """The answer to ``method path`` from the archive at ``base_url``."""
        if method not in ("GET", "HEAD"):
            return not_found()
        if path.startswith("/web/"):
            return self.playback(path, base_url)
        parts = urlsplit(path)
        if parts.path in ("/cdx/search/cdx", "/cdx/search"):
            return cdx_reply(query_params(parts.query), self.cdx_rows)
        return not_found()

    def playback(self, path: str, base_url: str) -> Reply:
        """A recorded response verbatim; else the archive's 302 to the nearest capture
        (that capture's recording); else "never archived"."""
        rec = self.recordings.get(path)
        if rec is not None:
            return replay(rec, base_url)
        rest = path[len("/web/") :]
        m = PLAYBACK_RE.match(rest)
        ts_raw, original = (m.group(1), m.group(3)) if m else (None, rest)
        original = maybe_unquote(original)
        if not original:
            return not_found()
        found = nearest_capture(self.captures.get(url_key(original), []), ts_raw, original)
        if found is None:
            return never_archived(original)
        chosen, _exact = found
        # Every capture here is a recording: point at it, and it is then served verbatim
        # (even when asked for at its own time under another spelling of its URL).
        return found_redirect(f"{base_url}{chosen.recorded_path}", chosen.timestamp)

    def cdx_rows(self, url: str, match_type: str) -> list[dict[str, str]]:
        """The CDX rows of the captures a query covers (no site is blocked here)."""
        keys = matching_keys(self.captures, url, match_type)
        return [cap.cdx_row() for key in keys for cap in self.captures[key]]


class ReplyHandler(BaseHTTPRequestHandler):
    """A request handler that writes :class:`~snapcache.demo.wayback.Reply` answers the
    way the archive's nginx does: HTTP/1.1 keep-alive, its status line and headers, and
    head and body in one write."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def setup(self) -> None:
        """Disable Nagle's algorithm, which stalls small keep-alive answers."""
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_reply(self, reply: Reply, body: bytes | None = None) -> None:
        """Write ``reply``: its status, its headers, then ``body`` (default: all of the
        reply's body; Content-Length always gives the whole body's length)."""
        self.send_response_only(reply.status, reply.reason or http_reason(reply.status))
        for name, value in wire_headers(reply, date=self.date_time_string(),
                                        server=self.version_string()):
            self.send_header(name, value)
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        # One write for head and body: two small writes hit Nagle/delayed-ACK stalls.
        buf: list[bytes] = self.__dict__["_headers_buffer"]  # filled by send_header()
        buf.append(b"\r\n")
        if self.command != "HEAD":
            buf.append(reply.body if body is None else body)
        data = b"".join(buf)
        buf.clear()
        self.wfile.write(data)
        self.wfile.flush()


class _DemoHandler(ReplyHandler):
    server: DemoServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        reply = self.server.archive.answer(self.command, self.path, self.server.base_url)
        self.log_request(reply.status, len(reply.body))
        self.send_reply(reply)

    do_GET = _answer
    do_HEAD = _answer
    do_POST = _answer


class DemoServer(ThreadingHTTPServer):
    """The demo archive on a listening socket of 127.0.0.1 (one thread per connection)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, archive: DemoArchive | None = None, *,
                 log_requests: bool = False) -> None:
        # The socket is bound and listening already (perhaps by another process, which
        # then knew the port before this one started): adopt it rather than bind.
        super().__init__(sock.getsockname()[:2], _DemoHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.archive = archive or DemoArchive()
        self.log_requests = log_requests

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}"


def listen(port: int = 0) -> socket.socket:
    """A socket listening on 127.0.0.1:``port`` (0: any free port). Raises OSError."""
    return socket.create_server(("127.0.0.1", port), backlog=64)


__all__ = [
    "RECORDINGS_FILE",
    "DemoArchive",
    "DemoServer",
    "ReplyHandler",
    "listen",
    "load_demo_recordings",
]
