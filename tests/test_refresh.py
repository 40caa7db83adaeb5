"""Refresh: a stale record whose capture is still the newest costs one request and no body.

Through the Wayback emulator (and a real pywb server for its dialect): the nearest-capture
redirect, the Link-header step-back past a newer error capture, the CDX fallback, the
extractor version, ``--full``, and a ``snapcache run`` over records made stale by
configuration. The pure decisions (:func:`snapcache.engine.known_capture`,
:func:`snapcache.capture.is_known_capture`, :func:`snapcache.capture.replay_parts`) are
tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.cache import Record
from snapcache.capture import KnownCapture, is_known_capture, replay_parts
from snapcache.engine import absent_from, known_capture
from snapcache.extract import EXTRACTOR_VERSION

from tests.conftest import emulator_config
from tests.docgen import NTIA_TS, NTIA_URL, html_page, ntia_pdf
from tests.pywb_server import Capture, PywbServer
from tests.test_cli import run, write_config

PDF = "application/pdf"
PAGE = "https://agency.example.gov/programs/clean-water/"
OLD_TS, NEW_TS, GONE_TS = "20190305120000", "20230611080000", "20250101000000"


def playback(emulator: Any) -> int:
    return int(emulator.counts.get("playback", 0))


def stale(fetcher: Fetcher, url: str) -> Record:
    """The stored record, refreshed as a stale one (``force`` makes the record stale)."""
    return fetcher.fetch(url, force=True)


# --- pure decisions -----------------------------------------------------------------------


def good_record(**overrides: Any) -> Record:
    values: dict[str, Any] = {
        "resource_id": "0123456789abcdef", "stable_id": "sid_AbCdEfGhIj", "url": PAGE,
        "status": "ok", "capture_timestamp": OLD_TS, "original_url": PAGE, "archive": "ia",
        "extractor_version": EXTRACTOR_VERSION, "fetched_at": "2026-01-01T00:00:00Z",
    }
    values.update(overrides)
    return Record(**values)


def test_known_capture_of_a_good_complete_current_record() -> None:
    assert known_capture(good_record()) == KnownCapture(OLD_TS, PAGE, "ia")


@pytest.mark.parametrize("overrides", [
    {"status": "archived_error"},
    {"status": "error"},
    {"status": "not_archived", "capture_timestamp": None},
    {"body_truncated": True},
    {"extractor_version": None},  # made before versions were kept
    {"extractor_version": EXTRACTOR_VERSION - 1},
    {"capture_timestamp": None},
    {"original_url": None},
    {"archive": None},
])
def test_known_capture_refuses_what_must_be_fetched_in_full(overrides: dict[str, Any]) -> None:
    assert known_capture(good_record(**overrides)) is None


def test_known_capture_of_nothing_or_with_full_is_none() -> None:
    assert known_capture(None) is None
    assert known_capture(good_record(), full=True) is None


@pytest.mark.parametrize(("url", "parts"), [
    ("https://web.archive.org/web/20190305120000id_/https://a.example/x?q=1",
     ("20190305120000", "https://a.example/x?q=1")),
    ("https://web.archive.org/web/20190305120000/http://a.example/",
     ("20190305120000", "http://a.example/")),
    ("https://web.archive.org/web/2019id_/https://a.example/", ("2019", "https://a.example/")),
    ("https://web.archive.org/save/https://a.example/", None),
    ("https://web.archive.org/web/notatime/https://a.example/", None),
    ("not a url", None),
])
def test_replay_parts(url: str, parts: tuple[str, str] | None) -> None:
    assert replay_parts(url, ("/web/",)) == parts


KNOWN = KnownCapture(OLD_TS, "https://www.a.example/x?b=2&a=1", "ia")


@pytest.mark.parametrize(("timestamp", "original", "same"), [
    (OLD_TS, "https://www.a.example/x?b=2&a=1", True),
    (OLD_TS, "http://a.example/x?a=1&b=2", True),  # the archive's own equivalence
    (OLD_TS, "https://A.EXAMPLE:443/x?b=2&a=1", True),
    (NEW_TS, "https://www.a.example/x?b=2&a=1", False),
    (OLD_TS[:12], "https://www.a.example/x?b=2&a=1", False),
    (OLD_TS, "https://www.a.example/y", False),
    (OLD_TS, "https://www.a.example/x?a=1", False),
    (None, "https://www.a.example/x?b=2&a=1", False),
    (OLD_TS, None, False),
])
def test_is_known_capture(timestamp: str | None, original: str | None, same: bool) -> None:
    assert is_known_capture(timestamp, original, KNOWN) is same
    assert is_known_capture(timestamp, original, None) is False


# --- through the emulator -----------------------------------------------------------------


def test_an_unchanged_capture_is_confirmed_with_one_request_and_no_body(
    emulator: Any, fetcher: Fetcher
) -> None:
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    first = fetcher.fetch(NTIA_URL)
    cold_bytes = emulator.body_bytes["playback"]
    text = fetcher.cache.get_text(first.resource_id)
    emulator.reset_counters()
    again = stale(fetcher, NTIA_URL)
    assert playback(emulator) == 1 and emulator.counts["cdx"] == 0
    # Only the nearest-capture redirect was sent: not a byte of the PDF.
    assert emulator.body_bytes["playback"] < 0.03 * cold_bytes
    assert all(f"{NTIA_TS}id_/" not in path for _pool, _m, path in emulator.requests)
    assert again.capture_timestamp == first.capture_timestamp == NTIA_TS
    assert again.fetched_at == first.fetched_at  # no bytes fetched
    assert again.last_confirmed_at is not None and again.last_attempt_at is not None
    assert again.last_confirmed_at >= first.fetched_at
    assert again.attempts == 2 and again.last_outcome == "ok" and again.error is None
    for name in ("title", "preview", "sha256", "content_length", "content_type",
                 "archived_status", "stable_id", "raw_url", "extractor_version"):
        assert getattr(again, name) == getattr(first, name), name
    assert fetcher.cache.get_text(first.resource_id) == text
    history = fetcher.cache.history(first.resource_id)
    assert history[-1]["confirmed"] is True and history[-1]["outcome"] == "ok"
    assert history[-1]["capture_timestamp"] == NTIA_TS
    assert "confirmed" not in history[0]


def test_a_newer_good_capture_is_fetched_in_full(emulator: Any, fetcher: Fetcher) -> None:
    emulator.add_capture(PAGE, OLD_TS, body=html_page("Clean water 2019", "First programme."))
    first = fetcher.fetch(PAGE)
    emulator.add_capture(PAGE, NEW_TS, body=html_page("Clean water 2023", "Second programme."))
    emulator.reset_counters()
    again = stale(fetcher, PAGE)
    assert playback(emulator) == 2  # the redirect, then the new capture's bytes
    assert again.capture_timestamp == NEW_TS and again.title == "Clean water 2023"
    assert again.fetched_at is not None and again.last_confirmed_at is None
    assert again.sha256 != first.sha256
    assert "confirmed" not in fetcher.cache.history(first.resource_id)[-1]


def test_a_newer_error_capture_steps_back_and_confirms_the_stored_one_without_its_body(
    emulator: Any, fetcher: Fetcher
) -> None:
    emulator.add_capture(PAGE, OLD_TS, body=html_page("Clean water 2019", "First programme."))
    first = fetcher.fetch(PAGE)
    emulator.add_capture(PAGE, GONE_TS, status=404, body=b"<h1>Not Found</h1>")
    emulator.reset_counters()
    again = stale(fetcher, PAGE)
    # The redirect to the 404 capture, the 404 capture (its Link header names the stored
    # capture as the previous one): confirmed there, without a CDX query or its body.
    assert playback(emulator) == 2 and emulator.counts["cdx"] == 0
    assert not any(f"{OLD_TS}id_/" in path for _pool, _m, path in emulator.requests)
    assert again.status == "ok" and again.capture_timestamp == OLD_TS
    assert again.fetched_at == first.fetched_at and again.last_confirmed_at is not None
    assert again.preview == first.preview and again.error is None


def test_an_archived_redirect_chain_is_walked_as_on_a_first_fetch_but_its_end_not_fetched(
    emulator: Any, fetcher: Fetcher
) -> None:
    old, new = "http://old.example.edu/page/7", "https://www.new.example.edu/pages/7"
    emulator.add_capture(old, OLD_TS, status=301, body=b"", location=new)
    emulator.add_capture(new, "20190305121500", body=html_page("Moved", "Moved page text."))
    emulator.reset_counters()
    first = fetcher.fetch(old)
    cold = playback(emulator)
    emulator.reset_counters()
    again = stale(fetcher, old)
    # Hop by hop as on a first fetch, but the last request (the target's capture) is not
    # sent: the nearest-capture redirect before it named the stored capture.
    assert playback(emulator) == cold - 1
    assert not any("20190305121500id_/" in path for _pool, _m, path in emulator.requests)
    assert again.capture_timestamp == first.capture_timestamp == "20190305121500"
    assert again.original_url == first.original_url == new
    assert again.last_confirmed_at is not None and again.sha256 == first.sha256
    assert len(again.redirects) == len(first.redirects)
    assert again.redirects[1:] == first.redirects[1:]  # the first names "now"
    assert fetcher.cache.history(first.resource_id)[-1]["confirmed"] is True


def test_a_record_of_an_older_extractor_is_fetched_in_full_once(
    emulator: Any, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.add_capture(PAGE, OLD_TS, body=html_page("Clean water 2019", "First programme."))
    first = fetcher.fetch(PAGE)
    assert first.extractor_version == EXTRACTOR_VERSION
    # A new release with a better extractor.
    monkeypatch.setattr("snapcache.engine.EXTRACTOR_VERSION", EXTRACTOR_VERSION + 1)
    emulator.reset_counters()
    upgraded = stale(fetcher, PAGE)
    assert playback(emulator) == 2
    assert upgraded.extractor_version == EXTRACTOR_VERSION + 1
    assert upgraded.last_confirmed_at is None
    assert "confirmed" not in fetcher.cache.history(first.resource_id)[-1]
    emulator.reset_counters()
    after = stale(fetcher, PAGE)
    assert playback(emulator) == 1 and after.last_confirmed_at is not None
    assert after.fetched_at == upgraded.fetched_at


def test_full_fetches_the_unchanged_capture_again(emulator: Any, fetcher: Fetcher) -> None:
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    first = fetcher.fetch(NTIA_URL)
    emulator.reset_counters()
    full = fetcher.fetch(NTIA_URL, full=True)  # fresh, but --full fetches anyway
    assert playback(emulator) == 2
    assert full.last_confirmed_at is None and full.attempts == 2
    assert emulator.body_bytes["playback"] >= len(ntia_pdf())
    assert full.capture_timestamp == NTIA_TS and full.preview == first.preview
    assert "confirmed" not in fetcher.cache.history(first.resource_id)[-1]


def test_a_failed_refresh_keeps_the_good_record(emulator: Any, fetcher: Fetcher) -> None:
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    first = fetcher.fetch(NTIA_URL)
    emulator.set_outage(503)
    after = stale(fetcher, NTIA_URL)
    assert after.status == "ok" and after.preview == first.preview
    assert after.last_outcome == "error" and after.last_confirmed_at is None
    emulator.set_outage(None)
    confirmed = stale(fetcher, NTIA_URL)
    assert confirmed.last_outcome == "ok" and confirmed.error is None
    assert confirmed.last_confirmed_at is not None


def test_absent_from_names_the_archive_of_a_not_archived_record() -> None:
    gone = good_record(status="not_archived", capture_timestamp=None, archive="ia")
    assert absent_from(gone) == "ia"
    assert absent_from(gone, full=True) is None
    assert absent_from(None) is None
    for status in ("ok", "archived_error", "blocked", "error"):
        assert absent_from(good_record(status=status)) is None


def test_a_not_archived_record_is_rechecked_by_playback_alone(
    emulator: Any, fetcher: Fetcher
) -> None:
    gone = "https://gone.example.net/never/1"
    first = fetcher.fetch(gone)
    assert first.status == "not_archived"
    assert emulator.counts["cdx"] == 1  # confirm_not_archived: the first verdict is checked
    emulator.reset_counters()
    again = stale(fetcher, gone)
    assert again.status == "not_archived" and again.attempts == 2
    assert playback(emulator) == 1 and emulator.counts["cdx"] == 0
    emulator.reset_counters()
    full = fetcher.fetch(gone, full=True)
    assert full.status == "not_archived" and emulator.counts["cdx"] == 1
    # Archived since: the refresh finds the capture as a first fetch would.
    emulator.add_capture(gone, NEW_TS, body=html_page("Found at last", "Now archived."))
    emulator.reset_counters()
    found = stale(fetcher, gone)
    assert found.status == "ok" and found.capture_timestamp == NEW_TS


# --- snapcache run, records made stale by configuration ---------------------------------


def build_list(emulator: Any, n: int) -> list[str]:
    urls = []
    for i in range(n):
        url = f"https://news{i}.example.org/articles/{i}/story.html"
        body = html_page(f"Story {i}", " ".join(["Long report text."] * 400))
        emulator.add_capture(url, f"2020010{1 + i % 9}120000", body=body)
        urls.append(url)
    return urls


def test_snapcache_run_refreshes_unchanged_records_for_one_request_each_and_no_bodies(
    tmp_path: Path, emulator: Any
) -> None:
    urls = build_list(emulator, 24)
    sources = tmp_path / "sources.txt"
    sources.write_text("\n".join(urls) + "\n", encoding="utf-8")
    cfg = write_config(tmp_path, emulator.base_url)
    cold_run = run("--config", str(cfg), "run", str(sources), "--json")
    assert cold_run.returncode == 0, cold_run.stderr
    cold_bytes = emulator.body_bytes["playback"]
    before = {r["url"]: r for r in map(json.loads, run(
        "--config", str(cfg), "export", "--format", "jsonl").stdout.splitlines())}
    # The same list a day later, with a TTL that has run out for every record.
    stale_cfg = write_config(tmp_path, emulator.base_url, "ttl_ok_days = 0\n")
    emulator.reset_counters()
    refresh = run("--config", str(stale_cfg), "run", str(sources), "--json")
    assert refresh.returncode == 0, refresh.stderr
    summary = json.loads(refresh.stdout)
    assert summary["refreshed"] == summary["confirmed"] == len(urls), summary
    assert summary["new"] == 0 and summary["failed"] == 0
    assert playback(emulator) <= 1.1 * len(urls)
    assert emulator.body_bytes["playback"] <= 0.03 * cold_bytes
    after = {r["url"]: r for r in map(json.loads, run(
        "--config", str(cfg), "export", "--format", "jsonl").stdout.splitlines())}
    for url in urls:
        old, new = before[url], after[url]
        assert new["capture_timestamp"] == old["capture_timestamp"], url
        assert new["fetched_at"] == old["fetched_at"] and new["preview"] == old["preview"]
        assert new["attempts"] == 2 and new["last_confirmed_at"] is not None
    # --full: every record fetched again, bodies included.
    emulator.reset_counters()
    full = run("--config", str(stale_cfg), "run", str(sources), "--full", "--json")
    assert full.returncode == 0, full.stderr
    assert emulator.body_bytes["playback"] >= cold_bytes * 0.9
    assert playback(emulator) >= 2 * len(urls)


# --- the pywb dialect ---------------------------------------------------------------------

COLL = "refresh"
REPORT = "https://pywb.example/report"


@pytest.fixture(scope="module")
def pywb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PywbServer]:
    captures = [
        Capture(NTIA_URL, NTIA_TS, ntia_pdf(), content_type=PDF),
        Capture(REPORT, "20210101000000", html_page("Report 2021", "second edition text")),
        Capture(REPORT, "20240101000000", b"<h1>Not Found</h1>", status=404),
    ]
    with PywbServer(tmp_path_factory.mktemp("pywb"), COLL, captures) as server:
        yield server


@pytest.fixture
def pywb_fetcher(tmp_path: Path, pywb: PywbServer) -> Iterator[Fetcher]:
    config = emulator_config(tmp_path, pywb.base_url, archive={
        "name": "pywb-local", "base_url": pywb.base_url, "dialect": "pywb",
        "collection": COLL})
    with Fetcher(config) as f:
        yield f


def no_extraction(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a confirmed capture must not be downloaded or extracted")


def test_pywb_answers_with_the_stored_capture_itself_and_its_body_is_not_read(
    pywb_fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pywb_fetcher.fetch(NTIA_URL)
    assert first.status == "ok" and first.capture_timestamp == NTIA_TS
    before = pywb_fetcher.stats.requests.get("playback", 0)
    monkeypatch.setattr("snapcache.engine.extract_response", no_extraction)
    again = stale(pywb_fetcher, NTIA_URL)
    assert pywb_fetcher.stats.requests.get("playback", 0) - before == 1
    assert again.last_confirmed_at is not None and again.fetched_at == first.fetched_at
    assert again.preview == first.preview and again.last_outcome == "ok"


def test_pywb_newer_error_capture_falls_back_to_cdx_which_confirms_the_stored_one(
    pywb_fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pywb_fetcher.fetch(REPORT)
    assert first.status == "ok" and first.capture_timestamp == "20210101000000"
    stats = pywb_fetcher.stats.requests
    monkeypatch.setattr("snapcache.engine.extract_response", no_extraction)
    again = stale(pywb_fetcher, REPORT)
    after = pywb_fetcher.stats.requests
    # pywb's Link header names no earlier memento: one CDX query names the stored one.
    assert after.get("playback", 0) - stats.get("playback", 0) == 1
    assert after.get("cdx", 0) - stats.get("cdx", 0) == 1
    assert again.capture_timestamp == first.capture_timestamp
    assert again.last_confirmed_at is not None and again.fetched_at == first.fetched_at
