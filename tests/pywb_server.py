"""A real pywb server on 127.0.0.1, serving a collection of WARCs the tests write.

pywb (a test dependency) is driven by its own commands, exactly as its documentation says:
``wb-manager init COLL``, ``wb-manager add COLL file.warc.gz``, ``wb-manager acl add`` for an
access rule, then ``wayback -p PORT -b 127.0.0.1`` in the folder holding ``collections/``.
The WARCs are written with warcio: response records with real HTTP headers and WARC-Date.
"""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 404: "Not Found",
            500: "Internal Server Error"}


@dataclass(frozen=True, slots=True)
class Capture:
    """One archived HTTP response."""

    url: str
    timestamp: str
    """14 digits, UTC."""
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None


def warc_date(timestamp: str) -> str:
    """``20200101000000`` as the WARC-Date ``2020-01-01T00:00:00Z``."""
    t = timestamp
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}T{t[8:10]}:{t[10:12]}:{t[12:14]}Z"


def write_warc(path: Path, captures: list[Capture]) -> Path:
    """Write ``captures`` as gzipped WARC response records."""
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for c in captures:
            headers = [("Content-Type", c.content_type), ("Content-Length", str(len(c.body)))]
            if c.location is not None:
                headers.append(("Location", c.location))
            http = StatusAndHeaders(f"{c.status} {_REASONS.get(c.status, 'Status')}", headers,
                                    protocol="HTTP/1.1")
            record = writer.create_warc_record(
                c.url, "response", payload=io.BytesIO(c.body), http_headers=http,
                warc_headers_dict={"WARC-Date": warc_date(c.timestamp)},
            )
            writer.write_record(record)
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tool(name: str) -> str:
    """A console script of the running interpreter's environment (the venv's pywb)."""
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        raise RuntimeError(f"{name} not found beside {sys.executable}: install the test extra")
    return str(exe)


@dataclass
class PywbServer:
    """``with PywbServer(root, "coll", captures) as server:`` runs pywb on a free port."""

    root: Path
    collection: str
    captures: list[Capture]
    blocked_prefixes: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, *args: str) -> None:
        subprocess.run(args, cwd=self.root, check=True, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)

    def build(self) -> None:
        """Create the collection, add the WARC and the access rules."""
        self.root.mkdir(parents=True, exist_ok=True)
        warc = write_warc(self.root / "captures.warc.gz", self.captures)
        self._run(_tool("wb-manager"), "init", self.collection)
        self._run(_tool("wb-manager"), "add", self.collection, str(warc))
        for prefix in self.blocked_prefixes:
            self._run(_tool("wb-manager"), "acl", "add", self.collection, prefix, "block")

    def start(self, timeout: float = 60.0) -> None:
        """Start ``wayback`` and wait until its CDX endpoint answers."""
        self.port = free_port()
        log = (self.root / "wayback.log").open("wb")
        self.process = subprocess.Popen(
            [_tool("wayback"), "-p", str(self.port), "-b", "127.0.0.1"],
            cwd=self.root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        probe = f"{self.base_url}/{self.collection}/cdx?url=example.org&output=json"
        # No proxy from the environment: test traffic stays on 127.0.0.1.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pywb exited: {(self.root / 'wayback.log').read_text()}")
            with contextlib.suppress(OSError, urllib.error.URLError), opener.open(
                probe, timeout=2
            ) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("pywb did not answer in time")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> PywbServer:
        self.build()
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
