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
    damage: str | None = None
    """Why the body is incomplete although it was not capped: its gzip data was damaged,
    cut inside a member or followed by junk (what inflated is kept)."""

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


#: A gzip payload is inflated member after member (``cat a.gz b.gz`` is one valid gzip
#: file); past this many members the rest is dropped and the body marked, so that a stream
#: of empty members cannot keep the event loop busy making decoders.
MAX_GZIP_MEMBERS: Final = 10_000
_INFLATE_STEP: Final = 16384


class Inflater:
    """Undoes the archive's double content-encoding quirk: gzip bytes delivered although we
    asked for identity (edgi web-monitoring-processing#309). Every member is inflated, and
    output is bounded by what the caller asks for, so a gzip bomb inflates to at most the
    cap. Input that cannot be inflated (damaged data, junk after the last member, a stream
    cut inside a member) stops it and is described in :attr:`damage`."""

    def __init__(self) -> None:
        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.input = b""
        """Compressed bytes received and not yet inflated."""
        self.members = 1
        self.produced = 0
        self.between = False
        """The last member ended; no next one has started yet."""
        self.damage: str | None = None
        """Why inflation stopped before the end of the data, if it did."""

    def feed(self, data: bytes) -> None:
        """Add compressed bytes (inflated by :meth:`take`)."""
        if self.damage is None:
            self.input += data

    @property
    def pending(self) -> bool:
        """Compressed input is waiting to be inflated."""
        return self.damage is None and bool(self.input) and not (
            self.between and len(self.input) < len(_GZIP_MAGIC))

    def take(self, limit: int) -> bytes:
        """Inflate pending input, giving at most ``limit`` bytes."""
        out: list[bytes] = []
        room = max(1, limit)
        while room > 0 and self.pending:
            if self.between and not self._next_member():
                break
            # A step of input at a time: when damage stops the decoder, only the output of
            # that step is lost, not everything inflated since the last network chunk.
            step, rest = self.input[:_INFLATE_STEP], self.input[_INFLATE_STEP:]
            try:
                piece = self.decoder.decompress(step, room)
            except zlib.error as exc:
                self._damaged(f"the gzip data is damaged ({exc})")
                break
            self.input = self.decoder.unconsumed_tail + rest
            if self.decoder.eof:
                self.input = self.decoder.unused_data + rest
                self.between = True
            out.append(piece)
            room -= len(piece)
            self.produced += len(piece)
            if not piece and not self.input:
                break  # the decoder needs more input than has arrived
        return b"".join(out)

    def _next_member(self) -> bool:
        """Start the member the pending input begins; False when it is no gzip."""
        if not self.input.strip(b"\0"):
            self.input = b""  # NUL padding after the last member (tape-style): harmless
            return False
        if not self.input.startswith(_GZIP_MAGIC):
            self._damaged(f"{len(self.input)}+ bytes after the gzip data are not gzip")
            return False
        if self.members >= MAX_GZIP_MEMBERS:
            self._damaged(f"more than {MAX_GZIP_MEMBERS} gzip members")
            return False
        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.members += 1
        self.between = False
        return True

    def _damaged(self, why: str) -> None:
        self.damage = f"{why}: kept the first {self.produced} inflated bytes"
        self.input = b""

    def finish(self) -> None:
        """The stream ended: note a member left unfinished, or junk after the last one."""
        if self.damage is not None:
            return
        if self.between:
            if self.input.strip(b"\0"):
                self._damaged(f"{len(self.input)} bytes after the gzip data are not gzip")
        elif not self.decoder.eof:
            self._damaged("the gzip data is cut short")


def wants_inflate(headers: dict[str, str], first: bytes) -> bool:
    """Whether a body starting with ``first`` (at least its first two bytes, when it has
    them) is gzip to undo (see :class:`Inflater`)."""
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

    Whether the body is gzip to inflate is decided on its first bytes, however the network
    splits them (a first chunk of one byte is buffered until the magic number can be
    checked). A body whose inflation failed or was cut is kept as far as it went and
    described in :attr:`Response.damage`.

    Raises :class:`TransientError` for a whole body shorter than its ``Content-Length``.
    """
    full = limit == FULL
    cap = max_body_bytes if full else max(0, limit)
    sink = BodySink(cap, tmpdir, head_bytes=cap if not full else HEAD_BYTES)
    # Compressed input may not run far ahead of the output it gives: gzip never makes data
    # much larger, so this bounds the bytes read for a stream of empty deflate blocks.
    raw_cap = cap + cap // 64 + 65536
    reader = _Reader(headers, sink, full)
    ended = False
    try:
        async for chunk in resp.aiter_raw():
            if not reader.add(chunk) or reader.raw > raw_cap:
                break
        else:
            ended = True
        if ended:
            reader.close()
    except BaseException:
        sink.abandon()
        raise
    declared = headers.get("content-length", "")
    complete_read = full and ended and reader.damage is None
    if complete_read and declared.isdigit() and reader.raw < int(declared):
        sink.abandon()
        raise TransientError(f"body cut short: {reader.raw} of {declared} bytes from {url}")
    if reader.raw > raw_cap and not sink.capped and reader.damage is None:
        reader.damage = f"compressed data larger than {raw_cap} bytes: the rest was not read"
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
        damage=reader.damage,
    )


class _Reader:
    """Feeds network chunks to a :class:`BodySink`, inflating when the first bytes say so."""

    def __init__(self, headers: dict[str, str], sink: BodySink, full: bool) -> None:
        self.headers = headers
        self.sink = sink
        self.full = full
        self.raw = 0
        self.first = b""
        self.decided = False
        self.inflater: Inflater | None = None
        self.damage: str | None = None

    def add(self, chunk: bytes) -> bool:
        """Take one network chunk; False when reading should stop."""
        self.raw += len(chunk)
        if not self.decided:
            self.first += chunk
            if len(self.first) < len(_GZIP_MAGIC):
                return True  # too little to tell gzip from anything else yet
            chunk, self.first = self.first, b""
            self.decided = True
            if wants_inflate(self.headers, chunk):
                self.inflater = Inflater()
        return self._put(chunk)

    def _put(self, chunk: bytes) -> bool:
        sink = self.sink
        if self.inflater is None:
            if not sink.write(chunk):
                return False
        else:
            inflater = self.inflater
            inflater.feed(chunk)
            while inflater.pending and sink.size < sink.cap:
                if not sink.write(inflater.take(sink.cap - sink.size)):
                    return False
            if inflater.damage is not None:
                self.damage = inflater.damage
                return False
            if inflater.pending:  # more output than the cap
                sink.capped = True
                return False
        return self.full or sink.size < sink.cap

    def close(self) -> None:
        """The stream ended: flush what was held back, and note unfinished gzip."""
        if not self.decided and self.first:
            self.decided = True
            self._put(self.first)
        if self.inflater is not None:
            self.inflater.finish()
            self.damage = self.damage or self.inflater.damage
