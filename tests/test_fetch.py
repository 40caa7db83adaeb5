"""End to end against the loopback Wayback emulator: resolution, fetching, preview, cache.

Each pitfall of wayback-pitfalls.md that applies to the core has a test here (named in its
docstring), on real recorded responses where one exists.
"""

from __future__ import annotations

import gzip
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from snapcache import Fetcher, InputError

from tests.docgen import NTIA_SENTENCE, NTIA_TS, NTIA_URL, html_page, ntia_pdf

PDF = "application/pdf"


def playback_paths(emulator: Any) -> list[str]:
    return [path for pool, _method, path in emulator.requests if pool == "playback"]


def test_ntia_pdf_is_fetched_raw_and_previewed_from_its_own_text(
    emulator: Any, fetcher: Fetcher
) -> None:
    pdf = ntia_pdf()
    emulator.add_capture(NTIA_URL, NTIA_TS, body=pdf, content_type=PDF)
    record = fetcher.fetch(NTIA_URL)
    assert record.status == "ok"
    assert record.resource_id == "a6ec2c2fe408fea3"
    assert record.stable_id.startswith("sid_") and len(record.stable_id) == 14
    assert record.archived_status == 200
    assert record.capture_timestamp == NTIA_TS
    assert record.content_length == len(pdf)
    assert record.content_type == PDF
    assert NTIA_SENTENCE in record.preview
    assert "Wayback Machine" not in record.preview
    assert record.text_length >= len(record.preview) > 0
    assert record.raw_url == f"{emulator.base_url}/web/{NTIA_TS}id_/{NTIA_URL}"
    assert record.archive_url == f"{emulator.base_url}/web/{NTIA_TS}/{NTIA_URL}"
    assert record.fetched_at is not None and record.fetched_at.endswith("Z")
    assert fetcher.cache.get_text(record.resource_id).startswith(NTIA_SENTENCE)


def test_a_typical_cold_fetch_costs_two_playback_requests_and_no_cdx(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Playback first: its budget is 20 times the CDX's."""
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    fetcher.fetch(NTIA_URL)
    assert emulator.counts.get("playback", 0) == 2
    assert emulator.counts.get("cdx", 0) == 0
    assert emulator.counts.get("availability", 0) == 0


def test_only_raw_id_mode_requests_are_ever_sent(emulator: Any, fetcher: Fetcher) -> None:
    """The wiki stored Wayback toolbar text because it fetched view mode (wiki-compat)."""
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    fetcher.fetch(NTIA_URL)
    paths = playback_paths(emulator)
    assert paths and all("id_/" in p for p in paths)


def test_a_fresh_record_costs_zero_requests_and_force_refetches_keeping_the_stable_id(
    emulator: Any, fetcher: Fetcher
) -> None:
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    first = fetcher.fetch(NTIA_URL)
    emulator.reset_counters()
    again = fetcher.fetch(NTIA_URL)
    assert sum(emulator.counts.values()) == 0
    assert again == first
    # Forced, the capture is still the newest: the archive's redirect names it, so it is
    # confirmed with that one request and not downloaded again.
    forced = fetcher.fetch(NTIA_URL, force=True)
    assert emulator.counts.get("playback", 0) == 1
    assert forced.stable_id == first.stable_id
    assert forced.attempts == 2
    assert forced.fetched_at == first.fetched_at and forced.last_confirmed_at is not None
    emulator.reset_counters()
    full = fetcher.fetch(NTIA_URL, full=True)
    assert emulator.counts.get("playback", 0) == 2
    assert full.attempts == 3 and full.stable_id == first.stable_id
    assert full.last_confirmed_at is None and full.fetched_at is not None


def test_a_failed_fetch_after_a_good_one_keeps_the_good_record_with_the_error_beside_it(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 10: outages are routine; a failed fetch never overwrites a good entry."""
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    good = fetcher.fetch(NTIA_URL)
    emulator.set_outage(503)
    after = fetcher.fetch(NTIA_URL, force=True)
    assert after.status == "ok"
    for name in ("capture_timestamp", "archived_status", "preview", "title", "content_length",
                 "fetched_at", "stable_id", "raw_url"):
        assert getattr(after, name) == getattr(good, name), name
    assert after.error is not None and "503" in after.error
    assert after.last_outcome == "error"
    assert after.attempts == 2
    assert fetcher.cache.get_text(after.resource_id).startswith(NTIA_SENTENCE)
    history = fetcher.cache.history(after.resource_id)
    assert [h["outcome"] for h in history][-2:] == ["ok", "error"]
    # Retries are bounded: 3 attempts of the first playback request, no more.
    assert emulator.counts.get("playback", 0) == 2 + 3


def test_an_error_record_is_retried_after_the_error_ttl_not_before(
    emulator: Any, fetcher: Fetcher
) -> None:
    emulator.set_outage(503)
    failed = fetcher.fetch("https://example.org/down")
    assert failed.status == "error" and failed.error
    emulator.set_outage(None)
    emulator.reset_counters()
    fetcher.fetch("https://example.org/down")
    assert sum(emulator.counts.values()) == 0  # within the 1 h error TTL


def test_archived_404_newer_than_a_good_200_is_found_through_the_link_header(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 4: the wiki chose 'newest capture' without a status filter. The 404
    capture's Link header names the capture before it, which costs a playback request
    instead of a CDX query."""
    url = "https://example.org/report"
    emulator.add_capture(url, "20200101000000", body=html_page("Report", "The good text."))
    emulator.add_capture(url, "20240101000000", status=404, body=b"<h1>Not Found</h1>")
    record = fetcher.fetch(url)
    assert record.status == "ok"
    assert record.capture_timestamp == "20200101000000"
    assert "The good text." in record.preview
    assert emulator.counts.get("cdx", 0) == 0
    assert emulator.counts.get("playback", 0) == 3


def test_many_newer_error_captures_fall_back_to_one_cdx_query(
    emulator: Any, fetcher: Fetcher
) -> None:
    url = "https://example.org/flaky"
    emulator.add_capture(url, "20200101000000", body=html_page("Flaky", "Once good."))
    for year in (2021, 2022, 2023, 2024):
        emulator.add_capture(url, f"{year}0101000000", status=503, body=b"down")
    record = fetcher.fetch(url)
    assert record.status == "ok" and record.capture_timestamp == "20200101000000"
    assert emulator.counts.get("cdx", 0) == 1


def test_only_error_captures_give_archived_error_with_that_status(
    emulator: Any, fetcher: Fetcher
) -> None:
    url = "https://example.org/gone"
    emulator.add_capture(url, "20240101000000", status=404, body=b"<h1>Not Found</h1>")
    record = fetcher.fetch(url)
    assert record.status == "archived_error"
    assert record.archived_status == 404
    assert record.capture_timestamp == "20240101000000"
    assert record.preview == "" and record.content_length is None
    # The Link header shows it is the first capture: no CDX query can add anything.
    assert emulator.counts.get("cdx", 0) == 0


def test_never_archived_gives_not_archived(emulator: Any, fetcher: Fetcher) -> None:
    record = fetcher.fetch("https://never-archived.example/")
    assert record.status == "not_archived"
    assert record.archived_status is None and record.capture_timestamp is None
    assert emulator.counts.get("cdx", 0) == 1  # confirm_not_archived (the default)


def test_confirm_not_archived_off_saves_the_cdx_query(emulator: Any, tmp_path: Any) -> None:
    from tests.conftest import emulator_config

    config = emulator_config(tmp_path, emulator.base_url,
                             archive={"confirm_not_archived": False})
    with Fetcher(config) as f:
        record = f.fetch("https://never-archived.example/")
    assert record.status == "not_archived"
    assert emulator.counts.get("cdx", 0) == 0 and emulator.counts["playback"] == 1


def test_excluded_site_is_blocked_and_its_page_never_stored(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfalls 4 and 11: the exclusion page is an HTTP 200; blocked is terminal."""
    emulator.add_excluded("https://excluded.example/")
    record = fetcher.fetch("https://excluded.example/page")
    assert record.status == "blocked"
    assert record.preview == "" and record.title is None
    emulator.reset_counters()
    fetcher.fetch("https://excluded.example/page")
    assert sum(emulator.counts.values()) == 0


def test_generated_archived_redirect_is_followed_to_the_targets_capture(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 3: a 3xx with Memento-Datetime is a capture of a redirect."""
    old, new = "https://example.org/old", "https://example.org/new"
    emulator.add_capture(old, "20230101000000", status=301, body=b"", location=new)
    emulator.add_capture(new, "20230101000500", body=html_page("New home", "Moved here."))
    record = fetcher.fetch(old)
    assert record.status == "ok"
    assert record.original_url == new
    assert record.capture_timestamp == "20230101000500"
    assert any("/old" in r for r in record.redirects)
    assert record.title == "New home"


def test_recorded_historical_redirect_chain_reaches_the_recorded_capture(
    emulator: Any, fetcher: Fetcher
) -> None:
    """REC test_get_memento_follows_historical_redirects: 302 -> 301 -> 302 -> 200."""
    record = fetcher.fetch("http://epa.gov/climatechange", at="20200201020357")
    assert record.status == "ok"
    assert record.capture_timestamp == "20200201024405"
    assert len(record.redirects) == 3
    assert record.content_length and record.content_length > 0


@pytest.mark.parametrize(
    ("url", "at", "final_ts"),
    [
        # REC ..._with_path_based_redirects: archived 301 with a path-only Location.
        ("https://www.whitehouse.gov/administration/eop/ostp/about/student/faqs",
         "20201027215555", "20201027220743"),
        # REC ..._with_schemeless_redirects: scheme-relative Location.
        ("https://www.census.gov/geography/gss-initiative.html", "20201102232816",
         "20201102233026"),
    ],
)
def test_recorded_odd_locations_lead_to_an_archived_404_reported_as_archived_error(
    emulator: Any, fetcher: Fetcher, url: str, at: str, final_ts: str
) -> None:
    record = fetcher.fetch(url, at=at)
    assert record.status == "archived_error"
    assert record.archived_status in (301, 404)
    assert record.preview == ""
    assert emulator.counts.get("cdx", 0) == 1


def test_recorded_redirect_loop_is_detected_and_reported(
    emulator: Any, fetcher: Fetcher
) -> None:
    """REC test_get_memento_raises_for_mementos_that_redirect_in_a_loop."""
    url = "https://link.springer.com/article/10.1007/s00382-012-1331-2"
    record = fetcher.fetch(url, at="20200925075402")
    assert record.status == "archived_error"
    assert record.preview_note is not None and "loop" in record.preview_note
    assert emulator.counts.get("playback", 0) <= 12


def test_recorded_archived_429_is_an_archived_status_and_pauses_nothing(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 4 / edgi wayback#158: a captured 429 is not the archive rate-limiting us."""
    record = fetcher.fetch("http://www.reddit.com/r/PokemonGiveaway", at="20150129034904")
    assert record.status == "archived_error"
    assert record.archived_status == 429
    key = emulator.base_url.split("//")[1]
    assert all(s.paused_for == 0 for s in fetcher.rate_limits() if s.key == key)
    assert fetcher.stats.rate_limited == 0


def test_recorded_capture_with_a_different_original_url_records_it(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 5: 'exact' matching folds scheme and www; keep Link rel=original."""
    record = fetcher.fetch("http://fws.gov/", at="20171124143728")
    assert record.status == "ok"
    assert record.original_url == "https://www.fws.gov/"
    assert record.url == "http://fws.gov/"


def test_not_yet_replayable_capture_records_the_time_actually_served(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 2: a capture listed in CDX may still redirect to an older one."""
    url = "https://example.org/fresh"
    emulator.add_capture(url, "20240101000000", body=html_page("Old", "older text"))
    emulator.add_capture(url, "20260101000000", body=html_page("New", "newer text"),
                         replayable=False)
    record = fetcher.fetch(url, at="20260101000000")
    assert record.status == "ok"
    assert record.capture_timestamp == "20240101000000"
    assert record.requested_timestamp == "20260101000000"


def test_at_picks_the_closest_good_capture_in_either_direction(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 12: nearest may be after the requested time."""
    url = "https://example.org/timeline"
    for ts in ("20200101000000", "20200301000000", "20210101000000"):
        emulator.add_capture(url, ts, body=html_page(ts, f"text of {ts}"))
    record = fetcher.fetch(url, at="20200220")
    assert record.capture_timestamp == "20200301000000"


def test_raw_gzip_payload_is_inflated_before_preview(emulator: Any, fetcher: Fetcher) -> None:
    """Pitfall 8: the archive can hand back the stored gzip bytes unannounced."""
    url = "https://example.org/gz"
    page = html_page("Zipped", "Inflated text reads well.")
    emulator.add_capture(url, "20220101000000", body=gzip.compress(page))
    record = fetcher.fetch(url)
    assert record.status == "ok"
    assert "Inflated text reads well." in record.preview
    assert record.content_length == len(page)


def test_gzip_double_encoding_quirk_is_avoided_by_asking_for_identity(
    emulator: Any, fetcher: Fetcher
) -> None:
    url = "https://example.org/quirk"
    page = html_page("Quirk", "Plain text after all.")
    emulator.add_capture(url, "20220101000000", body=page, gzip_quirk=True)
    record = fetcher.fetch(url)
    assert "Plain text after all." in record.preview


def test_body_over_the_size_cap_is_cut_and_flagged(emulator: Any, tmp_path: Any) -> None:
    from tests.conftest import emulator_config

    config = emulator_config(tmp_path, emulator.base_url, archive={"max_body_bytes": 10_000})
    url = "https://example.org/big"
    emulator.add_capture(url, "20220101000000", body=html_page("Big", "word " * 10_000))
    with Fetcher(config) as f:
        record = f.fetch(url)
    assert record.status == "ok"
    assert record.content_length == 10_000
    assert record.body_truncated


def test_calendar_archive_url_is_resolved_through_its_original(
    emulator: Any, fetcher: Fetcher
) -> None:
    given = "https://web.archive.org/web/20221020000000*/ftxfuturefund.org"
    emulator.add_capture("https://ftxfuturefund.org/", "20221019120000",
                         body=html_page("FTX Future Fund", "Grants."))
    record = fetcher.fetch(given)
    assert record.status == "ok"
    assert record.url == given
    assert record.capture_timestamp == "20221019120000"
    assert record.requested_timestamp == "20221020000000"
    # Only the configured (loopback) archive was contacted, never web.archive.org itself.
    assert all(path.startswith("/") for _pool, _m, path in emulator.requests)


def test_move_keeps_ids_and_the_old_url_as_an_alias(emulator: Any, fetcher: Fetcher) -> None:
    old, new = "https://example.org/typo", "https://example.org/fixed"
    emulator.add_capture(old, "20220101000000", body=html_page("Page", "Text."))
    record = fetcher.fetch(old)
    moved = fetcher.move(old, new)
    assert (moved.resource_id, moved.stable_id) == (record.resource_id, record.stable_id)
    assert moved.url == new
    assert fetcher.lookup(old) == fetcher.lookup(new) == fetcher.lookup(record.stable_id)


def test_invalid_url_raises_input_error_and_stores_nothing(fetcher: Fetcher) -> None:
    with pytest.raises(InputError, match="not an http"):
        fetcher.fetch("javascript:alert(1)")
    assert len(fetcher.cache) == 0


def test_fetch_many_keeps_order_and_reports_bad_input_in_place(
    emulator: Any, fetcher: Fetcher
) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    results = fetcher.fetch_many(["https://a.example/", "nope", "https://b.example/"])
    assert results[0].status == "ok"  # type: ignore[union-attr]
    assert isinstance(results[1], InputError)
    assert results[2].status == "not_archived"  # type: ignore[union-attr]


def test_the_cdx_fallback_is_one_bounded_filtered_query_without_paging(
    emulator: Any, fetcher: Fetcher
) -> None:
    """Pitfall 6: paging drops rows and unbounded queries truncate silently; pitfall 7: the
    availability API is never needed."""
    fetcher.fetch("https://example.org/never")
    cdx = [path for pool, _m, path in emulator.requests if pool == "cdx"]
    assert len(cdx) == 1
    query = parse_qs(urlsplit(cdx[0]).query)
    assert query["limit"] == ["-10"]
    assert query["filter"] == ["statuscode:2[0-9][0-9]"]
    assert query["output"] == ["json"]
    assert "page" not in query and "resolveRevisits" not in query
    assert emulator.counts.get("availability", 0) == 0


def test_at_uses_a_closest_sorted_cdx_query(emulator: Any, fetcher: Fetcher) -> None:
    url = "https://example.org/at-404"
    emulator.add_capture(url, "20190101000000", body=html_page("Old", "good old text"))
    emulator.add_capture(url, "20200101000000", status=404, body=b"gone")
    record = fetcher.fetch(url, at="20200102")
    assert record.capture_timestamp == "20190101000000"
    cdx = [path for pool, _m, path in emulator.requests if pool == "cdx"]
    query = parse_qs(urlsplit(cdx[0]).query)
    assert query["closest"] == ["20200102000000"] and query["sort"] == ["closest"]


def test_an_extraction_failure_keeps_the_capture_and_notes_why(
    emulator: Any, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snapcache.extract import ExtractPool

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("simulated library failure")

    monkeypatch.setattr(ExtractPool, "extract", broken)
    emulator.add_capture("https://example.org/doc", "20220101000000", body=b"<html>x</html>")
    record = fetcher.fetch("https://example.org/doc")
    assert record.status == "ok" and record.capture_timestamp == "20220101000000"
    assert record.preview_note == "extraction failed: MemoryError"


def test_the_readme_library_example_runs(emulator: Any, tmp_path: Any) -> None:
    import re
    from pathlib import Path

    from tests.wayback_emulator import add_demo_captures

    add_demo_captures(emulator)
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    code = re.search(r"## Library\n+```python\n(.*?)```", readme, re.DOTALL)
    assert code is not None
    config = tmp_path / "local.toml"
    config.write_text(
        f'[archive]\nbase_url = "{emulator.base_url}"\n'
        f'availability_url = "{emulator.base_url}/wayback/available"\n'
        f'[rates]\nstate_path = "{tmp_path / "rl.sqlite"}"\n'
        f'[cache]\npath = "{tmp_path / "demo"}"\n'
    )
    source = code.group(1).replace("/tmp/local.toml", str(config))
    source = source.replace("/tmp/snapcache-demo", str(tmp_path / "demo"))
    exec(compile(source, "README.md", "exec"), {})


def test_a_step_back_the_archive_answers_with_a_newer_capture_is_not_walked_again(
    emulator: Any, fetcher: Fetcher
) -> None:
    """The Link header names an earlier capture that is not replayable: the archive
    redirects it to the nearest one it can replay, the newer 404 already seen. Following
    would walk the newer chain again; the CDX is asked instead."""
    url = "https://agency.example.gov/reports/annual"
    emulator.add_capture(url, "20190101000000", body=b"<h1>Annual report</h1>",
                         replayable=False, in_cdx=False)
    emulator.add_capture(url, "20240101000000", status=404, body=b"<h1>Not Found</h1>")
    record = fetcher.fetch(url)
    assert record.status == "archived_error" and record.capture_timestamp == "20240101000000"
    paths = [path for pool, _m, path in emulator.requests if pool == "playback"]
    assert paths.count(f"/web/20240101000000id_/{url}") == 1, paths
    assert len(paths) == 3 and emulator.counts["cdx"] == 1
