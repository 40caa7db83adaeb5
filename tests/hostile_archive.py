"""A deliberately hostile archive server on 127.0.0.1, for tests.

Unlike the Wayback emulator (tests/wayback_emulator.py), which behaves like the archive, this
server says exactly what each test scripts, byte for byte: any status, any header (bytes the
HTTP client will only just accept included), any body, streamed in chunks of any size with
pauses between them, or a whole raw response. Each test scripts answers per path::

    with HostileArchive() as archive:
        archive.script(replay_path(TS, "https://x.example/"),
                       Answer(302, [("Location", "mailto:someone@x.example")]))
        archive.script_prefix("/cdx/", lambda request: Answer(200, body=rows()))
        config = emulator_config(tmp_path, archive.base_url)

A script is an :class:`Answer` (the same every time), a list of answers (one per request,
the last repeated) or a handler ``request -> Answer`` (seeded fuzzers use it). Unscripted
paths get the archive's "never archived": 404 without ``Memento-Datetime``. Every request is
logged in :attr:`HostileArchive.requests`. Stdlib only: an asyncio server in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

Header = tuple[str | bytes, str | bytes]
Body = bytes | Iterable[bytes]


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the server read it."""

    method: str
    target: str
    """The request target as sent (path and query, percent-escapes kept)."""
    headers: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        """The target's path."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        """The target's query parameters (the last value of each)."""
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))


@dataclass(slots=True)
class Answer:
    """What the server answers: exactly this, nothing added but what the flags say."""

    status: int = 200
    headers: Sequence[Header] = ()
    body: Body = b""
    reason: bytes | None = None
    """The reason phrase (default: the standard one, or ``X``)."""
    delay: float = 0.0
    """Seconds to wait before sending anything."""
    chunk_delay: float = 0.0
    """Seconds to wait between body chunks (a byte body is one chunk unless ``chunks``)."""
    chunks: Sequence[int] = ()
    """Split a byte body into pieces of these sizes first (the rest goes in one piece):
    ``(1,)`` sends its first byte alone. Each piece is flushed and, with ``chunk_delay``,
    sent after a pause, so the client reads it as its own network chunk."""
    content_length: bool = True
    """Add ``Content-Length`` for a byte body (unless the headers hold one)."""
    raw: bytes | None = None
    """Send these bytes as the whole answer instead (status line and all)."""


Script = Answer | Sequence[Answer] | Callable[[Request], Answer]


def http_date(timestamp14: str) -> str:
    """A 14-digit timestamp as an HTTP date (``Memento-Datetime``), e.g.
    ``Mon, 01 Jan 2024 00:00:00 GMT``."""
    import calendar
    import time

    seconds = calendar.timegm(time.strptime(timestamp14, "%Y%m%d%H%M%S"))
    return email.utils.formatdate(seconds, usegmt=True)


def replay_path(timestamp: str, url: str, flag: str = "id_", prefix: str = "/web/") -> str:
    """The path of a replay request as snapcache sends it (for simple URLs)."""
    return f"{prefix}{timestamp}{flag}/{url}"


def memento(
    timestamp: str,
    body: bytes = b"<html><title>Hello</title><body>Hello</body></html>",
    *,
    status: int = 200,
    original: str | None = None,
    headers: Sequence[Header] = (),
    content_type: str = "text/html; charset=utf-8",
) -> Answer:
    """A capture: ``status`` with ``Memento-Datetime`` (and ``Link rel="original"``)."""
    head: list[Header] = [("Content-Type", content_type),
                          ("Memento-Datetime", http_date(timestamp))]
    if original is not None:
        head.append(("Link", f'<{original}>; rel="original"'))
    return Answer(status, [*head, *headers], body)


def not_found() -> Answer:
    """The archive's "never archived": a 404 without ``Memento-Datetime``."""
    return Answer(404, [("Content-Type", "text/html")], b"<html>Not archived</html>")


@dataclass
class _Routes:
    exact: dict[str, Script] = field(default_factory=dict)
    prefixes: list[tuple[str, Script]] = field(default_factory=list)
    fallback: Script | None = None
    served: dict[str, int] = field(default_factory=dict)


class HostileArchive:
    """The server. Use as a context manager; :attr:`base_url` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self._routes = _Routes()
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    # --- scripting ----------------------------------------------------------------------

    def script(self, path: str, answer: Script) -> None:
        """Answer requests for exactly ``path`` (the query is not compared)."""
        with self._lock:
            self._routes.exact[path] = answer

    def script_prefix(self, prefix: str, answer: Script) -> None:
        """Answer requests whose path starts with ``prefix`` (the longest prefix wins)."""
        with self._lock:
            self._routes.prefixes.append((prefix, answer))
            self._routes.prefixes.sort(key=lambda item: -len(item[0]))

    def script_all(self, answer: Script) -> None:
        """Answer every request no other script matches."""
        with self._lock:
            self._routes.fallback = answer

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        with self._lock:
            return [r.path for r in self.requests]

    def _answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            key = request.path
            script = self._routes.exact.get(key)
            if script is None:
                for prefix, candidate in self._routes.prefixes:
                    if key.startswith(prefix):
                        script, key = candidate, prefix
                        break
            if script is None:
                script, key = self._routes.fallback, "*"
            count = self._routes.served.get(key, 0)
            self._routes.served[key] = count + 1
        if script is None:
            return not_found()
        if isinstance(script, Answer):
            return script
        if callable(script):
            return script(request)
        return script[min(count, len(script) - 1)]

    # --- serving ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError,
                                 asyncio.LimitOverrunError, ValueError):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = [*lines[0].split(" ", 2), "", ""][:3]
            headers = tuple(
                (name.strip(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            )
            length = next((v for n, v in headers if n.lower() == "content-length"), "0")
            if length.isdigit() and int(length):
                await reader.readexactly(int(length))
            answer = self._answer(Request(method, target, headers))
            await self._send(answer, writer)
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()

    async def _send(self, answer: Answer, writer: asyncio.StreamWriter) -> None:
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.raw is not None:
            writer.write(answer.raw)
            await writer.drain()
            return
        reason = answer.reason
        if reason is None:
            try:
                reason = HTTPStatus(answer.status).phrase.encode()
            except ValueError:
                reason = b"X"
        out = [b"HTTP/1.1 %d %s\r\n" % (answer.status, reason)]
        names = set()
        for name, value in answer.headers:
            bname = name.encode("latin-1") if isinstance(name, str) else name
            bvalue = value.encode("utf-8") if isinstance(value, str) else value
            names.add(bname.lower())
            out.append(bname + b": " + bvalue + b"\r\n")
        pieces: Iterator[bytes]
        if isinstance(answer.body, bytes | bytearray):
            if answer.content_length and b"content-length" not in names:
                out.append(b"Content-Length: %d\r\n" % len(answer.body))
            pieces = iter(_split(bytes(answer.body), answer.chunks))
        else:
            pieces = iter(answer.body)
        if b"connection" not in names:
            out.append(b"Connection: close\r\n")
        writer.write(b"".join(out) + b"\r\n")
        await writer.drain()
        for index, piece in enumerate(pieces):
            if answer.chunk_delay and index:
                await asyncio.sleep(answer.chunk_delay)
            writer.write(piece)
            await writer.drain()

    def start(self) -> HostileArchive:
        """Start serving on a free port of 127.0.0.1."""
        self._thread = threading.Thread(target=self._run, name="hostile-archive", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hostile archive did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                      limit=1 << 20)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            async with self._server:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._server.serve_forever()

        try:
            loop.run_until_complete(serve())
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop serving (connections in progress are dropped)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended already
                loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def _shutdown(self) -> None:
        """On the server's loop: close the server and drop every connection."""
        if self._server is not None:
            self._server.close()
        for task in asyncio.all_tasks():
            task.cancel()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileArchive:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _split(body: bytes, sizes: Sequence[int]) -> list[bytes]:
    out: list[bytes] = []
    rest = body
    for size in sizes:
        out.append(rest[:size])
        rest = rest[size:]
    if rest or not out:
        out.append(rest)
    return [piece for piece in out if piece] or [b""]
