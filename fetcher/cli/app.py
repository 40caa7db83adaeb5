"""The ``snapcache`` command group: the ``--config`` option, the last-resort error guard,
and every command, added explicitly from the modules that define them."""

from __future__ import annotations

import sys
import warnings

import click
from snapcache.cache.errors import UnsafeLocationError

from ..config import LegacyStoreWarning, legacy_store_note, load_config
from ..demo import demo_archive
from ..errors import ConfigError, SnapcacheError
from .common import DAMAGED_SKIPPED, EXIT_SOME_FAILED, EXIT_USAGE, die, exit_closed_pipe
from .db import copy_store_command, db
from .queue import enqueue, queue_status, worker
from .records import export, list_records, stats
from .run import refetch, run
from .serve import serve
from .single import fetch, move, save, show


class _Group(click.Group):
    """The command group, with one last guard: a cache that cannot be read (a planted
    pickle, a damaged store file or record, a damaged rate-limit state file) or a file that
    cannot be written ends with one clear line and exit 1, never a traceback. A folder or
    file refused as unsafe (others could write it) exits 2, as any unusable setting does.
    A command that skipped damaged records (and named them) exits 1 once it is done. A
    closed output pipe (``| head``) is no error: every command then ends quietly with exit
    141."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            result = super().invoke(ctx)
        except SystemExit as exc:
            if not exc.code and ctx.meta.get(DAMAGED_SKIPPED):
                sys.exit(EXIT_SOME_FAILED)
            raise
        except BrokenPipeError:
            exit_closed_pipe()
        except UnsafeLocationError as exc:
            die(f"error: {exc}", EXIT_USAGE)
        except (SnapcacheError, OSError) as exc:
            die(f"error: {exc}", EXIT_SOME_FAILED)
        if ctx.meta.get(DAMAGED_SKIPPED):
            sys.exit(EXIT_SOME_FAILED)
        return result


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file; /dev/null for the built-in defaults. Default: $SNAPCACHE_CONFIG, "
    "then config.toml in the user config dir (~/.config/snapcache/ on Linux), then built-in; "
    "./config.toml is read only when named.",
)
@click.version_option(package_name="snapcache")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """snapcache: keep cited sources readable through the Wayback Machine."""
    if ctx.invoked_subcommand == demo_archive.name:
        # The demo writes its own config; a stale $SNAPCACHE_CONFIG (an earlier demo's,
        # since removed) must not stop it from starting.
        ctx.obj = {}
        return
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        die(f"config error: {exc}")
    note = legacy_store_note(config)
    if note is not None:
        # Said once here, as one line; the library's warning would repeat it as two.
        click.echo(f"snapcache: note: {note}", err=True)
        warnings.simplefilter("ignore", LegacyStoreWarning)
    ctx.obj = {"config": config}


cli.add_command(fetch)
cli.add_command(show)
cli.add_command(move)
cli.add_command(save)
cli.add_command(run)
cli.add_command(refetch)
cli.add_command(export)
cli.add_command(list_records)
cli.add_command(stats)
cli.add_command(db)
cli.add_command(copy_store_command)
cli.add_command(serve)
cli.add_command(demo_archive)
cli.add_command(enqueue)
cli.add_command(worker)
cli.add_command(queue_status)


def main() -> None:
    """Console-script entry point."""
    try:
        try:
            cli(prog_name="snapcache")
        finally:
            # Output still buffered when a command ends meets a closed pipe here, where it
            # can end quietly, rather than in the interpreter's last flush.
            sys.stdout.flush()
    except BrokenPipeError:
        exit_closed_pipe()


__all__ = ["cli", "main"]
