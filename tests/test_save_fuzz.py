"""Fuzz: 2,000 seeded random Save Page Now answers through ``Fetcher.save``.

Every URL gets a random script (tests/spn2.py :func:`random_script`): odd status codes,
JSON that is no object, nested 100,000 deep, longer than any real answer, not UTF-8, job
IDs that inject headers or climb out of ``/save/status/``, ``status_ext`` values that name
save statuses, capture times of ``"0"``; and some of the emulator's own well-formed outcomes,
so that real jobs meet hostile statuses. Whatever comes: no traceback, every attempt
stored with a save status snapcache knows (an outcome or an error), nothing stored that
holds a control character, an unchecked job ID or more than a capped note, and no request
outside the endpoints a save may use.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.cache.records import Record
from snapcache.save import MAX_NOTE, SAVE_STATUSES, valid_job_id

from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.spn2 import SaveEmulator, random_script
from tests.test_save import ACCESS, SECRET

CASES = 2000
#: URLs per ``save`` call: each call is a new save pass (refused keys stop only that one).
BATCH = 200
#: Fixed, so that a failure is reproducible; SNAPCACHE_FUZZ_SEED tries others.
SEED = int(os.environ.get("SNAPCACHE_FUZZ_SEED", "20261207"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\ud800-\udfff]")
_ALLOWED_PATH = re.compile(r"/save|/save/status/[^/?#]+|/web/.*|/cdx/search/cdx\?.*", re.DOTALL)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory when there is one: the store and the rate-limit state file sync
    every write, and 10,000 synced writes on a disk would be most of the run."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="snapcache-fuzz-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fast_config(folder: Path, emulator: Any) -> Any:
    """Limits out of the way: the fuzz is about answers, not pacing. Every job ends within
    a few polls (the scripts' answers run out), so the budget is only a safety net."""
    return emulator_config(
        folder, emulator.base_url,
        save={"enabled": True, "access_key": ACCESS, "secret_key": SECRET,
              "poll_interval": 0.01, "poll_budget": 60.0, "per_minute": 1e6,
              "per_day": 10**6},
        rates={"cdx_per_minute": 1e6, "playback_per_minute": 1e6, "pause_on_429": 0.05},
        retry={"max_attempts": 1},
    )


def test_random_save_page_now_answers_never_crash_and_are_all_recorded(
    fast_dir: Path, emulator: Any
) -> None:
    rng = random.Random(SEED)
    spn = SaveEmulator(emulator, ACCESS, SECRET, daily_limit=10**6)
    urls = [f"https://fuzz{i}.example/page" for i in range(CASES)]
    for url in urls:
        spn.scripts[url] = random_script(rng, url)
        if rng.random() < 0.2:  # an old capture: stale, and what a bad success would reuse
            emulator.add_capture(url, "20200101000000", body=html_page("Old", "old text"))
    statuses: dict[str, int] = {}
    with Fetcher(fast_config(fast_dir, emulator)) as f:
        for start in range(0, CASES, BATCH):
            batch = urls[start:start + BATCH]
            try:
                results, _stats = f.save(batch)
            except Exception as exc:  # a traceback is the one thing this test looks for
                raise AssertionError(f"seed {SEED}, URLs {start}..: {exc!r}") from exc
            for url, result in zip(batch, results, strict=True):
                assert isinstance(result, Record), (url, result)
                check_record(f, url, result, statuses)
    assert spn.submissions, "nothing was submitted"
    for _pool, _method, path in emulator.requests:
        assert _ALLOWED_PATH.fullmatch(path), path
        if path.startswith("/save/status/"):
            assert valid_job_id(path.removeprefix("/save/status/")), path
    # The answers reached every branch: outcomes of each kind were stored.
    assert {"success", "not_replayable_yet", "deferred", "error:unknown",
            "error:bad-job-id"} <= set(statuses), statuses


def check_record(f: Fetcher, url: str, record: Record, statuses: dict[str, int]) -> None:
    """One URL's stored state: an outcome snapcache knows, clean and capped."""
    status = record.save_status
    assert status in SAVE_STATUSES, (url, status)
    statuses[status] = statuses.get(status, 0) + 1
    assert record.save_job_id is None or valid_job_id(record.save_job_id), (url, record)
    if status == "pending":
        assert record.save_job_id, (url, record)
    saves = [e for e in f.cache.history(record.resource_id) if "save_status" in e]
    assert saves, (url, "no save attempt in the history")
    for entry in saves:
        assert entry["save_status"] in SAVE_STATUSES, (url, entry)
        job = entry.get("save_job_id")
        assert job is None or valid_job_id(job), (url, entry)
        note = entry.get("note")
        if note is not None:
            assert isinstance(note, str) and len(note) <= MAX_NOTE, (url, entry)
            assert not _CONTROL.search(note), (url, entry)
