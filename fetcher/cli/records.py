"""Read-only views of the store: ``export``, ``list`` and ``stats``. They make no request."""

from __future__ import annotations

import csv
import itertools
import json
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import click
from snapcache.cache import SnapshotCache, Store
from snapcache.cache.files import is_temp_name
from snapcache.cache.records import FIELD_ORDER

from .common import STATUS_CHOICE, clean, open_store, report_damaged, stored_records
from .outfile import check_output_path, write_atomically
from .render import human_iso, human_size


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              help="jsonl (default): one record per line; csv: a header row, then records.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this regular file (atomically; an existing one keeps its mode)"
              " instead of stdout. A directory, device, FIFO or a path inside the store is"
              " refused (exit 2).")
@click.option("--status", "statuses", multiple=True, type=STATUS_CHOICE,
              help="Only records with this status (repeatable).")
@click.pass_context
def export(ctx: click.Context, fmt: str, output: str | None, statuses: tuple[str, ...]) -> None:
    """Every record, with the same fields as `fetch --json`, in a stable field order."""
    # Checked before the store is opened: nothing is created for a refused path.
    dest = None if output is None else (output, check_output_path(output, ctx.obj["config"]))
    store = open_store(ctx)
    try:
        if dest is None:
            _write_export(store, sys.stdout, fmt, statuses)
        else:
            shown, target = dest
            write_atomically(target, shown, lambda fh: _write_export(store, fh, fmt, statuses))
    finally:
        store.close()


def _write_export(store: Store, fh: IO[str], fmt: str, statuses: Iterable[str]) -> None:
    if fmt == "csv":
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FIELD_ORDER)
        for record in stored_records(store, statuses):
            data = record.to_json_dict()
            writer.writerow([_csv_value(data[name]) for name in FIELD_ORDER])
    else:
        # The diskcache store hands out the stored text of the records it wrote, unparsed:
        # the same lines, at a fraction of the cost (exports of 100,000 records).
        lines = (
            store.record_texts(statuses=set(statuses) or None, on_damaged=report_damaged)
            if isinstance(store, SnapshotCache)
            else (record.to_json() for record in stored_records(store, statuses))
        )
        for line in lines:
            fh.write(line + "\n")


#: The fields ``list`` shows, in order (``--json`` uses these names).
LIST_FIELDS: tuple[str, ...] = (
    "resource_id", "stable_id", "status", "capture_timestamp", "title", "url",
)


@click.command(name="list")
@click.option("--status", "statuses", multiple=True, type=STATUS_CHOICE,
              help="Only records with this status (repeatable).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per record, with the listed fields (title uncut).")
@click.pass_context
def list_records(ctx: click.Context, statuses: tuple[str, ...], as_json: bool) -> None:
    """List records: a table on a terminal, tab-separated lines otherwise."""
    header: tuple[str, ...] = ("resource_id", "stable_id", "status", "captured", "title", "url")
    store = open_store(ctx)
    try:
        # Only the listed fields: a whole record holds a preview of up to 3,000 characters.
        records = ({k: getattr(r, k) for k in LIST_FIELDS}
                   for r in stored_records(store, statuses))
        if as_json:
            _write_lines(json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                         for data in records)
            return
        rows = (
            (data["resource_id"], data["stable_id"], str(data["status"]),
             data["capture_timestamp"] or "-", clean(data["title"] or "")[:60],
             clean(data["url"]))
            for data in records
        )
        if sys.stdout.isatty():
            # A table sizes its columns from every row, so it waits for the last one.
            _print_table(header, list(rows))
            return
        # Lines go out as records are read: the first at once, and memory stays flat
        # however many records there are.
        _write_lines("\t".join(row) for row in itertools.chain([header], rows))
    finally:
        store.close()


def _write_lines(lines: Iterable[str]) -> None:
    # Line by line through the stream's buffer, one flush at the end: fast, and a reader
    # that goes away (| head) is noticed at the next buffer-full rather than lost in one
    # huge write that the pipe takes only part of.
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    # IDs are what people copy into `show` and `move`: they are never cut or wrapped. The
    # title and the URL share what is left (a third and two thirds), each cut with an
    # ellipsis. The widths are worked out here: rich's own shrinking squeezes every column,
    # and with ratios it can drop the fixed ones entirely.
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(header)]
    fixed = sum(widths[:-2]) + 2 * (len(header) - 1)  # two spaces between columns
    room = max(console.width - fixed, 12)
    title_width = min(widths[-2], max(room // 3, 6))
    url_width = max(min(widths[-1], room - title_width), 6)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for name, width in zip(header, [*widths[:-2], title_width, url_width], strict=True):
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=width)
    for row in rows:
        # Text, not str: a title like "[/]" is text to show, not rich markup to parse.
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _store_size(directory: Path) -> int:
    """Bytes of the store's files; temporary files (bodies being spilled, exports in
    progress or left by a killed writer) are not the store's and are not counted."""
    size = 0
    for path in directory.rglob("*"):
        if is_temp_name(path.name):
            continue
        try:
            info = path.lstat()
        except FileNotFoundError:  # a temporary file removed meanwhile
            continue
        if stat.S_ISREG(info.st_mode):
            size += info.st_size
    return size


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts per outcome, oldest and newest fetch, cache size on disk."""
    store = open_store(ctx)
    try:
        counted = store.stats(on_damaged=report_damaged)
        directory = store.location
    finally:
        store.close()
    # Measured after closing: while the store is open SQLite's log files sit beside it.
    # Temporary files (bodies being spilled, an export in progress) are not the store's.
    size = _store_size(Path(directory))
    counts = counted.outcomes
    data: dict[str, Any] = {
        "records": counted.records,
        "outcomes": dict(sorted(counts.items())),
        "oldest_fetch": counted.oldest_fetch,
        "newest_fetch": counted.newest_fetch,
        "cache_bytes": size,
        "cache_path": str(directory),
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"records: {data['records']}")
    for status, n in sorted(counts.items()):
        click.echo(f"  {status}: {n}")
    click.echo(f"oldest fetch: {human_iso(counted.oldest_fetch)}")
    click.echo(f"newest fetch: {human_iso(counted.newest_fetch)}")
    click.echo(f"cache size: {human_size(size)} at {clean(directory)}")


__all__ = ["LIST_FIELDS", "export", "list_records", "stats"]
