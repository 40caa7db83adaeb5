"""Where ``export -o PATH`` may write, and writing there atomically.

``PATH`` must end up a regular file: a directory, a device, a FIFO or a socket at ``PATH``,
and any path inside the store folder or at the rate-limit state file, is refused with exit 2
(:data:`~snapcache.cli.common.EXIT_USAGE`) before anything is written. A symbolic link is
followed to the file it names (that file is replaced; the link stays). The records are
written to a temporary file beside the target (created ``O_EXCL | O_NOFOLLOW``, its name
carrying the writer's identity so that one left by a killed export is swept by the next
export into that folder) and renamed over it; a file that was there keeps its mode. Errors
name ``PATH`` as given, never the temporary file, and exit 1.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

from snapcache.cache.files import EXPORT_PREFIX, create_temp_file, file_kind, sweep_temp_files

from ..config import Config
from .common import EXIT_SOME_FAILED, EXIT_USAGE, die

__all__ = ["check_output_path", "write_atomically"]


def _inside(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies under it (both resolved)."""
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives on Windows
        return False


def check_output_path(output: str, config: Config) -> Path:
    """The resolved file ``export -o OUTPUT`` will replace, or exit 2 saying why not.

    Refused: a path in the store folder (``cache.db`` replaced by an export would break
    every later command), the rate-limit state file, and anything that exists and is not a
    regular file (a device node would be replaced by a regular file).
    """
    real = os.path.realpath(output)
    store = os.path.realpath(config.cache_path)
    state = os.path.realpath(config.rate_state_path)
    if _inside(real, store):
        die(
            f"refusing to write {output}: it is inside the store folder {store}, whose files "
            f"snapcache itself keeps; choose a path outside it",
            EXIT_USAGE,
        )
    if real in (state, f"{state}-wal", f"{state}-shm"):
        die(f"refusing to write {output}: it is the rate-limit state file; choose another path",
            EXIT_USAGE)
    try:
        info = os.stat(real)
    except FileNotFoundError:
        return Path(real)
    except OSError as exc:
        die(f"cannot write {output}: {exc.strerror or exc}", EXIT_SOME_FAILED)
    if not stat.S_ISREG(info.st_mode):
        die(
            f"refusing to write {output}: it is {file_kind(info.st_mode)}, not a regular "
            f"file; export -o writes regular files only",
            EXIT_USAGE,
        )
    return Path(real)


def write_atomically(target: Path, shown: str, write: Callable[[IO[str]], None]) -> None:
    """Have ``write`` fill a temporary file beside ``target``, then rename it over ``target``.

    ``target`` comes from :func:`check_output_path`; ``shown`` is the path as the user gave
    it, for messages. An existing file's mode is kept (a new one gets 0600: records reveal
    what a user cites). On any failure the temporary file is removed.
    """
    folder = target.parent
    # Exports killed earlier (their writer gone) left their temporary files here.
    sweep_temp_files(folder, prefixes=(EXPORT_PREFIX,))
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        die(f"cannot write {shown}: {exc.strerror or exc}", EXIT_SOME_FAILED)
    try:
        fd, tmp = create_temp_file(folder, EXPORT_PREFIX)
    except OSError as exc:
        die(f"cannot write {shown}: {exc.strerror or exc}", EXIT_SOME_FAILED)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        die(f"cannot write {shown}: {exc.strerror or exc}", EXIT_SOME_FAILED)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
