"""``snapcache serve``: the HTTP API and dashboard (:mod:`snapcache.serve`) under uvicorn."""

from __future__ import annotations

import ipaddress
import os
import tempfile
from pathlib import Path

import click

from ..config import Config
from ..errors import ConfigError
from .common import clean, die


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".openapi-", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command()
@click.option("--host", default=None,
              help="Address to listen on (default: [serve] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on (default: [serve] port, 8737).")
@click.option("--write-openapi", "openapi_path", type=click.Path(dir_okay=False),
              default=None, metavar="PATH",
              help="Write the OpenAPI document to PATH and exit (serves nothing).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None,
          openapi_path: str | None) -> None:
    """Serve the HTTP API (/v1) and the dashboard (/). Reads make no request to the archive.

    Writes (POST /v1/fetch) are off unless [serve] token or $SNAPCACHE_SERVE_TOKEN is set.
    """
    # Imported here: the server's dependencies load only for this command.
    from snapcache.serve import create_app, openapi_json

    config: Config = ctx.obj["config"]
    if openapi_path is not None:
        _write_atomically(Path(openapi_path), openapi_json(config.serve))
        click.echo(f"wrote {clean(openapi_path)}")
        return
    host = host or config.serve.host
    port = port or config.serve.port
    try:
        token = config.serve.effective_token()
    except ConfigError as exc:
        die(f"config error: {exc}")
    if not is_loopback(host) and not token:
        click.echo(
            f"snapcache: warning: listening on {clean(host)}, beyond this machine, with no"
            " write token: anyone who can reach it reads every record. Set [serve] token"
            " or $SNAPCACHE_SERVE_TOKEN (the write API stays off without one), or bind to"
            " 127.0.0.1 behind a reverse proxy.", err=True)
    app = create_app(config, token=token)

    import uvicorn

    click.echo(f"snapcache: serving {config.cache_path} on http://{clean(host)}:{port}/"
               f" (write API {'on' if token else 'off'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False,
                proxy_headers=False, lifespan="on")


__all__ = ["is_loopback", "serve"]
