"""The PostgreSQL store: the :class:`~snapcache.cache.contract.Store` contract on a server
that several hosts share.

:mod:`.tables` describes the tables and reads their rows; here are the rules of what is
written when, the same as the diskcache store's (:mod:`snapcache.cache.store`):

* Each write method is one transaction. Every write to a resource first locks its identity
  row (``SELECT ... FOR UPDATE``), then reads the stored record, applies the pure
  :func:`~snapcache.cache.policy.merge` and writes: two hosts finishing the same URL
  serialise on the lock and neither update is lost.
* A new resource's identity row is inserted under unique constraints (resource ID, stable
  ID, URL hash). Two first sightings racing on one resource: the second insert waits for the
  first transaction, fails on the constraint, and its transaction is retried, finding the
  identity the first bound. A stable ID is thus minted once, whatever the number of hosts.
* The first use of a database applies the SQL migrations (:mod:`.schema`) under an advisory
  lock.

Connections come from a :class:`psycopg_pool.ConnectionPool` (autocommit; writes open an
explicit transaction), so threads may share one store object. The DSN's password never
appears in :attr:`PostgresStore.location`, in ``repr`` or in an error message.

One difference from the folder store: PostgreSQL text cannot hold U+0000, so a write with
one in a URL, text, record or history entry raises :class:`CacheError` and writes nothing
(the fetcher never produces one: input URLs with control characters are refused and
extracted text is sanitised).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..contract import HistoryEntry, StoreStats
from ..errors import CacheError, NotFoundError, StableIdConflictError
from ..identity import (
    check_resource_id,
    check_stable_id,
    is_resource_id,
    is_stable_id,
    mint_unique,
    url_key,
    validated_json,
)
from ..policy import merge
from ..records import Record, RecordFormatError
from ..rows import Identity
from ..store import DEFAULT_HISTORY_LIMIT, DEFAULT_TIMEOUT
from ..times import utc_now_iso
from ..transfer import ResourceDump
from . import tables
from .dsn import connect, open_pool, scrub_dsn, scrub_message
from .schema import ensure_current, latest_version, schema_version
from .tables import Conn

if TYPE_CHECKING:
    from ..contract import Store
    from ..transfer import Importer

__all__ = ["DEFAULT_MAX_CONNECTIONS", "PostgresStore"]

T = TypeVar("T")

#: Connections one store object keeps at most (threads beyond this wait for one).
DEFAULT_MAX_CONNECTIONS: Final = 8

#: A write transaction that lost a race (a concurrent first sighting, a deadlock) is run
#: again; each retry sees what the winner committed, so a few tries always settle it.
_MAX_TRIES: Final = 8

#: Errors after which the whole transaction is simply run again.
_RETRY: Final = (
    pg_errors.UniqueViolation,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
)


class PostgresStore:
    """Records, texts, histories, identities and aliases in a PostgreSQL database.

    Implements :class:`~snapcache.cache.contract.Store` (see there for the guarantees).
    Safe to share between threads, processes and hosts. Use as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        migrate: bool = True,
    ) -> None:
        """Connect to the database at ``dsn`` (a ``postgresql://`` URI or libpq
        ``key=value`` string) and bring its schema up to date.

        ``timeout`` bounds, in seconds, the wait for a connection of the pool and for a row
        another writer holds locked. With ``migrate`` false, a schema that is not current
        raises instead of being migrated. Raises :class:`CacheError` (never quoting the
        password) when the server cannot be reached, or the database was migrated by a
        newer snapcache.
        """
        if isinstance(history_limit, bool) or not isinstance(history_limit, int):
            raise TypeError("history_limit must be an int")
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self._dsn = dsn
        self._location = scrub_dsn(dsn)
        self._history_limit = history_limit
        self._timeout = float(timeout)
        self._closed = False
        with self._connect() as conn:
            try:
                self._version = ensure_current(conn) if migrate else self._check_current(conn)
            except psycopg.Error as exc:  # no right to create the tables, say
                raise CacheError(
                    f"cannot open the PostgreSQL store at {self._location}: "
                    f"{scrub_message(str(exc), dsn).strip()}"
                ) from None
        self._pool: ConnectionPool[psycopg.Connection[Any]] = open_pool(
            dsn, max_size=max_connections, timeout=self._timeout, name="snapcache",
            configure=self._configure,
        )

    # ---------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def location(self) -> str:
        """The server and database as a ``postgresql://`` URI without the password."""
        return self._location

    @property
    def history_limit(self) -> int:
        """How many attempt summaries are kept per resource."""
        return self._history_limit

    @property
    def schema_version(self) -> int:
        """The schema version of the database (see :mod:`snapcache.cache.postgres.schema`)."""
        return self._version

    def close(self) -> None:
        """Close every connection; the object must not be used afterwards."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()

    def __enter__(self) -> Self:
        """Return the store itself, closed when the ``with`` block ends."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store."""
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._location!r})"

    # ---------------------------------------------------------------------------------------
    # Lookups (no writes)

    def get(self, resource_id: str) -> Record | None:
        """Return the record of a resource, or ``None``.

        Raises :class:`RecordFormatError` (naming the resource ID) for a corrupt record.
        """
        if not is_resource_id(resource_id):  # nothing else can be stored (a CHECK says so)
            return None
        return self._read(partial(tables.record, rid=resource_id))

    def by_stable_id(self, sid: str) -> Record | None:
        """Return the record holding stable ID ``sid`` (exactly as stored), or ``None``."""
        key = sid.strip()
        if not is_stable_id(key):  # nothing else can be stored (a CHECK says so)
            return None
        return self._read(partial(tables.record_by_stable_id, sid=key))

    def by_url(self, url: str) -> Record | None:
        """Return the record for ``url`` (stripped) or any of its aliases, or ``None``."""
        key = url.strip()
        return self._read(partial(tables.record_by_url, key=key)) if _storable(key) else None

    def resource_id_for_url(self, url: str) -> str | None:
        """Return the resource ID a URL (current or alias) is bound to, or ``None``."""
        key = url.strip()
        return self._read(partial(tables.url_owner, key=key)) if _storable(key) else None

    def lookup(self, ident: str) -> Record | None:
        """Find a record by resource ID, stable ID (``sid_...`` or bare), URL or alias."""
        text = ident.strip()
        if not text:
            return None
        if is_resource_id(text):
            found = self.get(text)
            if found is not None:
                return found
        if is_stable_id(text):
            found = self.by_stable_id(text)
            if found is not None:
                return found
        return self.by_url(text)

    def get_text(self, resource_id: str) -> str | None:
        """Return the extracted text of the stored capture, or ``None`` if there is none."""
        if not is_resource_id(resource_id):
            return None
        return self._read(partial(tables.text, rid=resource_id))

    def history(self, resource_id: str) -> list[HistoryEntry]:
        """Return the attempt summaries of a resource, oldest first."""
        if not is_resource_id(resource_id):
            return []
        return self._read(partial(tables.history, rid=resource_id))

    def aliases(self, resource_id: str) -> list[str]:
        """Return the earlier URLs of a resource, oldest first (still found by ``by_url``)."""
        if not is_resource_id(resource_id):
            return []
        return self._read(partial(tables.aliases, rid=resource_id))

    def stable_id(self, resource_id: str) -> str | None:
        """Return the stable ID bound to a resource, even before its first record exists."""
        if not is_resource_id(resource_id):
            return None
        ident = self._read(partial(tables.identity, rid=resource_id))
        return None if ident is None else ident.stable_id

    def records(
        self,
        *,
        statuses: Collection[str] | None = None,
        on_damaged: Callable[[RecordFormatError], None] | None = None,
    ) -> Iterator[Record]:
        """Yield every record in resource-ID order, a page of records per query.

        With ``statuses``, only records whose ``status`` or ``last_outcome`` is one of them.
        A corrupt record raises :class:`RecordFormatError` naming its resource ID, or is
        handed to ``on_damaged`` and skipped.
        """
        wanted = sorted(set(statuses)) if statuses else None
        after = ""
        while True:
            page = self._read(partial(tables.record_page, after=after, statuses=wanted))
            for _, record in page:
                if isinstance(record, RecordFormatError):
                    if on_damaged is None:
                        raise record
                    on_damaged(record)
                    continue
                yield record
            if len(page) < tables.PAGE_SIZE:
                return
            after = page[-1][0]

    def __iter__(self) -> Iterator[Record]:
        """Yield every record, as :meth:`records` does."""
        return self.records()

    def __len__(self) -> int:
        """Return the number of records (resources with at least one finished attempt)."""
        return self._read(tables.count_records)

    def __contains__(self, resource_id: object) -> bool:
        """True when ``resource_id`` is a string and that resource has a record."""
        if not isinstance(resource_id, str) or not is_resource_id(resource_id):
            return False
        return self._read(partial(tables.has_record, rid=resource_id))

    def stats(
        self, *, on_damaged: Callable[[RecordFormatError], None] | None = None
    ) -> StoreStats:
        """Count records per status and find the oldest and newest fetch.

        Every record is read and checked (as :meth:`records` does) rather than counted in
        SQL: the contract says a corrupt record makes ``stats`` raise (or, with
        ``on_damaged``, be reported and left out), not vanish.
        """
        counts: Counter[str] = Counter()
        oldest: str | None = None
        newest: str | None = None
        # The oldest and newest fetch as they go: memory stays flat however many records.
        for record in self.records(on_damaged=on_damaged):
            counts[record.status] += 1
            fetched = record.fetched_at
            if fetched:
                oldest = fetched if oldest is None or fetched < oldest else oldest
                newest = fetched if newest is None or fetched > newest else newest
        return StoreStats(
            records=sum(counts.values()),
            outcomes=dict(sorted(counts.items())),
            oldest_fetch=oldest,
            newest_fetch=newest,
        )

    # ---------------------------------------------------------------------------------------
    # Writes (each one transaction)

    def ensure_identity(
        self,
        resource_id: str,
        url: str,
        *,
        stable_id: str | None = None,
        mint: Callable[[], str],
    ) -> str:
        """Return the stable ID of ``resource_id``, binding one if it has none yet.

        See :meth:`Store.ensure_identity <snapcache.cache.contract.Store.ensure_identity>`.
        Hosts racing on a new resource all get the ID the first transaction bound.
        """
        check_resource_id(resource_id)
        if stable_id is not None:
            check_stable_id(stable_id)
        key = url_key(url)

        def work(conn: Conn) -> str:
            existing = tables.identity(conn, resource_id, lock=True)
            if existing is not None:
                if stable_id is not None and stable_id != existing.stable_id:
                    raise StableIdConflictError(
                        f"resource {resource_id} already has stable ID {existing.stable_id}; "
                        f"refusing to replace it with {stable_id}",
                        resource_id=resource_id,
                        existing=existing.stable_id,
                        requested=stable_id,
                    )
                return existing.stable_id
            tables.check_url_free(conn, key, resource_id)
            if stable_id is not None:
                tables.check_sid_free(conn, stable_id, resource_id)
                sid = stable_id
            else:
                sid = mint_unique(mint, taken=lambda c: tables.sid_owner(conn, c) is not None)
            tables.insert_identity(conn, resource_id, Identity(sid, key, utc_now_iso()))
            tables.bind_url(conn, key, resource_id)
            return sid

        return self._write(work)

    def save_attempt(
        self, new: Record, *, text: str | None, history_entry: Mapping[str, object]
    ) -> Record:
        """Store the outcome of one attempt and return the record now stored.

        With the resource's identity row locked: read the stored record, apply
        :func:`~snapcache.cache.policy.merge`, write the record, its bindings, the text
        (only when the capture is replaced) and the bounded history. An attempt whose URL is
        not the stored record's current URL (made for a URL since moved away) changes
        nothing: the stored record is returned as is.
        """
        rid = new.resource_id
        check_resource_id(rid)
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text must be str or None, not {type(text).__name__}")
        entry_json = tables.dump_entry(history_entry)

        def work(conn: Conn) -> Record:
            attempt = new
            ident = tables.identity(conn, rid, lock=True)
            old = None if ident is None else tables.record(conn, rid)
            if old is not None and attempt.url.strip() != old.url.strip():
                # The attempt fetched another URL than the record's: one moved away while it
                # ran, or a caller still using the old name. Its content belongs to that old
                # URL; merged in, it would undo the move (as in the diskcache store).
                return old
            if ident is None:
                check_stable_id(attempt.stable_id)
                tables.check_sid_free(conn, attempt.stable_id, rid)
                tables.check_url_free(conn, url_key(attempt.url), rid)
            elif old is None:
                attempt = replace(
                    attempt,
                    stable_id=ident.stable_id,
                    url=ident.url,
                    created_at=ident.created_at or attempt.created_at,
                )
            result = merge(old, attempt)
            stored = result.record
            record_json = validated_json(stored)
            if ident is None:
                key = url_key(stored.url)
                tables.insert_identity(
                    conn, rid, Identity(stored.stable_id, key, stored.created_at)
                )
                tables.bind_url(conn, key, rid)
            tables.write_record(conn, rid, record_json)
            if result.replaced_capture:
                tables.set_text(conn, rid, text)
            tables.append_history(conn, rid, entry_json, self._history_limit)
            return stored

        return self._write(work)

    def update_save(
        self,
        resource_id: str,
        *,
        job_id: str | None,
        requested_at: str | None,
        status: str | None,
        history_entry: Mapping[str, object] | None = None,
    ) -> Record:
        """Set a record's Save Page Now fields (and nothing else), in one transaction.

        ``history_entry``, if given, is appended to the history as in :meth:`save_attempt`.
        Raises :class:`NotFoundError` when the resource has no record yet.
        """
        check_resource_id(resource_id)
        entry_json = None if history_entry is None else tables.dump_entry(history_entry)

        def work(conn: Conn) -> Record:
            tables.identity(conn, resource_id, lock=True)
            record = tables.record(conn, resource_id)
            if record is None:
                raise NotFoundError(f"resource {resource_id} has no record yet")
            updated = replace(
                record,
                redirects=list(record.redirects),
                save_job_id=job_id,
                save_requested_at=requested_at,
                save_status=status,
            )
            tables.write_record(conn, resource_id, validated_json(updated))
            if entry_json is not None:
                tables.append_history(conn, resource_id, entry_json, self._history_limit)
            return updated

        return self._write(work)

    def move(self, old_url: str, new_url: str) -> Record:
        """Rebind the resource found by ``old_url`` (URL or alias) to ``new_url``.

        The resource keeps its resource ID, stable ID, text and history; its previous URL
        becomes an alias. Raises :class:`NotFoundError` if no record has ``old_url``, and
        :class:`CacheError` if ``new_url`` belongs to another resource.
        """
        old_key = url_key(old_url)
        new_key = url_key(new_url)

        def work(conn: Conn) -> Record:
            rid = tables.url_owner(conn, old_key)
            if rid is None:
                raise NotFoundError(f"no resource has the URL {old_key!r}")
            # A URL's binding never changes once made, so rid is still right under the lock.
            tables.identity(conn, rid, lock=True)
            record = tables.record(conn, rid)
            if record is None:
                raise NotFoundError(f"resource {rid} ({old_key!r}) has no record yet")
            tables.check_url_free(conn, new_key, rid)
            current = record.url.strip()
            if new_key == current:
                return record
            tables.remove_alias(conn, rid, new_key)
            if current not in tables.aliases(conn, rid):
                tables.add_alias(conn, rid, current)
            moved = replace(record, url=new_key, redirects=list(record.redirects))
            tables.write_record(conn, rid, validated_json(moved))
            tables.set_identity_url(conn, rid, new_key)
            tables.bind_url(conn, new_key, rid)
            tables.bind_url(conn, current, rid)
            return moved

        return self._write(work)

    def import_resource(self, dump: ResourceDump) -> None:
        """Store a resource exactly as another store holds it (``snapcache copy-store``).

        One transaction: identity, URL bindings, aliases, record, text and history are
        replaced by the dump's, so importing the same dump again changes nothing. Raises
        :class:`StableIdConflictError` when the resource, or its stable ID, is bound
        differently here, and :class:`CacheError` when one of its URLs belongs to another
        resource.
        """
        record = dump.record
        rid = record.resource_id
        check_resource_id(rid)
        check_stable_id(record.stable_id)
        record_json = validated_json(record)
        entries = [tables.dump_entry(entry) for entry in dump.history]
        key = url_key(record.url)

        def work(conn: Conn) -> None:
            ident = tables.identity(conn, rid, lock=True)
            if ident is None:
                tables.check_sid_free(conn, record.stable_id, rid)
                created = dump.created_at or record.created_at
                tables.insert_identity(conn, rid, Identity(record.stable_id, key, created))
            elif ident.stable_id != record.stable_id:
                raise StableIdConflictError(
                    f"resource {rid} has stable ID {ident.stable_id} here, "
                    f"{record.stable_id} in the copy",
                    resource_id=rid,
                    existing=ident.stable_id,
                    requested=record.stable_id,
                )
            else:
                tables.set_identity_url(conn, rid, key)
            tables.bind_url(conn, key, rid)
            tables.replace_aliases(conn, rid, [url_key(a) for a in dump.aliases])
            tables.write_record(conn, rid, record_json)
            tables.set_text(conn, rid, dump.text)
            tables.replace_history(conn, rid, entries)

        self._write(work)

    # ---------------------------------------------------------------------------------------
    # Connections and transactions

    def _connect(self) -> psycopg.Connection[Any]:
        """One connection outside the pool (for the migrations on opening)."""
        return connect(self._dsn)

    def _check_current(self, conn: Conn) -> int:
        version = schema_version(conn)
        if version != latest_version():
            raise CacheError(
                f"the PostgreSQL store at {self._location} has schema version {version}, "
                f"not {latest_version()}; run `snapcache db upgrade`"
            )
        return version

    def _configure(self, conn: Conn) -> None:
        # A row locked longer than the timeout fails the write (as diskcache's lock does)
        # instead of hanging the run.
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false)", (f"{int(self._timeout * 1000)}ms",)
        )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Conn]:
        """A pooled connection; database errors become :class:`CacheError`."""
        if self._closed:
            raise CacheError(f"{self!r} is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolClosed:
            raise CacheError(f"{self!r} is closed") from None
        except PoolTimeout as exc:
            raise CacheError(
                f"no connection to the PostgreSQL store at {self._location} within "
                f"{self._timeout:g} s: {scrub_message(str(exc), self._dsn)}"
            ) from None
        except pg_errors.LockNotAvailable:
            raise CacheError(
                f"a record in the PostgreSQL store at {self._location} stayed locked by "
                f"another writer for more than {self._timeout:g} s; retry later"
            ) from None
        except psycopg.Error as exc:
            raise CacheError(
                f"PostgreSQL store at {self._location}: "
                f"{scrub_message(str(exc), self._dsn).strip()}"
            ) from None

    def _read(self, work: Callable[[Conn], T]) -> T:
        with self._connection() as conn:
            return work(conn)

    def _write(self, work: Callable[[Conn], T]) -> T:
        """Run ``work`` in one transaction, again if it lost a race with another writer."""
        last: psycopg.Error | None = None
        for attempt in range(_MAX_TRIES):
            if attempt:
                # Spread the retries of writers that collided, so they do not collide again.
                time.sleep(random.uniform(0, 0.005 * attempt))
            with self._connection() as conn:
                try:
                    with conn.transaction():
                        return work(conn)
                except _RETRY as exc:
                    last = exc
        raise CacheError(
            f"a write to the PostgreSQL store at {self._location} kept conflicting with "
            f"other writers ({_MAX_TRIES} tries): {last}"
        )


def _storable(key: str) -> bool:
    """Whether a URL could be stored at all: PostgreSQL text cannot hold U+0000, so a key
    with one is unknown (a lookup answers ``None``; a write of it raises CacheError)."""
    return bool(key) and "\x00" not in key


if TYPE_CHECKING:

    def _implements_the_contract(store: PostgresStore) -> Store:
        # mypy proves here that PostgresStore has every method of Store, typed alike.
        return store

    def _imports_resources(store: PostgresStore) -> Importer:
        return store
