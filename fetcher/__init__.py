"""snapcache: resolve cited URLs to good Wayback captures, fetch the raw bytes, extract a
preview and keep a durable record.

Public surface::

    from snapcache import Fetcher, AsyncFetcher, Config, load_config, Record, SnapcacheError
    from snapcache.cache import SnapshotCache, Store       # the store and its contract

See the README's Layout section for the modules and their layers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from snapcache.cache import Record

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

if TYPE_CHECKING:
    from .api import AsyncFetcher, Fetcher
    from .protocols import FetchEngine, Plan
    from .runner import RunControl, RunEvent, RunOptions, RunPolicy, RunSummary, SaveOptions
    from .transport import PoolState, TransportStats

#: The fetching layers, imported on first use of one of their names: they bring the HTTP
#: client, the archive protocol and the extractors, which the command line's read-only
#: commands (stats, list, show, export) never use, and which take longer to import than
#: those commands take to run.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("AsyncFetcher", "Fetcher"), "api"),
    **dict.fromkeys(("FetchEngine", "Plan"), "protocols"),
    **dict.fromkeys(("RunControl", "RunEvent", "RunOptions", "RunPolicy", "RunSummary",
                     "SaveOptions"), "runner"),
    **dict.fromkeys(("PoolState", "TransportStats"), "transport"),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
