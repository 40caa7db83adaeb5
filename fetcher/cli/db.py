"""Commands for stores beyond one machine: ``db upgrade`` (the PostgreSQL store's schema)
and ``copy-store`` (every record from one store to another, either backend)."""

from __future__ import annotations

import click
from snapcache.cache import Store
from snapcache.cache.transfer import copy_store

from ..config import Config
from ..errors import ConfigError
from ..stores import (
    ENV_DSN,
    configured_dsn,
    open_importer,
    open_store_at,
    parse_address,
    upgrade_postgres,
)
from .common import clean, die


@click.group(name="db")
def db() -> None:
    """The PostgreSQL store's database (see `[cache] backend = "postgres"`)."""


@db.command(name="upgrade")
@click.option("--dsn", default=None, metavar="DSN",
              help=f"PostgreSQL DSN (default: [cache] dsn, then ${ENV_DSN}).")
@click.pass_context
def upgrade(ctx: click.Context, dsn: str | None) -> None:
    """Apply the pending schema migrations, then print the schema version.

    Stores migrate on first use anyway; run this once when upgrading snapcache on several
    machines, before starting them. Safe to run again, and from two machines at once.
    """
    config: Config = ctx.obj["config"]
    target = (dsn or "").strip() or configured_dsn(config)
    if not target:
        die(f"db upgrade: no PostgreSQL DSN: set [cache] dsn or ${ENV_DSN}, or pass --dsn")
    try:
        result = upgrade_postgres(target)
    except ConfigError as exc:
        die(str(exc))
    for migration in result.applied:
        click.echo(f"applied migration {migration.version:04d}_{migration.name}")
    click.echo(f"schema version {result.version}")


@click.command(name="copy-store")
@click.argument("source")
@click.argument("target")
def copy_store_command(source: str, target: str) -> None:
    """Copy every record from SOURCE into TARGET, with its resource and stable IDs,
    aliases, text, history and save fields, then check the copy.

    SOURCE and TARGET are each diskcache:PATH or a postgresql:// URI. Each record is copied
    in one transaction, replacing what TARGET held for it: an interrupted copy can be run
    again. Stop the runs writing to either store first.
    """
    try:
        src_address, dst_address = parse_address(source), parse_address(target)
    except ConfigError as exc:
        die(str(exc))
    if src_address == dst_address:
        die("copy-store: SOURCE and TARGET are the same store")
    try:
        src = open_store_at(src_address, must_exist=True)
    except ConfigError as exc:
        die(str(exc))
    dst: Store | None = None
    try:
        dst = open_store_at(dst_address)
        importer, to_close = open_importer(dst_address, dst)
        try:
            report = copy_store(src, dst, importer)
        finally:
            if to_close is not None:
                to_close.close()
        where_from, where_to = src.location, dst.location
    except ConfigError as exc:
        die(str(exc))
    finally:
        src.close()
        if dst is not None:
            dst.close()
    click.echo(
        f"copied {report.copied} records from {clean(where_from)} to {clean(where_to)}; "
        f"checked: all {report.source_records} match, {report.target_records} records there"
    )


__all__ = ["copy_store_command", "db", "upgrade"]
