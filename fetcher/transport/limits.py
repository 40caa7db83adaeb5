"""Rate limits shared across processes: per-pool token buckets, 429 pauses and the Save Page
Now daily budget, all kept in one small SQLite file so that every process on the machine
shares one budget (the archive counts per IP and per account, not per process).

Every pool is declared once, in :class:`Pool`, with where its budget comes from and which
paths it may request (:meth:`Pool.path_rules`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal, assert_never
from urllib.parse import urlsplit

from snapcache.cache.files import diagnose, file_kind

from ..config import DEFAULT_PAUSE_ON_429, ArchiveEntry, Config
from ..errors import DeferredError, StateFileError, UsageError
from ..ids import find_dot_segment

#: A connection failing right after a 429 is taken for the archive's firewall block, which
#: pauses every pool of that host for this many ``pause_on_429`` periods (10 min at the
#: defaults). That is the longest pause snapcache ever sets, so a longer one found in the
#: state file (a clock stepped back, a damaged file) is cut to it.
FIREWALL_PAUSE_FACTOR: Final = 10.0

_log = logging.getLogger(__name__)


class Pool(StrEnum):
    """Every rate-limit pool. A request names its pool; the limiter refuses any other.

    The values are the keys stored in the state file (``host|pool``) and counted in stats,
    so they never change. Where each budget (requests per minute) comes from:

    * ``cdx``: ``[rates] cdx_per_minute`` for the primary archive, each ``[[archives]]``
      entry's ``cdx_per_minute`` for its host;
    * ``playback``: likewise ``playback_per_minute``;
    * ``save``: ``[save] per_minute`` (Save Page Now submissions, counted per account);
    * ``save_status``: ``[save] per_minute`` too, in a bucket of its own: job status polls go
      to the same archive host, so they are budgeted, and they never eat the submissions'
      tokens.

    And the paths each may request (:meth:`path_rules`; anything else is refused before it
    is sent, so a request can never spend another pool's budget): ``cdx`` the CDX endpoint
    of each archive, ``playback`` each archive's replay prefix followed by ``<ts><flag>/``,
    ``save`` exactly ``/save`` and ``save_status`` ``/save/status/<job>`` on the primary.
    """

    CDX = "cdx"
    PLAYBACK = "playback"
    SAVE = "save"
    SAVE_STATUS = "save_status"

    def budget(self, config: Config) -> float:
        """This pool's requests per minute from ``config`` (the primary archive's budget for
        the per-archive pools)."""
        match self:
            case Pool.CDX:
                return config.rates.cdx_per_minute
            case Pool.PLAYBACK:
                return config.rates.playback_per_minute
            case Pool.SAVE | Pool.SAVE_STATUS:
                return config.save.per_minute
        assert_never(self)

    def archive_budget(self, entry: ArchiveEntry) -> float | None:
        """This pool's budget on one archive of the chain, or None when the pool has a
        single budget whatever the archive (only the primary archive saves)."""
        match self:
            case Pool.CDX:
                return entry.cdx_per_minute
            case Pool.PLAYBACK:
                return entry.playback_per_minute
            case Pool.SAVE | Pool.SAVE_STATUS:
                return None
        assert_never(self)

    def path_rules(self, config: Config) -> tuple[PathRule, ...]:
        """The requests this pool may send under ``config``: one :class:`PathRule` per
        archive for the per-archive pools, one on the primary archive's hosts for saving."""
        save_base = urlsplit(config.archive.base_url.rstrip("/")).path
        match self:
            case Pool.CDX:
                return tuple(PathRule(_hosts(config, e), urlsplit(cdx_endpoint(e)).path, "exact")
                             for e in config.chain)
            case Pool.PLAYBACK:
                return tuple(PathRule(_hosts(config, e), urlsplit(replay_prefix(e)).path,
                                      "replay") for e in config.chain)
            case Pool.SAVE:
                return (PathRule(config.primary_hosts, f"{save_base}/save", "exact"),)
            case Pool.SAVE_STATUS:
                return (PathRule(config.primary_hosts, f"{save_base}/save/status/", "prefix"),)
        assert_never(self)


_POOL_NAMES: Final = frozenset(pool.value for pool in Pool)
#: What may follow a replay prefix: the timestamp, a mode flag, a slash, then the original.
_REPLAY_HEAD_RE: Final = re.compile(r"[0-9]{1,14}(?:[a-z]{2}_)?/")


def replay_prefix(entry: ArchiveEntry) -> str:
    """Where an archive's replay URLs start: ``{base}/web/`` (ia) or
    ``{base}/{collection}/`` (pywb)."""
    base = entry.base_url.rstrip("/")
    return f"{base}/{entry.collection}/" if entry.dialect == "pywb" else f"{base}/web/"


def cdx_endpoint(entry: ArchiveEntry) -> str:
    """An archive's CDX endpoint: ``{base}/cdx/search/cdx`` (ia) or
    ``{base}/{collection}/cdx`` (pywb)."""
    base = entry.base_url.rstrip("/")
    return f"{base}/{entry.collection}/cdx" if entry.dialect == "pywb" else f"{base}/cdx/search/cdx"


@dataclass(frozen=True, slots=True)
class PathRule:
    """Requests a pool may send: to one of ``hosts`` (``host[:port]``), on ``path``.

    ``kind`` says how ``path`` is matched against the path actually sent (percent-encoded,
    without the query): ``exact``; ``prefix`` (something must follow it); ``replay`` (a
    replay prefix: ``<ts><flag>/`` must follow it). After a prefix nothing may be a dot
    segment in any spelling (:func:`~snapcache.ids.find_dot_segment`): the archive, or a
    proxy in front of it, could resolve it and serve another endpoint.
    """

    hosts: frozenset[str]
    path: str
    kind: Literal["exact", "prefix", "replay"]

    def allows(self, netloc: str, path: str) -> bool:
        """True when a request to ``netloc`` (lower case, as :func:`netloc_of` gives it) on
        ``path`` (as sent, without the query) is one this rule permits."""
        if netloc not in self.hosts:
            return False
        if self.kind == "exact":
            return path == self.path
        if not path.startswith(self.path) or len(path) == len(self.path):
            return False
        rest = path[len(self.path):]
        if self.kind == "replay" and not _REPLAY_HEAD_RE.match(rest):
            return False
        return find_dot_segment(rest) is None


def _hosts(config: Config, entry: ArchiveEntry) -> frozenset[str]:
    """The hosts an archive's requests may go to: the primary's include its availability
    host and ``extra_hosts`` (as :attr:`Config.primary_hosts` says), another its own."""
    return config.primary_hosts if entry == config.primary else frozenset({entry.netloc})


def as_pool(pool: str) -> Pool:
    """``pool`` as a declared :class:`Pool`; :class:`UsageError` for any other name (a
    request on an undeclared pool would have no budget and ignore 429 pauses). Checked at
    run time too, for callers that are not type-checked."""
    if pool not in _POOL_NAMES:
        known = ", ".join(sorted(_POOL_NAMES))
        raise UsageError(f"unknown rate-limit pool {pool!r} (declared: {known})")
    return Pool(pool)


# --- the state file -------------------------------------------------------------------


class StateFile:
    """The shared SQLite state file: one way to open it, create a table and run a
    transaction, for every budget kept in it.

    A connection is opened per operation (they run in worker threads) in WAL mode with a
    long busy timeout, so processes queue for the write lock instead of failing. The file
    (and its ``-wal``/``-shm`` companions) must be regular files: a symbolic link is never
    followed, and the file is created ``O_EXCL | O_NOFOLLOW`` with mode 0600. Every problem
    with the file (damaged, a directory or link in its place, read-only, full disk) raises
    :class:`StateFileError` naming it and saying what to do.
    """

    def __init__(self, path: Path, schema: str) -> None:
        """Create the file's directory and ``schema`` (one ``CREATE TABLE IF NOT EXISTS``)."""
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._error(exc) from exc
        self._check_file()
        with self.reading() as conn:
            conn.execute(schema)

    def _error(self, exc: BaseException) -> StateFileError:
        problem = diagnose(exc, self.path)
        advice = (
            "it holds only rate-limit counters: move it away (a new one is created) or set "
            "[rates] state_path to another file"
            if problem.damaged
            else f"{problem.advice} ([rates] state_path)"
        )
        return StateFileError(
            f"rate-limit state file {str(self.path)!r} {problem.reason}; {advice}",
            path=str(self.path),
        )

    def _check_file(self) -> None:
        """Refuse links and non-files at the path (and its WAL files); create it if absent."""
        for place in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                info = os.lstat(place)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._error(exc) from exc
            if not stat.S_ISREG(info.st_mode):
                # SQLite would follow a link (and write where it points) or fail obscurely.
                kind = file_kind(info.st_mode)
                why = ", which snapcache does not follow" if stat.S_ISLNK(info.st_mode) else ""
                raise StateFileError(
                    f"rate-limit state file {str(place)!r} is {kind}{why}, not a regular "
                    f"file; move it away (a new file is created) or set [rates] state_path "
                    f"to another file",
                    path=str(place),
                )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            os.close(os.open(self.path, flags, 0o600))
        except FileExistsError:
            pass  # already there (checked above), or another process just created it
        except OSError as exc:
            raise self._error(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _file_errors(self) -> Iterator[None]:
        """SQLite errors about the file become one :class:`StateFileError`."""
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except (sqlite3.DatabaseError, OSError) as exc:
            raise self._error(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock is taken at once, so a
        read-modify-write is never interleaved with another process's); committed when the
        block ends, rolled back if it raises."""
        with self._file_errors(), contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads that change nothing."""
        with self._file_errors(), contextlib.closing(self._connect()) as conn:
            yield conn


_BUCKETS_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS buckets (pool TEXT PRIMARY KEY, tokens REAL NOT NULL,"
    " updated REAL NOT NULL, paused_until REAL NOT NULL DEFAULT 0,"
    " last_429 REAL NOT NULL DEFAULT 0)"
)
_DAILY_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS save_daily (day TEXT PRIMARY KEY, count INTEGER)"
)


@dataclass(frozen=True, slots=True)
class PoolState:
    """One pool of one archive host as the shared state file holds it now."""

    key: str
    """The archive host (``host[:port]``) the pool belongs to."""
    pool: Pool
    paused_for: float
    """Seconds left on a 429 or firewall pause (0 when not paused)."""
    tokens: float
    """Tokens in the bucket now, refilled at ``per_minute`` (0 while paused)."""
    per_minute: float
    """The budget this limiter applies to the pool (``math.inf``: no limit)."""


@dataclass(frozen=True, slots=True)
class Take:
    """What one try for a token found: ``wait`` seconds until one is due (0: taken), and
    whether that is a pause (after a 429 or a firewall block) or an empty bucket."""

    wait: float
    paused: bool


class RateLimiter:
    """Token buckets per pool and archive host, kept in a :class:`StateFile` so every
    process on the machine that uses the same file shares one budget.

    A pool paused after a 429 stays paused for everyone until the pause ends. Only the
    pools declared in :class:`Pool` exist: any other name is refused.

    Times in the file are not trusted blindly: a bucket refilled "in the future" (the clock
    was stepped back, or the file is damaged) is taken as refilled now, and a pause longer
    than ``max_pause`` from now is cut to ``max_pause``, with a warning naming the file.
    ``max_pause`` defaults to the longest pause snapcache sets at the default settings
    (``pause_on_429 * FIREWALL_PAUSE_FACTOR``); :meth:`from_config` uses the configured one.
    """

    def __init__(
        self,
        path: Path,
        per_minute: Mapping[Pool, float],
        per_host: Mapping[str, Mapping[Pool, float]] | None = None,
        *,
        max_pause: float = DEFAULT_PAUSE_ON_429 * FIREWALL_PAUSE_FACTOR,
    ) -> None:
        self.path = path
        #: The longest pause this limiter sets or honours, seconds.
        self.max_pause = max_pause
        self.per_minute = {as_pool(pool): rate for pool, rate in per_minute.items()}
        #: Budgets of one archive host (``host[:port]``), overriding ``per_minute`` per pool.
        self.per_host = {
            host: {as_pool(pool): rate for pool, rate in rates.items()}
            for host, rates in (per_host or {}).items()
        }
        self.state = StateFile(path, _BUCKETS_SCHEMA)

    @classmethod
    def from_config(cls, config: Config) -> RateLimiter:
        """The limiter of ``config``: every pool's budget as :class:`Pool` declares it, on
        the shared state file ``config.rate_state_path``."""
        return cls(
            config.rate_state_path,
            {pool: pool.budget(config) for pool in Pool},
            per_host_budgets(config),
            max_pause=config.rates.pause_on_429 * FIREWALL_PAUSE_FACTOR,
        )

    @staticmethod
    def burst(per_minute: float) -> float:
        """Bucket capacity: one second's worth, at least one token.

        Small on purpose: with capacity C the most sent in any minute is C + rate, so a
        large burst would let a cold start overshoot the archive's per-minute window.
        """
        return max(1.0, per_minute / 60.0)

    def budget_for(self, key: str, pool: Pool) -> float | None:
        """Requests per minute for ``pool`` of the archive ``key`` (None or inf: no limit)."""
        declared = as_pool(pool)
        return self.per_host.get(key, {}).get(declared, self.per_minute.get(declared))

    def _take(self, name: str, rate_per_minute: float) -> Take:
        """Take a token if one is there; else say how long until one is due, and why."""
        capacity = self.burst(rate_per_minute)
        with self.state.transaction() as conn:
            # The clock is read under the write lock: read before it, a process that waited
            # for the lock would write an ``updated`` older than the one it replaces, and the
            # next taker would be credited that interval's tokens a second time (measured:
            # four processes got 80% more than the budget).
            now = time.time()
            row = conn.execute(
                "SELECT tokens, updated, paused_until FROM buckets WHERE pool = ?", (name,)
            ).fetchone()
            if row is None:
                tokens, updated, paused_until = capacity, now, 0.0
                conn.execute(
                    "INSERT INTO buckets (pool, tokens, updated) VALUES (?, ?, ?)",
                    (name, tokens, now),
                )
            else:
                tokens, updated, paused_until = float(row[0]), float(row[1]), float(row[2])
            if updated > now:
                # Refilled "in the future": the clock was stepped back (every process here
                # shares it) or the file is damaged. Taken as refilled now; trusting it would
                # refill nothing until the clock caught up, and every request would wait.
                if updated - now > 1.0:
                    _log.warning(
                        "rate-limit state file %s: bucket %s was refilled %.0f s in the "
                        "future (clock stepped back?); taken as refilled now",
                        self.path, name, updated - now,
                    )
                updated = now
            if paused_until > now + self.max_pause:
                paused_until = self._cap_pause(conn, name, now, paused_until)
            if paused_until > now:
                return Take(paused_until - now, paused=True)
            rate = rate_per_minute / 60.0
            tokens = min(capacity, max(0.0, tokens) + (now - updated) * rate)
            taken = tokens >= 1.0
            conn.execute(
                "UPDATE buckets SET tokens = ?, updated = ? WHERE pool = ?",
                (tokens - 1.0 if taken else tokens, now, name),
            )
            # Not taken: the bucket says exactly when the next token is due.
            return Take(0.0 if taken else (1.0 - tokens) / rate, paused=False)

    def _cap_pause(self, conn: sqlite3.Connection, name: str, now: float,
                   paused_until: float) -> float:
        """Cut a pause longer than any snapcache sets to :attr:`max_pause` from now, in the
        file too (so the next reader does not warn again); returns the new end."""
        capped = now + self.max_pause
        _log.warning(
            "rate-limit state file %s: pool %s was paused for %.0f s more, longer than any "
            "pause snapcache sets (clock stepped back, or a damaged file?); cut to %.0f s",
            self.path, name, paused_until - now, self.max_pause,
        )
        conn.execute("UPDATE buckets SET paused_until = ? WHERE pool = ?", (capped, name))
        return capped

    async def acquire(self, key: str, pool: Pool, max_wait: float) -> None:
        """Wait for a token of ``pool`` (under the archive ``key``), at most ``max_wait`` s.

        Raises :class:`DeferredError` when the wait would be longer (the pool is paused
        beyond it), so a caller defers instead of sleeping for an hour, and
        :class:`UsageError` for a pool :class:`Pool` does not declare.
        """
        declared = as_pool(pool)
        rate = self.budget_for(key, declared)
        if rate is None or math.isinf(rate):
            return
        deadline = time.monotonic() + max_wait
        while True:
            take = await asyncio.to_thread(self._take, _bucket(key, declared), rate)
            if take.wait <= 0:
                return
            if time.monotonic() + take.wait > deadline:
                why = "paused" if take.paused else "out of budget"
                raise DeferredError(
                    f"{declared} pool of {key} is {why} for {_seconds_text(take.wait)} "
                    f"more, longer than the wait limit of {_seconds_text(max_wait)}"
                )
            # Sleep until the token (or the pause's end) is due, as the bucket says, not in
            # short polls; another process may take it first, and then we wait again.
            await asyncio.sleep(take.wait + _SLEEP_SLACK)

    def pause(self, key: str, pool: Pool, seconds: float) -> None:
        """Stop every request of ``pool`` for ``seconds``, in every process."""
        name = _bucket(key, as_pool(pool))
        seconds = min(seconds, self.max_pause)
        with self.state.transaction() as conn:
            now = time.time()  # under the lock, as in _take
            # An earlier pause is kept if it ends later, but never beyond max_pause from now
            # (one found further off is not ours to trust: see _take).
            conn.execute(
                "INSERT INTO buckets (pool, tokens, updated, paused_until, last_429)"
                " VALUES (?, 0, ?, ?, ?) ON CONFLICT(pool) DO UPDATE SET tokens = 0,"
                " updated = excluded.updated,"
                " paused_until = MAX(MIN(paused_until, ?), excluded.paused_until),"
                " last_429 = excluded.last_429",
                (name, now, now + seconds, now, now + self.max_pause),
            )

    def recently_paused(self, key: str, within: float) -> bool:
        """True if some pool of ``key`` is paused, or its pause ended less than ``within``
        seconds ago (what a connection failure right after a 429 is judged by)."""
        names = [_bucket(key, pool) for pool in Pool]
        marks = ",".join("?" * len(names))
        with self.state.reading() as conn:
            row = conn.execute(
                f"SELECT MAX(paused_until) FROM buckets WHERE pool IN ({marks})", names
            ).fetchone()
        until = float(row[0]) if row and row[0] is not None else 0.0
        now = time.time()
        until = min(until, now + self.max_pause)  # a pause from the future: see _take
        return until > 0 and now < until + within

    def paused_for(self, key: str, pool: Pool) -> float:
        """Seconds left on a pause of ``pool`` (0 when it is not paused)."""
        with self.state.reading() as conn:
            row = conn.execute(
                "SELECT paused_until FROM buckets WHERE pool = ?", (_bucket(key, as_pool(pool)),)
            ).fetchone()
        return min(self.max_pause, max(0.0, float(row[0]) - time.time())) if row else 0.0

    def states(self) -> list[PoolState]:
        """Every bucket in the state file, as it stands now, without changing anything
        (sorted by host, then pool). Buckets of pools no longer declared are left out."""
        with self.state.reading() as conn:
            rows = conn.execute(
                "SELECT pool, tokens, updated, paused_until FROM buckets"
            ).fetchall()
        now = time.time()
        found: list[PoolState] = []
        for name, tokens, updated, paused_until in rows:
            key, _, pool_name = str(name).rpartition("|")
            if pool_name not in _POOL_NAMES:
                continue  # e.g. "availability", a pool of older versions
            pool = Pool(pool_name)
            rate = self.budget_for(key, pool)
            per_minute = math.inf if rate is None else rate
            # As _take would see them: a pause at most max_pause, a refill time from the
            # future taken as now.
            paused = min(self.max_pause, max(0.0, float(paused_until) - now))
            level = max(0.0, float(tokens))
            if not paused and not math.isinf(per_minute):
                refill = max(0.0, now - float(updated)) * per_minute / 60.0
                level = min(self.burst(per_minute), level + refill)
            found.append(PoolState(key, pool, paused, 0.0 if paused else level, per_minute))
        return sorted(found, key=lambda s: (s.key, list(Pool).index(s.pool)))


#: Added to a computed wait, so that the token is due when we wake (float rounding).
_SLEEP_SLACK: Final = 0.001


def _seconds_text(seconds: float) -> str:
    """A wait in words for messages: whole seconds, rounded up ("1 s" for 0.2 s, never
    "0 s" for a wait that is not zero); "0 s" only for no wait at all."""
    if seconds <= 0:
        return "0 s"
    return f"{math.ceil(seconds)} s"


def _bucket(key: str, pool: Pool) -> str:
    """The state file's name of one pool of one archive host."""
    return f"{key}|{pool.value}"


def per_host_budgets(config: Config) -> dict[str, dict[Pool, float]]:
    """Each archive's budgets for the per-archive pools (cdx, playback), keyed by its host
    (the rate-limit key).

    Two archives on one host (two pywb collections, say) share its buckets, so the stricter
    budget of the two applies to both.
    """
    budgets: dict[str, dict[Pool, float]] = {}
    for entry in config.chain:
        mine = {
            pool: rate for pool in Pool if (rate := pool.archive_budget(entry)) is not None
        }
        known = budgets.setdefault(entry.netloc, mine)
        for pool, rate in mine.items():
            known[pool] = min(known[pool], rate)
    return budgets


class DailyBudget:
    """A per-day count of Save Page Now submissions, shared by every process through the
    rate-limit state file (the archive counts per account, so all our processes share one
    budget)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.state = StateFile(path, _DAILY_SCHEMA)

    def take(self) -> bool:
        """Count one submission today; False (and nothing counted) when the budget is spent."""
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        with self.state.transaction() as conn:
            row = conn.execute("SELECT count FROM save_daily WHERE day = ?", (day,)).fetchone()
            used = int(row[0]) if row else 0
            if used >= self.limit:
                return False
            conn.execute(
                "INSERT INTO save_daily (day, count) VALUES (?, 1) ON CONFLICT(day) DO UPDATE"
                " SET count = count + 1",
                (day,),
            )
            return True
