"""Rate limits shared across processes: per-pool token buckets, 429 pauses and the Save Page
Now daily budget, kept in a shared :class:`~snapcache.transport.state.LimiterState` so that
every process shares one budget (the archive counts per IP and per account, not per
process): one small SQLite file per machine by default
(:class:`~snapcache.transport.statefile.SqliteLimiterState`), or the PostgreSQL database
that several machines share (:class:`snapcache.pglimits.PostgresLimiterState`). The rules
live here, once; a state only stores the numbers and reads its clock under a lock.

Every pool is declared once, in :class:`Pool`, with where its budget comes from and which
paths it may request (:meth:`Pool.path_rules`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal, assert_never
from urllib.parse import urlsplit

from ..config import DEFAULT_PAUSE_ON_429, ArchiveEntry, Config
from ..errors import DeferredError, UsageError
from ..ids import find_dot_segment
from .state import BucketRow, LimiterState, StateChange
from .statefile import SqliteLimiterState, StateFile

#: A connection failing right after a 429 is taken for the archive's firewall block, which
#: pauses every pool of that host for this many ``pause_on_429`` periods (10 min at the
#: defaults). That is the longest pause snapcache ever sets, so a longer one found in the
#: state file (a clock stepped back, a damaged file) is cut to it.
FIREWALL_PAUSE_FACTOR: Final = 10.0

_log = logging.getLogger(__name__)

__all__ = [
    "FIREWALL_PAUSE_FACTOR",
    "BucketRow",
    "DailyBudget",
    "LimiterState",
    "PathRule",
    "Pool",
    "PoolState",
    "RateLimiter",
    "SqliteLimiterState",
    "StateChange",
    "StateFile",
    "Take",
    "as_pool",
    "cdx_endpoint",
    "per_host_budgets",
    "replay_prefix",
    "take_token",
]


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

    @property
    def per_account(self) -> bool:
        """True for the pools the archive counts per account (Save Page Now's), False for
        those it counts per IP address (cdx, playback): ``[rates] scope = "host"`` gives
        each host its own budget of the latter only."""
        return self in (Pool.SAVE, Pool.SAVE_STATUS)

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


# --- the limiter ----------------------------------------------------------------------


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
    """Token buckets per pool and archive host, kept in a shared
    :class:`~snapcache.transport.state.LimiterState` so every process that uses the same
    state (the same SQLite file on a machine, or the same PostgreSQL database across
    machines) shares one budget.

    A pool paused after a 429 stays paused for everyone until the pause ends. Only the
    pools declared in :class:`Pool` exist: any other name is refused.

    Times in the state are not trusted blindly: a bucket refilled "in the future" (the clock
    was stepped back, or the file is damaged) is taken as refilled now, and a pause longer
    than ``max_pause`` from now is cut to ``max_pause``, with a warning naming the state.
    ``max_pause`` defaults to the longest pause snapcache sets at the default settings
    (``pause_on_429 * FIREWALL_PAUSE_FACTOR``); :meth:`from_config` uses the configured one.

    ``state`` is a :class:`LimiterState`, or the path of an SQLite state file
    (:class:`~snapcache.transport.statefile.SqliteLimiterState`).
    """

    def __init__(
        self,
        state: str | os.PathLike[str] | LimiterState,
        per_minute: Mapping[Pool, float],
        per_host: Mapping[str, Mapping[Pool, float]] | None = None,
        *,
        max_pause: float = DEFAULT_PAUSE_ON_429 * FIREWALL_PAUSE_FACTOR,
    ) -> None:
        #: The longest pause this limiter sets or honours, seconds.
        self.max_pause = max_pause
        self.per_minute = {as_pool(pool): rate for pool, rate in per_minute.items()}
        #: Budgets of one archive host (``host[:port]``), overriding ``per_minute`` per pool.
        self.per_host = {
            host: {as_pool(pool): rate for pool, rate in rates.items()}
            for host, rates in (per_host or {}).items()
        }
        #: Where the buckets live (shared with every process using the same place).
        self.state: LimiterState = (
            SqliteLimiterState(Path(state)) if isinstance(state, str | os.PathLike) else state
        )

    @classmethod
    def from_config(cls, config: Config, state: LimiterState | None = None) -> RateLimiter:
        """The limiter of ``config``: every pool's budget as :class:`Pool` declares it, on
        ``state``, by default the shared state file ``config.rate_state_path`` (whoever
        builds the transport for a PostgreSQL store passes the state kept there)."""
        return cls(
            state if state is not None else config.rate_state_path,
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
        where = self.state.description

        def change(row: BucketRow | None, now: float) -> tuple[BucketRow | None, Take]:
            return take_token(row, now, rate_per_minute=rate_per_minute, capacity=capacity,
                              max_pause=self.max_pause, where=where, name=name)

        return self.state.update(name, change)

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
        seconds = min(seconds, self.max_pause)

        def change(row: BucketRow | None, now: float) -> tuple[BucketRow | None, None]:
            # An earlier pause is kept if it ends later, but never beyond max_pause from now
            # (one found further off is not ours to trust: see take_token).
            earlier = row.paused_until if row is not None else 0.0
            until = max(min(earlier, now + self.max_pause), now + seconds)
            return BucketRow(tokens=0.0, updated=now, paused_until=until, last_429=now), None

        self.state.update(_bucket(key, as_pool(pool)), change)

    def recently_paused(self, key: str, within: float) -> bool:
        """True if some pool of ``key`` is paused, or its pause ended less than ``within``
        seconds ago (what a connection failure right after a 429 is judged by)."""
        now, rows = self.state.read([_bucket(key, pool) for pool in Pool])
        until = max((row.paused_until for row in rows.values()), default=0.0)
        until = min(until, now + self.max_pause)  # a pause from the future: see take_token
        return until > 0 and now < until + within

    def paused_for(self, key: str, pool: Pool) -> float:
        """Seconds left on a pause of ``pool`` (0 when it is not paused)."""
        name = _bucket(key, as_pool(pool))
        now, rows = self.state.read([name])
        row = rows.get(name)
        return min(self.max_pause, max(0.0, row.paused_until - now)) if row else 0.0

    def states(self) -> list[PoolState]:
        """Every bucket in the shared state, as it stands now, without changing anything
        (sorted by host, then pool). Buckets of pools no longer declared are left out."""
        now, rows = self.state.read()
        found: list[PoolState] = []
        for name, row in rows.items():
            key, _, pool_name = name.rpartition("|")
            if pool_name not in _POOL_NAMES:
                continue  # e.g. "availability", a pool of older versions
            pool = Pool(pool_name)
            rate = self.budget_for(key, pool)
            per_minute = math.inf if rate is None else rate
            # As take_token would see them: a pause at most max_pause, a refill time from
            # the future taken as now.
            paused = min(self.max_pause, max(0.0, row.paused_until - now))
            level = max(0.0, row.tokens)
            if not paused and not math.isinf(per_minute):
                refill = max(0.0, now - row.updated) * per_minute / 60.0
                level = min(self.burst(per_minute), level + refill)
            found.append(PoolState(key, pool, paused, 0.0 if paused else level, per_minute))
        return sorted(found, key=lambda s: (s.key, list(Pool).index(s.pool)))

    def close(self) -> None:
        """Release the state's connections (a PostgreSQL state holds a few)."""
        self.state.close()


def take_token(
    row: BucketRow | None, now: float, *, rate_per_minute: float, capacity: float,
    max_pause: float, where: str, name: str,
) -> tuple[BucketRow | None, Take]:
    """The token-bucket rule, applied to a bucket's stored ``row`` at ``now`` (read under
    its lock): the row to store (None: unchanged) and what the taker found.

    A new bucket starts full. Stored times are not trusted blindly: a refill time in the
    future (a clock stepped back, a damaged state) is taken as now, since trusting it would
    refill nothing until the clock caught up and every request would wait; a pause ending
    more than ``max_pause`` from now is cut to that, in the state too (so the next reader
    does not warn again). Both are logged, naming the state (``where``) and the bucket.
    """
    fresh = row is None
    stored = BucketRow(tokens=capacity, updated=now) if row is None else row
    updated, paused_until = stored.updated, stored.paused_until
    if updated > now:
        if updated - now > 1.0:
            _log.warning("%s: bucket %s was refilled %.0f s in the future (clock stepped "
                         "back?); taken as refilled now", where, name, updated - now)
        updated = now
    if paused_until > now + max_pause:
        _log.warning("%s: pool %s was paused for %.0f s more, longer than any pause "
                     "snapcache sets (clock stepped back, or a damaged state?); cut to %.0f s",
                     where, name, paused_until - now, max_pause)
        paused_until = now + max_pause
        stored = replace(stored, paused_until=paused_until)
        fresh = True  # the cut is written back
    if paused_until > now:
        return (stored if fresh else None), Take(paused_until - now, paused=True)
    rate = rate_per_minute / 60.0
    tokens = min(capacity, max(0.0, stored.tokens) + (now - updated) * rate)
    taken = tokens >= 1.0
    new = replace(stored, tokens=tokens - 1.0 if taken else tokens, updated=now)
    # Not taken: the bucket says exactly when the next token is due.
    return new, Take(0.0 if taken else (1.0 - tokens) / rate, paused=False)


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
    rate-limit state (the archive counts per account, so all our processes, on every
    machine sharing a PostgreSQL state, share one budget).

    ``state`` is a :class:`LimiterState` (a limiter's :attr:`RateLimiter.state`) or the path
    of an SQLite state file."""

    def __init__(self, state: str | os.PathLike[str] | LimiterState, limit: int) -> None:
        self.limit = limit
        self.state: LimiterState = (
            SqliteLimiterState(Path(state)) if isinstance(state, str | os.PathLike) else state
        )

    def take(self) -> bool:
        """Count one submission today; False (and nothing counted) when the budget is spent."""
        return self.state.count_daily(self.limit)
