"""The extraction worker: the child-process side of :class:`~.pool.ExtractPool`.

A worker is a small Python process that imports only this package, caps its own address
space (``RLIMIT_AS``) and then serves one extraction at a time over its standard input and
output. Whatever a document does to it (a Flate stream inflating to gigabytes, a parser
stuck for minutes), the parent process is untouched: it kills the worker and notes why.

The wire format is shared with the pool and kept here: every message is one frame, an
8-byte big-endian length and that many bytes. A request is two frames (a JSON header, then
the body, empty when the header names a file to read); a reply is one JSON frame. JSON, not
pickle, in both directions: the parent never unpickles anything a document could shape.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from dataclasses import asdict, fields
from typing import Any, BinaryIO, Final

from .core import extract
from .result import KINDS, Extraction, ExtractLimits

__all__ = [
    "FRAME_HEADER",
    "WORKER_MEMORY_EXIT",
    "decode_extraction",
    "encode_extraction",
    "frame",
    "main",
    "serve",
]

#: Bytes of the length prefix of every frame.
FRAME_HEADER: Final = 8
#: The exit status of a worker that ran out of memory (after it said so).
WORKER_MEMORY_EXIT: Final = 3
# Seconds added to a job's deadline before the worker's own alarm ends it: the parent kills
# it first; the alarm only matters if the parent died and nobody is waiting.
_ALARM_SLACK = 5


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix."""
    return len(payload).to_bytes(FRAME_HEADER, "big") + payload


def encode_extraction(result: Extraction) -> bytes:
    """The reply frame's payload for ``result``.

    ``ensure_ascii=False`` keeps non-ASCII text at its UTF-8 size (not six bytes a
    character); lone surrogates, which UTF-8 cannot hold, pass as they are."""
    return json.dumps({"ok": asdict(result)}, ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


_FIELDS: Final = frozenset(f.name for f in fields(Extraction))


def decode_extraction(fields_: dict[str, Any]) -> Extraction:
    """The :class:`Extraction` a worker sent; ``ValueError`` when it is not one."""
    if set(fields_) != _FIELDS:
        raise ValueError("not an extraction")
    result = Extraction(**fields_)
    if result.kind not in KINDS:
        raise ValueError("unknown kind")
    for name in ("kind", "content_type", "text", "preview"):
        if not isinstance(getattr(result, name), str):
            raise ValueError(f"{name} is not a string")
    for name in ("title", "note", "charset"):
        if not isinstance(getattr(result, name), str | None):
            raise ValueError(f"{name} is not a string")
    if not isinstance(result.pages, int | None) or isinstance(result.pages, bool):
        raise ValueError("pages is not an integer")
    return result


def _read_frame(stream: BinaryIO) -> bytes | None:
    """One frame's payload, or None at the end of the stream (the parent closed it)."""
    head = stream.read(FRAME_HEADER)
    if len(head) < FRAME_HEADER:
        return None
    size = int.from_bytes(head, "big")
    payload = stream.read(size)
    return payload if len(payload) == size else None


def _send(out: BinaryIO, payload: bytes) -> None:
    out.write(frame(payload))
    out.flush()


def _limit_memory(max_bytes: int) -> None:
    """Cap this process's address space (and allow no core dump: a worker that hits the
    cap inside PDFium aborts, and a 512 MB core file per hostile PDF helps nobody)."""
    try:
        import resource
    except ImportError:  # not POSIX: the wall-clock limit still holds
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if max_bytes <= 0:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        max_bytes = min(max_bytes, hard)  # a lower limit imposed from outside stays
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, hard))


def serve(requests: BinaryIO, replies: BinaryIO, limits: ExtractLimits) -> None:
    """Answer extraction requests until ``requests`` ends.

    Each request is a JSON header (``path`` or None, ``declared``) and a body frame. The
    reply is ``{"ok": fields}``, or ``{"error": "memory"}`` (then the worker exits, its
    heap in no state to go on) or ``{"error": "failed", "reason": name}`` for an exception
    no document should cause (a missing file)."""
    memory_reply = json.dumps({"error": "memory"}).encode()  # made now: no room later
    alarm = int(limits.deadline_seconds) + _ALARM_SLACK
    while True:
        header = _read_frame(requests)
        body = _read_frame(requests) if header is not None else None
        if header is None or body is None:
            return
        try:
            request = json.loads(header)
            source: bytes | str = request["path"] if request["path"] is not None else body
            del body
            if hasattr(signal, "alarm"):
                signal.alarm(alarm)
            result = extract(source, request["declared"], limits)
            del source
            reply = encode_extraction(result)
            del result
        except MemoryError:
            with contextlib.suppress(OSError):
                _send(replies, memory_reply)
            os._exit(WORKER_MEMORY_EXIT)  # no clean-up: it could need memory too
        except Exception as exc:
            reply = json.dumps({"error": "failed", "reason": type(exc).__name__}).encode()
        finally:
            if hasattr(signal, "alarm"):
                signal.alarm(0)
        _send(replies, reply)


def main(settings: dict[str, Any]) -> None:
    """The worker's entry point (see ``pool.py``'s bootstrap): ``settings`` holds the
    :class:`ExtractLimits` fields."""
    # The protocol gets its own descriptors; 0 and 1 become /dev/null so that nothing a
    # library prints can corrupt a frame.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # Ctrl-C is for the parent, which stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limits = ExtractLimits(**settings)
    try:
        _limit_memory(limits.max_memory_mb * 1024 * 1024)
    except (ValueError, OSError) as exc:
        _send(replies, json.dumps({"error": "start", "reason": str(exc)[:200]}).encode())
        return
    _send(replies, json.dumps({"ready": os.getpid()}).encode())
    with contextlib.suppress(BrokenPipeError):  # the parent went away
        serve(requests, replies, limits)
    sys.exit(0)
