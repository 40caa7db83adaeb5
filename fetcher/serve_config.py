"""The ``[serve]`` section of the configuration: ``snapcache serve``'s host, port, write
token, CORS origins and bounds. Kept beside :mod:`snapcache.config`, which loads it; the
server package itself is a layer on top that the configuration must not import."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["ENV_SERVE_TOKEN", "SERVE_TOKEN_MIN_CHARS", "ServeConfig"]


#: The environment variable that supplies ``[serve] token`` when the file leaves it empty.
ENV_SERVE_TOKEN: Final = "SNAPCACHE_SERVE_TOKEN"
#: The shortest write token accepted: a bearer token is the only thing between the network
#: and the fetch queue, so it must not be guessable.
SERVE_TOKEN_MIN_CHARS: Final = 16


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """``snapcache serve``: the HTTP API and dashboard (see README, HTTP API and dashboard).

    Validated on construction; a bad value raises :class:`ConfigError` naming the key.
    """

    host: str = "127.0.0.1"
    port: int = 8737
    #: Bearer token of the write API (``POST /v1/fetch``). Empty: read $SNAPCACHE_SERVE_TOKEN;
    #: with neither, the write API is off. Never logged, hidden from repr().
    token: str = field(default="", repr=False)
    #: Origins allowed to call the API from a browser (CORS); empty: CORS off.
    cors_origins: tuple[str, ...] = ()
    #: Records per page when ``limit`` is not given, and the most a page may hold.
    page_size: int = 50
    max_page_size: int = 500
    #: Bounds on ``POST /v1/fetch``: URLs per request, bytes per request body.
    max_fetch_urls: int = 100
    max_body_bytes: int = 65536
    #: The most seconds a record's Cache-Control max-age may say, whatever its freshness (a
    #: forced refetch or a move changes a record before its TTL runs out).
    max_age_cap: int = 3600

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"serve.port: must be between 1 and 65535, got {self.port!r}")
        if not self.host or any(c.isspace() for c in self.host):
            raise ConfigError(f"serve.host: expected a host name or address, got {self.host!r}")
        if self.token and (
            len(self.token) < SERVE_TOKEN_MIN_CHARS
            or not self.token.isprintable()
            or any(c.isspace() for c in self.token)
        ):
            # The message never repeats the token.
            raise ConfigError(
                f"serve.token: must be at least {SERVE_TOKEN_MIN_CHARS} printable characters"
                " without spaces"
            )
        for origin in self.cors_origins:
            if origin != "*":
                try:
                    parts = urlsplit(origin)
                    parts.port  # noqa: B018 - raises ValueError for a bad port
                except ValueError:
                    parts = urlsplit("")
                if (
                    parts.scheme not in ("http", "https") or not parts.hostname
                    or parts.path or parts.query or parts.fragment
                ):
                    raise ConfigError(
                        f"serve.cors_origins: expected \"*\" or an origin like"
                        f" \"https://wiki.example.org\" (no path), got {origin!r}"
                    )
        for key in ("page_size", "max_page_size", "max_fetch_urls", "max_body_bytes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"serve.{key}: must be greater than 0")
        if self.page_size > self.max_page_size:
            raise ConfigError("serve.page_size: must not exceed serve.max_page_size")

    def effective_token(self) -> str:
        """The write token: ``token``, else $SNAPCACHE_SERVE_TOKEN, else "" (write API off).

        A token from the environment must meet the same rules as one from the file.
        """
        if self.token:
            return self.token
        env = os.environ.get(ENV_SERVE_TOKEN, "").strip()
        if env:
            try:
                replace(self, token=env)  # validates the token as if it were in the file
            except ConfigError:
                raise ConfigError(
                    f"${ENV_SERVE_TOKEN}: must be at least {SERVE_TOKEN_MIN_CHARS} printable"
                    " characters without spaces"
                ) from None
        return env
