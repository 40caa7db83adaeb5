"""Files and folders snapcache keeps on disk: private folders, temporary files that name
their writer, and what an SQLite error says about the file it came from.

* :func:`check_private_directory`: a store folder (or the run lock's, or the spill folder)
  must be the user's and writable by nobody else, or rows, locks and temporary files could
  be planted in it. It is created 0700, tightened to 0700 when merely readable by others,
  and refused (:class:`~snapcache.cache.errors.UnsafeLocationError`) otherwise.
* :func:`create_temp_file`: a new temporary file, opened with ``O_EXCL | O_NOFOLLOW`` (never
  through a planted link), whose name carries its writer's identity (host, pid and process
  start time). :func:`sweep_temp_files` removes those whose writer is gone, so a writer
  killed by SIGKILL leaves nothing behind for long; :func:`is_temp_name` tells them apart
  from the store's own files (``snapcache stats`` does not count them).
* :func:`prepare_directory`: a store folder made (or checked) private, and swept of the
  temporary files of writers that are gone, before the store opens it.
* :func:`diagnose`: whether an SQLite (or OS) error means a damaged file or a place that
  cannot be written (read-only mount, permissions, full disk), in words for the user.

Used by the store (:mod:`.store`) and by the fetcher (spill files, the export, the run lock
and the rate-limit state file). Imports nothing from the fetcher.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import secrets
import socket
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import CacheError, StoreUnavailableError, UnsafeLocationError

__all__ = [
    "EXPORT_PREFIX",
    "LEGACY_TEMP_AGE",
    "SPILL_DIR",
    "SPILL_PREFIX",
    "FileProblem",
    "check_private_directory",
    "create_temp_file",
    "diagnose",
    "file_kind",
    "is_temp_name",
    "prepare_directory",
    "sweep_temp_files",
    "writer_token",
]

#: The folder inside a store folder where the fetcher spills large bodies.
SPILL_DIR: Final = "tmp"
#: Name prefix of body spill files (in :data:`SPILL_DIR`).
SPILL_PREFIX: Final = "body-"
#: Name prefix of an export being written next to its target (``export -o``).
EXPORT_PREFIX: Final = ".export-"
#: Seconds after which a temporary file whose writer cannot be checked (written by another
#: host, or by a release before writer identities) is taken as abandoned. No writer keeps
#: one that long: a spill lives for one fetch, an export for one command.
LEGACY_TEMP_AGE: Final = 24 * 3600.0

_PREFIXES: Final = (SPILL_PREFIX, EXPORT_PREFIX)
# <prefix><host>.<pid>.<start>.<random>: host is a hash of the host name, start the
# process start time (in clock ticks since boot on Linux, 0 where it cannot be read).
_TOKEN_NAME: Final = re.compile(
    r"(?P<prefix>body-|\.export-)(?P<host>[0-9a-f]{8})\.(?P<pid>[0-9]{1,10})\."
    r"(?P<start>[0-9]{1,20})\.[0-9a-f]{12}"
)
# Names the same prefixes got from tempfile before writer identities (mkstemp's 8 letters).
_LEGACY_NAME: Final = re.compile(r"(?:body-|\.export-)[a-z0-9_]{8}")


# ---------------------------------------------------------------------------------------------
# Private folders


def file_kind(mode: int) -> str:
    """A file type in words (``a directory``, ``a FIFO`` ...) for messages."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISREG, "a regular file"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def check_private_directory(directory: Path) -> None:
    """Create ``directory`` (mode 0700, parents as needed), or check the existing one.

    An existing folder must belong to the user (the effective uid) and be writable by
    nobody else; one that others may only read is tightened (their bits removed: 0755
    becomes 0700). Raises
    :class:`UnsafeLocationError` (saying how to fix it) for a folder of another user or one
    writable by its group or others, :class:`CacheError` when something other than a folder
    is there, and :class:`StoreUnavailableError` when it cannot be created.
    """
    where = str(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise CacheError(f"{where!r} exists and is not a folder; choose another path") from exc
    except OSError as exc:
        problem = diagnose(exc, directory)
        raise StoreUnavailableError(
            f"the folder {where!r} {problem.reason}; {problem.advice}",
            path=where,
        ) from exc
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"{where!r} is {file_kind(info.st_mode)}, not a folder")
    geteuid = getattr(os, "geteuid", None)  # absent on Windows, where modes mean little
    if geteuid is None:
        return
    mode = stat.S_IMODE(info.st_mode)
    me = geteuid()
    if info.st_uid != me:
        raise UnsafeLocationError(
            f"refusing the folder {where!r}: it belongs to uid {info.st_uid}, not to you "
            f"(uid {me}), so its owner could plant files in it; choose another path, or "
            f"check its contents and run `chown -R {me} {where}` and `chmod 700 {where}`",
            path=where,
        )
    if mode & 0o022:
        writers = " and ".join(
            who for bit, who in ((0o020, "its group"), (0o002, "others")) if mode & bit
        )
        raise UnsafeLocationError(
            f"refusing the folder {where!r}: it is writable by {writers} (mode {mode:04o}), "
            f"so they could plant files in it; check its contents and run "
            f"`chmod 700 {where}`, or choose another path",
            path=where,
        )
    if mode & 0o077:
        # mkdir's mode is filtered by the umask, and an existing folder may be readable by
        # others: records reveal what a user cites. Only others' bits go (a folder the user
        # made read-only stays so). A read-only mount cannot be tightened; opening the store
        # there fails anyway, with its own message.
        with contextlib.suppress(OSError):
            os.chmod(directory, mode & 0o700)


# ---------------------------------------------------------------------------------------------
# Temporary files that name their writer


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = data.rpartition(b")")[2].split()
    try:
        return int(fields[19])  # field 22, starttime
    except (IndexError, ValueError):
        return None


@functools.cache
def _host_hash() -> str:
    """The host (and pid namespace) whose pids a temporary file name's pid refers to."""
    try:
        # Containers sharing a host name and a store folder still have pid spaces of their
        # own: a pid from another one must not be looked up here.
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    name = f"{socket.gethostname()}/{namespace}"
    return hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:8]


_TOKEN: dict[int, str] = {}


def writer_token() -> str:
    """This process's identity as temporary file names carry it: ``host.pid.start``.

    ``host`` is a hash of the host name and pid namespace (a store folder may be shared over
    the network or between containers; only writers whose pids mean the same here can be
    checked), ``start`` the process start time, so a pid reused by a later process is not
    taken for the writer.
    """
    pid = os.getpid()
    token = _TOKEN.get(pid)  # computed once per process (a fork gets its own)
    if token is None:
        token = f"{_host_hash()}.{pid}.{_start_time(pid) or 0}"
        _TOKEN[pid] = token
    return token


def create_temp_file(directory: Path, prefix: str) -> tuple[int, Path]:
    """Create a new empty file in ``directory`` for writing, mode 0600: ``(fd, path)``.

    Opened with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so an existing file or a planted link is
    never opened through; its name is ``prefix`` + :func:`writer_token` + random digits.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        path = directory / f"{prefix}{writer_token()}.{secrets.token_hex(6)}"
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(directory))


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file snapcache writes (a body spill, an export in
    progress), with or without a writer identity: never a record, never counted in the
    store's size."""
    return bool(_TOKEN_NAME.fullmatch(name) or _LEGACY_NAME.fullmatch(name))


def _writer_gone(match: re.Match[str]) -> bool:
    """True when the writer named in a temporary file name is known to be dead."""
    if match["host"] != _host_hash():
        return False  # another host's process: only its age can tell (see LEGACY_TEMP_AGE)
    pid, start = int(match["pid"]), int(match["start"])
    if pid == os.getpid():
        return False
    if start:
        now = _start_time(pid)
        if now is not None:
            return now != start  # a later process got the pid: the writer is gone
        if os.path.isdir("/proc/self"):
            return True  # /proc is there and the pid is not: gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's): not ours to judge
    return False


def sweep_temp_files(directory: Path, *, prefixes: tuple[str, ...] = _PREFIXES,
                     legacy: bool = False) -> int:
    """Remove temporary files in ``directory`` whose writer is gone; return how many.

    Only names :func:`create_temp_file` gives with one of ``prefixes`` are considered, and
    only regular files (or links) are removed. A name without a writer identity (an older
    release's), or one written on another host, is removed once it is older than
    :data:`LEGACY_TEMP_AGE`, and names of older releases only when ``legacy`` is true (in
    the store's own folders, never next to a user's export). Errors are ignored: sweeping
    is housekeeping and must never stop a command.
    """
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        name = entry.name
        if not name.startswith(prefixes):
            continue
        match = _TOKEN_NAME.fullmatch(name)
        if match is None and not (legacy and _LEGACY_NAME.fullmatch(name)):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                continue
            old = now - info.st_mtime > LEGACY_TEMP_AGE
            if (match is not None and _writer_gone(match)) or old:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


# ---------------------------------------------------------------------------------------------
# What an error says about a file


@dataclass(frozen=True, slots=True)
class FileProblem:
    """What is wrong with a file, from an error met while using it."""

    damaged: bool
    """The file's contents cannot be used (as opposed to a place that cannot be written)."""
    reason: str
    """What is wrong, in words: ``is not a database``, ``the disk is full`` ..."""
    advice: str
    """What to do about it."""


_RESTORE: Final = "restore it from a backup, or move it away and start a new one"


def _read_only_fs(path: Path) -> bool:
    for place in (path, *path.parents):
        try:
            return bool(os.statvfs(place).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            continue
    return False


def diagnose(exc: BaseException, path: Path) -> FileProblem:
    """Explain ``exc`` (an ``sqlite3`` error or ``OSError``) met while using ``path``."""
    try:
        info: os.stat_result | None = os.lstat(path)
    except OSError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        return FileProblem(True, f"is {file_kind(info.st_mode)}, not a database file",
                           "move it away (a new file is then created)")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    err = exc.errno if isinstance(exc, OSError) else None
    if primary == sqlite3.SQLITE_CORRUPT:
        return FileProblem(True, "is corrupt (database disk image is malformed)", _RESTORE)
    if primary == sqlite3.SQLITE_NOTADB:
        return FileProblem(True, "is not a database (truncated or overwritten)", _RESTORE)
    if primary == sqlite3.SQLITE_FULL or err in (errno.ENOSPC, errno.EDQUOT):
        return FileProblem(False, "cannot be written: the disk is full",
                           "free some space, or choose another path")
    if err == errno.EROFS or _read_only_fs(path):
        return FileProblem(False, "cannot be written: it is on a read-only file system",
                           "remount it read-write, or choose another path")
    folder = path if info is None and path.is_dir() else path.parent
    writable = os.access(folder, os.W_OK) and (info is None or os.access(path, os.W_OK))
    if err in (errno.EACCES, errno.EPERM) or primary == sqlite3.SQLITE_READONLY or not writable:
        return FileProblem(False, "cannot be written: permission denied",
                           "fix its permissions, or choose another path")
    if primary == sqlite3.SQLITE_ERROR or (
        isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
    ):
        return FileProblem(True, f"cannot be read ({exc})", _RESTORE)
    return FileProblem(False, f"cannot be used ({exc})", "check it, or choose another path")


def prepare_directory(directory: Path) -> None:
    """Create the cache folder private to the user (0700), or check the existing one, and
    remove temporary files left by writers that are gone.

    Raises :class:`~snapcache.cache.errors.UnsafeLocationError` for a folder of another
    user or one writable by others (see :func:`check_private_directory`).
    """
    check_private_directory(directory)
    # Spill files and exports of killed writers (up to the body cap each) would otherwise
    # stay forever; the folder is ours alone, so names of older releases go too.
    sweep_temp_files(directory, legacy=True)
    sweep_temp_files(directory / SPILL_DIR, legacy=True)
