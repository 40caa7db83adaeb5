"""The read-only commands import only what reading the store needs: not the HTTP client, the
extractors, the server or the terminal UI, which take longer to import than ``stats`` takes
to run. Each command runs in a fresh interpreter, which then lists its modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from snapcache.cache import SnapshotCache
from snapcache.cli.app import COMMANDS, load_command

from tests.storekit import fill_six_records
from tests.test_cli import write_config

NOWHERE = "http://127.0.0.1:9"  # never contacted: these commands make no request

#: Modules the read-only commands must not import (third-party, then snapcache's own).
HEAVY = (
    "httpx", "httpcore", "h11", "anyio", "tenacity", "pypdfium2", "selectolax",
    "charset_normalizer", "starlette", "uvicorn", "jinja2", "rich", "psycopg",
    "snapcache.api", "snapcache.engine", "snapcache.runner", "snapcache.archive",
    "snapcache.transport", "snapcache.extract.core", "snapcache.extract.pool",
    "snapcache.serve", "snapcache.demo",
)

# Runs the console script's entry point as ``snapcache ARGS...``, then writes the names of
# every module loaded to the file named first.
_RUN_AND_LIST = (
    "import json, sys\n"
    "from snapcache.cli import main\n"
    "out, sys.argv = sys.argv[1], ['snapcache', *sys.argv[2:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "else:\n"
    "    code = 0\n"
    "open(out, 'w').write(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
)


def modules_after(tmp_path: Path, *args: str) -> tuple[int, str, set[str]]:
    """Run ``snapcache ARGS`` in a new interpreter: its exit code, output and modules."""
    listing = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _RUN_AND_LIST, str(listing), *args],
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(listing.read_text(encoding="utf-8"))
    return found["code"], proc.stdout, set(found["modules"])


def heavy_in(modules: set[str]) -> list[str]:
    """The :data:`HEAVY` modules (or their submodules) among ``modules``."""
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_stats_on_an_empty_store_imports_no_http_client_extractor_or_server(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path, NOWHERE)
    code, out, modules = modules_after(tmp_path, "--config", str(cfg), "stats")
    assert code == 0
    assert "records: 0" in out
    assert heavy_in(modules) == []
    assert "snapcache.cli.records" in modules  # the command did run from its module


@pytest.mark.parametrize(("args", "shown"), [
    (("stats", "--json"), '"records": 6'),
    (("list",), "\thttps://example.com/ok\n"),
    (("export",), '"url":"https://example.com/ok"'),
    (("export", "--format", "csv"), "https://example.com/ok"),
    (("show", "https://example.com/ok"), "URL:          https://example.com/ok"),
    (("show", "--text", "https://example.com/ok"), "\n"),  # no text stored: a blank line
])
def test_read_only_commands_over_records_import_none_of_the_fetching_layers(
    tmp_path: Path, args: tuple[str, ...], shown: str
) -> None:
    with SnapshotCache(tmp_path / "store") as cache:
        fill_six_records(cache)
    cfg = write_config(tmp_path, NOWHERE)
    code, out, modules = modules_after(tmp_path, "--config", str(cfg), *args)
    assert code == 0
    assert shown in out
    assert heavy_in(modules) == []


def test_a_fetching_command_still_finds_the_fetching_layers(tmp_path: Path) -> None:
    # The other side of the lazy imports: a command that fetches loads them when it runs.
    cfg = write_config(tmp_path, NOWHERE)
    sources = tmp_path / "urls.txt"
    sources.write_text("not a url\n", encoding="utf-8")
    code, _, modules = modules_after(tmp_path, "--config", str(cfg), "run", "--quiet",
                                     str(sources))
    assert code == 1  # the one line is invalid
    assert {"snapcache.api", "snapcache.runner", "httpx"} <= modules


def test_every_listed_command_loads_under_its_own_name() -> None:
    for name in COMMANDS:
        command = load_command(name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert load_command("no-such-command") is None
