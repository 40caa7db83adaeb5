"""How the command behaves in a shell: a closed pipe (``| head -1``), an 80-column
terminal (``list``, the ``run`` progress bar) and the ``--at`` times people type."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path
from typing import Any

import pytest
from snapcache.cache import SnapshotCache
from snapcache.cli.common import EXIT_CLOSED_PIPE
from snapcache.errors import InputError
from snapcache.ids import parse_at

from tests.docgen import html_page
from tests.storekit import attempt
from tests.test_cli import snapcache_exe, write_config

TS = "20220101000000"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def fill_store(store: Path, count: int) -> None:
    """``count`` ok records with long titles and previews: far more output than a pipe
    holds, so a writer still has lines to write when the reader goes away."""
    with SnapshotCache(store) as cache:
        for i in range(count):
            url = f"https://site{i:04d}.example/a/rather/long/path/to/a/cited/report-{i}.pdf"
            cache.save_attempt(
                attempt(url, "ok", sid=f"sid_{i:010d}", title=f"A long report title {i} " * 4,
                        preview="word " * 600),
                text=None, history_entry={},
            )


def archived_list(tmp_path: Path, emulator: Any, count: int) -> Path:
    """A source list of ``count`` URLs, each with one capture in the emulator."""
    urls = [f"https://example.org/doc-{i}" for i in range(count)]
    for url in urls:
        emulator.add_capture(url, TS, body=html_page("Doc", "text"))
    sources = tmp_path / "sources.txt"
    sources.write_text("\n".join(urls) + "\n", encoding="utf-8")
    return sources


def head_1(*args: str) -> tuple[int, str, str]:
    """Run ``snapcache ARGS | head -1``: read one line, then close the pipe. Returns the
    exit code, the line and what snapcache wrote on stderr."""
    proc = subprocess.Popen([snapcache_exe(), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().decode()
    proc.stdout.close()
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("still running a minute after its reader went away") from None
    return code, first, proc.stderr.read().decode()


def in_terminal(*args: str, columns: int = 80) -> tuple[int, str]:
    """Run ``snapcache ARGS`` with stdout and stderr on a terminal ``columns`` wide.
    Returns the exit code and what the terminal showed, escape sequences removed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPCACHE_")}
    env.update(TERM="xterm", COLUMNS=str(columns))
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([snapcache_exe(), *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the program ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return proc.wait(timeout=60), _ANSI.sub("", shown.decode("utf-8", "replace"))


# --- a closed pipe ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("big-store")
    cfg = write_config(tmp, "http://127.0.0.1:9")  # these commands make no request
    fill_store(tmp / "store", 1500)
    return cfg


@pytest.mark.parametrize("args", [["export"], ["export", "--format", "csv"], ["list"]])
def test_a_closed_pipe_ends_the_command_quietly(big_store: Path, args: list[str]) -> None:
    code, first, err = head_1("--config", str(big_store), *args)
    assert first  # the reader got its line
    assert err == ""
    assert code == EXIT_CLOSED_PIPE == 141


def test_a_closed_pipe_stops_a_run_quietly_and_keeps_what_it_fetched(
        tmp_path: Path, emulator: Any) -> None:
    sources = archived_list(tmp_path, emulator, 60)
    cfg = write_config(tmp_path, emulator.base_url, "[run]\nconcurrency = 1\n")
    code, first, err = head_1("--config", str(cfg), "run", str(sources))
    assert first.startswith("line ")
    assert err == ""
    assert code == EXIT_CLOSED_PIPE
    with SnapshotCache(tmp_path / "store") as cache:
        stored = list(cache.records())
    # The run stopped early, and every record it wrote is whole.
    assert 1 <= len(stored) < 60
    assert all(r.status == "ok" and r.capture_timestamp == TS for r in stored)


# --- an 80-column terminal ----------------------------------------------------------------


def test_list_at_80_columns_keeps_every_id_whole_and_cuts_title_and_url(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    fill_store(tmp_path / "store", 5)
    code, shown = in_terminal("--config", str(cfg), "list", columns=80)
    assert code == 0, shown
    lines = [line for line in shown.splitlines() if "sid_" in line]
    assert len(lines) == 5
    with SnapshotCache(tmp_path / "store") as cache:
        for record in cache.records():
            line = next(line for line in lines if record.stable_id in line)
            assert record.resource_id in line
            assert "…" in line  # the title and the URL gave way
    assert all(len(line.rstrip()) <= 80 for line in shown.splitlines())


def test_list_json_gives_the_listed_fields_uncut(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    fill_store(tmp_path / "store", 3)
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "list", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3
    assert list(rows[0]) == ["resource_id", "stable_id", "status", "capture_timestamp",
                             "title", "url"]
    assert all(len(row["title"]) > 60 for row in rows)  # the table cuts at 60


def test_the_run_progress_bar_keeps_done_total_rate_and_eta_at_80_columns(
        tmp_path: Path, emulator: Any) -> None:
    # Four outcomes make the counts long: they, not the figures, must give way.
    sources = archived_list(tmp_path, emulator, 3)
    urls = [f"https://example.org/{kind}-{i}" for kind in ("gone", "404") for i in range(3)]
    for i in range(3):
        emulator.add_capture(f"https://example.org/404-{i}", TS, status=404, body=b"no")
    emulator.add_excluded("https://excluded.example.net/")
    urls += [f"https://excluded.example.net/{i}" for i in range(3)]
    with sources.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(urls) + "\n")
    cfg = write_config(tmp_path, emulator.base_url)
    cfg.write_text(cfg.read_text().replace("[rates]\n", "[rates]\ncdx_per_minute = 6000.0\n"))
    code, shown = in_terminal("--config", str(cfg), "run", str(sources), columns=80)
    assert code == 0, shown
    # The last frame of the bar, as the terminal was left.
    bars = [frame for line in shown.splitlines() for frame in line.split("\r")
            if "12/12" in frame]
    assert bars, shown
    last = bars[-1]
    assert re.search(r"12/12\s+100%\s+\d+\.\d/s\s.*\d:\d\d:\d\d", last), last
    assert "archived_error:3" in last, last
    assert len(last.rstrip()) <= 80


# --- --at -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("2024", "20240101000000"),
    ("202403", "20240301000000"),
    ("20240305", "20240305000000"),
    ("20240305123456", "20240305123456"),
    ("2024-03-05", "20240305000000"),
    ("2024-03-05T12:34", "20240305123400"),
    ("2024-03-05T12:34:56Z", "20240305123456"),
    ("2024-03-05 12:34:56+02:00", "20240305103456"),
    ("2024-03-05T23:30:00-01:00", "20240306003000"),
    (" 2024-03-05 ", "20240305000000"),
])
def test_at_takes_archive_digits_and_iso_dates_as_utc(value: str, expected: str) -> None:
    assert parse_at(value) == expected


@pytest.mark.parametrize("value", ["2024-13-01", "20241301", "yesterday", "2024-03-05T25:00",
                                   "123", "", "0001-01-01T00:00+01:00",
                                   "\uff12\uff10\uff12\uff14"])
def test_a_bad_at_is_an_input_error_naming_the_forms(value: str) -> None:
    with pytest.raises(InputError):
        parse_at(value)


def test_fetch_at_an_iso_date_gets_the_closest_capture(tmp_path: Path, emulator: Any) -> None:
    url = "https://example.org/versions"
    emulator.add_capture(url, "20200101000000", body=html_page("Old", "old"))
    emulator.add_capture(url, "20240101000000", body=html_page("New", "new"))
    cfg = write_config(tmp_path, emulator.base_url)
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "fetch", "--json", "--at",
                          "2020-02-01", url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["requested_timestamp"] == "20200201000000"
    assert record["capture_timestamp"] == "20200101000000"


@pytest.mark.parametrize("value", ["2026-13-01", "next tuesday", "20261301"])
def test_fetch_with_a_bad_at_is_a_usage_error_naming_it(tmp_path: Path, value: str) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "fetch", "--at", value,
                          "https://example.org/"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "'--at'" in out.stderr and value in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
