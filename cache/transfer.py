"""Copying every resource from one store to another, whatever their backends.

The :class:`~snapcache.cache.contract.Store` contract has no way to write a record as is
(``save_attempt`` merges an attempt into it), so a store that can receive a copy also offers
:meth:`Importer.import_resource`. :class:`~snapcache.cache.postgres.PostgresStore` has one;
:class:`DiskcacheImporter` writes a diskcache store's rows in the layout of :mod:`.rows`.
:func:`copy_store` reads the source through the contract alone, writes each resource in one
transaction, then checks the copy.

What is copied per resource: the record (with its resource ID, stable ID and Save Page Now
fields), aliases, text and history. An identity bound by ``ensure_identity`` whose resource
never got a record is not copied: the contract offers no way to list those.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .contract import HistoryEntry, Store
from .errors import CacheError, StableIdConflictError
from .files import prepare_directory
from .identity import check_resource_id, check_stable_id, url_key, validated_json
from .records import Record
from .rows import ALIAS, HIST, IDENT, SID, TEXT, URL, Identity, Rows, dumps
from .store import DEFAULT_TIMEOUT

__all__ = [
    "CopyReport",
    "DiskcacheImporter",
    "Importer",
    "ResourceDump",
    "copy_store",
    "dump_resources",
]


@dataclass(frozen=True, slots=True)
class ResourceDump:
    """Everything a store holds about one resource with a record."""

    record: Record
    aliases: tuple[str, ...] = ()
    text: str | None = None
    history: tuple[HistoryEntry, ...] = ()
    #: The identity's creation time (the record's ``created_at`` when not given).
    created_at: str | None = None


class Importer(Protocol):
    """A store that can take a resource exactly as another store holds it."""

    def import_resource(self, dump: ResourceDump) -> None:
        """Write ``dump`` in one transaction, replacing what the store held for it.

        Importing the same dump twice leaves the store as importing it once. Raises
        :class:`StableIdConflictError` when the resource or its stable ID is bound
        differently here, and :class:`CacheError` when one of its URLs belongs to another
        resource.
        """
        ...


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What :func:`copy_store` copied and checked."""

    copied: int
    source_records: int
    target_records: int


def dump_resources(store: Store) -> Iterator[ResourceDump]:
    """Every resource of ``store`` that has a record, in resource-ID order."""
    for record in store.records():
        rid = record.resource_id
        yield ResourceDump(
            record=record,
            aliases=tuple(store.aliases(rid)),
            text=store.get_text(rid),
            history=tuple(store.history(rid)),
            created_at=record.created_at,
        )


def copy_store(source: Store, target: Store, importer: Importer) -> CopyReport:
    """Copy every resource of ``source`` into ``target`` (through ``importer``) and check it.

    Each resource is one transaction, so an interrupted copy can simply be run again.
    Afterwards every source record must read back from ``target`` equal, and the target
    must hold at least as many records: otherwise :class:`CacheError` says which differs.
    """
    copied = 0
    for dump in dump_resources(source):
        importer.import_resource(dump)
        copied += 1
    # Both sides iterate in resource-ID order: one merge pass checks every record.
    source_count = 0
    theirs = iter(target.records())
    other: Record | None = next(theirs, None)
    for record in source.records():
        source_count += 1
        while other is not None and other.resource_id < record.resource_id:
            other = next(theirs, None)
        if other is None or other != record:
            raise CacheError(
                f"copy check failed: resource {record.resource_id} differs in "
                f"{target.location} from {source.location}"
            )
    target_count = len(target)
    if source_count != copied or target_count < source_count:
        raise CacheError(
            f"copy check failed: {copied} copied, {source_count} in {source.location}, "
            f"{target_count} in {target.location}"
        )
    return CopyReport(copied=copied, source_records=source_count, target_records=target_count)


class DiskcacheImporter:
    """Writes resources into a diskcache store folder, in the layout of :mod:`.rows`.

    Open it beside a :class:`~snapcache.cache.store.SnapshotCache` on the same folder (that
    one reads, this one writes); both are safe to share the folder.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Open (creating if needed) the diskcache store folder at ``path``."""
        directory = Path(os.fspath(path)).expanduser()
        prepare_directory(directory)
        self._rows = Rows(directory, timeout=timeout, label=f"DiskcacheImporter({str(path)!r})")

    def close(self) -> None:
        """Close the folder's connection."""
        self._rows.close()

    def import_resource(self, dump: ResourceDump) -> None:
        """Write ``dump``'s rows in one transaction (see :class:`Importer`)."""
        record = dump.record
        rid = record.resource_id
        check_resource_id(rid)
        check_stable_id(record.stable_id)
        record_json = validated_json(record)
        key = url_key(record.url)
        aliases = [url_key(a) for a in dump.aliases]
        history_json = dumps([dict(entry) for entry in dump.history])
        with self._rows.transaction():
            ident = self._rows.identity(rid)
            held = ident.stable_id if ident is not None else None
            old = self._rows.record(rid)
            if old is not None and held is None:
                held = old.stable_id
            if held is not None and held != record.stable_id:
                raise StableIdConflictError(
                    f"resource {rid} has stable ID {held} here, {record.stable_id} in the copy",
                    resource_id=rid,
                    existing=held,
                    requested=record.stable_id,
                )
            owner = self._rows.owner(SID + record.stable_id)
            if owner is not None and owner != rid:
                raise StableIdConflictError(
                    f"stable ID {record.stable_id} is already held by resource {owner}; "
                    f"it cannot also identify {rid}",
                    resource_id=rid,
                    existing=None,
                    requested=record.stable_id,
                    other_resource_id=owner,
                )
            for url in (key, *aliases):
                owner = self._rows.owner(URL + url)
                if owner is not None and owner != rid:
                    raise CacheError(
                        f"URL {url!r} already belongs to resource {owner}, not {rid}"
                    )
            created = ident.created_at if ident is not None else (
                dump.created_at or record.created_at
            )
            self._rows.set(IDENT + rid, Identity(record.stable_id, key, created).to_json())
            self._rows.set(SID + record.stable_id, dumps(rid))
            for url in (key, *aliases):
                self._rows.set(URL + url, dumps(rid))
            if aliases:
                self._rows.set(ALIAS + rid, dumps(aliases))
            else:
                self._rows.delete(ALIAS + rid)
            self._rows.set_record(rid, record, record_json)
            if dump.text is None:
                self._rows.delete(TEXT + rid)
            else:
                self._rows.set(TEXT + rid, dump.text)
            self._rows.set(HIST + rid, history_json)

