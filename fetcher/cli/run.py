"""Batch runs from the command line: ``run`` over a source list and ``refetch`` of stored
records, with per-URL progress, the run summary and the exit code from its verdict."""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from ..api import Fetcher
from ..errors import ConfigError
from ..runner import RunControl, RunEvent, RunSummary, SaveOptions
from ..sources import FORMATS
from .common import (
    EXIT_DEFERRED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    STATUS_CHOICE,
    clean,
    die,
    exit_closed_pipe,
    exit_code_for,
    open_fetcher,
    select_records,
)
from .lock import RunLockedError, run_lock_for

if TYPE_CHECKING:
    from rich.progress import ProgressColumn


def _count_lines(path: str) -> int | None:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip() and not line.lstrip().startswith(b"#"))
    except OSError:
        return None


_RATE_WIDTH = 8  # "1234.5/s"
_CLOCK_WIDTH = 7  # "0:12:34"
#: The room the outcome counts keep before an optional column is added.
_COUNTS_ROOM = 24


def progress_columns(width: int, total: int | None) -> list[ProgressColumn]:
    """The run's progress bar columns for a terminal ``width`` columns wide.

    Done/total, per cent, rate and ETA always fit; the bar, the elapsed time and the
    ``snapcache run`` label are added while the outcome counts keep room to be read, and
    the counts, last, are cut with an ellipsis rather than squeezing the figures.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    digits = len(str(total)) if total else 5
    # Each column is followed by one space; fixed widths keep the line from jittering.
    done = MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=2 * digits + 1))
    rate = TextColumn("{task.fields[rate]}",
                      table_column=Column(no_wrap=True, min_width=_RATE_WIDTH))
    # What is left beside done/total, per cent ("100%"), rate and ETA.
    room = width - (2 * digits + 2) - 5 - (_RATE_WIDTH + 1) - (_CLOCK_WIDTH + 1)
    # The wide terminal's full bar, or a short one; then the optional parts, most useful
    # first, each only while the counts keep their room.
    bar_width = 40 if room >= 41 + (_CLOCK_WIDTH + 1) + 14 + _COUNTS_ROOM else 10
    shown: set[str] = set()
    for part, cost in (("bar", bar_width + 1), ("elapsed", _CLOCK_WIDTH + 1), ("label", 14)):
        if room - cost >= _COUNTS_ROOM:
            room -= cost
            shown.add(part)
    columns: list[ProgressColumn] = []
    if "label" in shown:
        columns.append(TextColumn("[bold]snapcache run"))
    if "bar" in shown:
        columns.append(BarColumn(bar_width=bar_width))
    columns += [done, TaskProgressColumn(), rate]
    if "elapsed" in shown:
        columns.append(TimeElapsedColumn())
    columns.append(TimeRemainingColumn())
    columns.append(TextColumn("{task.fields[counts]}", table_column=Column(
        no_wrap=True, overflow="ellipsis", max_width=max(room - 1, 1))))
    return columns


class _Reporter:
    """Per-URL output: a rich progress bar on a terminal, plain lines otherwise. A closed
    output pipe (``| head``) stops the run quietly: see :attr:`pipe_closed`."""

    def __init__(self, *, quiet: bool, as_json: bool, total: int | None,
                 control: RunControl) -> None:
        self.quiet = quiet
        self.out = sys.stderr if as_json else sys.stdout
        self.counts: Counter[str] = Counter()
        self.control = control
        #: Set when a line met a closed pipe; the run was then asked to stop.
        self.pipe_closed = False
        self.progress: Any = None
        self.task: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress

            # The bar goes where the terminal was found: stderr (stdout may be a pipe).
            console = Console(stderr=True)
            self.progress = Progress(*progress_columns(console.width, total),
                                     console=console, transient=False)
            self.task = self.progress.add_task("run", total=total, rate="", counts="")
            self.progress.start()

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "invalid":
            # Bad lines are always reported, with their number, whatever --quiet says.
            self._line(f"line {event.line}: invalid: {clean(event.reason)}", err=True)
        key = event.record.last_outcome or event.record.status if (
            event.kind == "fetched" and event.record) else event.kind
        self.counts[key or event.kind] += 1
        if self.progress is not None:
            done = sum(self.counts.values())
            elapsed = self.progress.tasks[0].elapsed or 0.0
            self.progress.update(
                self.task, completed=done,
                rate=f"{done / elapsed:.1f}/s" if elapsed > 0 else "",
                counts=" ".join(f"{k}:{v}" for k, v in sorted(self.counts.items())),
            )
            return
        if self.quiet or event.kind == "invalid":
            return
        url = clean(event.url)
        if event.moved_to is not None:
            url = f"{url} (moved to {clean(event.moved_to)})"
        if event.kind == "fetched" and event.record is not None:
            r = event.record
            outcome = r.last_outcome or r.status
            detail = r.capture_timestamp or "-"
            extra = f" ({clean(r.error)})" if outcome == "error" and r.error else ""
            self._line(f"line {event.line}: {outcome} {detail} {url}{extra}")
        elif event.kind == "fetched":  # attempted, but the store could not record it
            self._line(f"line {event.line}: error - {url} ({clean(event.reason)})")
        elif event.kind == "would_fetch":
            self._line(f"line {event.line}: would fetch {url} ({event.reason})")
        elif event.kind == "deferred":
            self._line(f"line {event.line}: deferred {url}")

    def _line(self, text: str, err: bool = False) -> None:
        if self.pipe_closed:
            return
        try:
            if self.progress is not None:
                self.progress.console.print(text, markup=False, highlight=False)
            else:
                click.echo(text, file=sys.stderr if err else self.out)
        except BrokenPipeError:
            # Whoever read the lines stopped (| head): stop the run as a signal would,
            # nothing half-written, and end quietly once it has (exit_closed_pipe).
            self.pipe_closed = True
            self.control.stop("SIGPIPE")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def summary_json_dict(summary: RunSummary) -> dict[str, Any]:
    """The run summary as printed by ``--json``: the library's fields, then ``exit_code``.

    The exit code is the CLI's, so it is set here from the verdict; popping the key first
    keeps it last whether or not the library still provides one.
    """
    data = summary.to_json_dict()
    data.pop("exit_code", None)
    data["exit_code"] = exit_code_for(summary.verdict)
    return data


def _print_summary(summary: RunSummary, as_json: bool) -> None:
    if summary.unreachable:
        # The one line that matters offline, on stderr whatever --quiet or --json say.
        click.echo(f"snapcache: {clean(summary.unreachable)} Nothing was fetched; try later.",
                   err=True)
    if as_json:
        click.echo(json.dumps(summary_json_dict(summary), sort_keys=False))
        return
    s = summary
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items())) or "none"
    requests = ", ".join(f"{k} {v}" for k, v in sorted(s.requests.items())) or "none"
    lines = [
        f"snapcache run: {s.seen} URLs in {s.elapsed:.1f} s",
        f"  fetched: {s.new} new, {s.refreshed} refreshed"
        + (f" ({s.confirmed} confirmed unchanged, no body)" if s.confirmed else "")
        + f"; failed: {s.failed};"
        f" skipped fresh: {s.skipped_fresh}; duplicates: {s.duplicates};"
        f" invalid lines: {s.invalid}",
        f"  outcomes: {outcomes}",
        f"  requests: {requests}; 429s met: {s.rate_limited}",
    ]
    if s.would_fetch:
        lines.append(f"  dry run: {s.would_fetch} would be fetched")
    if s.deferred:
        lines.append(f"  deferred: {s.deferred} ({clean(s.deferred_reason)})")
    if s.saves or s.save_stopped:
        saves = ", ".join(f"{k} {v}" for k, v in sorted(s.saves.items())) or "none"
        lines.append(f"  saves: {saves}")
        if s.save_stopped:
            lines.append(f"  saving stopped: {clean(s.save_stopped)}")
    if s.interrupted:
        lines.append(f"  interrupted by {s.interrupted}; rerun to continue")
    click.echo("\n".join(lines))


def _execute_run(
    fetcher: Fetcher,
    sources: Any,
    *,
    total: int | None,
    fmt: str | None,
    force: bool,
    dry_run: bool,
    concurrency: int | None,
    max_wait: float | None,
    quiet: bool,
    as_json: bool,
    save: SaveOptions | None = None,
    full: bool = False,
) -> RunSummary:
    control = RunControl()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        control.stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    reporter = _Reporter(quiet=quiet, as_json=as_json, total=total, control=control)
    try:
        summary = fetcher.run(
            sources, force=force, on_result=reporter, fmt=fmt,  # type: ignore[arg-type]
            dry_run=dry_run, concurrency=concurrency, max_wait=max_wait, control=control,
            save=save, full=full,
            # The reporter reads a record only of a line fetched now.
            fresh_records=False,
        )
    finally:
        reporter.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if reporter.pipe_closed:
        exit_closed_pipe()
    return summary


@click.command()
@click.argument("sources")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=None,
              help="Force the list's format (default: detected from its content).")
@click.option("--force", is_flag=True, help="Ignore freshness: fetch every URL.")
@click.option("--full", is_flag=True,
              help="Fetch every URL in full, even where the stored capture is still the"
              " newest (a refresh otherwise only confirms it: one request, no body).")
@click.option("--dry-run", is_flag=True, help="Print what would be fetched and why; no request.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="URLs in flight at once (default: run.concurrency).")
@click.option("--max-wait", type=click.FloatRange(0), default=None,
              help="Defer the rest (exit 75) if the archive pauses us longer (seconds).")
@click.option("--wait", "wait_lock", is_flag=True,
              help="Wait for another run on this cache to finish instead of exiting 75.")
@click.option("--quiet", is_flag=True, help="No per-URL lines (bad lines are still reported).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--save-missing", is_flag=True,
              help="Ask the archive to capture URLs it lacks (Save Page Now; needs [save]).")
@click.option("--save-stale", "save_stale", type=click.FloatRange(0), default=None,
              metavar="DAYS", help="With --save-missing: also URLs whose newest good capture"
              " is older than DAYS.")
@click.option("--save-budget", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Most time the save pass may take (default: save.poll_budget).")
@click.pass_context
def run(ctx: click.Context, sources: str, fmt: str | None, force: bool, full: bool,
        dry_run: bool,
        concurrency: int | None, max_wait: float | None, wait_lock: bool, quiet: bool,
        as_json: bool, save_missing: bool, save_stale: float | None,
        save_budget: float | None) -> None:
    """Fetch every URL of a source list (a path, or - for stdin) that is missing or stale.

    Formats: plain text (one URL per line), CSV/TSV with a header (url, optional stable_id
    and at columns) or JSON Lines with the same keys. Bad lines are reported and skipped.
    """
    config = ctx.obj["config"]
    if sources != "-" and not Path(sources).is_file():
        die(f"source list not found: {sources}")
    if (save_stale is not None or save_budget is not None) and not save_missing:
        die("--save-stale and --save-budget go with --save-missing")
    save = SaveOptions(stale_days=save_stale, budget=save_budget) if save_missing else None
    if save is not None and not config.save.enabled:
        die("--save-missing: saving is disabled; set [save] enabled = true")
    try:
        lock = run_lock_for(config)  # a flock in the folder, or PostgreSQL's advisory lock
    except ConfigError as exc:
        die(str(exc))
    try:
        lock.acquire(wait=wait_lock)
    except RunLockedError as exc:
        die(f"{exc}; try later or use --wait", EXIT_DEFERRED)
    except OSError as exc:
        die(f"cannot lock the cache at {lock.where}: {exc}")
    try:
        fetcher = open_fetcher(ctx)
        try:
            source: Any = sys.stdin.buffer if sources == "-" else sources
            total = None if sources == "-" else _count_lines(sources)
            try:
                summary = _execute_run(
                    fetcher, source, total=total, fmt=fmt, force=force, dry_run=dry_run,
                    concurrency=concurrency, max_wait=max_wait, quiet=quiet,
                    as_json=as_json, save=save, full=full,
                )
            except ConfigError as exc:
                die(str(exc))
        finally:
            fetcher.close()
    finally:
        lock.release()
    _print_summary(summary, as_json)
    sys.exit(exit_code_for(summary.verdict))


@click.command()
@click.argument("idents", nargs=-1)
@click.option("--status", "statuses", multiple=True, type=STATUS_CHOICE,
              help="Refetch every record with this status (repeatable).")
@click.option("--quiet", is_flag=True, help="No per-URL lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--full", is_flag=True,
              help="Fetch every URL in full, even where the stored capture is still the"
              " newest (a refresh otherwise only confirms it: one request, no body).")
@click.pass_context
def refetch(ctx: click.Context, idents: tuple[str, ...], statuses: tuple[str, ...],
            quiet: bool, as_json: bool, full: bool) -> None:
    """Force a new attempt for records chosen by ID, stable ID or URL, or by --status."""
    if not idents and not statuses:
        die("name records to refetch (ID, stable ID or URL) or give --status")
    fetcher = open_fetcher(ctx)
    code = EXIT_OK
    try:
        lines: list[str] = []
        for ident in idents:
            record = fetcher.lookup(ident)
            if record is None:
                click.echo(f"snapcache: no record for {clean(ident)!r}", err=True)
                code = EXIT_SOME_FAILED
                continue
            lines.append(json.dumps({"url": record.url, "at": record.requested_timestamp}))
        if statuses:
            lines.extend(
                json.dumps({"url": r.url, "at": r.requested_timestamp})
                for r in select_records(fetcher, statuses)
            )
        summary = _execute_run(
            fetcher, lines, total=len(lines), fmt="jsonl", force=True, dry_run=False,
            concurrency=None, max_wait=None, quiet=quiet, as_json=as_json, full=full,
        )
    finally:
        fetcher.close()
    _print_summary(summary, as_json)
    sys.exit(exit_code_for(summary.verdict) or code)


__all__ = ["progress_columns", "refetch", "run", "summary_json_dict"]
