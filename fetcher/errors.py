"""The exceptions snapcache raises to its callers.

Everything that leaves the library on purpose is a :class:`SnapcacheError`::

    SnapcacheError                      (snapcache.cache.errors: the root)
    ├── CacheError                      the store cannot be used  (snapcache.cache.errors)
    │   ├── UnsafeCacheEntryError       a planted row that would need unpickling
    │   ├── StoreDamagedError           cache.db is truncated, corrupt, not a database
    │   ├── StoreUnavailableError       the store cannot be written: read-only, full disk
    │   ├── UnsafeLocationError         a folder others may write, a link where a file goes
    │   ├── DamagedRecordError          one stored record cannot be read (also a
    │   │                               RecordFormatError): reported and skipped by listings
    │   ├── StableIdConflictError       a stable ID would change or be shared
    │   └── NotFoundError (KeyError)    no such URL, resource or stable ID
    ├── StateFileError                  the rate-limit state file is damaged or unusable
    ├── ConfigError                     fix the configuration; retrying will not help
    ├── InputError (ValueError)         an unusable URL or timestamp: skip it
    ├── ArchiveError                    an answer that is not a result: recorded, retried later
    │   ├── ArchiveProtocolError        an answer that breaks the protocol (a bad Location,
    │   │                               Memento-Datetime or CDX body): recorded, not retried
    │   └── TransientError              may pass: retried with backoff, then recorded
    │       ├── RateLimitedError        the archive's own 429: the pool pauses for everyone
    │       ├── ArchiveUnreachableError no connection at all: host unresolvable or refusing
    │       └── DeadlineExceededError   one URL took longer than archive.url_deadline
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
    "ArchiveProtocolError",
    "ArchiveUnreachableError",
    "CacheError",
    "ConfigError",
    "DeadlineExceededError",
    "DeferredError",
    "DisallowedHostError",
    "DisallowedRequestError",
    "FetcherClosedError",
    "InputError",
    "RateLimitedError",
    "SnapcacheError",
    "StateFileError",
    "TransientError",
    "UsageError",
    "WrongEventLoopError",
]


class StateFileError(SnapcacheError):
    """The rate-limit state file (``[rates] state_path``) cannot be used: it is damaged (not
    a database, corrupt), something else stands in its place (a directory, a symbolic link),
    or it cannot be written (read-only, full disk). The message names the file.

    It holds only rate-limit counters and pauses: move it away (a new one is created) or
    point ``[rates] state_path`` elsewhere. ``path`` is the file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


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


class ArchiveProtocolError(ArchiveError):
    """The archive's answer breaks the protocol in a way no retry will mend: a ``Location``
    that is no URL (``mailto:``), a ``Memento-Datetime`` that is no date (or one before the
    web or in the future), a body that cannot be inflated, a CDX answer that cannot be
    parsed. Every exception the HTTP client or a parser raises on archive bytes becomes
    this (or a :class:`TransientError`) at one boundary, so none escapes as a traceback.

    Recorded on the record as ``error`` (retried after the error TTL), never cached as a
    final outcome.
    """


class TransientError(ArchiveError):
    """A failure that may pass: connection refused or reset, timeout, 5xx, 429, a body
    shorter than its declared length. Retried with backoff; if retries run out it is recorded
    beside the record, never cached as a final outcome."""


class RateLimitedError(TransientError):
    """The archive answered 429 (its own, not an archived one). The pool is paused for
    everyone sharing the rate-limit state; requests resume after the pause."""


class ArchiveUnreachableError(TransientError):
    """No connection to the archive at all: its host name cannot be resolved, or it refuses
    or does not accept connections. Unlike an archive's answer (a 5xx, a reset mid-body),
    this says nothing about the URL; offline, every URL fails this way.

    ``host`` is the archive host (``host[:port]``), ``cause`` what went wrong ("the host
    name cannot be resolved", "connection refused", ...), and ``first_contact`` is True
    when this process had never reached that host before (then it is not retried: the
    network is most likely down, and a run's next URLs are the retries). A run whose first
    URLs all fail this way defers the rest (exit 75) instead of failing every URL in turn.
    """

    def __init__(self, message: str, *, host: str, cause: str, first_contact: bool) -> None:
        super().__init__(message)
        self.host = host
        self.cause = cause
        self.first_contact = first_contact


class DeadlineExceededError(TransientError):
    """One URL's requests and hops took longer than ``[archive] url_deadline`` (time spent
    waiting for a rate token or a 429 pause does not count). The attempt is recorded as a
    transient ``error`` ("took longer than N s") and retried after the error TTL: an archive
    that answers just under every timeout never turns into a final outcome. Not retried at
    once, and the next archive of a chain is not tried (the URL's time is up)."""


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
