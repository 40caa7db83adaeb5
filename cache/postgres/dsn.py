"""PostgreSQL connection strings: connecting, and showing one without its secrets.

A DSN may carry a password (``postgresql://user:secret@host/db`` or ``password=secret``).
Whatever snapcache prints, logs or puts in an error message shows :func:`scrub_dsn`'s form
instead, and :func:`scrub_message` removes the password from text that a driver produced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote, urlencode

import psycopg
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from ..errors import CacheError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "SECRET_KEYS",
    "connect",
    "connection_options",
    "is_postgres_dsn",
    "open_pool",
    "parse_dsn",
    "scrub_dsn",
    "scrub_message",
]

#: libpq parameters whose values are secrets: never shown.
SECRET_KEYS: Final = frozenset({"password", "sslpassword"})

#: Seconds to wait for the server when connecting, unless the DSN says otherwise.
DEFAULT_CONNECT_TIMEOUT: Final = 10

#: URL schemes libpq accepts for a connection URI.
_SCHEMES: Final = ("postgresql://", "postgres://")


def is_postgres_dsn(text: str) -> bool:
    """True when ``text`` is a ``postgresql://`` (or ``postgres://``) connection URI."""
    return text.strip().lower().startswith(_SCHEMES)


def parse_dsn(dsn: str) -> dict[str, str]:
    """Return the libpq parameters of ``dsn`` (a URI or ``key=value`` pairs).

    Raises :class:`CacheError` for a string libpq cannot parse; the message never repeats
    the string, which may hold a password.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        raise CacheError("the PostgreSQL DSN is empty")
    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError:
        # The driver's message quotes the offending part, which may be the password.
        raise CacheError("the PostgreSQL DSN is not a valid connection string") from None
    return {key: str(value) for key, value in params.items() if value is not None}


def scrub_dsn(dsn: str) -> str:
    """Return ``dsn`` as a ``postgresql://`` URI without its password, for messages.

    ``postgresql://alice:secret@db.example:5432/snap?sslmode=require`` becomes
    ``postgresql://alice@db.example:5432/snap?sslmode=require``. Raises :class:`CacheError`
    (without quoting it) for a DSN that cannot be parsed.
    """
    params = {k: v for k, v in parse_dsn(dsn).items() if k not in SECRET_KEYS}
    user = params.pop("user", "")
    host = params.pop("host", "")
    port = params.pop("port", "")
    dbname = params.pop("dbname", "")
    netloc = f"{quote(user, safe='')}@" if user else ""
    if host and not host.startswith("/") and "," not in host:
        netloc += f"[{host}]" if ":" in host else host
        if port:
            netloc += f":{port}"
    else:
        # A Unix socket folder or several hosts do not fit in the authority part.
        if host:
            params["host"] = host
        if port:
            params["port"] = port
    uri = f"postgresql://{netloc}/{quote(dbname, safe='')}" if dbname else f"postgresql://{netloc}"
    if params:
        uri += "?" + urlencode(sorted(params.items()))
    return uri


def scrub_message(message: str, dsn: str) -> str:
    """Return ``message`` with every secret of ``dsn`` replaced by ``***``."""
    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError:
        return message
    for key in SECRET_KEYS:
        secret = params.get(key)
        if isinstance(secret, str) and secret:
            message = message.replace(secret, "***")
            message = message.replace(quote(secret, safe=""), "***")
    return message


def connection_options(dsn: str) -> dict[str, Any]:
    """The options every snapcache connection to ``dsn`` is made with: autocommit, and
    :data:`DEFAULT_CONNECT_TIMEOUT` unless the DSN sets its own."""
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in parse_dsn(dsn):
        options["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    return options


def connect(dsn: str, kwargs: Mapping[str, Any] | None = None) -> psycopg.Connection[Any]:
    """One autocommit connection to ``dsn``; :class:`CacheError` without the password if
    the server cannot be reached."""
    options = {**connection_options(dsn), **(kwargs or {})}
    try:
        return psycopg.connect(dsn, **options)
    except psycopg.Error as exc:
        # from None: the driver's exception adds nothing but another copy of the text.
        raise CacheError(
            f"cannot connect to the PostgreSQL store at {scrub_dsn(dsn)}: "
            f"{scrub_message(str(exc), dsn).strip()}"
        ) from None


def open_pool(
    dsn: str, *, max_size: int, timeout: float, name: str,
    configure: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> ConnectionPool[psycopg.Connection[Any]]:
    """An open pool of up to ``max_size`` connections to ``dsn``, made with
    :func:`connection_options`. Each connection is checked when taken: a server restart or
    a dropped connection must not fail the next query."""
    return ConnectionPool(
        dsn, kwargs=connection_options(dsn), min_size=1, max_size=max_size, open=True,
        configure=configure, check=ConnectionPool.check_connection, timeout=timeout,
        name=name,
    )
