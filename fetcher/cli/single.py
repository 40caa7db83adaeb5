"""Commands on single URLs and records: fetch, show, move and save."""

from __future__ import annotations

import sys

import click
from snapcache.cache.records import FINAL_STATUSES, Record

from ..errors import ConfigError, DeferredError, InputError, SnapcacheError
from ..extract import sanitize_text
from ..ids import parse_at
from .common import (
    EXIT_DEFERRED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    clean,
    die,
    open_fetcher,
    open_store,
)
from .render import emit_record, render_card


def _target_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Checked while parsing the arguments: a bad --at is a usage error (exit 2) naming the
    # option, not a failure of every URL.
    if value is None:
        return None
    try:
        return parse_at(value)
    except InputError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--at", "at", default=None, callback=_target_time, metavar="TIME",
              help="Target capture time (UTC): YYYY[MM[DD[hhmmss]]] or an ISO 8601 date or"
              " date-time such as 2024-01-01 or 2024-01-01T12:00:00+02:00.")
@click.option("--force", is_flag=True, help="Fetch again even if the record is fresh.")
@click.option("--full", is_flag=True,
              help="Fetch each URL in full, even where the stored capture is still the"
              " newest (a refresh otherwise only confirms it: one request, no body).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def fetch(ctx: click.Context, urls: tuple[str, ...], at: str | None, force: bool, full: bool,
          as_json: bool) -> None:
    """Resolve, fetch and store each URL; print its card (or JSON)."""
    code = EXIT_OK
    fetcher = open_fetcher(ctx)
    try:
        for url in urls:
            try:
                record = fetcher.fetch(url, at=at, force=force, full=full)
            except InputError as exc:
                click.echo(f"snapcache: skipped {clean(url)[:200]!r}: {clean(exc)}", err=True)
                code = EXIT_SOME_FAILED
                continue
            except DeferredError as exc:
                click.echo(f"snapcache: deferred {clean(url)[:200]!r}: {clean(exc)}", err=True)
                code = EXIT_DEFERRED
                break
            emit_record(record, as_json)
            if record.status not in FINAL_STATUSES or record.last_outcome == "error":
                code = EXIT_SOME_FAILED
    finally:
        fetcher.close()
    sys.exit(code)


@click.command()
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.option("--text", "full_text", is_flag=True, help="Print the full extracted text.")
@click.pass_context
def show(ctx: click.Context, ident: str, as_json: bool, full_text: bool) -> None:
    """Show a stored record by resource ID, stable ID or URL. Makes no request."""
    store = open_store(ctx)
    try:
        record = store.lookup(ident.strip())
        if record is None:
            die(f"no record for {ident!r}", EXIT_SOME_FAILED)
        if full_text:
            text = store.get_text(record.resource_id) or ""
            click.echo(sanitize_text(text, keep_newlines=True))
            return
        emit_record(record, as_json)
    finally:
        store.close()


@click.command()
@click.argument("old_url")
@click.argument("new_url")
@click.option("--json", "as_json", is_flag=True, help="Print the moved record as JSON.")
@click.pass_context
def move(ctx: click.Context, old_url: str, new_url: str, as_json: bool) -> None:
    """Rebind a resource to a corrected URL. IDs carry over; the old URL stays an alias."""
    fetcher = open_fetcher(ctx)
    try:
        try:
            record = fetcher.move(old_url, new_url)
        except SnapcacheError as exc:
            die(str(exc), EXIT_SOME_FAILED)
        emit_record(record, as_json)
    finally:
        fetcher.close()


@click.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--budget", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Most time spent following the jobs (default: save.poll_budget).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def save(ctx: click.Context, urls: tuple[str, ...], budget: float | None, as_json: bool
         ) -> None:
    """Ask the archive to capture URLs it lacks (Save Page Now 2), then fetch the captures.

    A URL whose newest capture is recent (save.if_not_archived_within_days) is not
    submitted; a job still pending from an earlier call is polled, never resubmitted.
    """
    config = ctx.obj["config"]
    if not config.save.enabled:
        die("saving is disabled; set [save] enabled = true (see README, Saving)")
    fetcher = open_fetcher(ctx)
    code = EXIT_OK
    try:
        try:
            results, stats = fetcher.save(urls, budget=budget)
        except ConfigError as exc:
            die(str(exc))
    finally:
        fetcher.close()
    for url, item in zip(urls, results, strict=True):
        if not isinstance(item, Record):
            click.echo(f"snapcache: skipped {clean(url)[:200]!r}: {clean(item)}", err=True)
            code = EXIT_SOME_FAILED
            continue
        if as_json:
            click.echo(item.to_json())
        else:
            click.echo(render_card(item))
            click.echo(f"  Save:         {clean(item.save_status or 'not submitted')}")
            click.echo()
        if item.save_status == "unauthorized":
            code = EXIT_SOME_FAILED
        elif item.save_status == "deferred" and not code:
            code = EXIT_DEFERRED
    if stats.stopped:
        click.echo(f"snapcache: saving stopped: {clean(stats.stopped)}", err=True)
    sys.exit(code)


__all__ = ["fetch", "move", "save", "show"]
