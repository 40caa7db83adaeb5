"""snapcache: resolve cited URLs to good Wayback captures, fetch the raw bytes, extract a
preview and keep a durable record.

Public surface::

    from snapcache import Fetcher, AsyncFetcher, Config, load_config, Record, SnapcacheError
    from snapcache.cache import SnapshotCache, Store       # the store and its contract

See the README's Layout section for the modules and their layers.
"""

from snapcache.cache import Record

from .api import AsyncFetcher, Fetcher
from .config import Config, load_config
from .errors import (
    ArchiveError,
    ArchiveProtocolError,
    ArchiveUnreachableError,
    CacheError,
    ConfigError,
    DeadlineExceededError,
    DeferredError,
    DisallowedHostError,
    DisallowedRequestError,
    FetcherClosedError,
    InputError,
    RateLimitedError,
    SnapcacheError,
    StateFileError,
    TransientError,
    UsageError,
    WrongEventLoopError,
)
from .ids import mint_stable_id, resource_id
from .protocols import FetchEngine, Plan
from .runner import RunControl, RunEvent, RunOptions, RunPolicy, RunSummary, SaveOptions
from .transport import PoolState, TransportStats

__all__ = [
    "ArchiveError",
    "ArchiveProtocolError",
    "ArchiveUnreachableError",
    "AsyncFetcher",
    "CacheError",
    "Config",
    "ConfigError",
    "DeadlineExceededError",
    "DeferredError",
    "DisallowedHostError",
    "DisallowedRequestError",
    "FetchEngine",
    "Fetcher",
    "FetcherClosedError",
    "InputError",
    "Plan",
    "PoolState",
    "RateLimitedError",
    "Record",
    "RunControl",
    "RunEvent",
    "RunOptions",
    "RunPolicy",
    "RunSummary",
    "SaveOptions",
    "SnapcacheError",
    "StateFileError",
    "TransientError",
    "TransportStats",
    "UsageError",
    "WrongEventLoopError",
    "load_config",
    "mint_stable_id",
    "resource_id",
]
