"""The public facade: what it exposes (stats, limiter state), what it refuses (use after
close, a second event loop) and what it never does (change the transport it was given)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from snapcache import (
    AsyncFetcher,
    Fetcher,
    FetcherClosedError,
    SnapcacheError,
    UsageError,
    WrongEventLoopError,
)
from snapcache.transport import Transport

from tests.conftest import emulator_config
from tests.docgen import html_page


def test_stats_count_requests_per_pool_and_the_429s_met(emulator: Any, fetcher: Fetcher) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    before = fetcher.stats
    fetcher.fetch("https://a.example/")
    after = fetcher.stats
    assert sum(after.requests.values()) > sum(before.requests.values())
    assert after.requests.get("playback", 0) == emulator.counts["playback"]
    assert after.rate_limited == 0 and after.pauses == 0
    fetcher.fetch("https://a.example/")  # fresh: answered from the store
    assert fetcher.stats == after


def test_rate_limits_read_the_shared_state_without_changing_it(
    emulator: Any, fetcher: Fetcher
) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    fetcher.fetch("https://a.example/")
    states = fetcher.rate_limits()
    key = emulator.base_url.split("//")[1]
    mine = {s.pool: s for s in states if s.key == key}
    assert "playback" in mine and mine["playback"].paused_for == 0
    again = {s.pool: s for s in fetcher.rate_limits() if s.key == key}
    assert again.keys() == mine.keys()
    # Reading takes no token: a bucket can only have refilled since.
    assert all(again[p].tokens >= mine[p].tokens for p in mine)


def test_a_closed_fetcher_refuses_every_call_with_a_snapcache_error(config: Any) -> None:
    f = Fetcher(config)
    f.close()
    f.close()  # closing twice is harmless
    calls = [
        lambda: f.fetch("https://a.example/"),
        lambda: f.fetch_many(["https://a.example/"]),
        lambda: f.run(["https://a.example/"]),
        lambda: f.lookup("https://a.example/"),
    ]
    for call in calls:
        with pytest.raises(FetcherClosedError) as info:
            call()
        assert isinstance(info.value, SnapcacheError) and isinstance(info.value, UsageError)


def test_an_async_fetcher_is_refused_on_a_second_event_loop(
    emulator: Any, config: Any
) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))

    async def make() -> AsyncFetcher:
        return AsyncFetcher(config)

    async def fetch(f: AsyncFetcher) -> str:
        return (await f.fetch("https://a.example/")).status

    loop = asyncio.new_event_loop()
    try:
        f = loop.run_until_complete(make())
        assert loop.run_until_complete(fetch(f)) == "ok"
        with pytest.raises(WrongEventLoopError):
            asyncio.run(fetch(f))
        loop.run_until_complete(f.aclose())
        with pytest.raises(FetcherClosedError):
            loop.run_until_complete(fetch(f))
    finally:
        loop.close()


def test_a_run_and_the_engine_leave_a_given_transport_as_it_was(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    config = emulator_config(tmp_path, emulator.base_url)
    other_tmp = tmp_path / "elsewhere"

    async def go() -> tuple[Any, Any]:
        transport = Transport(config, tmpdir=other_tmp)
        before = (transport.tmpdir, vars(transport).copy() if hasattr(transport, "__dict__")
                  else None)
        async with AsyncFetcher(config, transport=transport) as f:
            await f.run(["https://a.example/"], max_wait=0.5, concurrency=2)
        after = (transport.tmpdir, vars(transport).copy() if hasattr(transport, "__dict__")
                 else None)
        await transport.aclose()  # the caller's to close: the fetcher did not own it
        return before, after

    before, after = asyncio.run(go())
    assert after[0] == other_tmp
    assert before == after
