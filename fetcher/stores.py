"""Opening stores: the one place that turns ``[cache]`` (or a store address) into a
:class:`~snapcache.cache.Store`.

The store layer knows nothing of the configuration, so the choice between the diskcache
folder and the PostgreSQL database is made here, for the facade and the CLI alike. The
PostgreSQL store is imported only when chosen: its driver is the optional ``postgres``
extra.

A *store address* (``snapcache copy-store SRC DST``) is ``diskcache:PATH`` or a
``postgresql://`` URI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from snapcache.cache import SnapshotCache, Store
from snapcache.cache.store import DEFAULT_HISTORY_LIMIT
from snapcache.cache.transfer import DiskcacheImporter, Importer

from .config import Config
from .errors import ConfigError

if TYPE_CHECKING:
    from snapcache.cache.postgres import PostgresStore, Upgrade

__all__ = [
    "DISKCACHE_PREFIX",
    "ENV_DSN",
    "StoreAddress",
    "configured_dsn",
    "open_importer",
    "open_postgres",
    "open_store",
    "open_store_at",
    "parse_address",
    "upgrade_postgres",
]

#: The environment variable read when ``[cache] dsn`` is empty.
ENV_DSN: Final = "SNAPCACHE_DSN"

#: How a store address names a diskcache folder.
DISKCACHE_PREFIX: Final = "diskcache:"

_URI_SCHEMES: Final = ("postgresql://", "postgres://")


def configured_dsn(config: Config) -> str:
    """The PostgreSQL DSN of ``config``: ``[cache] dsn``, else ``$SNAPCACHE_DSN``, else ""."""
    return config.cache.dsn.strip() or os.environ.get(ENV_DSN, "").strip()


def open_store(config: Config) -> Store:
    """Open the store ``[cache]`` configures: the diskcache folder ``path`` (the default) or,
    with ``backend = "postgres"``, the database at ``dsn`` (or ``$SNAPCACHE_DSN``).

    Raises :class:`~snapcache.errors.ConfigError` for a PostgreSQL backend without a DSN or
    without its driver, and :class:`~snapcache.cache.CacheError` for a store that cannot be
    opened (never quoting a password).
    """
    limit = config.cache.history_limit
    if config.cache.backend == "postgres":
        dsn = configured_dsn(config)
        if not dsn:
            raise ConfigError(
                f'cache.dsn: required when cache.backend is "postgres" (or set ${ENV_DSN})'
            )
        return open_postgres(dsn, history_limit=limit)
    return SnapshotCache(config.cache_path, history_limit=limit)


def open_postgres(dsn: str, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> PostgresStore:
    """Open the PostgreSQL store at ``dsn``; :class:`ConfigError` if its driver is missing."""
    try:
        from snapcache.cache.postgres import PostgresStore
    except ImportError as exc:
        raise ConfigError(
            "the postgres cache backend needs psycopg: pip install 'snapcache[postgres]' "
            f"({exc})"
        ) from exc
    return PostgresStore(dsn, history_limit=history_limit)


def upgrade_postgres(dsn: str) -> Upgrade:
    """Apply the PostgreSQL store's pending migrations at ``dsn`` (``snapcache db upgrade``);
    :class:`ConfigError` if the driver is missing."""
    try:
        from snapcache.cache.postgres import migrate
    except ImportError as exc:
        raise ConfigError(
            "the postgres cache backend needs psycopg: pip install 'snapcache[postgres]' "
            f"({exc})"
        ) from exc
    return migrate(dsn)


@dataclass(frozen=True, slots=True)
class StoreAddress:
    """A parsed store address: which backend, and its folder or DSN."""

    backend: Literal["diskcache", "postgres"]
    where: str


def parse_address(address: str) -> StoreAddress:
    """Parse ``diskcache:PATH`` or a ``postgresql://`` URI.

    Raises :class:`ConfigError` for anything else (quoting only the part before ``:``, since
    a DSN may hold a password).
    """
    text = address.strip()
    if text.startswith(DISKCACHE_PREFIX):
        path = text[len(DISKCACHE_PREFIX) :]
        if not path:
            raise ConfigError("store address diskcache: needs a folder (diskcache:PATH)")
        return StoreAddress("diskcache", path)
    if text.lower().startswith(_URI_SCHEMES):
        return StoreAddress("postgres", text)
    scheme = text.split(":", 1)[0] if ":" in text else ""
    # Only a plain scheme is quoted back: the rest may be a key=value DSN with a password.
    shown = f" {scheme + ':'!r}..." if scheme.isalnum() else ""
    raise ConfigError(f"store address{shown}: expected diskcache:PATH or a postgresql:// URI")


def open_store_at(
    address: StoreAddress, *, must_exist: bool = False,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
) -> Store:
    """Open the store at ``address``. With ``must_exist``, a diskcache folder that does not
    exist is a :class:`ConfigError` rather than a new empty store (a mistyped source must
    not read as an empty one)."""
    if address.backend == "postgres":
        return open_postgres(address.where, history_limit=history_limit)
    path = Path(address.where).expanduser()
    if must_exist and not path.is_dir():
        raise ConfigError(f"no diskcache store at {str(path)!r}")
    return SnapshotCache(path, history_limit=history_limit)


def open_importer(address: StoreAddress, store: Store) -> tuple[Importer, DiskcacheImporter | None]:
    """What writes copied resources into ``store`` (opened at ``address``).

    A PostgreSQL store imports by itself; a diskcache folder gets a
    :class:`~snapcache.cache.transfer.DiskcacheImporter`, returned second so the caller
    closes it.
    """
    if address.backend == "postgres":
        from snapcache.cache.postgres import PostgresStore

        if not isinstance(store, PostgresStore):
            raise TypeError("a postgres address needs the PostgresStore opened at it")
        return store, None
    importer = DiskcacheImporter(Path(address.where).expanduser())
    return importer, importer
