"""What every ``snapcache`` command shares: the exit codes, the way out on an error, the
sanitiser for terminal output and opening the fetcher.

Exit codes: 0 every URL reached a final outcome (ok, not_archived, archived_error, blocked);
1 some URL ended in error or was invalid; 2 usage or configuration error; 75 deferred (the
archive paused us) or another run holds the cache; 130/143 interrupted by SIGINT/SIGTERM;
141 the output was closed (``snapcache export | head -1``). They are defined here only:
the library reports how a run ended as :attr:`~snapcache.runner.RunSummary.verdict` and
:func:`exit_code_for` maps it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final, NoReturn

import click
from snapcache.cache.contract import Store
from snapcache.cache.errors import StoreDamagedError, StoreUnavailableError
from snapcache.cache.records import STATUSES, Record, RecordFormatError

from ..config import Config
from ..display import clean
from ..errors import SnapcacheError, StateFileError

if TYPE_CHECKING:
    # The facade brings the HTTP client and the extractors: only the commands that fetch
    # import it (in open_fetcher), not those that only read the store.
    from ..api import Fetcher
    from ..runner import Verdict

EXIT_OK: Final = 0
EXIT_SOME_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_DEFERRED: Final = 75
EXIT_SIGINT: Final = 130
EXIT_SIGTERM: Final = 143
#: 128 + SIGPIPE: what a shell reports for a program ended by a closed pipe (`| head`).
EXIT_CLOSED_PIPE: Final = 141

_VERDICT_EXIT_CODES: Final[dict[Verdict, int]] = {
    "ok": EXIT_OK,
    "failed": EXIT_SOME_FAILED,
    "deferred": EXIT_DEFERRED,
    "SIGINT": EXIT_SIGINT,
    "SIGTERM": EXIT_SIGTERM,
}

#: The ``--status`` choice of the commands that select stored records.
STATUS_CHOICE: Final = click.Choice(list(STATUSES))

#: Set in ``ctx.meta`` once a command skipped a damaged record: the command goes on with the
#: other records, and the group's guard then makes it exit 1.
DAMAGED_SKIPPED: Final = "snapcache.damaged_skipped"


def exit_code_for(verdict: Verdict) -> int:
    """The exit code for how a run ended: 0 ok, 1 failed, 75 deferred, 130/143 signals."""
    return _VERDICT_EXIT_CODES[verdict]


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``snapcache: message`` (sanitised) on stderr and exit with ``code``."""
    click.echo(f"snapcache: {clean(message)}", err=True)
    sys.exit(code)


def exit_closed_pipe() -> NoReturn:
    """End quietly because whoever read our output stopped reading (``| head -1``).

    Python ignores SIGPIPE, so a write to a closed pipe raises :class:`BrokenPipeError`
    instead of ending the program the way the shell expects. Nothing is printed: stderr
    often goes to the same closed pipe, and a reader that stopped wants no complaint. The
    standard output is pointed at ``/dev/null`` first, or the interpreter's last flush
    would fail again and print "Exception ignored" on the way out.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file behind stdout (a test runner's buffer)
        pass
    sys.exit(EXIT_CLOSED_PIPE)


def open_fetcher(ctx: click.Context) -> Fetcher:
    """A :class:`Fetcher` on the group's config, or exit 2 with why the cache cannot open."""
    from ..api import Fetcher

    config: Config = ctx.obj["config"]
    try:
        return Fetcher(config)
    except (StoreDamagedError, StoreUnavailableError, StateFileError):
        raise  # a damaged or unwritable file: the group's guard names it, exit 1
    except SnapcacheError as exc:
        die(str(exc))
    except OSError as exc:
        die(f"cannot open the cache at {config.cache_path}: {exc}")


def open_store(ctx: click.Context) -> Store:
    """The group's configured store alone, for the commands that only read it (no HTTP
    client, no rate-limit state, no extraction workers), or exit 2 with why it cannot
    open, as :func:`open_fetcher` does."""
    from ..stores import open_store as open_configured

    config: Config = ctx.obj["config"]
    try:
        return open_configured(config)
    except (StoreDamagedError, StoreUnavailableError):
        raise  # a damaged or unwritable file: the group's guard names it, exit 1
    except SnapcacheError as exc:
        die(str(exc))
    except OSError as exc:
        die(f"cannot open the cache at {config.cache_path}: {exc}")


def report_damaged(exc: RecordFormatError) -> None:
    """Name a damaged record on stderr and mark the command to exit 1 when it is done."""
    click.echo(f"snapcache: skipped: {clean(exc)}", err=True)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[DAMAGED_SKIPPED] = True


def stored_records(store: Store, statuses: Iterable[str]) -> Iterator[Record]:
    """Records of ``store`` whose status or last outcome is one of ``statuses`` (all if
    empty).

    A damaged record is reported (:func:`report_damaged`) and skipped: the others follow.
    """
    wanted = set(statuses)
    yield from store.records(statuses=wanted or None, on_damaged=report_damaged)


def select_records(fetcher: Fetcher, statuses: Iterable[str]) -> Iterator[Record]:
    """The fetcher's stored records with one of ``statuses`` (see :func:`stored_records`)."""
    yield from stored_records(fetcher.cache, statuses)


__all__ = [
    "DAMAGED_SKIPPED",
    "EXIT_CLOSED_PIPE",
    "EXIT_DEFERRED",
    "EXIT_OK",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "STATUS_CHOICE",
    "clean",
    "die",
    "exit_closed_pipe",
    "exit_code_for",
    "open_fetcher",
    "open_store",
    "report_damaged",
    "select_records",
    "stored_records",
]
