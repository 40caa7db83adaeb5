"""2,000 generated hostile citation URLs through ``Fetcher.run`` against the loopback
emulator: no traceback, no request outside the replay prefix or the CDX endpoint, every line
fetched or reported with a reason.

The URLs are built from the hostile building blocks (dot segments in every spelling,
backslashes, ``..;``, ``?``/``#`` games, userinfo, IDN and fullwidth hosts, overlong paths)
plus random unicode and percent-escapes, from a fixed seed (tests/replay_hostile.py), with a
good URL every tenth line. The emulator runs without limits and the client with tiny
backoffs, so the run takes seconds, not the hours the real budgets would.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from snapcache import Fetcher
from snapcache.runner import RunEvent

from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.replay_hostile import hostile_list, leaves_prefix
from tests.wayback_emulator import WaybackEmulator

COUNT = 2000
SEED = 20240101
TS = "20240101000000"


def test_two_thousand_generated_hostile_urls_stay_inside_the_replay_prefix(
    tmp_path: Path,
) -> None:
    with WaybackEmulator(load_recordings=False) as emulator:
        good = [f"https://good.example/{i}" for i in range(20)]
        for i, url in enumerate(good):
            emulator.add_capture(url, TS, body=html_page(f"Good {i}", f"page {i}"))
        lines = hostile_list(COUNT, SEED, good)
        config = emulator_config(
            tmp_path, emulator.base_url,
            # Unarchived URLs cost one playback request each, not a CDX query too.
            archive={"confirm_not_archived": False},
            rates={"cdx_per_minute": 600000.0, "playback_per_minute": 600000.0},
            retry={"max_attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.02},
            run={"circuit_breaker": 100000},
        )
        events: list[RunEvent] = []
        started = time.monotonic()
        with Fetcher(config) as f:
            summary = f.run(lines, on_result=events.append, concurrency=8)
        elapsed = time.monotonic() - started
        requests = list(emulator.requests)
        counts = dict(emulator.counts)

    hostile_lines = len(lines) - sum(url in good for url in lines)
    assert hostile_lines >= COUNT
    by_line = {e.line: e for e in events}
    assert sorted(by_line) == list(range(1, len(lines) + 1)), "a line went unreported"
    kinds = Counter(e.kind for e in events)
    assert set(kinds) <= {"fetched", "invalid", "duplicate"}, kinds
    for event in events:
        if event.kind == "fetched":
            # A record means the attempt was stored; "not stored: <exception>" (a
            # traceback the runner caught) never happens.
            assert event.record is not None, event.reason
            assert event.record.status in ("ok", "not_archived"), (
                event.url, event.record.status, event.record.error)
        else:
            assert event.reason, event
    for index, url in enumerate(lines, start=1):
        if url in good and by_line[index].kind == "fetched":
            assert by_line[index].record.status == "ok"  # type: ignore[union-attr]
    outside = [path for _pool, _method, path in requests if leaves_prefix(path)]
    assert outside == []
    assert counts["cdx"] == summary.requests.get("cdx", 0) == 0
    assert counts["playback"] == summary.requests["playback"]
    assert counts["other"] == counts["availability"] == 0
    assert summary.interrupted is None and summary.deferred == 0
    # Recorded for the README's figures (pytest -s shows it).
    print(f"\nfuzz: {len(lines)} lines ({hostile_lines} hostile), kinds {dict(kinds)}, "
          f"outcomes {dict(summary.outcomes)}, requests {dict(summary.requests)}, "
          f"outside the prefix 0, {elapsed:.1f} s")
    assert elapsed < 90
