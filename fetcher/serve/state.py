"""What every request handler shares: the configuration, the store, the fetcher, the
summary cache and the fetch queue. One :class:`ServerState` per application."""

from __future__ import annotations

from dataclasses import dataclass

from snapcache.api import AsyncFetcher
from snapcache.cache import Store, TTLs
from snapcache.config import Config
from snapcache.engine import ttls_from_config
from starlette.requests import Request

from .jobs import FetchQueue
from .summary import SummaryCache

__all__ = ["ServerState", "open_state", "state_of"]


@dataclass(slots=True)
class ServerState:
    """The server's long-lived parts."""

    config: Config
    fetcher: AsyncFetcher
    ttls: TTLs
    #: The write API's bearer token; empty when the write API is off.
    token: str
    summary: SummaryCache
    queue: FetchQueue

    @property
    def store(self) -> Store:
        """The record store (any backend: only :class:`~snapcache.cache.Store` is used)."""
        return self.fetcher.cache

    async def aclose(self) -> None:
        """Stop the fetch queue, then close the fetcher and its store."""
        await self.queue.close()
        await self.fetcher.aclose()


def open_state(config: Config, store: Store | None, token: str,
               summary_ttl: float) -> ServerState:
    """Open the fetcher (and, unless given, the store the configuration names)."""
    fetcher = AsyncFetcher(config, cache=store)
    return ServerState(
        config=config,
        fetcher=fetcher,
        ttls=ttls_from_config(config),
        token=token,
        summary=SummaryCache(fetcher.cache, config, summary_ttl),
        queue=FetchQueue(fetcher, config.run.concurrency),
    )


def state_of(request: Request) -> ServerState:
    """The :class:`ServerState` of the application serving ``request``."""
    state: ServerState = request.app.state.snapcache
    return state
