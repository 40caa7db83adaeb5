"""The exceptions snapcache raises to its callers.

Everything that leaves the library on purpose is a :class:`SnapcacheError`::

    SnapcacheError                      (snapcache.cache.errors: the root)
    ├── CacheError                      the store cannot be used  (snapcache.cache.errors)
    │   ├── UnsafeCacheEntryError       a planted row that would need unpickling
    │   ├── StableIdConflictError       a stable ID would change or be shared
    │   └── NotFoundError (KeyError)    no such URL, resource or stable ID
    ├── ConfigError                     fix the configuration; retrying will not help
    ├── InputError (ValueError)         an unusable URL or timestamp: skip it
    ├── ArchiveError                    an answer that is not a result: recorded, retried later
    │   └── TransientError              may pass: retried with backoff, then recorded
    │       └── RateLimitedError        the archive's own 429: the pool pauses for everyone
    ├── DeferredError                   not now: a pause longer than max_wait; nothing stored
    ├── DisallowedHostError             a request or redirect would leave the archive hosts
    │   └── DisallowedRequestError      ... or the paths its pool may ask for: never sent
    └── UsageError (RuntimeError)       the library was used wrongly
        ├── FetcherClosedError          used after close()
        └── WrongEventLoopError         an AsyncFetcher used from a second event loop

The root lives in the store package (the bottom of the dependency graph) so that store errors
share it; it is re-exported here. Each class says when it is raised and what to do.
"""

from __future__ import annotations

from snapcache.cache.errors import CacheError, SnapcacheError

__all__ = [
    "ArchiveError",
    "CacheError",
    "ConfigError",
    "DeferredError",
    "DisallowedHostError",
    "DisallowedRequestError",
    "FetcherClosedError",
    "InputError",
    "RateLimitedError",
    "SnapcacheError",
    "TransientError",
    "UsageError",
    "WrongEventLoopError",
]


class ConfigError(SnapcacheError):
    """The configuration file or a setting is invalid. The message names the key.

    Fix the configuration; retrying will not help.
    """


class InputError(SnapcacheError, ValueError):
    """A URL or identifier given by the caller is not usable (not http(s), control
    characters, too long, unparsable). Skip it; the message says why."""


class ArchiveError(SnapcacheError):
    """The archive answered in a way that is not a result: a response we cannot classify.

    Recorded on the record as ``error``; a later run tries again.
    """


class TransientError(ArchiveError):
    """A failure that may pass: connection refused or reset, timeout, 5xx, 429, a body
    shorter than its declared length. Retried with backoff; if retries run out it is recorded
    beside the record, never cached as a final outcome."""


class RateLimitedError(TransientError):
    """The archive answered 429 (its own, not an archived one). The pool is paused for
    everyone sharing the rate-limit state; requests resume after the pause."""


class DeferredError(SnapcacheError):
    """Not now: the archive has paused a pool (after a 429 or a firewall block, or a run's
    circuit breaker tripped) for longer than ``rates.max_wait``. Nothing was stored for the
    URL: it is left as it was, for a later run. Unlike :class:`TransientError` it is never
    retried at once (that would only meet the same pause)."""


class DisallowedHostError(SnapcacheError):
    """A request or redirect would leave the configured archive hosts. Not followed."""


class DisallowedRequestError(DisallowedHostError):
    """A request (or a redirect to follow) on an archive host, but outside the paths its
    rate-limit pool may ask for: a replay URL that would leave the replay prefix
    (``/web/<ts><flag>/``), anything but the CDX endpoint on the CDX pool, anything but
    ``/save`` when saving. Refused before it is sent and recorded as an error: what a
    citation URL holds must never reach another endpoint, or another pool's budget.

    A subclass of :class:`DisallowedHostError`, so whoever stops at a foreign host stops
    here too."""


class UsageError(SnapcacheError, RuntimeError):
    """The library was called in a way it cannot serve. A bug in the caller: fix the call."""


class FetcherClosedError(UsageError):
    """A :class:`~snapcache.Fetcher` or :class:`~snapcache.AsyncFetcher` was used after
    ``close()``. Make a new one."""


class WrongEventLoopError(UsageError):
    """An :class:`~snapcache.AsyncFetcher` was used from an event loop other than the one it
    first ran on (its HTTP connections belong to that loop). Make one per loop, or use the
    synchronous :class:`~snapcache.Fetcher`, which owns its loop."""
