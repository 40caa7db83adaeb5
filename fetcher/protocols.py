"""The one-fetch engine as the layers above it see it: a typed interface, no implementation.

The runner (:mod:`snapcache.runner`) and the save pass (:mod:`snapcache.save`) depend on
:class:`FetchEngine`, not on :class:`~snapcache.engine.Engine`, so the engine knows nothing of
runs or saving and either side can change without the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from snapcache.cache import Record, RecordFacts, Store

from .config import Config
from .ids import Target
from .transport import TransportStats


@dataclass(frozen=True, slots=True)
class Plan:
    """What :meth:`FetchEngine.plan` decided for one URL (no request made)."""

    target: Target
    at: str | None
    """The capture time asked for (14 digits), or None for the newest."""
    resource_id: str
    existing: Record | None
    """The stored record; always read when the URL is due. For a fresh URL planned
    without ``with_record`` it is not read, and None: see :attr:`facts`."""
    due: bool
    """True when the URL must be fetched."""
    reason: str
    """Why: "missing", "forced", "stale since …", "fresh until …"."""
    alias: str | None = None
    """The URL asked for, when it is an old URL (an alias) of a record since moved: the
    fetch then goes to :attr:`target`, built from the record's current URL, so the old
    URL's content never lands in the corrected record."""
    full: bool = False
    """Fetch the capture in full even when the stored record holds it. Without it a
    refresh first asks which capture is the newest and, when it is the stored one, only
    confirms it (one request, no body)."""
    facts: RecordFacts | None = None
    """What the store says of the stored record (None when there is none): who it is and
    when it was last attempted, all freshness is judged by."""


class FetchEngine(Protocol):
    """Plan and make one fetch, store its record, and report the requests made."""

    @property
    def config(self) -> Config:
        """The configuration in use."""
        ...

    @property
    def store(self) -> Store:
        """The record store every result is written to."""
        ...

    def plan(
        self, url: str, at: str | None = None, force: bool = False, *, checked: bool = False,
        full: bool = False, with_record: bool = True,
    ) -> Plan:
        """Decide from the store alone whether ``url`` needs fetching, and why.

        Raises :class:`~snapcache.errors.InputError` for an unusable URL or timestamp.
        ``checked`` says the URL already passed :func:`~snapcache.ids.check_url`; ``full``
        asks for a full fetch, never a confirmation of the stored capture
        (:attr:`Plan.full`). Without ``with_record``, a fresh URL's record is not read
        (:attr:`Plan.existing` None; :attr:`Plan.facts` says what the store holds).
        """
        ...

    async def attempt(
        self, plan: Plan, stable_id: str | None = None, *, defer_unreachable: bool = False
    ) -> Record:
        """Resolve, fetch, extract and store one planned URL, whatever its freshness.

        Returns the stored record (a failure never replaces a good one). Raises
        :class:`~snapcache.errors.DeferredError` when the archive paused us for longer than
        the current wait limit (nothing stored), and
        :class:`~snapcache.cache.StableIdConflictError` for a conflicting ``stable_id``.
        With ``defer_unreachable``, an attempt that could not connect to any archive at all
        raises :class:`~snapcache.errors.ArchiveUnreachableError` and stores nothing (it
        says nothing about the URL); without it, that failure is recorded like any other.
        """
        ...

    def stats(self) -> TransportStats:
        """Requests made so far, per pool, with the 429s met and the pauses taken."""
        ...
