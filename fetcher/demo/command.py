"""``snapcache demo-archive`` (also ``python -m snapcache.demo``): run the demo archive and
write a configuration that points snapcache at it.

Every run makes a new temporary folder holding ``config.toml`` and, once snapcache has
fetched something, the cache (``store/``) and the rate-limit state: nothing is written to a
fixed path, and two demos never share a cache. The folder is printed, and so is the shell
line that makes snapcache use it (``export SNAPCACHE_CONFIG=...``) on standard output, so
that ``eval "$(snapcache demo-archive --background)"`` sets it up in one step.
"""

from __future__ import annotations

import http.client
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from .server import DemoArchive, DemoServer, listen

#: URLs worth fetching from the demo archive, as a newcomer would cite them: an archived
#: redirect to a good page, a 1996 home page, a chain of redirects, a redirect to an
#: archived 404 (no good capture), and a URL the archive never captured.
TRY_URLS: tuple[str, ...] = (
    "https://www.epa.gov/ghgreporting/san5779-factsheet",
    "http://www.nasa.gov/",
    "http://epa.gov/climatechange",
    "https://www.whitehouse.gov/administration/eop/ostp/about/student/faqs",
    "https://example.com/never-archived",
)
#: Seconds a background server has to answer before the command gives up on it.
START_TIMEOUT = 15.0
#: 128 + SIGINT: the foreground server stopped with Ctrl-C, as every command reports it.
_EXIT_SIGINT = 130


def write_config(folder: Path, base_url: str) -> Path:
    """Write ``folder/config.toml``: the archive at ``base_url``, the cache and the
    rate-limit state inside ``folder``. Returns its path."""
    path = folder / "config.toml"

    def quoted(value: str) -> str:
        # A JSON string is a valid TOML basic string (the same escapes).
        return json.dumps(value)

    path.write_text(
        "# Written by `snapcache demo-archive`: snapcache pointed at its demo archive.\n"
        "[archive]\n"
        f"base_url = {quoted(base_url)}\n"
        f"availability_url = {quoted(base_url + '/wayback/available')}\n"
        "[rates]\n"
        f"state_path = {quoted(str(folder / 'ratelimit.sqlite'))}\n"
        "[cache]\n"
        f"path = {quoted(str(folder / 'store'))}\n",
        encoding="utf-8",
    )
    return path


def _answers(base_url: str, timeout: float) -> bool:
    # http.client, not urllib: a proxy from the environment must not stand in between.
    host, port = base_url.split("://", 1)[1].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            conn.request("GET", "/cdx/search/cdx?url=example.com&limit=1")
            return conn.getresponse().status == 200
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    return False


def _spawn(sock_fd: int) -> subprocess.Popen[bytes]:
    # The child serves on the socket bound here, so the port in the config is already
    # right; a new session lets it outlive this command and the terminal's Ctrl-C.
    return subprocess.Popen(
        [sys.executable, "-m", "snapcache.demo", "--listen-fd", str(sock_fd)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        pass_fds=(sock_fd,), start_new_session=True,
    )


def _say(text: str) -> None:
    click.echo(text, err=True)


@click.command(name="demo-archive")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: any free one; the config names it).")
@click.option("--background", is_flag=True,
              help='Serve from a background process and return; use as eval "$(snapcache'
              ' demo-archive --background)", then kill "$SNAPCACHE_DEMO_PID" to stop it.')
@click.option("--listen-fd", type=int, default=None, hidden=True)
def demo_archive(port: int, background: bool, listen_fd: int | None) -> None:
    """Serve a small Wayback Machine on 127.0.0.1 with real recorded captures, to try
    snapcache offline.

    Writes a config pointing at it (with its cache) to a new temporary folder and prints
    `export SNAPCACHE_CONFIG=...` on standard output for the shell.
    """
    if listen_fd is not None:  # the background process that --background started
        DemoServer(socket.socket(fileno=listen_fd)).serve_forever(poll_interval=0.2)
        return
    try:
        sock = listen(port)
    except OSError as exc:
        click.echo(f"snapcache: cannot listen on 127.0.0.1:{port}: {exc.strerror}", err=True)
        sys.exit(2)
    folder = Path(tempfile.mkdtemp(prefix="snapcache-demo-"))
    host, bound = sock.getsockname()[:2]
    base_url = f"http://{host}:{bound}"
    config = write_config(folder, base_url)
    archive = DemoArchive()
    if background:
        child = _spawn(sock.fileno())
        sock.close()
        if not _answers(base_url, START_TIMEOUT):
            child.kill()
            click.echo(f"snapcache: the demo archive did not start (pid {child.pid})", err=True)
            sys.exit(1)
        click.echo(f"export SNAPCACHE_CONFIG={shlex.quote(str(config))}")
        click.echo(f"export SNAPCACHE_DEMO_PID={child.pid}")
        _say(f"snapcache demo archive: {base_url}, {len(archive.recordings)} recorded"
             f" responses (pid {child.pid}; stop it with: kill {child.pid})")
        _say(f"  config and cache in {folder}")
        _say(f"  try: snapcache fetch {TRY_URLS[0]}")
        return
    server = DemoServer(sock, archive, log_requests=True)
    click.echo(f"export SNAPCACHE_CONFIG={shlex.quote(str(config))}")
    _say(f"snapcache demo archive: {base_url}, {len(archive.recordings)} recorded responses"
         " (Ctrl-C stops it)")
    _say(f"  config and cache in {folder}")
    _say(f"  in another shell: export SNAPCACHE_CONFIG={shlex.quote(str(config))}")
    _say(f"  then try: snapcache fetch {TRY_URLS[0]}")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        sys.exit(_EXIT_SIGINT)
    finally:
        server.server_close()


__all__ = ["TRY_URLS", "demo_archive", "write_config"]
