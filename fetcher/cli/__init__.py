"""The ``snapcache`` command line.

Exit codes: 0 every URL reached a final outcome (ok, not_archived, archived_error, blocked);
1 some URL ended in error or was invalid; 2 usage or configuration error; 75 deferred (the
archive paused us) or another run holds the cache; 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Final

import click
from snapcache.cache.records import FINAL_STATUSES, Record

from ..config import load_config
from ..errors import ConfigError, DeferredError, InputError, SnapcacheError
from ..extract import sanitize_text
from .common import (
    EXIT_DEFERRED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    clean,
    die,
    open_fetcher,
)

PREVIEW_EXCERPT: Final = 700


def human_size(size: int | None) -> str:
    """Bytes as B, KB or MB (1024-based, one decimal), for the card."""
    if size is None:
        return "size unknown"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def human_timestamp(ts: str | None) -> str:
    """A 14-digit archive timestamp as ``Apr 8, 2026 19:43 UTC``."""
    if not ts:
        return "unknown"
    try:
        dt = datetime.strptime(ts, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return ts
    return f"{dt:%b} {dt.day}, {dt:%Y %H:%M} UTC"


def human_iso(iso: str | None) -> str:
    """An ISO 8601 UTC time as ``Nov 29, 2026 11:27 UTC``."""
    if not iso:
        return "never"
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return iso
    return f"{dt:%b} {dt.day}, {dt:%Y %H:%M} UTC"


def render_card(record: Record) -> str:
    """The human card for one record (plain text, control characters removed)."""
    lines: list[str] = []
    title = clean(record.title) or "(no title)"
    lines.append(title)
    lines.append(f"  URL:          {clean(record.url)}")
    if record.archive:
        lines.append(f"  Archive:      {clean(record.archive)}")
    if record.archive_url:
        lines.append(f"  Archive URL:  {clean(record.archive_url)}")
    if record.original_url and record.original_url != record.url:
        lines.append(f"  Captured URL: {clean(record.original_url)}")
    status = record.status
    archived = f"HTTP {record.archived_status}" if record.archived_status else "no capture"
    lines.append(f"  Outcome:      {status} · archived status {archived}")
    # A record without a fetched capture was still checked: say when, not "never".
    when = (
        f"Fetched {human_iso(record.fetched_at)}"
        if record.fetched_at
        else f"Checked {human_iso(record.last_attempt_at)}"
    )
    lines.append(f"  Captured:     {human_timestamp(record.capture_timestamp)} · {when}")
    if record.status == "ok":
        lines.append(
            f"  Size:         {human_size(record.content_length)}"
            f"{' (cut at the size cap)' if record.body_truncated else ''}"
            f" · {clean(record.content_type) or 'unknown type'}"
        )
    if record.preview_note:
        lines.append(f"  Note:         {clean(record.preview_note)}")
    if record.error:
        lines.append(
            f"  Last error:   {clean(record.error)} ({human_iso(record.last_attempt_at)})"
        )
    if record.preview:
        excerpt = sanitize_text(record.preview)
        if len(excerpt) > PREVIEW_EXCERPT:
            excerpt = excerpt[:PREVIEW_EXCERPT].rsplit(" ", 1)[0] + " …"
        lines.append("  Preview:")
        lines.extend(f"    {line}" for line in _wrap(excerpt, 92))
    lines.append(f"  Resource ID: {record.resource_id} | Stable ID: {record.stable_id}")
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def _emit(record: Record, as_json: bool) -> None:
    if as_json:
        click.echo(record.to_json())
    else:
        click.echo(render_card(record))
        click.echo()


class _Group(click.Group):
    """The command group, with one last guard: a cache that cannot be read (a planted
    pickle, a corrupt record) or a file that cannot be written ends with a clear message
    and exit 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (SnapcacheError, OSError) as exc:
            die(f"error: {exc}", EXIT_SOME_FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $SNAPCACHE_CONFIG, then ./config.toml, then built-in).",
)
@click.version_option(package_name="snapcache")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """snapcache: keep cited sources readable through the Wayback Machine."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        die(f"config error: {exc}")
    ctx.obj = {"config": config}


@cli.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--at", "at", default=None, help="Target capture time, YYYYMMDD[hhmmss] (UTC).")
@click.option("--force", is_flag=True, help="Fetch again even if the record is fresh.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def fetch(ctx: click.Context, urls: tuple[str, ...], at: str | None, force: bool,
          as_json: bool) -> None:
    """Resolve, fetch and store each URL; print its card (or JSON)."""
    code = EXIT_OK
    fetcher = open_fetcher(ctx)
    try:
        for url in urls:
            try:
                record = fetcher.fetch(url, at=at, force=force)
            except InputError as exc:
                click.echo(f"snapcache: skipped {clean(url)[:200]!r}: {clean(exc)}", err=True)
                code = EXIT_SOME_FAILED
                continue
            except DeferredError as exc:
                click.echo(f"snapcache: deferred {clean(url)[:200]!r}: {clean(exc)}", err=True)
                code = EXIT_DEFERRED
                break
            _emit(record, as_json)
            if record.status not in FINAL_STATUSES or record.last_outcome == "error":
                code = EXIT_SOME_FAILED
    finally:
        fetcher.close()
    sys.exit(code)


@cli.command()
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.option("--text", "full_text", is_flag=True, help="Print the full extracted text.")
@click.pass_context
def show(ctx: click.Context, ident: str, as_json: bool, full_text: bool) -> None:
    """Show a stored record by resource ID, stable ID or URL. Makes no request."""
    fetcher = open_fetcher(ctx)
    try:
        record = fetcher.lookup(ident)
        if record is None:
            die(f"no record for {ident!r}", EXIT_SOME_FAILED)
        if full_text:
            text = fetcher.cache.get_text(record.resource_id) or ""
            click.echo(sanitize_text(text, keep_newlines=True))
            return
        _emit(record, as_json)
    finally:
        fetcher.close()


@cli.command()
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
        _emit(record, as_json)
    finally:
        fetcher.close()


from . import batch  # noqa: E402,F401 - registers the batch commands on `cli`


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="snapcache")


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["cli", "human_size", "human_timestamp", "main", "render_card"]
