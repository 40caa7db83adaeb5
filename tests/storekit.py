"""Helpers shared by the store tests: resource IDs, attempt records, mints, planted rows."""

from __future__ import annotations

import hashlib
import os
import pathlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snapcache.cache import Record, Status, Store, utc_now_iso

NTIA = "https://www.ntia.gov/sites/default/files/publications/ntia-ai-open-model-report.pdf"
EXAMPLE = "https://example.com"


def rid(url: str) -> str:
    """The wiki's resource ID: first 16 hex digits of SHA-256 over the URL as given."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def attempt(
    url: str,
    status: Status,
    *,
    sid: str = "sid_PC79HD2HUf",
    resource_id: str | None = None,
    **fields: Any,
) -> Record:
    """A record describing one attempt, as the fetcher would build it."""
    now = utc_now_iso()
    values: dict[str, Any] = {
        "resource_id": resource_id or rid(url),
        "stable_id": sid,
        "url": url,
        "status": status,
        "last_attempt_at": now,
        "attempts": 1,
    }
    if status == "ok":
        values.update(
            archived_status=200,
            capture_timestamp="20260408194323",
            archive_url=f"https://web.archive.org/web/20260408194323/{url}",
            raw_url=f"https://web.archive.org/web/20260408194323id_/{url}",
            fetched_at=now,
            content_type="application/pdf",
            content_length=1234,
            title="Dual-Use Foundation Models",
            preview="The report finds ...",
            text_length=5000,
        )
    elif status == "archived_error":
        values.update(archived_status=404, capture_timestamp="20260101000000")
    values.update(fields)
    return Record(**values)


class CountingMint:
    """A mint that returns ``ids`` in turn and counts how often it was called."""

    def __init__(self, *ids: str) -> None:
        self._ids = iter(ids)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return next(self._ids)


def constant_mint(sid: str) -> Callable[[], str]:
    """A mint that always returns ``sid``."""
    return lambda: sid


def fill_six_records(store: Store) -> dict[str, Record]:
    """Six records: two ok (one whose latest attempt failed), one of each other outcome."""
    plan: list[tuple[str, list[Status], str | None]] = [
        (f"{EXAMPLE}/ok", ["ok"], "2026-03-01T00:00:00Z"),
        (f"{EXAMPLE}/ok-then-error", ["ok", "error"], "2026-01-15T00:00:00Z"),
        (f"{EXAMPLE}/gone", ["not_archived"], None),
        (f"{EXAMPLE}/404", ["archived_error"], None),
        (f"{EXAMPLE}/blocked", ["blocked"], None),
        (f"{EXAMPLE}/down", ["error"], None),
    ]
    stored: dict[str, Record] = {}
    for i, (url, statuses, fetched_at) in enumerate(plan):
        extra = {"fetched_at": fetched_at} if fetched_at else {}
        for status in statuses:
            stored[url] = store.save_attempt(
                attempt(url, status, sid=f"sid_{i:010d}", **extra), text=None, history_entry={}
            )
    # An identity without a record is not a record.
    store.ensure_identity(rid(NTIA), NTIA, mint=constant_mint("sid_NoRecord00"))
    return stored


class Touch:
    """Unpickling this creates ``path``: stands in for arbitrary code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def plant(
    directory: str,
    key: str,
    *,
    mode: int,
    value: bytes | None,
    filename: str | None = None,
    raw: bool = True,
    key_bytes: bytes | None = None,
) -> None:
    """Insert a row straight into a diskcache's SQLite file, as an attacker would."""
    with sqlite3.connect(os.path.join(directory, "cache.db")) as con:
        con.execute(
            "INSERT OR REPLACE INTO Cache (key, raw, store_time, expire_time, access_time,"
            " access_count, tag, size, mode, filename, value)"
            " VALUES (?, ?, 0, NULL, 0, 0, NULL, 0, ?, ?, ?)",
            (key_bytes if key_bytes is not None else key, int(raw), mode, filename, value),
        )
    con.close()
