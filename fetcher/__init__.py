"""snapcache's fetcher: resolve cited URLs to good Wayback captures, fetch the raw bytes,
extract a preview and store a durable record.

Public surface::

    from snapcache import Fetcher, AsyncFetcher, Config, load_config, SnapcacheError
"""

from snapcache.cache.records import Record

from .config import Config, load_config
from .engine import AsyncFetcher, Fetcher
from .errors import (
    ArchiveError,
    CacheError,
    ConfigError,
    DisallowedHostError,
    InputError,
    RateLimitedError,
    SnapcacheError,
    TransientError,
)
from .ids import mint_stable_id, resource_id

__all__ = [
    "ArchiveError",
    "AsyncFetcher",
    "CacheError",
    "Config",
    "ConfigError",
    "DisallowedHostError",
    "Fetcher",
    "InputError",
    "RateLimitedError",
    "Record",
    "SnapcacheError",
    "TransientError",
    "load_config",
    "mint_stable_id",
    "resource_id",
]
