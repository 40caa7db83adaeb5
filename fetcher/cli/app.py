"""The ``snapcache`` command group: the ``--config`` option, the last-resort error guard,
and every command, listed in :data:`COMMANDS` with the module that defines it."""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Final

import click
from snapcache.cache.errors import UnsafeLocationError

from ..config import LegacyStoreWarning, legacy_store_note, load_config
from ..errors import ConfigError, SnapcacheError
from .common import DAMAGED_SKIPPED, EXIT_SOME_FAILED, EXIT_USAGE, die, exit_closed_pipe

#: The demo archive's command, which runs without a configuration of its own.
DEMO_COMMAND: Final = "demo-archive"

#: Every command: its name, then the module (relative to this package) and the name that
#: define it. A command's module is imported only when that command runs (``--help``
#: imports them all, for their summaries): ``stats`` or ``show`` would otherwise spend
#: longer importing the HTTP client, the extractors and the server than doing its work.
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "fetch": (".single", "fetch"),
    "show": (".single", "show"),
    "move": (".single", "move"),
    "save": (".single", "save"),
    "run": (".run", "run"),
    "refetch": (".run", "refetch"),
    "export": (".records", "export"),
    "list": (".records", "list_records"),
    "stats": (".records", "stats"),
    "db": (".db", "db"),
    "copy-store": (".db", "copy_store_command"),
    "serve": (".serve", "serve"),
    DEMO_COMMAND: ("..demo", "demo_archive"),
    "enqueue": (".queue", "enqueue"),
    "worker": (".queue", "worker"),
    "queue": (".queue", "queue_status"),
}


def load_command(name: str) -> click.Command | None:
    """The command called ``name`` (its module imported now), or None for no command."""
    where = COMMANDS.get(name)
    if where is None:
        return None
    module, attribute = where
    command = getattr(importlib.import_module(module, __package__), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{module}.{attribute} is not a click command")
    return command


class _Group(click.Group):
    """The command group, with one last guard: a cache that cannot be read (a planted
    pickle, a damaged store file or record, a damaged rate-limit state file) or a file that
    cannot be written ends with one clear line and exit 1, never a traceback. A folder or
    file refused as unsafe (others could write it) exits 2, as any unusable setting does.
    A command that skipped damaged records (and named them) exits 1 once it is done. A
    closed output pipe (``| head``) is no error: every command then ends quietly with exit
    141. Its commands are loaded on demand (:data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name)

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
    if ctx.invoked_subcommand == DEMO_COMMAND:
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


__all__ = ["COMMANDS", "DEMO_COMMAND", "cli", "load_command", "main"]
