"""Rate limits shared across processes: per-pool token buckets and 429 pauses, kept in a
small SQLite file so every process on the machine shares one budget."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from pathlib import Path
from typing import Final

from ..config import Config
from ..errors import DeferredError

POOLS: Final = ("cdx", "playback", "availability", "save")


class RateLimiter:
    """Token buckets per pool, kept in a small SQLite file so every process on the machine
    that uses the same file shares one budget (the archive counts per IP, not per process).

    A pool paused after a 429 stays paused for everyone until the pause ends.
    """

    def __init__(
        self,
        path: Path,
        per_minute: dict[str, float],
        per_host: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.path = path
        self.per_minute = dict(per_minute)
        #: Budgets of one archive host (``host[:port]``), overriding ``per_minute`` per pool.
        self.per_host = {host: dict(rates) for host, rates in (per_host or {}).items()}
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.closing(self._connect()) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS buckets (pool TEXT PRIMARY KEY, tokens REAL NOT NULL,"
                " updated REAL NOT NULL, paused_until REAL NOT NULL DEFAULT 0,"
                " last_429 REAL NOT NULL DEFAULT 0)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    @staticmethod
    def burst(per_minute: float) -> float:
        """Bucket capacity: one second's worth, at least one token.

        Small on purpose: with capacity C the most sent in any minute is C + rate, so a
        large burst would let a cold start overshoot the archive's per-minute window.
        """
        return max(1.0, per_minute / 60.0)

    def _take(self, key: str, rate_per_minute: float) -> float:
        """Take a token if one is there; return 0, or the seconds to wait before retrying."""
        capacity = self.burst(rate_per_minute)
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            # The clock is read under the write lock: read before it, a process that waited
            # for the lock would write an ``updated`` older than the one it replaces, and the
            # next taker would be credited that interval's tokens a second time (measured:
            # four processes got 80% more than the budget).
            now = time.time()
            try:
                row = conn.execute(
                    "SELECT tokens, updated, paused_until FROM buckets WHERE pool = ?", (key,)
                ).fetchone()
                if row is None:
                    tokens, updated, paused_until = capacity, now, 0.0
                    conn.execute(
                        "INSERT INTO buckets (pool, tokens, updated) VALUES (?, ?, ?)",
                        (key, tokens, now),
                    )
                else:
                    tokens, updated, paused_until = float(row[0]), float(row[1]), float(row[2])
                # Never move ``updated`` backwards (another host's clock, a clock step).
                now = max(now, updated)
                if paused_until > now:
                    conn.execute("COMMIT")
                    return paused_until - now
                rate = rate_per_minute / 60.0
                tokens = min(capacity, tokens + max(0.0, now - updated) * rate)
                if tokens >= 1.0:
                    conn.execute(
                        "UPDATE buckets SET tokens = ?, updated = ? WHERE pool = ?",
                        (tokens - 1.0, now, key),
                    )
                    conn.execute("COMMIT")
                    return 0.0
                conn.execute(
                    "UPDATE buckets SET tokens = ?, updated = ? WHERE pool = ?", (tokens, now, key)
                )
                conn.execute("COMMIT")
                return (1.0 - tokens) / rate
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def acquire(self, key: str, pool: str, max_wait: float) -> None:
        """Wait for a token of ``pool`` (under the archive ``key``), at most ``max_wait`` s.

        Raises :class:`DeferredError` when the wait would be longer (the pool is paused
        beyond it), so a caller defers instead of sleeping for an hour.
        """
        rate = self.per_host.get(key, {}).get(pool, self.per_minute.get(pool))
        if rate is None or math.isinf(rate):
            return
        deadline = time.monotonic() + max_wait
        while True:
            wait = await asyncio.to_thread(self._take, f"{key}|{pool}", rate)
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise DeferredError(
                    f"{pool} pool of {key} is paused or out of budget for {wait:.0f} s more"
                )
            await asyncio.sleep(min(wait, 5.0))

    def pause(self, key: str, pool: str, seconds: float) -> None:
        """Stop every request of ``pool`` for ``seconds``, in every process."""
        full = f"{key}|{pool}"
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()  # under the lock, as in _take
            conn.execute(
                "INSERT INTO buckets (pool, tokens, updated, paused_until, last_429)"
                " VALUES (?, 0, ?, ?, ?) ON CONFLICT(pool) DO UPDATE SET tokens = 0,"
                " updated = excluded.updated,"
                " paused_until = MAX(paused_until, excluded.paused_until),"
                " last_429 = excluded.last_429",
                (full, now, now + seconds, now),
            )
            conn.execute("COMMIT")

    def recently_paused(self, key: str, within: float) -> bool:
        """True if some pool of ``key`` is paused, or its pause ended less than ``within``
        seconds ago (what a connection failure right after a 429 is judged by)."""
        names = [f"{key}|{pool}" for pool in POOLS]
        marks = ",".join("?" * len(names))
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute(
                f"SELECT MAX(paused_until) FROM buckets WHERE pool IN ({marks})", names
            ).fetchone()
        until = float(row[0]) if row and row[0] is not None else 0.0
        return until > 0 and time.time() < until + within

    def paused_for(self, key: str, pool: str) -> float:
        """Seconds left on a pause of ``pool`` (0 when it is not paused)."""
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT paused_until FROM buckets WHERE pool = ?", (f"{key}|{pool}",)
            ).fetchone()
        return max(0.0, float(row[0]) - time.time()) if row else 0.0


def per_host_budgets(config: Config) -> dict[str, dict[str, float]]:
    """Each archive's cdx and playback budgets, keyed by its host (the rate-limit key).

    Two archives on one host (two pywb collections, say) share its buckets, so the stricter
    budget of the two applies to both.
    """
    budgets: dict[str, dict[str, float]] = {}
    for entry in config.chain:
        mine = {"cdx": entry.cdx_per_minute, "playback": entry.playback_per_minute}
        known = budgets.setdefault(entry.netloc, mine)
        for pool, rate in mine.items():
            known[pool] = min(known[pool], rate)
    return budgets

