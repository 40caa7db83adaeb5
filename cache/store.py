"""The durable store: one record per resource, its text, history, identity and aliases.

Built on diskcache (SQLite); :mod:`.rows` describes the layout of the cache folder and
reads its rows. Here are the rules of what is written when: each write runs in one diskcache
transaction (SQLite ``BEGIN IMMEDIATE``), so a crash leaves all of it or none of it, and
read-merge-write is safe across processes sharing the folder.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self

from . import passes
from .contract import HistoryEntry, StoreStats
from .errors import CacheError, NotFoundError, StableIdConflictError
from .files import prepare_directory
from .identity import (
    check_resource_id,
    check_stable_id,
    is_resource_id,
    is_stable_id,
    mint_unique,
    url_key,
    validated_json,
)
from .policy import merge
from .records import Record, RecordFacts, RecordFormatError
from .rows import ALIAS, HIST, IDENT, REC, SID, TEXT, URL, Identity, Rows, dumps
from .times import utc_now_iso

if TYPE_CHECKING:
    from .contract import Store

__all__ = [
    "DEFAULT_HISTORY_LIMIT", "DEFAULT_TIMEOUT", "SnapshotCache", "read_ahead", "record_facts",
]

#: Attempt summaries kept per resource: enough to see a pattern of failures, small enough
#: that the history of thousands of resources stays a few MB.
DEFAULT_HISTORY_LIMIT: Final = 20

#: Seconds a write waits for another process's transaction (diskcache's own default).
DEFAULT_TIMEOUT: Final = 60.0


class SnapshotCache:
    """Records, texts and histories of cited resources, in one cache folder.

    Implements :class:`~snapcache.cache.contract.Store` (see there for the guarantees).
    Safe to share between processes, and between threads (diskcache gives each thread its
    own SQLite connection). Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Open (creating if needed) the cache folder at ``path``.

        The folder is created with mode 0700, and tightened to 0700 if it exists, belongs to
        the current user and others may only read it: records reveal what a user cites.
        Anyone who can write the folder can plant rows, so a folder of another user, or one
        writable by its group or others, is refused (:class:`UnsafeLocationError`, saying
        how to fix it). Temporary files left in it by writers that are gone are removed.
        Raises :class:`StoreDamagedError` for a damaged ``cache.db`` (truncated, not a
        database, a directory in its place), :class:`StoreUnavailableError` for a folder
        that cannot be written (read-only mount, permissions, full disk), and
        :class:`CacheError` for a cache written by a newer schema version, or a folder
        holding some other diskcache.
        """
        if isinstance(history_limit, bool) or not isinstance(history_limit, int):
            raise TypeError("history_limit must be an int")
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        self._path = Path(os.fspath(path)).expanduser()
        self._history_limit = history_limit
        prepare_directory(self._path)
        self._rows = Rows(self._path, timeout=float(timeout), label=repr(self))

    # ---------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def path(self) -> Path:
        """The cache folder."""
        return self._path

    @property
    def directory(self) -> str:
        """The cache folder as a string (as diskcache reports it)."""
        return self._rows.directory

    @property
    def location(self) -> str:
        """The cache folder as a string (see :attr:`path`)."""
        return str(self._path)

    @property
    def history_limit(self) -> int:
        """How many attempt summaries are kept per resource."""
        return self._history_limit

    def close(self) -> None:
        """Close this thread's SQLite connection; the object must not be used afterwards."""
        self._rows.close()

    def __enter__(self) -> Self:
        """Return the cache itself, closed when the ``with`` block ends."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the cache."""
        self.close()

    def __repr__(self) -> str:
        return f"SnapshotCache({str(self._path)!r})"

    # ---------------------------------------------------------------------------------------
    # Lookups (no network, no writes)

    def get(self, resource_id: str) -> Record | None:
        """Return the record of a resource, or ``None``.

        Raises :class:`RecordFormatError` (naming the resource ID) for a corrupt record.
        """
        return self._rows.record(resource_id)

    def facts(self, resource_id: str) -> RecordFacts | None:
        """The :class:`RecordFacts` of a resource's record, or ``None`` if it has none.

        Read from the record summary kept beside each record in the same transaction, so
        without reading or parsing the record; from the record itself when the summary
        cannot vouch for it (written by another release or by hand): then a corrupt record
        raises :class:`RecordFormatError` exactly as :meth:`get` does.
        """
        return self._rows.facts(resource_id)

    def read_ahead(
        self, resource_ids: Iterable[str], *, only_facts: bool = False
    ) -> AbstractContextManager[None]:
        """Read the records of ``resource_ids`` now, a few hundred per query, for this
        thread's :meth:`get` of each inside the ``with`` block: the first answers from the
        row as it was on entry (checked as every get checks it), later ones read the file
        again. Other threads, and what was not asked for, are unaffected. With
        ``only_facts``, the same for :meth:`facts` (and records only where their facts
        need them).

        For callers about to read many records one by one (a warm run plans every URL of
        its list from the store): a query per record costs more than the record's SQL.
        """
        return self._rows.read_ahead(resource_ids, only_facts=only_facts)

    def by_stable_id(self, sid: str) -> Record | None:
        """Return the record holding stable ID ``sid`` (exactly as stored), or ``None``."""
        rid = self._rows.owner(SID + sid.strip())
        return None if rid is None else self._rows.record(rid)

    def by_url(self, url: str) -> Record | None:
        """Return the record for ``url`` (stripped, else exact) or any of its aliases."""
        key = url.strip()
        if not key:
            return None
        rid = self._rows.owner(URL + key)
        return None if rid is None else self._rows.record(rid)

    def resource_id_for_url(self, url: str) -> str | None:
        """Return the resource ID a URL (current or alias) is bound to, or ``None``.

        Answers even before the first record exists (after :meth:`ensure_identity`). After a
        :meth:`move` the new URL's hash is not the resource ID, so callers must ask here
        before hashing a URL themselves.
        """
        key = url.strip()
        return self._rows.owner(URL + key) if key else None

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
        return self._rows.text(TEXT + resource_id)

    def history(self, resource_id: str) -> list[HistoryEntry]:
        """Return the attempt summaries of a resource, oldest first."""
        return self._rows.history(resource_id)

    def aliases(self, resource_id: str) -> list[str]:
        """Return the earlier URLs of a resource, oldest first (still found by ``by_url``)."""
        return self._rows.aliases(resource_id)

    def stable_id(self, resource_id: str) -> str | None:
        """Return the stable ID bound to a resource, even before its first record exists."""
        ident = self._rows.identity(resource_id)
        if ident is not None:
            return ident.stable_id
        record = self._rows.record(resource_id)
        return None if record is None else record.stable_id

    def records(
        self,
        *,
        statuses: Collection[str] | None = None,
        on_damaged: Callable[[RecordFormatError], None] | None = None,
    ) -> Iterator[Record]:
        """Yield every record in resource-ID order (a range scan of the key index, a batch
        of records per query: a full pass costs time in proportion to the records).

        With ``statuses``, only records whose ``status`` or ``last_outcome`` is one of them.
        A corrupt record raises :class:`DamagedRecordError` (a :class:`RecordFormatError`)
        naming its resource ID rather than being skipped: an export that silently drops
        records is worse than one that stops. With ``on_damaged``, the error is handed to
        it instead and the other records follow (the caller reports it).
        """
        wanted = frozenset(statuses) if statuses else None
        for _, record in passes.records(self._rows, wanted):
            if isinstance(record, RecordFormatError):
                if on_damaged is None:
                    raise record
                on_damaged(record)
                continue
            if wanted is None or record.status in wanted or record.last_outcome in wanted:
                yield record

    def record_texts(
        self,
        *,
        statuses: Collection[str] | None = None,
        on_damaged: Callable[[RecordFormatError], None] | None = None,
    ) -> Iterator[str]:
        """Yield the JSON text of the records :meth:`records` yields, each exactly its
        ``Record.to_json()``, in the same order and under the same rules for ``statuses``
        and damaged records (what ``snapcache export`` writes).

        A record this store wrote is not parsed: the text it stored, checked then and not
        written since by anyone (the record summary says so), is the answer. Records written
        otherwise (by 0.1.0, say) are parsed and written out again.
        """
        for _, text in passes.record_texts(self._rows, frozenset(statuses) if statuses else None):
            if isinstance(text, RecordFormatError):
                if on_damaged is None:
                    raise text
                on_damaged(text)
                continue
            yield text

    def __iter__(self) -> Iterator[Record]:
        """Yield every record, as :meth:`records` does."""
        return self.records()

    def __len__(self) -> int:
        """Return the number of records (resources with at least one finished attempt)."""
        return self._rows.count_records()

    def __contains__(self, resource_id: object) -> bool:
        """True when ``resource_id`` is a string and that resource has a record."""
        return isinstance(resource_id, str) and self._rows.text(REC + resource_id) is not None

    def stats(
        self, *, on_damaged: Callable[[RecordFormatError], None] | None = None
    ) -> StoreStats:
        """Count records per status and find the oldest and newest fetch.

        The record summary counts every record checked when it was written, by SQL alone;
        only records some other writer left unchecked are read, in the same snapshot, so a
        damaged one still raises, or is handed to ``on_damaged`` and left out of the counts.
        """
        with self._rows.snapshot():
            summary = self._rows.summary()
            if summary.rows != self._rows.count_records():
                # Only a hand edit of the summary (rows deleted) makes it miss a record:
                # the triggers keep one row per record. It cannot be trusted to name every
                # record then, so every record is read.
                return _count(self.records(on_damaged=on_damaged))
            counts: Counter[str] = Counter(summary.outcomes)
            fetched = [f for f in (summary.oldest_fetch, summary.newest_fetch) if f]
            for key in summary.unchecked:
                try:
                    record = self._rows.record(key[len(REC) :])
                except RecordFormatError as exc:
                    if on_damaged is None:
                        raise
                    on_damaged(exc)
                    continue
                if record is None:
                    continue
                counts[record.status] += 1
                if record.fetched_at:
                    fetched.append(record.fetched_at)
        return _stats(counts, fetched)

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

        The binding is stored before any attempt finishes, so concurrent runs and a later
        first record all get the same ID. A supplied ``stable_id`` (from a source list) is
        bound if the resource has none; it must not be held by another resource, nor differ
        from the one already bound (:class:`StableIdConflictError` naming both). Otherwise
        ``mint()`` is called until it returns an ID no resource holds. ``url`` is indexed for
        a new resource; for a known one it is ignored (use :meth:`move` to change it). Raises
        :class:`CacheError` if ``url`` already belongs to another resource.
        """
        check_resource_id(resource_id)
        if stable_id is not None:
            check_stable_id(stable_id)
        key = url_key(url)
        with self._rows.transaction():
            existing = self._bound_identity(resource_id)
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
            self._check_url_free(key, resource_id)
            if stable_id is not None:
                self._check_sid_free(stable_id, resource_id)
                sid = stable_id
            else:
                sid = mint_unique(mint, taken=lambda c: self._rows.owner(SID + c) is not None)
            ident = Identity(stable_id=sid, url=key, created_at=utc_now_iso())
            self._rows.set(IDENT + resource_id, ident.to_json())
            self._rows.set(SID + sid, dumps(resource_id))
            self._rows.set(URL + key, dumps(resource_id))
            return sid

    def save_attempt(
        self, new: Record, *, text: str | None, history_entry: Mapping[str, object]
    ) -> Record:
        """Store the outcome of one attempt and return the record now stored.

        Reads the stored record, applies :func:`cache.policy.merge` (a failed or worse
        attempt never overwrites a good capture) and writes the record, the stable-ID and URL
        indexes, the text and the history, all in one transaction. The identity (stable ID,
        URL, created_at) already bound to the resource wins over the one in ``new``. The text
        is replaced only with the capture: set to ``text``, or deleted if ``text`` is
        ``None``. ``history_entry`` must be JSON-serialisable; the newest ``history_limit``
        entries are kept. An attempt whose URL is not the stored record's current URL (made
        for a URL since moved away) changes nothing: the stored record is returned as is.
        """
        rid = new.resource_id
        check_resource_id(rid)
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text must be str or None, not {type(text).__name__}")
        _check_entry(history_entry)
        with self._rows.transaction():
            old = self._rows.record(rid)
            if old is not None and new.url.strip() != old.url.strip():
                # The attempt fetched another URL than the record's: one moved away while it
                # ran, or a caller still using the old name. Its content belongs to that old
                # URL; merged in, it would undo the move (title, text, original_url).
                return old
            ident = self._rows.identity(rid)
            if old is None:
                if ident is not None:
                    new = replace(
                        new,
                        stable_id=ident.stable_id,
                        url=ident.url,
                        created_at=ident.created_at or new.created_at,
                    )
                else:
                    check_stable_id(new.stable_id)
                    self._check_sid_free(new.stable_id, rid)
                    self._check_url_free(url_key(new.url), rid)
            result = merge(old, new)
            stored = result.record
            # Both serialised before the first write (a failure rolls back anyway, but this
            # way nothing is even attempted).
            record_json = validated_json(stored)
            history_json = self._history_with(rid, history_entry)

            if ident is None:
                ident = Identity(stored.stable_id, stored.url, stored.created_at)
                self._rows.set(IDENT + rid, ident.to_json())
            self._rows.set(SID + stored.stable_id, dumps(rid))
            self._rows.set(URL + url_key(stored.url), dumps(rid))
            self._rows.set_record(rid, stored, record_json)
            if result.replaced_capture:
                if text is None:
                    self._rows.delete(TEXT + rid)
                else:
                    self._rows.set(TEXT + rid, text)
            self._rows.set(HIST + rid, history_json)
            return stored

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
        if history_entry is not None:
            _check_entry(history_entry)
        with self._rows.transaction():
            record = self._rows.record(resource_id)
            if record is None:
                raise NotFoundError(f"resource {resource_id} has no record yet")
            updated = replace(
                record,
                redirects=list(record.redirects),
                save_job_id=job_id,
                save_requested_at=requested_at,
                save_status=status,
            )
            record_json = validated_json(updated)
            history_json = (
                None if history_entry is None else self._history_with(resource_id, history_entry)
            )
            self._rows.set_record(resource_id, updated, record_json)
            if history_json is not None:
                self._rows.set(HIST + resource_id, history_json)
            return updated

    def move(self, old_url: str, new_url: str) -> Record:
        """Rebind the resource found by ``old_url`` (URL or alias) to ``new_url``.

        The resource keeps its resource ID and stable ID; its previous URL becomes an alias
        (still found by :meth:`by_url` and :meth:`lookup`). Raises :class:`NotFoundError` if
        no record has ``old_url``, and :class:`CacheError` if ``new_url`` belongs to another
        resource. Moving to the current URL changes nothing.
        """
        old_key = url_key(old_url)
        new_key = url_key(new_url)
        with self._rows.transaction():
            rid = self._rows.owner(URL + old_key)
            if rid is None:
                raise NotFoundError(f"no resource has the URL {old_key!r}")
            record = self._rows.record(rid)
            if record is None:
                raise NotFoundError(f"resource {rid} ({old_key!r}) has no record yet")
            self._check_url_free(new_key, rid)
            current = record.url.strip()
            if new_key == current:
                return record
            aliases = [a for a in self._rows.aliases(rid) if a != new_key]
            if current not in aliases:
                aliases.append(current)
            moved = replace(record, url=new_key, redirects=list(record.redirects))
            ident = self._rows.identity(rid)
            ident = Identity(
                stable_id=record.stable_id,
                url=new_key,
                created_at=ident.created_at if ident is not None else record.created_at,
            )
            self._rows.set_record(rid, moved, validated_json(moved))
            self._rows.set(IDENT + rid, ident.to_json())
            self._rows.set(URL + new_key, dumps(rid))
            self._rows.set(URL + current, dumps(rid))
            self._rows.set(ALIAS + rid, dumps(aliases))
            return moved

    # ---------------------------------------------------------------------------------------
    # Internals

    def _bound_identity(self, rid: str) -> Identity | None:
        """The identity of ``rid``: its ident entry, or (for older data) its record's."""
        ident = self._rows.identity(rid)
        if ident is not None:
            return ident
        record = self._rows.record(rid)
        if record is None:
            return None
        ident = Identity(record.stable_id, record.url, record.created_at)
        self._rows.set(IDENT + rid, ident.to_json())
        return ident

    def _history_with(self, rid: str, entry: Mapping[str, object]) -> str:
        """The JSON of ``rid``'s history with ``entry`` appended, trimmed to the limit.

        Raises ``TypeError`` for an entry JSON cannot hold, before anything is written.
        """
        history: list[object] = list(self._rows.history(rid))
        history.append(dict(entry))
        # Slicing with -0 would keep everything, so a zero limit is its own case.
        kept = history[-self._history_limit :] if self._history_limit else []
        return dumps(kept)

    def _check_url_free(self, key: str, rid: str) -> None:
        owner = self._rows.owner(URL + key)
        if owner is not None and owner != rid:
            raise CacheError(
                f"URL {key!r} already belongs to resource {owner}, not {rid}; "
                f"look it up with by_url()"
            )

    def _check_sid_free(self, sid: str, rid: str) -> None:
        owner = self._rows.owner(SID + sid)
        if owner is not None and owner != rid:
            raise StableIdConflictError(
                f"stable ID {sid} is already held by resource {owner}; "
                f"it cannot also identify {rid}",
                resource_id=rid,
                existing=None,
                requested=sid,
                other_resource_id=owner,
            )


def _count(records: Iterator[Record]) -> StoreStats:
    """Stats of ``records``, read one by one."""
    counts: Counter[str] = Counter()
    fetched: list[str] = []
    for record in records:
        counts[record.status] += 1
        if record.fetched_at:
            fetched.append(record.fetched_at)
    return _stats(counts, fetched)


def _stats(counts: Counter[str], fetched: list[str]) -> StoreStats:
    """Stats of records counted per status, with some of their fetch times."""
    return StoreStats(
        records=sum(counts.values()),
        outcomes=dict(sorted(counts.items())),
        oldest_fetch=min(fetched) if fetched else None,
        newest_fetch=max(fetched) if fetched else None,
    )


def read_ahead(
    store: Store, resource_ids: Iterable[str], *, only_facts: bool = False
) -> AbstractContextManager[None]:
    """:meth:`SnapshotCache.read_ahead` for a store that has it; for any other store, a
    block that changes nothing (each record is read when asked for)."""
    if isinstance(store, SnapshotCache):
        return store.read_ahead(resource_ids, only_facts=only_facts)
    return contextlib.nullcontext()


def record_facts(store: Store, resource_id: str) -> RecordFacts | None:
    """:meth:`SnapshotCache.facts` for a store that keeps them; for any other store, the
    facts of its record (read whole)."""
    if isinstance(store, SnapshotCache):
        return store.facts(resource_id)
    record = store.get(resource_id)
    return None if record is None else RecordFacts.of(record)


def _check_entry(entry: Mapping[str, object]) -> None:
    if not isinstance(entry, Mapping):
        raise TypeError(f"history_entry must be a mapping, not {type(entry).__name__}")


if TYPE_CHECKING:

    def _implements_the_contract(cache: SnapshotCache) -> Store:
        # mypy proves here that SnapshotCache has every method of Store, typed alike.
        return cache
