"""The store backends the contract suite runs against, and its concurrent writers.

Adding a backend to ``tests/test_store_contract.py``: write a factory
``open_<name>(place, *, history_limit) -> Store`` and add one :class:`Backend` to
:data:`BACKENDS`. The same ``place`` string must reach the same store from any thread or
process (worker processes open it by backend name), and a new place must be an empty store.
Guarantees only some backends can have are :class:`Backend` capabilities (``None`` when
absent); the tests needing one skip elsewhere.
"""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from diskcache.core import MODE_PICKLE, MODE_RAW
from snapcache.cache import SnapshotCache, Status, Store
from snapcache.cache.store import DEFAULT_HISTORY_LIMIT

from tests import pgkit
from tests.storekit import EXAMPLE, attempt, plant, rid

T = TypeVar("T")


@dataclass(frozen=True)
class Backend:
    """How to open one kind of store, and what it can do beyond the contract."""

    name: str
    #: ``open(place, history_limit=...)``; module-level, so worker processes can use it.
    open: Callable[..., Store]
    #: ``plant(place, resource_id, payload)`` writes a record row that the backend's reader
    #: would deserialise with pickle; ``None`` for backends that have no such rows.
    plant_pickled_record: Callable[[str, str, bytes], None] | None = None
    #: ``plant(place, resource_id, text)`` stores ``text`` as the record of ``resource_id``
    #: without any check, as damage would (``None`` for backends that cannot be damaged so).
    plant_record_text: Callable[[str, str, str], None] | None = None


def open_diskcache(place: str, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> Store:
    """A :class:`SnapshotCache` in the folder ``place``."""
    return SnapshotCache(place, history_limit=history_limit)


def plant_diskcache_pickle(place: str, resource_id: str, payload: bytes) -> None:
    """A pickled ``rec:`` row, written into the SQLite file as an attacker would."""
    plant(place, f"rec:{resource_id}", mode=MODE_PICKLE, value=payload)


def open_postgres(place: str, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> Store:
    """A :class:`PostgresStore` in a schema of the test server named after ``place``.

    Skips (fails under ``$CI``) without PostgreSQL; the schema is dropped after the test.
    """
    dsn = pgkit.create_schema(pgkit.schema_for(place))
    from snapcache.cache.postgres import PostgresStore

    return PostgresStore(dsn, history_limit=history_limit)


def plant_diskcache_text(place: str, resource_id: str, text: str) -> None:
    """A ``rec:`` row holding ``text`` as it is, written into the SQLite file directly."""
    plant(place, f"rec:{resource_id}", mode=MODE_RAW, value=text)  # type: ignore[arg-type]


BACKENDS: dict[str, Backend] = {
    "diskcache": Backend("diskcache", open_diskcache, plant_pickled_record=plant_diskcache_pickle,
                         plant_record_text=plant_diskcache_text),
    "postgres": Backend("postgres", open_postgres),
}


@dataclass(frozen=True)
class Stores:
    """One backend, and the places of one test's stores."""

    backend: Backend
    root: Path

    def place(self, name: str = "main") -> str:
        """The place of the store called ``name`` in this test."""
        return str(self.root / name)

    def open(self, name: str = "main", *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> Store:
        """Open (another handle on) the store called ``name``."""
        return self.backend.open(self.place(name), history_limit=history_limit)


# ---------------------------------------------------------------------------------------------
# Concurrent writers


SHARED_URLS = [f"{EXAMPLE}/shared/{i}" for i in range(3)]
STATUS_CYCLE: tuple[Status, ...] = (
    "ok", "error", "not_archived", "ok", "archived_error", "blocked"
)
WORKERS = 4
ROUNDS = 12


def random_sid() -> str:
    """A stable ID as snapcache mints them (random, so concurrent workers differ)."""
    alphabet = string.ascii_letters + string.digits
    return "sid_" + "".join(secrets.choice(alphabet) for _ in range(10))


def hammer(store: Store, worker: int, rounds: int) -> dict[str, str]:
    """Ensure identities and save attempts on the shared resources and the worker's own.

    Every attempt carries a freshly minted stable ID: the store must keep the first one.
    Returns the stable ID ensure_identity gave for each URL (which must never change).
    """
    seen: dict[str, str] = {}
    urls = [*SHARED_URLS, f"{EXAMPLE}/own/{worker}"]
    for n in range(rounds):
        for url in urls:
            sid = store.ensure_identity(rid(url), url, mint=random_sid)
            if seen.setdefault(url, sid) != sid:
                raise AssertionError(f"stable ID of {url} changed")
            status = STATUS_CYCLE[(n + worker) % len(STATUS_CYCLE)]
            stamp = f"2026{worker:02d}{n:02d}000000"
            fields: dict[str, Any] = {"capture_timestamp": stamp} if status == "ok" else {}
            store.save_attempt(
                attempt(url, status, sid=random_sid(), **fields),
                text=f"text of {stamp}" if status == "ok" else None,
                history_entry={"worker": worker, "round": n, "status": status},
            )
    return seen


def hammer_in_process(backend_name: str, place: str, worker: int, rounds: int) -> dict[str, str]:
    """:func:`hammer` in a worker process, on its own handle of the store at ``place``."""
    with BACKENDS[backend_name].open(place) as store:
        return hammer(store, worker, rounds)


def check_nothing_lost(store: Store, results: list[dict[str, str]]) -> None:
    """Assert that every attempt of :data:`WORKERS` hammers of :data:`ROUNDS` is counted,
    that every resource has one stable ID (the one each worker was given) and that stored
    text belongs to the stored capture."""
    records = {r.url: r for r in store.records()}  # every record parses
    assert len(store) == len(records) == len(SHARED_URLS) + WORKERS
    for url in SHARED_URLS:
        assert records[url].attempts == WORKERS * ROUNDS
        assert {result[url] for result in results} == {records[url].stable_id}
    for worker in range(WORKERS):
        url = f"{EXAMPLE}/own/{worker}"
        assert records[url].attempts == ROUNDS
        assert records[url].stable_id == results[worker][url]
    assert len({r.stable_id for r in records.values()}) == len(records)
    for record in records.values():
        # Some worker saved "ok" for every resource, so a good capture must be stored, and
        # its text must be the text of that very capture.
        assert record.status == "ok"
        assert store.get_text(record.resource_id) == f"text of {record.capture_timestamp}"
        assert store.by_stable_id(record.stable_id) == record
        history = store.history(record.resource_id)
        assert len(history) == min(store.history_limit, record.attempts)
        assert all(entry["worker"] in range(WORKERS) for entry in history)


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0)`` ... ``work(count - 1)`` in threads released together; their results.

    Re-raises the first exception a thread raised (otherwise it would only be printed).
    """
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait()
            results[n] = work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    done = [r for r in results if r is not None]
    assert len(done) == count, "a thread returned nothing"
    return done
