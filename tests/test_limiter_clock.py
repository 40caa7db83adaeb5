"""The shared rate limiter does not trust times from the future in its state file.

A clock stepped back, or a damaged file, left a bucket "refilled" in the future (nothing
refilled until the clock caught up: ``fetch`` stalled until ``max_wait`` while polling the
file, ``run`` deferred saying "paused for 0 s more") or a pause ending in the year 3000
(every run deferred forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache.errors import DeferredError
from snapcache.transport import FIREWALL_PAUSE_FACTOR, Pool, RateLimiter

from tests.docgen import html_page
from tests.test_cli import run, write_config

YEAR_3000 = 32503680000.0


def _edit(path: Path, name: str, **values: float) -> None:
    """Set columns of one bucket row, as a stepped clock or a damaged file leaves them."""
    sets = ", ".join(f"{column} = ?" for column in values)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"UPDATE buckets SET {sets} WHERE pool = ?", (*values.values(), name))


def _row(path: Path, name: str) -> tuple[float, float, float]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute("SELECT tokens, updated, paused_until FROM buckets WHERE pool = ?",
                           (name,)).fetchone()
    return float(row[0]), float(row[1]), float(row[2])


def _count_transactions(limiter: RateLimiter) -> list[int]:
    """Count the write transactions the limiter opens (each one a visit to the file)."""
    calls = [0]
    real = limiter.state.transaction

    @contextlib.contextmanager
    def counted() -> Iterator[sqlite3.Connection]:
        calls[0] += 1
        with real() as conn:
            yield conn

    limiter.state.transaction = counted  # type: ignore[method-assign]
    return calls


def _acquire(limiter: RateLimiter, max_wait: float, key: str = "h") -> None:
    asyncio.run(limiter.acquire(key, Pool.PLAYBACK, max_wait))


def test_a_bucket_refilled_in_the_future_is_taken_as_refilled_now(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rl.sqlite"
    limiter = RateLimiter(path, {Pool.PLAYBACK: 120.0})  # 2 a second, burst 2
    _acquire(limiter, 5)
    _edit(path, "h|playback", tokens=0.0, updated=time.time() + 3600)
    calls = _count_transactions(limiter)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        _acquire(limiter, 5)  # stalled 5 s, then deferred, when the future was trusted
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed  # one token at 2 a second: about 0.5 s
    assert calls[0] <= 3, calls  # it slept until the token was due, no polling
    assert _row(path, "h|playback")[1] <= time.time()
    assert str(path) in caplog.text and "future" in caplog.text


def test_a_pause_in_the_year_3000_is_cut_to_the_longest_pause_we_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rl.sqlite"
    limiter = RateLimiter(path, {Pool.PLAYBACK: 600.0}, max_pause=30.0)
    limiter.pause("h", Pool.PLAYBACK, 1.0)
    _edit(path, "h|playback", paused_until=YEAR_3000, last_429=YEAR_3000)
    assert 29 < limiter.paused_for("h", Pool.PLAYBACK) <= 30
    assert [s.paused_for for s in limiter.states()] == [pytest.approx(30, abs=1)]
    with caplog.at_level(logging.WARNING), pytest.raises(DeferredError) as deferred:
        _acquire(limiter, 0)
    message = str(deferred.value)
    assert "paused for 30 s more" in message, message
    assert str(path) in caplog.text
    # The cut is written back: the next process neither waits for ever nor warns again.
    assert _row(path, "h|playback")[2] <= time.time() + 30
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(DeferredError):
        _acquire(limiter, 0)
    assert caplog.text == ""


def test_the_longest_pause_is_the_firewall_pause_of_the_configuration(tmp_path: Path) -> None:
    from snapcache.config import config_from_mapping

    config = config_from_mapping(
        {"rates": {"pause_on_429": 7.0, "state_path": str(tmp_path / "rl.sqlite")},
         "cache": {"path": str(tmp_path / "store")}}, source="test")
    limiter = RateLimiter.from_config(config)
    assert limiter.max_pause == 7.0 * FIREWALL_PAUSE_FACTOR
    limiter.pause("h", Pool.CDX, 10_000.0)
    assert limiter.paused_for("h", Pool.CDX) <= 70.0


@pytest.mark.parametrize("paused", [0.3, 0.0])
def test_a_deferral_never_says_paused_for_0_s_more(tmp_path: Path, paused: float) -> None:
    limiter = RateLimiter(tmp_path / "rl.sqlite", {Pool.PLAYBACK: 60.0})  # burst 1
    if paused:
        limiter.pause("h", Pool.PLAYBACK, paused)
    else:
        _acquire(limiter, 5)  # the one token taken: the next is ~1 s off
    with pytest.raises(DeferredError) as deferred:
        _acquire(limiter, 0)
    message = str(deferred.value)
    assert " 0 s more" not in message and "1 s more" in message, message
    assert ("paused" if paused else "out of budget") in message


def test_waiting_for_a_token_or_a_pause_sleeps_until_it_is_due(tmp_path: Path) -> None:
    limiter = RateLimiter(tmp_path / "rl.sqlite", {Pool.PLAYBACK: 60.0})  # 1 a second
    _acquire(limiter, 5)
    calls = _count_transactions(limiter)
    started = time.monotonic()
    _acquire(limiter, 5)
    assert 0.8 < time.monotonic() - started < 2.0
    assert calls[0] <= 2, calls
    limiter.pause("h", Pool.PLAYBACK, 1.5)
    calls[0] = 0
    _acquire(limiter, 5)
    assert calls[0] <= 3, calls


def test_a_run_on_a_state_file_from_the_future_neither_stalls_nor_defers(
    tmp_path: Path, emulator: Any
) -> None:
    """The CLI, as cron runs it, after the clock was stepped back an hour: the run used to
    defer (exit 75) saying "paused or out of budget for 0 s more"."""
    urls = [f"https://clock{i}.example/" for i in range(3)]
    for url in urls:
        emulator.add_capture(url, "20220101000000", body=html_page("C", "clock"))
    cfg = write_config(tmp_path, emulator.base_url)
    state = tmp_path / "rl.sqlite"
    key = emulator.base_url.split("//")[1]
    RateLimiter(state, {Pool.PLAYBACK: 480.0}).pause(key, Pool.PLAYBACK, 0.01)
    _edit(state, f"{key}|playback", tokens=0.0, updated=time.time() + 3600)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(urls) + "\n")
    started = time.monotonic()
    out = run("--config", str(cfg), "run", "--max-wait", "3", str(listing))
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - started < 15
    assert "0 s more" not in out.stdout + out.stderr
    assert str(state) in out.stderr  # the warning names the state file


def test_a_run_on_a_pause_from_the_year_3000_waits_at_most_the_longest_pause(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.add_capture("https://far.example/", "20220101000000", body=html_page("F", "far"))
    cfg = write_config(tmp_path, emulator.base_url)
    cfg.write_text(cfg.read_text().replace("pause_on_429 = 1.0", "pause_on_429 = 0.2"))
    state = tmp_path / "rl.sqlite"
    key = emulator.base_url.split("//")[1]
    RateLimiter(state, {Pool.PLAYBACK: 480.0}).pause(key, Pool.PLAYBACK, 0.01)
    _edit(state, f"{key}|playback", paused_until=YEAR_3000)
    listing = tmp_path / "list.txt"
    listing.write_text("https://far.example/\n")
    out = run("--config", str(cfg), "run", "--max-wait", "10", str(listing))
    # The pause was cut to pause_on_429 * FIREWALL_PAUSE_FACTOR = 2 s, then the run went on.
    assert out.returncode == 0, out.stdout + out.stderr
    assert str(state) in out.stderr
