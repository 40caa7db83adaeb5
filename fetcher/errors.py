"""The exceptions snapcache raises to its callers.

One root, :class:`SnapcacheError`, lives in the ``cache`` package (the bottom of the
dependency graph) so that cache errors share it; it is re-exported here. Each subclass says
when it is raised and what the caller should do.
"""

from __future__ import annotations

from cache.errors import CacheError, SnapcacheError

__all__ = [
    "ArchiveError",
    "CacheError",
    "ConfigError",
    "DeferredError",
    "DisallowedHostError",
    "InputError",
    "RateLimitedError",
    "SnapcacheError",
    "TransientError",
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


class DeferredError(TransientError):
    """The archive has paused a pool (after a 429, or a run's circuit breaker tripped) for
    longer than ``rates.max_wait``. Nothing was stored for the URL: it is left as it was,
    for a later run."""


class DisallowedHostError(SnapcacheError):
    """A request or redirect would leave the configured archive hosts. Not followed."""
