"""The durable store: one record per resource, its text, history, identity and aliases.

Built on diskcache (SQLite), opened with :class:`~cache.disk.SafeDisk` so nothing is ever
pickled or unpickled. Every key is a ``str`` and every value is text (JSON, or the extracted
text itself):

==================  ==============================================================
``meta:schema``     JSON int: the schema version that wrote the cache
``rec:<rid>``       the record, ``Record.to_json()``
``ident:<rid>``     JSON ``{"stable_id", "url", "created_at"}``: written before the first
                    attempt finishes so the stable ID is minted once
``sid:<sid>``       JSON string: the resource ID holding that stable ID
``url:<url>``       JSON string: the resource ID for a URL (current or alias)
``alias:<rid>``     JSON list of earlier URLs of the resource, oldest first
``text:<rid>``      the extracted text of the stored capture (plain ``str``)
``hist:<rid>``      JSON list of attempt summaries, oldest first, at most ``history_limit``
==================  ==============================================================

Each write runs in one diskcache transaction (SQLite ``BEGIN IMMEDIATE``), so a crash leaves
all of it or none of it, and read-merge-write is safe across processes sharing the folder.
Values are kept inside the SQLite file (never as side files) so that rollback covers them too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import diskcache

from .disk import SafeDisk
from .errors import CacheError, NotFoundError, StableIdConflictError
from .policy import merge
from .times import utc_now_iso
from .records import SCHEMA_VERSION, Record, RecordFormatError

__all__ = ["DEFAULT_HISTORY_LIMIT", "DEFAULT_TIMEOUT", "SnapshotCache"]

#: Attempt summaries kept per resource: enough to see a pattern of failures, small enough
#: that the history of thousands of resources stays a few MB.
DEFAULT_HISTORY_LIMIT: Final = 20

#: Seconds a write waits for another process's transaction (diskcache's own default).
DEFAULT_TIMEOUT: Final = 60.0

#: diskcache's size limit and side-file threshold. This is a record store, not a cache that
#: may forget: nothing is ever evicted, and no value is big enough to go to a side file
#: (side files are written outside the SQLite transaction, so a rollback would not cover them).
_UNLIMITED: Final = 2**62

#: A ``mint`` callable that keeps returning taken IDs is broken; stop instead of spinning.
_MAX_MINT_TRIES: Final = 100

_SCHEMA_KEY: Final = "meta:schema"
_REC: Final = "rec:"
_IDENT: Final = "ident:"
_SID: Final = "sid:"
_URL: Final = "url:"
_ALIAS: Final = "alias:"
_TEXT: Final = "text:"
_HIST: Final = "hist:"

# Same shapes as fetcher.ids (which cache may not import): a resource ID is 16 lowercase hex
# digits of SHA-256; a stable ID is sid_ + 10 alphanumerics, or the bare 10 of older data.
_RID_RE: Final = re.compile(r"[0-9a-f]{16}")
_SID_RE: Final = re.compile(r"(?:sid_)?[A-Za-z0-9]{10}")


@dataclass(frozen=True, slots=True)
class _Identity:
    stable_id: str
    url: str
    created_at: str | None

    def to_json(self) -> str:
        return _dumps({"stable_id": self.stable_id, "url": self.url, "created_at": self.created_at})


class SnapshotCache:
    """Records, texts and histories of cited resources, in one cache folder.

    Safe to share between processes (and between threads, each using its own SQLite
    connection). Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Open (creating if needed) the cache folder at ``path``.

        The folder is created with mode 0700, and tightened to 0700 if it exists and belongs
        to the current user: records reveal what a user cites, and anyone who can write the
        folder can plant rows. Raises :class:`CacheError` for a cache written by a newer
        schema version, or a folder holding some other diskcache.
        """
        if isinstance(history_limit, bool) or not isinstance(history_limit, int):
            raise TypeError("history_limit must be an int")
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        self._path = Path(os.fspath(path)).expanduser()
        self._history_limit = history_limit
        self._timeout = float(timeout)
        self._closed = False
        _prepare_directory(self._path)
        self._cache: Any = diskcache.Cache(
            str(self._path),
            disk=SafeDisk,
            timeout=self._timeout,
            statistics=False,
            eviction_policy="none",
            size_limit=_UNLIMITED,
            cull_limit=0,
            disk_min_file_size=_UNLIMITED,
        )
        try:
            self._check_schema()
        except BaseException:
            self._cache.close()
            raise

    # ---------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def path(self) -> Path:
        """The cache folder."""
        return self._path

    @property
    def directory(self) -> str:
        """The cache folder as a string (as diskcache reports it)."""
        return str(self._cache.directory)

    @property
    def history_limit(self) -> int:
        """How many attempt summaries are kept per resource."""
        return self._history_limit

    def close(self) -> None:
        """Close this thread's SQLite connection; the object must not be used afterwards."""
        self._closed = True
        self._cache.close()

    def __enter__(self) -> SnapshotCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SnapshotCache({str(self._path)!r})"

    # ---------------------------------------------------------------------------------------
    # Lookups (no network, no writes)

    def get(self, resource_id: str) -> Record | None:
        """Return the record of a resource, or ``None``.

        Raises :class:`RecordFormatError` (naming the resource ID) for a corrupt record.
        """
        return self._load_record(resource_id)

    def by_stable_id(self, sid: str) -> Record | None:
        """Return the record holding stable ID ``sid`` (exactly as stored), or ``None``."""
        rid = self._owner(_SID + sid.strip())
        return None if rid is None else self._load_record(rid)

    def by_url(self, url: str) -> Record | None:
        """Return the record for ``url`` (stripped, else exact) or any of its aliases."""
        key = url.strip()
        if not key:
            return None
        rid = self._owner(_URL + key)
        return None if rid is None else self._load_record(rid)

    def resource_id_for_url(self, url: str) -> str | None:
        """Return the resource ID a URL (current or alias) is bound to, or ``None``.

        Answers even before the first record exists (after :meth:`ensure_identity`). After a
        :meth:`move` the new URL's hash is not the resource ID, so callers must ask here
        before hashing a URL themselves.
        """
        key = url.strip()
        return self._owner(_URL + key) if key else None

    def lookup(self, ident: str) -> Record | None:
        """Find a record by resource ID, stable ID (``sid_...`` or bare), URL or alias."""
        text = ident.strip()
        if not text:
            return None
        if _RID_RE.fullmatch(text):
            found = self.get(text)
            if found is not None:
                return found
        if _SID_RE.fullmatch(text):
            found = self.by_stable_id(text)
            if found is not None:
                return found
        return self.by_url(text)

    def get_text(self, resource_id: str) -> str | None:
        """Return the extracted text of the stored capture, or ``None`` if there is none."""
        return self._raw(_TEXT + resource_id)

    def history(self, resource_id: str) -> list[dict[str, Any]]:
        """Return the attempt summaries of a resource, oldest first."""
        return self._load_history(resource_id)

    def aliases(self, resource_id: str) -> list[str]:
        """Return the earlier URLs of a resource, oldest first (still found by ``by_url``)."""
        return self._load_aliases(resource_id)

    def stable_id(self, resource_id: str) -> str | None:
        """Return the stable ID bound to a resource, even before its first record exists."""
        ident = self._load_ident(resource_id)
        if ident is not None:
            return ident.stable_id
        record = self._load_record(resource_id)
        return None if record is None else record.stable_id

    def records(self) -> Iterator[Record]:
        """Yield every record (in key order).

        A corrupt record raises :class:`RecordFormatError` naming its resource ID rather than
        being skipped: an export that silently drops records is worse than one that stops.
        """
        for rid in self._record_ids():
            record = self._load_record(rid)
            if record is not None:  # deleted by another process meanwhile
                yield record

    def __iter__(self) -> Iterator[Record]:
        return self.records()

    def __len__(self) -> int:
        """Return the number of records (resources with at least one finished attempt)."""
        return sum(1 for _ in self._record_ids())

    def __contains__(self, resource_id: object) -> bool:
        return isinstance(resource_id, str) and self._raw(_REC + resource_id) is not None

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
        _check_rid(resource_id)
        if stable_id is not None:
            _check_sid(stable_id)
        url_key = _url_key(url)
        with self._transaction():
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
            self._check_url_free(url_key, resource_id)
            if stable_id is not None:
                self._check_sid_free(stable_id, resource_id)
                sid = stable_id
            else:
                sid = self._mint_unique(mint)
            ident = _Identity(stable_id=sid, url=url_key, created_at=utc_now_iso())
            self._set(_IDENT + resource_id, ident.to_json())
            self._set(_SID + sid, _dumps(resource_id))
            self._set(_URL + url_key, _dumps(resource_id))
            return sid

    def save_attempt(
        self, new: Record, *, text: str | None, history_entry: dict[str, Any]
    ) -> Record:
        """Store the outcome of one attempt and return the record now stored.

        Reads the stored record, applies :func:`cache.policy.merge` (a failed or worse
        attempt never overwrites a good capture) and writes the record, the stable-ID and URL
        indexes, the text and the history, all in one transaction. The identity (stable ID,
        URL, created_at) already bound to the resource wins over the one in ``new``. The text
        is replaced only with the capture: set to ``text``, or deleted if ``text`` is
        ``None``. ``history_entry`` must be JSON-serialisable; the newest ``history_limit``
        entries are kept.
        """
        rid = new.resource_id
        _check_rid(rid)
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text must be str or None, not {type(text).__name__}")
        if not isinstance(history_entry, dict):
            raise TypeError("history_entry must be a dict")
        with self._transaction():
            old = self._load_record(rid)
            ident = self._load_ident(rid)
            if old is None:
                if ident is not None:
                    new = replace(
                        new,
                        stable_id=ident.stable_id,
                        url=ident.url,
                        created_at=ident.created_at or new.created_at,
                    )
                else:
                    _check_sid(new.stable_id)
                    self._check_sid_free(new.stable_id, rid)
                    self._check_url_free(_url_key(new.url), rid)
            result = merge(old, new)
            stored = result.record
            record_json = _validated_json(stored)
            history = self._load_history(rid)
            history.append(history_entry)
            # Slicing with -0 would keep everything, so a zero limit is its own case.
            kept = history[-self._history_limit :] if self._history_limit else []
            history_json = _dumps(kept)  # TypeError here rolls back before anything is written

            if ident is None:
                ident = _Identity(stored.stable_id, stored.url, stored.created_at)
                self._set(_IDENT + rid, ident.to_json())
            self._set(_SID + stored.stable_id, _dumps(rid))
            self._set(_URL + _url_key(stored.url), _dumps(rid))
            self._set(_REC + rid, record_json)
            if result.replaced_capture:
                if text is None:
                    self._cache.delete(_TEXT + rid)
                else:
                    self._set(_TEXT + rid, text)
            self._set(_HIST + rid, history_json)
            return stored

    def update_save(
        self,
        resource_id: str,
        *,
        job_id: str | None,
        requested_at: str | None,
        status: str | None,
        history_entry: dict[str, Any] | None = None,
    ) -> Record:
        """Set a record's Save Page Now fields (and nothing else), in one transaction.

        Raises :class:`NotFoundError` when the resource has no record yet.
        """
        _check_rid(resource_id)
        with self._transaction():
            record = self._load_record(resource_id)
            if record is None:
                raise NotFoundError(f"resource {resource_id} has no record yet")
            updated = replace(
                record,
                redirects=list(record.redirects),
                save_job_id=job_id,
                save_requested_at=requested_at,
                save_status=status,
            )
            self._set(_REC + resource_id, _validated_json(updated))
            if history_entry is not None:
                history = self._load_history(resource_id)
                history.append(history_entry)
                kept = history[-self._history_limit :] if self._history_limit else []
                self._set(_HIST + resource_id, _dumps(kept))
            return updated

    def move(self, old_url: str, new_url: str) -> Record:
        """Rebind the resource found by ``old_url`` (URL or alias) to ``new_url``.

        The resource keeps its resource ID and stable ID; its previous URL becomes an alias
        (still found by :meth:`by_url` and :meth:`lookup`). Raises :class:`NotFoundError` if
        no record has ``old_url``, and :class:`CacheError` if ``new_url`` belongs to another
        resource. Moving to the current URL changes nothing.
        """
        old_key = _url_key(old_url)
        new_key = _url_key(new_url)
        with self._transaction():
            rid = self._owner(_URL + old_key)
            if rid is None:
                raise NotFoundError(f"no resource has the URL {old_key!r}")
            record = self._load_record(rid)
            if record is None:
                raise NotFoundError(f"resource {rid} ({old_key!r}) has no record yet")
            self._check_url_free(new_key, rid)
            current = record.url.strip()
            if new_key == current:
                return record
            aliases = [a for a in self._load_aliases(rid) if a != new_key]
            if current not in aliases:
                aliases.append(current)
            moved = replace(record, url=new_key, redirects=list(record.redirects))
            ident = self._load_ident(rid)
            ident = _Identity(
                stable_id=record.stable_id,
                url=new_key,
                created_at=ident.created_at if ident is not None else record.created_at,
            )
            self._set(_REC + rid, _validated_json(moved))
            self._set(_IDENT + rid, ident.to_json())
            self._set(_URL + new_key, _dumps(rid))
            self._set(_URL + current, _dumps(rid))
            self._set(_ALIAS + rid, _dumps(aliases))
            return moved

    # ---------------------------------------------------------------------------------------
    # Internals

    @property
    def _c(self) -> Any:
        if self._closed:
            raise CacheError(f"{self!r} is closed")
        return self._cache

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One SQLite write transaction; a lock held too long becomes a CacheError."""
        try:
            with self._c.transact():
                yield
        except diskcache.Timeout as exc:
            raise CacheError(
                f"cache {str(self._path)!r} stayed locked by another writer for more than "
                f"{self._timeout:g} s; retry later"
            ) from exc

    def _check_schema(self) -> None:
        with self._transaction():
            raw = self._raw(_SCHEMA_KEY)
            if raw is None:
                # An empty folder becomes a snapcache cache; someone else's diskcache must
                # not be silently adopted (its rows would be read as ours).
                if len(self._cache) > 0:
                    raise CacheError(
                        f"{str(self._path)!r} holds a diskcache that is not a snapcache cache "
                        f"(no {_SCHEMA_KEY!r} entry); choose another folder"
                    )
                self._set(_SCHEMA_KEY, _dumps(SCHEMA_VERSION))
                return
            try:
                version = json.loads(raw)
            except ValueError:
                version = raw
            if isinstance(version, bool) or not isinstance(version, int):
                raise CacheError(f"cache {str(self._path)!r} has an invalid schema entry {raw!r}")
            if version > SCHEMA_VERSION:
                raise CacheError(
                    f"cache {str(self._path)!r} was written by schema version {version}, newer "
                    f"than this snapcache's schema version {SCHEMA_VERSION}; upgrade snapcache"
                )
            if version < SCHEMA_VERSION:
                # No older schema exists yet; a future bump adds its migration here.
                raise CacheError(
                    f"cache {str(self._path)!r} has schema version {version}, and no migration "
                    f"to schema version {SCHEMA_VERSION} exists"
                )

    def _raw(self, key: str) -> str | None:
        """Return the text stored under ``key`` or ``None``; other value types are corrupt."""
        value = self._c.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise CacheError(f"cache entry {key!r} holds {type(value).__name__}, not text")
        return value

    def _json(self, key: str) -> Any:
        raw = self._raw(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise CacheError(f"cache entry {key!r} is not valid JSON: {exc}") from exc

    def _set(self, key: str, value: str) -> None:
        self._c.set(key, value)

    def _owner(self, key: str) -> str | None:
        """Return the resource ID an index entry (``sid:``/``url:``) points to."""
        value = self._json(key)
        if value is not None and not isinstance(value, str):
            raise CacheError(f"cache index entry {key!r} is not a resource ID")
        return value

    def _load_record(self, rid: str) -> Record | None:
        raw = self._c.get(_REC + rid)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise RecordFormatError(f"record {rid}: stored as {type(raw).__name__}, not text")
        try:
            record = Record.from_json(raw)
        except RecordFormatError as exc:
            raise RecordFormatError(f"record {rid}: {exc}") from exc
        if record.resource_id != rid:
            raise RecordFormatError(
                f"record {rid}: stored under the wrong key (its resource_id is "
                f"{record.resource_id})"
            )
        return record

    def _load_ident(self, rid: str) -> _Identity | None:
        data = self._json(_IDENT + rid)
        if data is None:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("stable_id"), str)
            or not isinstance(data.get("url"), str)
            or not isinstance(data.get("created_at"), str | None)
        ):
            raise CacheError(f"identity entry of resource {rid} is corrupt: {data!r}")
        return _Identity(data["stable_id"], data["url"], data.get("created_at"))

    def _bound_identity(self, rid: str) -> _Identity | None:
        """The identity of ``rid``: its ident entry, or (for older data) its record's."""
        ident = self._load_ident(rid)
        if ident is not None:
            return ident
        record = self._load_record(rid)
        if record is None:
            return None
        ident = _Identity(record.stable_id, record.url, record.created_at)
        self._set(_IDENT + rid, ident.to_json())
        return ident

    def _load_history(self, rid: str) -> list[dict[str, Any]]:
        data = self._json(_HIST + rid)
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise CacheError(f"history of resource {rid} is corrupt")
        return data

    def _load_aliases(self, rid: str) -> list[str]:
        data = self._json(_ALIAS + rid)
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(a, str) for a in data):
            raise CacheError(f"alias list of resource {rid} is corrupt")
        return data

    def _record_ids(self) -> Iterator[str]:
        # Keys only: values are read (and checked) one at a time by the caller.
        for key in self._c.iterkeys():
            if isinstance(key, str) and key.startswith(_REC):
                yield key[len(_REC) :]

    def _check_url_free(self, url_key: str, rid: str) -> None:
        owner = self._owner(_URL + url_key)
        if owner is not None and owner != rid:
            raise CacheError(
                f"URL {url_key!r} already belongs to resource {owner}, not {rid}; "
                f"look it up with by_url()"
            )

    def _check_sid_free(self, sid: str, rid: str) -> None:
        owner = self._owner(_SID + sid)
        if owner is not None and owner != rid:
            raise StableIdConflictError(
                f"stable ID {sid} is already held by resource {owner}; "
                f"it cannot also identify {rid}",
                resource_id=rid,
                existing=None,
                requested=sid,
                other_resource_id=owner,
            )

    def _mint_unique(self, mint: Callable[[], str]) -> str:
        for _ in range(_MAX_MINT_TRIES):
            candidate = mint()
            _check_sid(candidate)
            if self._owner(_SID + candidate) is None:
                return candidate
        raise CacheError(
            f"mint() returned only stable IDs already in use ({_MAX_MINT_TRIES} tries)"
        )


def _prepare_directory(directory: Path) -> None:
    """Create the cache folder private to the user (0700), tightening an existing one."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise CacheError(f"{str(directory)!r} exists and is not a folder") from exc
    info = directory.stat()
    getuid = getattr(os, "getuid", None)  # absent on Windows, where modes mean little
    # mkdir's mode is filtered by the umask, and an existing folder may be group-readable.
    if getuid is not None and info.st_uid == getuid() and stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(directory, 0o700)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _validated_json(record: Record) -> str:
    """Serialise a record, proving it reads back under the current schema before it is stored."""
    text = record.to_json()
    try:
        Record.from_json(text)
    except RecordFormatError as exc:
        raise RecordFormatError(f"record {record.resource_id}: refusing to store: {exc}") from exc
    return text


def _url_key(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
    key = url.strip()
    if not key:
        raise ValueError("url must not be empty")
    return key


def _check_rid(rid: str) -> None:
    if not isinstance(rid, str) or not _RID_RE.fullmatch(rid):
        raise ValueError(f"not a resource ID (16 lowercase hex digits): {rid!r}")


def _check_sid(sid: str) -> None:
    if not isinstance(sid, str) or not _SID_RE.fullmatch(sid):
        raise ValueError(f"not a stable ID (sid_ + 10 letters/digits, or bare 10): {sid!r}")
