"""Extraction in bounded worker processes: no document can take more than its budget.

:func:`~.core.extract` bounds what it reads, but not what a parser does with it: one PDF
page whose Flate content stream inflates to 400 MB took 6.5 GB and 48 s inside PDFium,
where no Python check runs, and a thread stuck there cannot be stopped. :class:`ExtractPool`
runs HTML, text and PDF extraction in a few reused child processes instead. Each caps its
own address space (``ExtractLimits.max_memory_mb``) and is killed past
``ExtractLimits.deadline_seconds``; the parent then answers an :class:`Extraction` with an
empty preview and a note saying why, and starts a fresh worker for the next document.

The workers are plain ``python -c`` processes talking over a socket pair (see :mod:`.worker`
for the wire format), not ``multiprocessing``: its "spawn" start method re-runs the caller's main
script in every child (an unguarded script would fetch again), and "fork" copies a
threaded process. A worker imports only this package, not the rest of snapcache, so it
starts in about 0.1 s. Bodies in files are passed by path; only in-memory bodies cross the
socket. Workers start on first use and stop on :meth:`ExtractPool.close`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict

from .core import extract
from .result import DEFAULT_WORKERS, TITLE_MAX_CHARS, Extraction, ExtractLimits, Kind
from .sniff import media_type, sniff
from .worker import FRAME_HEADER, WORKER_MEMORY_EXIT, decode_extraction, frame

__all__ = ["DEFAULT_WORKERS", "ExtractPool"]
# Seconds a new worker may take to import the extractor and say it is ready.
_START_SECONDS = 30.0
# Documents one worker extracts before it is replaced: bounds slow growth of its heap.
_JOBS_PER_WORKER = 500
# Bytes read from a file to decide its type (as core.extract does).
_HEAD_BYTES = 4096
_READ_CHUNK = 1 << 20

# Run by each worker: load this package without executing snapcache/__init__.py (which
# imports the HTTP client, the store and the rest: 0.3 s and 20 MB per worker for nothing),
# with the parent's import path, then serve. argv: [path list, limits] as JSON.
# A failure to import is sent as a frame: the worker's stderr goes nowhere.
_BOOT = """\
import importlib.util, json, os, sys
try:
    sys.path[:] = json.loads(sys.argv[1])
    if "snapcache" not in sys.modules:
        spec = importlib.util.find_spec("snapcache")
        if spec is not None and spec.submodule_search_locations is not None:
            sys.modules["snapcache"] = importlib.util.module_from_spec(spec)
    from snapcache.extract.worker import main
except BaseException as exc:
    why = json.dumps({"error": "start", "reason": f"{type(exc).__name__}: {exc}"}).encode()
    os.write(1, len(why).to_bytes(8, "big") + why)
    raise SystemExit(1)
main(json.loads(sys.argv[2]))
"""


class _Stopped(Exception):
    """A worker did not give an answer; ``note`` says why (it becomes the record's)."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


class _Worker:
    """One child process and the socket it talks over. Used by one thread at a time,
    except that :meth:`kill` may come from :meth:`ExtractPool.close` on another."""

    def __init__(self, python: str, settings: dict[str, object]) -> None:
        # A socket pair rather than two pipes: sends can say MSG_NOSIGNAL, so a worker that
        # died mid-request is an error here even in a program that restored the default
        # SIGPIPE action (which a pipe write would turn into the death of the caller).
        self._sock, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [python, "-c", _BOOT, json.dumps(sys.path), json.dumps(settings)],
                stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.DEVNULL,
                # Its own session: a Ctrl-C or a terminal hang-up is for the parent, which
                # stops the workers itself.
                start_new_session=True, close_fds=True,
            )
        except BaseException:
            self._sock.close()
            raise
        finally:
            theirs.close()
        self._sock.setblocking(False)
        self.jobs = 0
        self._reap_lock = threading.Lock()
        self._status: tuple[int, int] | None = None  # (wait status, peak RSS in KiB)

    @property
    def pid(self) -> int:
        """The process ID."""
        return self.proc.pid

    def wait_ready(self) -> None:
        """Wait for the worker's "ready" frame; :class:`_Stopped` if it never comes."""
        reply = self._read_reply(time.monotonic() + _START_SECONDS, 4096)
        if "ready" not in reply:
            raise _Stopped(f"extraction stopped: the worker could not start "
                           f"({str(reply.get('reason', 'no reason'))[:200]})")

    def request(self, header: bytes, body: bytes | memoryview, deadline: float,
                max_reply: int) -> dict[str, object]:
        """Send one request and return the decoded reply (see :mod:`.worker`)."""
        self._write(frame(header), deadline)
        self._write(len(body).to_bytes(FRAME_HEADER, "big"), deadline)
        self._write(body, deadline)
        self.jobs += 1
        return self._read_reply(deadline, max_reply)

    def _write(self, data: bytes | memoryview, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(select.POLLOUT, deadline)
            try:
                sent = self._sock.send(view[:_READ_CHUNK], socket.MSG_NOSIGNAL)
            except BlockingIOError:
                continue
            except OSError:  # EPIPE, ECONNRESET: it died
                raise _Stopped("") from None  # the caller asks how
            view = view[sent:]

    def _read_exact(self, size: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            self._wait(select.POLLIN, deadline)
            try:
                chunk = self._sock.recv(min(size - len(buf), _READ_CHUNK))
            except BlockingIOError:
                continue
            except ConnectionError:
                chunk = b""
            if not chunk:
                raise _Stopped("")  # it died: the caller asks how
            buf += chunk
        return bytes(buf)

    def _read_reply(self, deadline: float, max_reply: int) -> dict[str, object]:
        size = int.from_bytes(self._read_exact(FRAME_HEADER, deadline), "big")
        if size > max_reply:
            raise _Stopped("extraction stopped: the worker's answer was too large")
        try:
            reply = json.loads(self._read_exact(size, deadline).decode("utf-8", "surrogatepass"))
        except ValueError:
            raise _Stopped("extraction stopped: the worker's answer was not readable") from None
        if not isinstance(reply, dict):
            raise _Stopped("extraction stopped: the worker's answer was not readable")
        return reply

    def _wait(self, event: int, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        poller = select.poll()
        poller.register(self._sock, event)
        if not poller.poll(left * 1000):
            raise TimeoutError

    def kill(self) -> tuple[int, int]:
        """Kill and reap the process (idempotent); its wait status and peak RSS in KiB."""
        with self._reap_lock:
            if self._status is None:
                self._signal_kill()
                self._reap(0)
            assert self._status is not None
            return self._status

    def stop(self) -> None:
        """Ask the worker to exit (end of its input), kill it if it does not, reap it and
        close the pipes."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)  # the end of its input: it exits
        with self._reap_lock:
            deadline = time.monotonic() + 2.0
            while self._status is None and not self._reap(os.WNOHANG):
                if time.monotonic() > deadline:
                    self._signal_kill()
                    self._reap(0)
                    break
                time.sleep(0.002)
        self.dispose()

    def _signal_kill(self) -> None:
        # os.kill, not Popen.kill: that polls first and so may reap the process itself,
        # losing the status and peak RSS that say why it died. Until reaped, the ID cannot
        # be reused, so this never hits another process.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)

    def _reap(self, flags: int) -> bool:
        """Collect the exit status (``os.wait4``: it also gives the peak RSS); False while
        the process runs (with ``os.WNOHANG``)."""
        try:
            pid, status, usage = os.wait4(self.proc.pid, flags)
        except ChildProcessError:  # reaped elsewhere
            self._status = (0, 0)
            return True
        if pid == 0:
            return False
        self._status = (status, usage.ru_maxrss)
        # Popen would otherwise wait for it again (and warn that it still runs).
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return True

    def dispose(self) -> None:
        """Close the socket (after :meth:`kill` or :meth:`stop`)."""
        self._sock.close()


class ExtractPool:
    """A few reused worker processes that run :func:`~.core.extract` within limits.

    ``limits`` bounds every document, including ``max_memory_mb`` (each worker's address
    space) and ``deadline_seconds`` (wall clock per document, enforced by killing the
    worker). At most ``workers`` documents are extracted at once; more callers wait for a
    free worker. Thread-safe. A document that stops a worker gives an :class:`Extraction`
    with the sniffed type, an empty preview and a note ("extraction stopped: over 512 MB",
    "... took longer than 15 s"); it never raises for a document. Use as a context manager
    or call :meth:`close`, which stops every worker.
    """

    def __init__(
        self,
        limits: ExtractLimits | None = None,
        workers: int = DEFAULT_WORKERS,
        *,
        python: str | None = None,
    ) -> None:
        self.limits = limits if limits is not None else ExtractLimits()
        self.size = max(1, workers)
        self._python = python or sys.executable
        self._settings = asdict(self.limits)
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._closed = False
        self._starting = False
        self._owner = os.getpid()
        # A reply holds text and preview (at most 4 UTF-8 bytes a character, JSON escapes
        # of quotes and line breaks within that) and a title: more is not a reply.
        self._max_reply = (
            8 * (self.limits.text_chars + self.limits.preview_chars + TITLE_MAX_CHARS) + 65536
        )

    def __enter__(self) -> ExtractPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prestart(self) -> None:
        """Start one worker in the background if none runs yet, so that its start (about
        0.1 s) overlaps the caller's wait on the network instead of adding to it."""
        with self._lock:
            if self._closed or self._live or self._starting:
                return
            self._starting = True
        threading.Thread(target=self._prestart, name="snapcache-extract-start",
                         daemon=True).start()

    def _prestart(self) -> None:
        try:
            if not self._slots.acquire(blocking=False):
                return  # all workers busy or starting: nothing to gain
            try:
                self._give_back(self._take())
            except _Stopped:
                pass  # the extraction that needs it will say why
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._starting = False

    def pids(self) -> list[int]:
        """Process IDs of the workers alive now (for tests and monitoring)."""
        with self._lock:
            return sorted(w.pid for w in self._live)

    def extract(
        self, body: bytes | os.PathLike[str] | str, declared_content_type: str | None
    ) -> Extraction:
        """:func:`~.core.extract` of ``body`` (bytes, or the path of a file holding them),
        in a worker. Empty bodies and types without a preview are answered here without
        one. Raises ``RuntimeError`` after :meth:`close`, ``FileNotFoundError`` for a path
        that does not exist."""
        if self._closed:
            raise RuntimeError("the extraction pool is closed")
        path: str | None = None
        if isinstance(body, bytes | bytearray | memoryview):
            data = memoryview(body)
            head = bytes(data[:_HEAD_BYTES])
        else:
            # Absolute: the worker may have started before the caller changed directory.
            path = os.path.abspath(os.fspath(body))
            with open(path, "rb") as fh:
                head = fh.read(_HEAD_BYTES)
            data = memoryview(b"")
        declared_mime = media_type(declared_content_type)
        if not head:
            return extract(b"", declared_content_type, self.limits)
        kind, content_type = sniff(head, declared_mime)
        if kind == "other":  # nothing to parse: answered here, no worker needed
            return extract(head, declared_content_type, self.limits)
        if kind != "pdf" and path is None:
            # HTML and text are cut at html_max_bytes anyway: send no more than that.
            data = data[: max(self.limits.html_max_bytes, 0) + 1]
        header = json.dumps({"path": path, "declared": declared_content_type}).encode()
        try:
            with self._worker() as worker:
                reply = self._ask(worker, header, data)
        except _Stopped as stop:
            return _stopped(kind, content_type, stop.note)
        if "ok" in reply and isinstance(reply["ok"], dict):
            try:
                return decode_extraction(reply["ok"])
            except (TypeError, ValueError):
                return _stopped(kind, content_type,
                                "extraction stopped: the worker's answer was not readable")
        if reply.get("reason") == "FileNotFoundError":
            raise FileNotFoundError(path)
        return _stopped(kind, content_type,
                        f"extraction failed: {str(reply.get('reason', 'unknown'))[:80]}")

    def _ask(self, worker: _Worker, header: bytes, data: memoryview) -> dict[str, object]:
        deadline = time.monotonic() + self.limits.deadline_seconds
        try:
            reply = worker.request(header, data, deadline, self._max_reply)
        except TimeoutError:
            self._discard(worker)
            raise _Stopped(
                f"extraction stopped: took longer than {self.limits.deadline_seconds:g} s"
            ) from None
        except _Stopped as stop:
            raise _Stopped(stop.note or self._why_died(worker)) from None
        if reply.get("error") == "memory":
            self._discard(worker)
            raise _Stopped(f"extraction stopped: over {self.limits.max_memory_mb} MB")
        return reply

    def _why_died(self, worker: _Worker) -> str:
        """The note for a worker that ended without answering (and reap it)."""
        status, peak_kib = self._discard(worker)
        limit_kib = self.limits.max_memory_mb * 1024
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == WORKER_MEMORY_EXIT:
            return f"extraction stopped: over {self.limits.max_memory_mb} MB"
        if os.WIFSIGNALED(status):
            # Under RLIMIT_AS, PDFium and lexbor abort when an allocation fails: a worker
            # that died by a signal near its limit ran out of room.
            if peak_kib * 2 >= limit_kib:
                return f"extraction stopped: over {self.limits.max_memory_mb} MB"
            name = signal.Signals(os.WTERMSIG(status)).name
            return f"extraction stopped: the worker crashed ({name})"
        return "extraction stopped: the worker ended without an answer"

    @contextlib.contextmanager
    def _worker(self) -> Iterator[_Worker]:
        """A worker for one job: an idle one, else a new one. Back to the idle list
        afterwards unless the job discarded it."""
        with self._slots:
            worker = self._take()
            try:
                yield worker
            except BaseException:
                self._discard(worker)
                raise
            self._give_back(worker)

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise _Stopped("extraction stopped: the pool was closed")
            if os.getpid() != self._owner:
                # A forked copy of the pool: the workers and pipes belong to the parent.
                self._idle, self._live, self._owner = [], set(), os.getpid()
            if self._idle:
                return self._idle.pop()
        try:
            worker = _Worker(self._python, self._settings)
        except OSError as exc:
            raise _Stopped(f"extraction stopped: the worker could not start ({exc})") from None
        with self._lock:
            self._live.add(worker)
        try:
            worker.wait_ready()
        except (_Stopped, TimeoutError) as exc:
            status, _peak = self._discard(worker)
            note = exc.note if isinstance(exc, _Stopped) and exc.note else (
                f"extraction stopped: the worker could not start (status {status})")
            raise _Stopped(note) from None
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker not in self._live:
                gone = True  # close() killed it meanwhile
            elif not self._closed and worker.jobs < _JOBS_PER_WORKER:
                self._idle.append(worker)
                return
            else:
                gone = False
                self._live.discard(worker)
        if gone:
            worker.kill()
            worker.dispose()
        else:
            worker.stop()

    def _discard(self, worker: _Worker) -> tuple[int, int]:
        with self._lock:
            self._live.discard(worker)
        status = worker.kill()
        worker.dispose()
        return status

    def close(self) -> None:
        """Stop every worker (idle ones asked to exit, busy ones killed) and reap them.
        Idempotent; :meth:`extract` raises afterwards."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = [w for w in self._live if w not in idle]
            self._live = set()
            forked = os.getpid() != self._owner
        if forked:
            return  # not ours to stop
        for worker in busy:
            worker.kill()  # its thread sees the pipe close and answers "stopped"
        for worker in idle:
            worker.stop()


def _stopped(kind: Kind, content_type: str, note: str) -> Extraction:
    return Extraction(kind=kind, content_type=content_type, title=None, text="", preview="",
                      note=note, charset=None, pages=None)
