"""Work spread over several hosts: ``enqueue`` (a source list into the job queue),
``worker`` (take jobs and fetch them; run one or many on any host) and ``queue`` (how the
queue stands). All three need the PostgreSQL store: the queue lives beside the records.

The queue's modules need psycopg (the optional ``postgres`` extra), so they are imported
when one of these commands runs, never when the command line starts.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from ..config import Config
from ..errors import ConfigError
from ..runner import RunControl, RunEvent
from ..sources import FORMATS
from ..stores import ENV_DSN
from .common import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, clean, die, exit_code_for, open_fetcher

if TYPE_CHECKING:
    from snapcache.cache.postgres.queue import JobQueue

    from ..enqueue import EnqueueSummary
    from ..worker import JobEvent, WorkerSummary


def _needs_postgres(config: Config, command: str) -> None:
    """Exit 2 unless the store is PostgreSQL: a queue in one machine's folder would be of
    no use to workers on other hosts."""
    if config.cache.backend != "postgres":
        die(f'{command} needs the PostgreSQL store: set [cache] backend = "postgres" and dsn '
            f'(or ${ENV_DSN}); see README "Several machines"', EXIT_USAGE)
    if importlib.util.find_spec("psycopg") is None:
        die(f"{command} needs psycopg: pip install 'snapcache[postgres]'", EXIT_USAGE)


def _queue(config: Config) -> JobQueue:
    from ..worker import open_queue

    try:
        return open_queue(config)
    except ConfigError as exc:
        die(str(exc))


@click.command()
@click.argument("sources")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=None,
              help="Force the list's format (default: detected from its content).")
@click.option("--force", is_flag=True, help="Queue every URL, fresh or not, and fetch it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def enqueue(ctx: click.Context, sources: str, fmt: str | None, force: bool,
            as_json: bool) -> None:
    """Queue every URL of a source list (a path, or - for stdin) that is missing or stale,
    as jobs for `snapcache worker` on any host. No request is made.

    The list is read as `run` reads it (text, CSV/TSV, JSON Lines); bad lines are reported
    with their number and skipped. A URL whose job is still pending or leased is not
    queued twice.
    """
    config: Config = ctx.obj["config"]
    _needs_postgres(config, "enqueue")
    if sources != "-" and not Path(sources).is_file():
        die(f"source list not found: {sources}")

    def on_result(event: RunEvent) -> None:
        if event.kind == "invalid":  # always said, with the line number, as a run does
            click.echo(f"line {event.line}: invalid: {clean(event.reason)}", err=True)

    fetcher = open_fetcher(ctx)
    try:
        queue = _queue(config)
        try:
            source: Any = sys.stdin.buffer if sources == "-" else sources
            summary = fetcher.enqueue(source, queue, fmt=fmt,  # type: ignore[arg-type]
                                      force=force, on_result=on_result)
        finally:
            queue.close()
    finally:
        fetcher.close()
    _print_enqueued(summary, as_json)
    sys.exit(EXIT_SOME_FAILED if summary.verdict == "failed" else EXIT_OK)


def _print_enqueued(s: EnqueueSummary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(s.to_json_dict()))
        return
    click.echo(
        f"snapcache enqueue: {s.seen} URLs in {s.elapsed:.1f} s\n"
        f"  queued: {s.queued}; already queued: {s.already_queued};"
        f" skipped fresh: {s.skipped_fresh}; duplicates: {s.duplicates};"
        f" invalid lines: {s.invalid}"
    )


@click.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="Jobs in flight at once (default: run.concurrency).")
@click.option("--until-empty", is_flag=True,
              help="Exit (0) once no job is pending or leased, instead of waiting for more.")
@click.option("--max-wait", type=click.FloatRange(0), default=None,
              help="Stop claiming (exit 75) if the archive pauses us longer (seconds).")
@click.option("--lease", type=click.FloatRange(1.0), default=None, metavar="SECONDS",
              help="How long a claimed job stays this worker's without renewal (default 60):"
              " a dead worker's jobs are taken over this long after it died.")
@click.option("--quiet", is_flag=True, help="No per-job lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, until_empty: bool,
           max_wait: float | None, lease: float | None, quiet: bool, as_json: bool) -> None:
    """Take jobs from the queue (`snapcache enqueue`) and fetch them, sharing the rate
    limits with every other worker. Run one or several on any number of hosts.

    SIGINT/SIGTERM: no new job is claimed, jobs in flight get 5 s to finish, and the rest
    are given back to the queue (exit 130/143).
    """
    config: Config = ctx.obj["config"]
    _needs_postgres(config, "worker")
    from ..worker import WorkerPolicy

    policy = WorkerPolicy.from_config(config, concurrency=concurrency, max_wait=max_wait,
                                      lease=lease, until_empty=until_empty)
    control = RunControl()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        control.stop(signal.Signals(signum).name)

    out = sys.stderr if as_json else sys.stdout

    def on_result(event: JobEvent) -> None:
        if not quiet:
            click.echo(_job_line(event), file=out)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        fetcher = open_fetcher(ctx)
        try:
            queue = _queue(config)
            try:
                summary = fetcher.work(queue, policy, control=control, on_result=on_result)
            finally:
                queue.close()
        finally:
            fetcher.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _print_worked(summary, as_json)
    sys.exit(exit_code_for(summary.verdict))


def _job_line(event: JobEvent) -> str:
    job, record = event.job, event.record
    url = clean(job.url)
    notes = []
    if job.attempts > 1:
        notes.append(f"attempt {job.attempts}")
    if event.lost:
        notes.append("lease lost: another worker's result counts")
    if event.kind == "fetched" and record is not None:
        outcome = record.last_outcome or record.status
        if outcome == "error" and record.error:
            notes.append(clean(record.error))
        head = f"{outcome} {record.capture_timestamp or '-'}"
    elif event.kind == "fresh":
        head = "fresh -"
        notes.append(clean(event.reason))
    elif event.kind == "failed":
        head = "error -"
        notes.append(clean(event.reason))
    else:
        head = "released -"
        notes.append(clean(event.reason))
    extra = f" ({'; '.join(notes)})" if notes else ""
    return f"{head} {url}{extra}"


def _print_worked(s: WorkerSummary, as_json: bool) -> None:
    if s.unreachable:
        click.echo(f"snapcache: {clean(s.unreachable)} Jobs stay queued; try later.", err=True)
    if as_json:
        data = s.to_json_dict()
        data["exit_code"] = exit_code_for(s.verdict)
        click.echo(json.dumps(data))
        return
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items())) or "none"
    requests = ", ".join(f"{k} {v}" for k, v in sorted(s.requests.items())) or "none"
    lines = [
        f"snapcache worker {clean(s.worker)}: {s.claimed} jobs in {s.elapsed:.1f} s",
        f"  fetched: {s.fetched}; fresh: {s.fresh}; failed: {s.failed};"
        f" released: {s.released}; taken over from lost workers: {s.taken_over}",
        f"  outcomes: {outcomes}",
        f"  requests: {requests}; 429s met: {s.rate_limited}",
    ]
    if s.deferred_reason:
        lines.append(f"  stopped claiming: {clean(s.deferred_reason)}")
    if s.interrupted:
        lines.append(f"  interrupted by {s.interrupted}; unfinished jobs were given back")
    click.echo("\n".join(lines))


@click.command(name="queue")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@click.pass_context
def queue_status(ctx: click.Context, as_json: bool) -> None:
    """How the job queue stands: pending, leased, done and failed jobs, and the oldest
    pending one."""
    config: Config = ctx.obj["config"]
    _needs_postgres(config, "queue")
    with _queue(config) as queue:
        counts = queue.counts()
    if as_json:
        click.echo(json.dumps(counts.to_json_dict()))
        return
    expired = f" ({counts.expired} with an expired lease)" if counts.expired else ""
    lines = [f"pending {counts.pending}, leased {counts.leased}{expired}, "
             f"done {counts.done}, failed {counts.failed}"]
    oldest = counts.oldest_pending
    if oldest is not None:
        attempts = f", {oldest.attempts} attempts so far" if oldest.attempts else ""
        lines.append(f"oldest pending: {clean(oldest.url)} (queued {oldest.enqueued_at}, "
                     f"{_age(oldest.waiting_seconds)} ago{attempts})")
    click.echo("\n".join(lines))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


__all__ = ["enqueue", "queue_status", "worker"]
