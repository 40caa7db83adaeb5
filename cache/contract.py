"""The store contract: what snapcache needs from a record store, and what it may rely on.

:class:`Store` names every operation the engine, the batch runner, the Save Page Now pass,
the CLI and library readers use on a store. :class:`~snapcache.cache.store.SnapshotCache`
(diskcache on SQLite) is today's implementation; another backend (PostgreSQL, say) is a
drop-in replacement when it keeps every guarantee written here. ``tests/test_store_contract``
checks each guarantee against every backend.

What is stored, and how an attempt merges into a stored record, is decided by the pure,
backend-independent :func:`~snapcache.cache.policy.merge`; a store applies it, atomically.

Terms used below:

* *resource ID*: 16 lowercase hex digits, the store's key of a resource. The fetcher derives
  it from the URL a resource was first cited with; after a :meth:`Store.move` it is no longer
  the hash of the current URL, so callers ask :meth:`Store.resource_id_for_url` first.
* *stable ID*: ``sid_`` + 10 letters or digits (or the bare 10 of older data): the public,
  never-changing name of a resource. Minted or supplied once per resource.
* *identity*: a resource's stable ID, URL and creation time. It may exist before the first
  record (see :meth:`Store.ensure_identity`).
* *record*: a :class:`~snapcache.cache.records.Record`, one per resource with at least one
  finished attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, Self, TypeAlias

from .records import Record, RecordFormatError

__all__ = ["HistoryEntry", "JSONValue", "Store", "StoreStats"]

JSONValue: TypeAlias = (
    str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
)
"""A value that JSON can hold."""

HistoryEntry: TypeAlias = dict[str, JSONValue]
"""One attempt summary as read back from a store: a JSON object, written by the caller."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts over every record of a store (what ``snapcache stats`` reports).

    ``outcomes`` counts records per ``status``, keys sorted; ``oldest_fetch`` and
    ``newest_fetch`` are the least and greatest ``fetched_at`` among records that have one
    (ISO 8601 strings compare in time order), ``None`` when none has.
    """

    records: int
    outcomes: Mapping[str, int] = field(default_factory=dict)
    oldest_fetch: str | None = None
    newest_fetch: str | None = None


class Store(Protocol):
    """A durable store of records, their texts, attempt histories, identities and aliases.

    Guarantees every implementation keeps, beyond those of each method:

    * **Durability and atomicity.** Each write method is one transaction: when it returns,
      everything it wrote is stored durably; when it raises (a bad argument, a value that is
      not JSON-serialisable, a conflict, a crash), nothing of it is.
    * **Sharing.** Several processes, and several threads sharing one store object, may read
      and write the same store at once. Concurrent writes to one resource serialise: no
      attempt is lost, the attempt count is exact, and a resource never gets two stable IDs.
      Reads never see a half-written attempt.
    * **Exact keys.** URLs are compared after stripping surrounding white space only: no
      case folding, no trailing-slash or other normalisation.
    * **Safety.** Reading a store never runs code planted in it (no deserialiser that can
      build arbitrary objects) and never touches files outside it. An entry that is corrupt
      or was planted raises a :class:`~snapcache.cache.errors.CacheError` (or, for a record,
      :class:`~snapcache.cache.records.RecordFormatError` naming its resource ID); it is
      never silently skipped or repaired into something else. Only a caller that asks
      (``on_damaged`` of :meth:`records` and :meth:`stats`) gets the damaged records
      handed to it, to report, while the others are read.
    * **Closing.** After :meth:`close`, every operation raises
      :class:`~snapcache.cache.errors.CacheError`; closing again does nothing.

    Lookups of an unknown key return ``None`` (or an empty list); they never raise for
    that, nor write anything.
    """

    # ---------------------------------------------------------------------------------
    # About the store

    @property
    def location(self) -> str:
        """Where the store lives, for messages: a folder, or a server address without secrets."""
        ...

    @property
    def history_limit(self) -> int:
        """How many attempt summaries are kept per resource (the newest ones)."""
        ...

    def close(self) -> None:
        """Release the store's resources; the object must not be used afterwards.

        Idempotent. Nothing written before is lost.
        """
        ...

    def __enter__(self) -> Self:
        """Return the store itself, to be closed when the ``with`` block ends."""
        ...

    def __exit__(self, *exc_info: object) -> None:
        """Close the store (see :meth:`close`)."""
        ...

    # ---------------------------------------------------------------------------------
    # Lookups: no network, no writes

    def get(self, resource_id: str) -> Record | None:
        """Return the record of a resource, or ``None`` if it has none yet.

        The record returned equals the one the latest write returned for that resource.
        Raises :class:`~snapcache.cache.records.RecordFormatError` naming the resource ID
        for a record that is corrupt or does not match the current schema.
        """
        ...

    def by_stable_id(self, sid: str) -> Record | None:
        """Return the record holding stable ID ``sid``, or ``None``.

        ``sid`` is compared as stored, after stripping white space: ``sid_`` IDs and the
        bare 10-character IDs of older data alike, case-sensitive.
        """
        ...

    def by_url(self, url: str) -> Record | None:
        """Return the record whose current URL or alias is ``url`` (stripped), or ``None``."""
        ...

    def resource_id_for_url(self, url: str) -> str | None:
        """Return the resource ID a URL (current or alias) is bound to, or ``None``.

        Answers as soon as :meth:`ensure_identity` bound the URL, before any record exists,
        and for every alias after a :meth:`move`.
        """
        ...

    def lookup(self, ident: str) -> Record | None:
        """Find a record by any of its names: resource ID, stable ID (``sid_...`` or the bare
        10 characters of older data), current URL or alias.

        ``ident`` is stripped; blank gives ``None``. A resource ID or stable ID is tried
        first when ``ident`` has that shape, then URLs.
        """
        ...

    def get_text(self, resource_id: str) -> str | None:
        """Return the full extracted text of the stored capture, or ``None`` if there is none.

        The text always belongs to the capture in the stored record: it changes only when
        an attempt replaces the capture.
        """
        ...

    def history(self, resource_id: str) -> list[HistoryEntry]:
        """Return the attempt summaries of a resource, oldest first (``[]`` if none).

        At most :attr:`history_limit` entries: the newest ones, each the entry a write was
        given, as JSON reads it back (equal to it when it held only dicts, lists, strings,
        numbers, booleans and ``None``).
        """
        ...

    def aliases(self, resource_id: str) -> list[str]:
        """Return the earlier URLs of a resource, oldest first (``[]`` if none).

        Every alias keeps finding the resource through :meth:`by_url`, :meth:`lookup` and
        :meth:`resource_id_for_url`.
        """
        ...

    def stable_id(self, resource_id: str) -> str | None:
        """Return the stable ID bound to a resource, even before its first record exists."""
        ...

    def records(
        self,
        *,
        statuses: Collection[str] | None = None,
        on_damaged: Callable[[RecordFormatError], None] | None = None,
    ) -> Iterator[Record]:
        """Yield every record, in ascending resource-ID order (so exports are stable).

        With ``statuses`` (a non-empty collection), only records whose ``status`` or
        ``last_outcome`` is one of them: ``--status error`` also finds good records whose
        latest attempt failed. A corrupt record raises (see :meth:`get`) rather than being
        skipped: an export that silently drops records is worse than one that stops. With
        ``on_damaged``, each corrupt record's ``RecordFormatError`` (naming its resource ID)
        is passed to it instead, and every other record is still yielded, in order.
        """
        ...

    def __iter__(self) -> Iterator[Record]:
        """Yield every record, as :meth:`records` does."""
        ...

    def __len__(self) -> int:
        """Return the number of records (resources with at least one finished attempt)."""
        ...

    def __contains__(self, resource_id: object) -> bool:
        """True when ``resource_id`` is a string and that resource has a record."""
        ...

    def stats(
        self, *, on_damaged: Callable[[RecordFormatError], None] | None = None
    ) -> StoreStats:
        """Return counts over every record (see :class:`StoreStats`).

        Raises for a corrupt record, as :meth:`records` does; with ``on_damaged``, a corrupt
        record is passed to it and left out of the counts.
        """
        ...

    # ---------------------------------------------------------------------------------
    # Writes: each one transaction

    def ensure_identity(
        self,
        resource_id: str,
        url: str,
        *,
        stable_id: str | None = None,
        mint: Callable[[], str],
    ) -> str:
        """Return the stable ID of ``resource_id``, binding one if it has none yet.

        The binding is stored before any attempt finishes, so concurrent runs and the later
        first record all get the same ID: a resource's stable ID is minted once and never
        re-minted or changed. A supplied ``stable_id`` (from a source list) is bound if the
        resource has none; one held by another resource, or differing from the one already
        bound, raises :class:`~snapcache.cache.errors.StableIdConflictError` and changes
        nothing. Otherwise ``mint()`` is called until it returns an ID no resource holds
        (a ``mint`` that keeps returning taken IDs ends in a ``CacheError``). ``url`` is
        bound for a new resource; for a known one it is ignored (use :meth:`move`); a URL
        bound to another resource raises ``CacheError``. Malformed IDs raise ``ValueError``.
        """
        ...

    def save_attempt(
        self, new: Record, *, text: str | None, history_entry: Mapping[str, object]
    ) -> Record:
        """Store the outcome of one attempt and return the record now stored.

        In one transaction: read the stored record, apply
        :func:`~snapcache.cache.policy.merge` (a failed or worse attempt never replaces a
        good capture; its error is recorded beside it; ``attempts`` counts every attempt),
        and write the record, its stable-ID and URL bindings, the text and the history.
        An identity bound earlier (stable ID, URL, created_at) wins over the one in ``new``;
        without one, ``new``'s stable ID must not be held by another resource
        (``StableIdConflictError``) nor its URL bound to one (``CacheError``). The text is
        touched only when the capture is replaced: set to ``text``, or removed if ``text``
        is ``None``. ``history_entry`` must be a JSON-serialisable mapping (``TypeError``
        otherwise); the newest :attr:`history_limit` entries are kept. A record that would
        not read back under the current schema raises ``RecordFormatError``. An attempt
        whose ``url`` is not the stored record's current URL (it was made for a URL since
        moved away) changes nothing, history included, and the stored record is returned.
        """
        ...

    def update_save(
        self,
        resource_id: str,
        *,
        job_id: str | None,
        requested_at: str | None,
        status: str | None,
        history_entry: Mapping[str, object] | None = None,
    ) -> Record:
        """Set a record's Save Page Now fields, and nothing else, in one transaction.

        Returns the updated record, with ``history_entry`` (if given) appended to the history
        under the same limit as :meth:`save_attempt`. Fetch attempts never change these
        fields. Raises :class:`~snapcache.cache.errors.NotFoundError` when the resource has
        no record yet.
        """
        ...

    def move(self, old_url: str, new_url: str) -> Record:
        """Rebind the resource found by ``old_url`` (URL or alias) to ``new_url``.

        The resource keeps its resource ID, stable ID, text and history; its previous URL
        becomes an alias (still found by every lookup), and later attempts keep the new URL.
        Raises :class:`~snapcache.cache.errors.NotFoundError` (also a ``KeyError``) if no
        record has ``old_url``, and ``CacheError`` if ``new_url`` belongs to another
        resource. Moving to the current URL changes nothing; moving back to an alias makes
        it the current URL again (and no longer an alias).
        """
        ...
