"""The ``snapcache`` command group: the ``--config`` option, the last-resort error guard,
and every command, added explicitly from the modules that define them."""

from __future__ import annotations

import sys

import click

from ..config import load_config
from ..demo import demo_archive
from ..errors import ConfigError, SnapcacheError
from .common import EXIT_SOME_FAILED, die, exit_closed_pipe
from .records import export, list_records, stats
from .run import refetch, run
from .single import fetch, move, save, show


class _Group(click.Group):
    """The command group, with one last guard: a cache that cannot be read (a planted
    pickle, a corrupt record) or a file that cannot be written ends with a clear message
    and exit 1, never a traceback. A closed output pipe (``| head``) is no error: every
    command then ends quietly with exit 141."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            exit_closed_pipe()
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
    if ctx.invoked_subcommand == demo_archive.name:
        # The demo writes its own config; a stale $SNAPCACHE_CONFIG (an earlier demo's,
        # since removed) must not stop it from starting.
        ctx.obj = {}
        return
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        die(f"config error: {exc}")
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
cli.add_command(demo_archive)


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
