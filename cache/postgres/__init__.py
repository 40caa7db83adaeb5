"""The PostgreSQL store: :class:`PostgresStore`, for records shared by several machines.

Needs the ``postgres`` extra (psycopg 3 and psycopg-pool); :mod:`snapcache.cache` itself does
not import this package, so the diskcache store works without them. :mod:`.schema` holds the
versioned migrations (applied on first use, or by :func:`upgrade`), :mod:`.tables` the
tables, :mod:`.dsn` how a connection string is shown without its password.
"""

from .dsn import DEFAULT_CONNECT_TIMEOUT, is_postgres_dsn, scrub_dsn
from .schema import (
    Migration,
    Upgrade,
    latest_version,
    migrate,
    migrations,
    schema_version,
    upgrade,
)
from .store import DEFAULT_MAX_CONNECTIONS, PostgresStore

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "Migration",
    "PostgresStore",
    "Upgrade",
    "is_postgres_dsn",
    "latest_version",
    "migrate",
    "migrations",
    "schema_version",
    "scrub_dsn",
    "upgrade",
]
