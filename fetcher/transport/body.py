"""Reading a response body: bounded, spilled to a temporary file when large, and inflated
when the archive sends gzip although identity was asked for.

A spill file is created ``O_EXCL | O_NOFOLLOW`` (never through a planted link) in a folder
that must be the user's alone, and its name carries the writer's identity, so one left by a
killed process is removed when the store is next opened
(:func:`snapcache.cache.files.sweep_temp_files`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import httpx
from snapcache.cache.files import SPILL_PREFIX, check_private_directory, create_temp_file

from ..errors import TransientError

#: Bodies up to this size stay in memory; larger ones spill to a temporary file so that an
#: 80 MB PDF is never held in Python memory (pypdfium2 reads it from the path).
SPILL_BYTES: Final = 8 * 1024 * 1024
#: How much of a body to read when only its opening matters (redirects, error pages).
HEAD_BYTES: Final = 8192
#: Read limit meaning "the whole body, up to the configured cap".
FULL: Final = -1
_GZIP_MAGIC: Final = b"\x1f\x8b"
_GZIP_TYPES: Final = ("application/gzip", "application/x-gzip", "application/x-tar")


@dataclass(slots=True)
class Response:
    """A response whose body was read (fully, or its head only) and closed."""

    url: str
    status: int
    headers: dict[str, str]
    head: bytes
    """The first bytes of the decoded body (always set)."""
    body: bytes | None = None
    """The whole decoded body when it was asked for and stayed small."""
    body_path: Path | None = None
    """The whole decoded body in a temporary file when it was large; caller removes it."""
    size: int = 0
    """Decoded body bytes received (the whole body when it was read)."""
    capped: bool = False
    """The body was longer than the size cap and was cut there."""

    def discard(self) -> None:
        """Remove the temporary file, if any."""
        if self.body_path is not None:
            with contextlib.suppress(OSError):
                self.body_path.unlink()
            self.body_path = None


class BodySink:
    """Collects a body up to a cap, spilling to a temp file past SPILL_BYTES. The first
    ``head_bytes`` are kept apart in ``head`` whatever happens to the rest."""

    def __init__(self, cap: int, tmpdir: Path | None, head_bytes: int = HEAD_BYTES) -> None:
        self.cap = cap
        self.head_bytes = head_bytes
        self.tmpdir = tmpdir
        self.buffer = bytearray()
        self.file: IO[bytes] | None = None
        self.path: Path | None = None
        self.size = 0
        self.capped = False
        self.head = b""

    def write(self, data: bytes) -> bool:
        """Add data; return False once the cap is reached (stop reading)."""
        room = self.cap - self.size
        if len(data) > room:
            data = data[:room]
            self.capped = True
        if len(self.head) < self.head_bytes:
            self.head += data[: self.head_bytes - len(self.head)]
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
        else:
            self.buffer += data
            if len(self.buffer) > SPILL_BYTES:
                self._spill()
        return not self.capped

    def _spill(self) -> None:
        """Move the buffer to a new temporary file, written from now on."""
        if self.tmpdir is not None:
            # The spill folder lives in the store folder: the user's alone, or refused.
            check_private_directory(self.tmpdir)
        directory = self.tmpdir if self.tmpdir is not None else Path(tempfile.gettempdir())
        fd, self.path = create_temp_file(directory, SPILL_PREFIX)
        self.file = os.fdopen(fd, "wb")
        self.file.write(self.buffer)
        self.buffer = bytearray()

    def finish(self) -> tuple[bytes | None, Path | None]:
        """The body collected: in memory, or the path of its temporary file."""
        if self.file is not None:
            self.file.close()
            return None, self.path
        return bytes(self.buffer), None

    def abandon(self) -> None:
        """Drop the body, removing its temporary file if it spilled."""
        if self.file is not None:
            self.file.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


class Inflater:
    """Undoes the archive's double content-encoding quirk: gzip bytes delivered although we
    asked for identity (edgi web-monitoring-processing#309). Output is bounded by the cap, so
    a gzip bomb inflates to at most ``cap`` bytes."""

    def __init__(self) -> None:
        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes, limit: int) -> bytes:
        """Inflate ``data``, giving at most ``limit`` bytes (the rest waits in ``pending``)."""
        out = self.decoder.decompress(data, max(1, limit))
        return out

    @property
    def pending(self) -> bool:
        """Input is left that did not fit under the last limit."""
        return bool(self.decoder.unconsumed_tail)

    def more(self, limit: int) -> bytes:
        """Inflate at most ``limit`` more bytes of the pending input."""
        tail = self.decoder.unconsumed_tail
        return self.decoder.decompress(tail, max(1, limit))


def wants_inflate(headers: dict[str, str], first: bytes) -> bool:
    """Whether a body starting with ``first`` is gzip to undo (see :class:`Inflater`)."""
    encoding = headers.get("content-encoding", "").lower()
    content_type = headers.get("content-type", "").lower()
    if not first.startswith(_GZIP_MAGIC):
        return False
    if "gzip" in encoding:
        return True
    # A raw gzip payload with no encoding header: inflate unless the capture *is* a gzip file.
    return not any(t in content_type for t in _GZIP_TYPES)



async def read_body(
    url: str,
    resp: httpx.Response,
    headers: dict[str, str],
    limit: int,
    *,
    max_body_bytes: int,
    tmpdir: Path | None,
) -> Response:
    """Read the body of ``resp``, the answer to ``url``: all of it up to ``max_body_bytes``
    when ``limit`` is :data:`FULL` (then ``body`` or ``body_path`` holds it), else its first
    ``limit`` bytes (only ``head`` holds them). ``headers`` are ``resp``'s, lower-cased; a
    large body spills to a temporary file in ``tmpdir``.

    Raises :class:`TransientError` for a whole body shorter than its ``Content-Length``.
    """
    full = limit == FULL
    cap = max_body_bytes if full else max(0, limit)
    sink = BodySink(cap, tmpdir, head_bytes=cap if not full else HEAD_BYTES)
    raw_received = 0
    inflater: Inflater | None = None
    first = True
    try:
        async for chunk in resp.aiter_raw():
            raw_received += len(chunk)
            if first:
                first = False
                if wants_inflate(headers, chunk):
                    inflater = Inflater()
            piece = chunk if inflater is None else inflater.feed(chunk, cap - sink.size)
            if not sink.write(piece):
                break
            while inflater is not None and inflater.pending and sink.size < cap:
                if not sink.write(inflater.more(cap - sink.size)):
                    break
            if sink.capped:
                break
            if not full and sink.size >= cap:
                break
            if inflater is not None and inflater.pending:
                sink.capped = True
                break
    except BaseException:
        sink.abandon()
        raise
    declared = headers.get("content-length", "")
    complete_read = full and not sink.capped
    if complete_read and declared.isdigit() and raw_received < int(declared):
        sink.abandon()
        raise TransientError(f"body cut short: {raw_received} of {declared} bytes from {url}")
    body, path = sink.finish() if full else (None, None)
    if not full:
        sink.abandon()
    return Response(
        url=str(resp.url),
        status=resp.status_code,
        headers=headers,
        head=sink.head,
        body=body,
        body_path=path,
        size=sink.size,
        capped=sink.capped,
    )
