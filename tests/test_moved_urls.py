"""A moved record stays moved: its old URL (an alias) is fetched by the record's current URL.

Before, ``fetch A``, ``move A B``, ``fetch --force A`` stored A's title, text and
``original_url`` in the record now named B, and every nightly run of a list still naming A
undid the correction again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from snapcache import AsyncFetcher, Fetcher

from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.test_cli import run, write_config

OLD = "https://example.org/typo"
NEW = "https://example.org/fixed"


def _captures(emulator: Any) -> None:
    emulator.add_capture(OLD, "20220101000000", body=html_page("Typo page", "the typo text"))
    emulator.add_capture(NEW, "20230101000000", body=html_page("Fixed page", "the fixed text"))


def _old_url_requests(emulator: Any) -> list[str]:
    return [path for _pool, _method, path in emulator.requests if "typo" in path]


def test_fetching_the_old_url_of_a_moved_record_fetches_its_current_url(
    tmp_path: Path, emulator: Any
) -> None:
    _captures(emulator)
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        first = f.fetch(OLD)
        assert first.title == "Typo page"
        f.move(OLD, NEW)
        emulator.reset_counters()
        forced = f.fetch(OLD, force=True)
        text = f.cache.get_text(first.resource_id) or ""
    assert _old_url_requests(emulator) == []  # nothing asked for the old URL
    assert (forced.resource_id, forced.stable_id) == (first.resource_id, first.stable_id)
    assert forced.url == NEW
    assert forced.title == "Fixed page" and forced.capture_timestamp == "20230101000000"
    assert forced.original_url is not None and "fixed" in forced.original_url
    assert "the fixed text" in text and "typo" not in text


def test_the_plan_of_an_old_url_names_the_current_one(tmp_path: Path, emulator: Any) -> None:
    _captures(emulator)
    config = emulator_config(tmp_path, emulator.base_url)
    with Fetcher(config) as f:
        first = f.fetch(OLD)
        f.move(OLD, NEW)
    fetcher = AsyncFetcher(config)
    try:
        plan = fetcher.plan(OLD)
        assert plan.alias == OLD and plan.target.given == NEW
        assert plan.resource_id == first.resource_id and not plan.due
        current = fetcher.plan(NEW)
        assert current.alias is None and current.resource_id == first.resource_id
    finally:
        asyncio.run(fetcher.aclose())


def test_a_run_listing_the_old_url_keeps_the_move_and_says_so(
    tmp_path: Path, emulator: Any
) -> None:
    _captures(emulator)
    cfg = write_config(tmp_path, emulator.base_url)
    assert run("--config", str(cfg), "fetch", OLD).returncode == 0
    assert run("--config", str(cfg), "move", OLD, NEW).returncode == 0
    listing = tmp_path / "list.txt"
    listing.write_text(OLD + "\n")
    emulator.reset_counters()
    for _night in range(2):  # the list is never corrected: the move must hold every night
        out = run("--config", str(cfg), "run", "--force", str(listing))
        assert out.returncode == 0, out.stderr
        assert f"line 1: ok 20230101000000 {OLD} (moved to {NEW})" in out.stdout
    assert _old_url_requests(emulator) == []
    shown = run("--config", str(cfg), "show", OLD)
    assert "Fixed page" in shown.stdout and "Typo page" not in shown.stdout
    dry = run("--config", str(cfg), "run", "--force", "--dry-run", str(listing))
    assert f"would fetch {OLD} (moved to {NEW})" in dry.stdout
