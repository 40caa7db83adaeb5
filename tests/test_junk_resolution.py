"""Junk captures end to end: the Wayback emulator serves the junk corpus's pages
(tests/data/junk) as the newest captures of their cited URLs, with their archived headers
and redirect chains, and resolution steps back past them.

For each flag: the newest capture junk and an older real one (the older one is kept and
``skipped`` names the junk); only junk (``archived_error`` with ``content_flag`` and no
preview); and each look-alike of the corpus stays ``ok`` with its newest capture and no
flag. ``url_mismatch`` is tested with scripted answers in tests/test_untrusted_answers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.cli.render import render_card
from snapcache.junk import ContentFlag

from tests.docgen import html_page
from tests.junk_corpus import add_page, entries, served_as_200

OLD = "20190305120000"
NEW = "20240611080000"
REAL_TEXT = " ".join(["The council published the full report on the harbour works."] * 30)


def first_of_each_flag() -> list[dict[str, Any]]:
    chosen: dict[str, dict[str, Any]] = {}
    for entry in entries():
        if entry["expect"] != "none" and served_as_200(entry):
            chosen.setdefault(entry["expect"], entry)
    return list(chosen.values())


def look_alikes() -> list[dict[str, Any]]:
    return [e for e in entries() if e["expect"] == "none" and served_as_200(e)]


@pytest.fixture
def quiet_emulator() -> Iterator[Any]:
    """An emulator with no recordings: the corpus's hosts are all its captures."""
    from tests.wayback_emulator import WaybackEmulator

    with WaybackEmulator(load_recordings=False) as emu:
        yield emu


@pytest.fixture
def fetcher(tmp_path: Any, quiet_emulator: Any) -> Iterator[Fetcher]:
    from tests.conftest import emulator_config

    with Fetcher(emulator_config(tmp_path, quiet_emulator.base_url)) as f:
        yield f


def test_every_flag_has_a_page_the_archive_serves_as_200() -> None:
    assert {e["expect"] for e in first_of_each_flag()} == {
        f.value for f in ContentFlag if f is not ContentFlag.URL_MISMATCH}
    assert len(look_alikes()) >= 10


@pytest.mark.parametrize("entry", first_of_each_flag(), ids=lambda e: e["expect"])
def test_newest_capture_junk_with_an_older_real_one_keeps_the_older(
    entry: dict[str, Any], quiet_emulator: Any, fetcher: Fetcher
) -> None:
    url = entry["requested"]
    quiet_emulator.add_capture(url, OLD, body=html_page("Harbour works report", REAL_TEXT))
    add_page(quiet_emulator, entry, NEW)
    record = fetcher.fetch(url)
    if entry["expect"] == ContentFlag.SCRIPT_SHELL:
        # Nothing better to show: the newest capture stays, flagged, and the card says so.
        assert record.status == "ok" and record.content_flag == "script_shell"
        assert record.capture_timestamp is not None and record.capture_timestamp >= NEW
        assert record.skipped == []
        assert "no text (built by scripts)" in render_card(record)
        return
    assert record.status == "ok", record
    assert record.capture_timestamp == OLD and record.title == "Harbour works report"
    assert record.content_flag is None
    assert [s["flag"] for s in record.skipped] == [entry["expect"]]
    assert record.skipped[0]["capture_timestamp"] is not None
    assert record.skipped[0]["capture_timestamp"] >= NEW
    assert record.skipped[0]["archived_status"] == int(entry.get("status", 200))
    assert "harbour works" in record.preview.lower()
    card = render_card(record)
    assert "the newest capture (Jun 11, 2024) was" in card and "showing Mar 5, 2019" in card
    assert fetcher.cache.history(record.resource_id)[-1]["content_flag"] is None


@pytest.mark.parametrize("entry", first_of_each_flag(), ids=lambda e: e["expect"])
def test_only_junk_gives_archived_error_with_the_flag_and_no_preview(
    entry: dict[str, Any], quiet_emulator: Any, fetcher: Fetcher
) -> None:
    add_page(quiet_emulator, entry, NEW)
    record = fetcher.fetch(entry["requested"])
    if entry["expect"] == ContentFlag.SCRIPT_SHELL:
        assert record.status == "ok" and record.content_flag == "script_shell"
        return
    assert record.status == "archived_error", record
    assert record.content_flag == entry["expect"]
    assert record.preview == "" and record.title is None and record.text_length == 0
    assert record.capture_timestamp is not None and record.capture_timestamp >= NEW
    assert record.archived_status == int(entry.get("status", 200))
    assert fetcher.cache.get_text(record.resource_id) is None
    assert "no capture is the document" in render_card(record)


@pytest.mark.parametrize("entry", look_alikes(), ids=lambda e: e["file"])
def test_a_look_alike_stays_ok_with_its_newest_capture_and_no_flag(
    entry: dict[str, Any], quiet_emulator: Any, fetcher: Fetcher
) -> None:
    url = entry["requested"]
    quiet_emulator.add_capture(url, OLD, body=html_page("Older edition", REAL_TEXT))
    add_page(quiet_emulator, entry, NEW)
    record = fetcher.fetch(url)
    assert record.status == "ok", record
    assert record.capture_timestamp is not None and record.capture_timestamp >= NEW
    assert record.content_flag is None and record.skipped == []


def test_junk_costs_playback_requests_not_a_cdx_query_when_link_headers_step_back(
    quiet_emulator: Any, fetcher: Fetcher
) -> None:
    entry = next(e for e in first_of_each_flag() if e["expect"] == "challenge")
    url = entry["requested"]
    quiet_emulator.add_capture(url, OLD, body=html_page("Harbour works report", REAL_TEXT))
    add_page(quiet_emulator, entry, NEW)
    record = fetcher.fetch(url)
    assert record.capture_timestamp == OLD
    # now -> nearest redirect -> the challenge capture -> (its Link header) the older one.
    assert quiet_emulator.counts["playback"] == 3 and quiet_emulator.counts["cdx"] == 0
