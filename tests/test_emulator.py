"""Tests of the Wayback Machine emulator itself (tests/wayback_emulator.py)."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from snapcache.demo.wayback import sha1_base32

from tests import wayback_emulator
from tests.wayback_emulator import WaybackEmulator, add_demo_captures, parse_cdx_lines, url_key

DATA = Path(__file__).parent / "data" / "recordings"
EDGI = DATA / "wayback" / "src" / "wayback" / "tests"
HTML = b"<!DOCTYPE html><html><head><title>T</title></head><body><p>hello</p></body></html>"


@pytest.fixture
def emu() -> Iterator[WaybackEmulator]:
    with WaybackEmulator() as e:
        yield e


@pytest.fixture
def bare() -> Iterator[WaybackEmulator]:
    """An emulator without the recordings (a clean index)."""
    with WaybackEmulator(load_recordings=False) as e:
        yield e


def make_client(e: WaybackEmulator) -> httpx.Client:
    return httpx.Client(base_url=e.base_url, follow_redirects=False, timeout=5, trust_env=False)


@pytest.fixture
def client(emu: WaybackEmulator) -> Iterator[httpx.Client]:
    with make_client(emu) as c:
        yield c


@pytest.fixture
def bclient(bare: WaybackEmulator) -> Iterator[httpx.Client]:
    with make_client(bare) as c:
        yield c


def cdx_text_rows(r: httpx.Response) -> list[list[str]]:
    return parse_cdx_lines(r.text)


# --------------------------------------------------------------------------------------
# Recordings: layout and verbatim replay
# --------------------------------------------------------------------------------------


def test_recordings_live_under_tests_data_with_their_licenses() -> None:
    assert (DATA / "wayback" / "LICENSE").is_file()
    assert (DATA / "cdx_toolkit" / "LICENSE").is_file()
    assert (EDGI / "cassettes" / "test_get_memento.yaml").is_file()
    assert (DATA / "wayback" / "docs" / "source" / "cassettes" / "tutorial.yaml").is_file()
    assert str(wayback_emulator.DEFAULT_RECORDINGS_DIR).startswith(str(Path(__file__).parent))


def test_emulator_loads_every_recorded_memento_path(emu: WaybackEmulator) -> None:
    paths = emu.recorded_paths
    assert len(paths) >= 30
    assert all(p.startswith("/web/") for p in paths)
    sources = {r.source for r in emu.recorded_responses.values()}
    assert any(s.endswith("tutorial.yaml") for s in sources)
    assert any(s.endswith("test_get_memento_with_path_based_redirects.yaml") for s in sources)
    assert any(s.endswith(".jsonl") for s in sources)


def test_every_recorded_response_replays_verbatim_with_archive_host_rewritten(
    emu: WaybackEmulator, client: httpx.Client
) -> None:
    for path, rec in sorted(emu.recorded_responses.items()):
        r = client.get(path)
        assert r.request.url.raw_path.decode() == path
        assert r.status_code == rec.status, path
        assert ("memento-datetime" in r.headers) == rec.has_memento_datetime, path
        assert r.content == rec.body, path
        assert int(r.headers["content-length"]) == len(rec.body)
        for name in ("location", "link"):
            value = r.headers.get(name)
            if value is None:
                continue
            assert "web.archive.org" not in value, (path, value)
        loc = r.headers.get("location")
        if loc is not None and loc.startswith("http"):
            assert loc.startswith(emu.base_url + "/web/")


def test_recorded_reason_phrase_is_replayed(client: httpx.Client) -> None:
    r = client.get("/web/19970427191925id_/http://www.zew.de/")
    assert r.status_code == 200
    assert r.reason_phrase == "Document follows"


def test_recorded_path_only_location_is_kept_unchanged(client: httpx.Client) -> None:
    r = client.get(
        "/web/20201027215555id_/https://www.whitehouse.gov/administration/eop/ostp/about/student/faqs"
    )
    assert r.status_code == 301
    assert r.headers["location"] == (
        "/web/20201027215555id_/https://www.whitehouse.gov/ostp/about/student/faqs"
    )
    assert "memento-datetime" in r.headers


def test_recorded_scheme_relative_location_points_at_emulator(
    emu: WaybackEmulator, client: httpx.Client
) -> None:
    r = client.get("/web/20201102232816id_/https://www.census.gov/geography/gss-initiative.html")
    assert r.status_code == 301
    assert r.headers["location"] == (
        f"//127.0.0.1:{emu.port}/web/20201102232816id_/https://www.census.gov/geo/gssi/"
    )
    assert len(r.content) > 100_000  # a 3xx memento with a big body
    nxt = httpx.URL(emu.base_url).join(r.headers["location"])
    r2 = client.get(nxt)
    assert r2.status_code == 302
    assert "memento-datetime" not in r2.headers


def test_recorded_body_matches_the_fixture_file_byte_for_byte(client: httpx.Client) -> None:
    r = client.get("/web/20171124151315id_/https://www.fws.gov/birds/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html"  # no charset, as recorded
    assert r.content == (EDGI / "test_files" / "fws-gov-birds.txt").read_bytes()
    assert r.headers["memento-datetime"] == "Fri, 24 Nov 2017 15:13:15 GMT"


def test_recorded_historical_redirect_chain_can_be_followed_to_a_200(
    emu: WaybackEmulator, client: httpx.Client
) -> None:
    url = httpx.URL(f"{emu.base_url}/web/20200201020357id_/http://epa.gov/climatechange")
    chain: list[tuple[int, bool]] = []
    for _ in range(6):
        r = client.get(url)
        chain.append((r.status_code, "memento-datetime" in r.headers))
        if r.status_code not in (301, 302, 303):
            break
        url = url.join(r.headers["location"])
    assert chain == [(302, False), (301, True), (302, False), (200, True)]


def test_recorded_redirect_loop_is_replayed_as_a_loop(
    emu: WaybackEmulator, client: httpx.Client
) -> None:
    start = httpx.URL(
        f"{emu.base_url}/web/20200925075402id_/https://link.springer.com/article/10.1007/s00382-012-1331-2"
    )
    url, seen = start, []
    for _ in range(5):
        seen.append(str(url))
        r = client.get(url)
        assert r.status_code in (302, 303)
        url = url.join(r.headers["location"])
        if str(url) in seen:
            break
    assert str(url) == str(start)
    assert len(seen) == 4


def test_recorded_percent_encoded_original_replays_and_plain_form_resolves(
    client: httpx.Client,
) -> None:
    r = client.get("/web/20080328041443id_/http%3A//www.commoncrawl.org%3A80/")
    assert r.status_code == 200
    assert "memento-datetime" in r.headers
    plain = client.get("/web/20080328041443id_/http://www.commoncrawl.org:80/")
    assert plain.status_code == 200
    assert plain.content == r.content
    assert plain.headers["memento-datetime"] == "Fri, 28 Mar 2008 04:14:43 GMT"


def test_recorded_mementos_are_indexed_so_inexact_requests_redirect_to_them(
    emu: WaybackEmulator, client: httpx.Client
) -> None:
    r = client.get("/web/20171120id_/https://www.fws.gov/birds/")
    assert r.status_code == 302
    assert r.headers["location"] == (
        f"{emu.base_url}/web/20171124151315id_/https://www.fws.gov/birds/"
    )
    # the capture behind test_get_memento_returns_memento_with_accurate_url is https://www.fws.gov/
    r = client.get("/web/20171124143728id_/https://www.fws.gov/")
    assert r.status_code == 200
    assert r.headers["memento-datetime"] == "Fri, 24 Nov 2017 14:37:28 GMT"
    cdx = client.get("/cdx/search/cdx", params={"url": "fws.gov/birds/", "output": "json"})
    assert [row[1] for row in cdx.json()[1:]] == ["20171124151315"]


def test_recorded_excluded_site_is_excluded_for_other_urls_and_in_cdx(client: httpx.Client) -> None:
    r = client.get("/web/2019id_/https://nationalpost.com/news/")
    assert r.status_code == 200
    assert b"This URL has been excluded from the Wayback Machine." in r.content
    assert "memento-datetime" not in r.headers
    cdx = client.get("/cdx/search/cdx", params={"url": "https://nationalpost.com/health"})
    assert cdx.status_code == 403


def test_recordings_take_precedence_over_generated_captures(
    emu: WaybackEmulator, client: httpx.Client
) -> None:
    emu.add_capture("https://www.fws.gov/birds/", "20171124151315", body=b"generated")
    r = client.get("/web/20171124151315id_/https://www.fws.gov/birds/")
    assert r.content == (EDGI / "test_files" / "fws-gov-birds.txt").read_bytes()


# --------------------------------------------------------------------------------------
# URL matching
# --------------------------------------------------------------------------------------


def test_url_key_folds_scheme_www_default_ports_and_keeps_path_case() -> None:
    assert url_key("https://WWW.Example.COM:443") == "example.com/"
    assert url_key("http://www2.example.com:80/A/b?x=1") == "example.com/A/b?x=1"
    assert url_key("example.com") == "example.com/"
    assert url_key("http%3A//www.commoncrawl.org%3A80/") == "commoncrawl.org/"
    assert url_key("https://example.com:8080/") == "example.com:8080/"
    assert url_key("https://example.com/a") != url_key("https://example.com/A")
    assert wayback_emulator.surt_urlkey("https://www.example.com/Path") == "com,example)/path"


def test_playback_accepts_schemeless_original(bare: WaybackEmulator, bclient: httpx.Client) -> None:
    bare.add_capture("https://ftxfuturefund.org/", "20221101000000", body=HTML)
    r = bclient.get("/web/20221101000000id_/ftxfuturefund.org")
    assert r.status_code == 302
    assert r.headers["location"].endswith("/web/20221101000000id_/https://ftxfuturefund.org/")


# --------------------------------------------------------------------------------------
# Playback: generated captures
# --------------------------------------------------------------------------------------


def test_playback_exact_hit_has_memento_datetime_link_and_archive_headers(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML, headers={"Server": "ECS"})
    r = bclient.get("/web/20240101000000id_/https://example.com/")
    assert r.status_code == 200
    assert r.content == HTML
    assert r.headers["memento-datetime"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-archive-src"] == "emulator-20240101000000.warc.gz"
    assert r.headers["x-archive-orig-server"] == "ECS"
    assert r.headers["x-archive-orig-content-type"] == "text/html; charset=utf-8"
    link = r.headers["link"]
    assert link.startswith('<https://example.com/>; rel="original", ')
    assert f'<{bare.base_url}/web/timemap/link/https://example.com/>; rel="timemap"' in link
    assert (
        f'<{bare.base_url}/web/20240101000000/https://example.com/>; rel="memento"; '
        'datetime="Mon, 01 Jan 2024 00:00:00 GMT"'
    ) in link


def test_playback_content_type_none_omits_header(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture(
        "https://example.com/blob", "20240101000000", body=b"\x00\x01", content_type=None
    )
    r = bclient.get("/web/20240101000000id_/https://example.com/blob")
    assert r.status_code == 200
    assert "content-type" not in r.headers
    assert r.content == b"\x00\x01"


def test_playback_inexact_timestamp_redirects_to_nearest_capture_without_memento_datetime(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    bare.add_capture("https://example.com/", "20240301000000", body=HTML)
    r = bclient.get("/web/20240105000000id_/https://example.com/")
    assert r.status_code == 302
    assert r.content == b""
    assert r.headers["content-length"] == "0"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["location"] == f"{bare.base_url}/web/20240101000000id_/https://example.com/"
    assert r.headers["x-archive-redirect-reason"] == "found capture at 20240101000000"
    assert "memento-datetime" not in r.headers
    assert "link" not in r.headers


def test_playback_nearest_capture_may_be_later_and_ties_prefer_earlier(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    bare.add_capture("https://example.com/", "20240103000000", body=HTML)
    later = bclient.get("/web/20240102200000id_/https://example.com/")
    assert "/web/20240103000000id_/" in later.headers["location"]
    tie = bclient.get("/web/20240102000000id_/https://example.com/")
    assert "/web/20240101000000id_/" in tie.headers["location"]


def test_playback_partial_or_missing_timestamp_redirects_and_keeps_flag(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20200101000000", body=HTML)
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    r = bclient.get("/web/2021id_/https://example.com/")
    assert r.status_code == 302
    assert r.headers["location"].endswith("/web/20200101000000id_/https://example.com/")
    latest = bclient.get("/web/https://example.com/")
    assert latest.status_code == 302
    assert latest.headers["location"] == f"{bare.base_url}/web/20240101000000/https://example.com/"
    im = bclient.get("/web/2024im_/https://example.com/")
    assert "/web/20240101000000im_/" in im.headers["location"]


def test_playback_scheme_or_www_variant_redirects_to_the_captured_url(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("http://www.example.com/page", "20240101000000", body=HTML)
    r = bclient.get("/web/20240101000000id_/https://example.com/page")
    assert r.status_code == 302
    assert r.headers["location"] == (
        f"{bare.base_url}/web/20240101000000id_/http://www.example.com/page"
    )
    assert "memento-datetime" not in r.headers
    ok = bclient.get(r.headers["location"])
    assert ok.status_code == 200
    assert ok.content == HTML


def test_playback_archived_301_keeps_same_timestamp_and_flag_in_location(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture(
        "https://example.com/old", "20240101000000", status=301, location="/new", body=b"moved"
    )
    r = bclient.get("/web/20240101000000id_/https://example.com/old")
    assert r.status_code == 301
    assert r.headers["location"] == f"{bare.base_url}/web/20240101000000id_/https://example.com/new"
    assert r.headers["memento-datetime"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert r.content == b"moved"
    # the target was never archived: following it ends in the never-archived 404
    assert bclient.get(r.headers["location"]).status_code == 404


def test_playback_archived_error_statuses_are_replayed_with_memento_datetime(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/gone", "20240101000000", status=404, body=b"nope")
    bare.add_capture(
        "https://example.com/busy", "20240101000000", status=429, headers={"Retry-After": "6"}
    )
    gone = bclient.get("/web/20240101000000id_/https://example.com/gone")
    assert gone.status_code == 404
    assert "memento-datetime" in gone.headers
    busy = bclient.get("/web/20240101000000id_/https://example.com/busy")
    assert busy.status_code == 429
    assert "memento-datetime" in busy.headers
    assert busy.headers["x-archive-orig-retry-after"] == "6"
    assert "retry-after" not in busy.headers


def test_playback_never_archived_returns_404_without_memento_datetime(
    bclient: httpx.Client,
) -> None:
    r = bclient.get("/web/20240101000000id_/https://never.example.net/")
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "Hrm. The Wayback Machine has not archived that URL." in r.text
    assert "memento-datetime" not in r.headers


def test_playback_excluded_site_returns_200_excluded_page_and_cdx_403(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://blocked.example.org/a", "20240101000000", body=HTML)
    bare.add_excluded("https://www.blocked.example.org/")
    r = bclient.get("/web/20240101000000id_/http://blocked.example.org/a")
    assert r.status_code == 200
    assert "<h2>Sorry.</h2> <p>This URL has been excluded from the Wayback Machine.</p>" in r.text
    assert "memento-datetime" not in r.headers
    cdx = bclient.get("/cdx/search/cdx", params={"url": "blocked.example.org/a"})
    assert cdx.status_code == 403
    assert "AdministrativeAccessControlException" in cdx.headers["x-archive-wayback-runtime-error"]
    avail = bclient.get("/wayback/available", params={"url": "blocked.example.org/a"})
    assert avail.json()["archived_snapshots"] == {}


def test_playback_not_replayable_capture_redirects_to_older_capture(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=b"old")
    bare.add_capture("https://example.com/", "20240301000000", body=b"fresh", replayable=False)
    r = bclient.get("/web/20240301000000id_/https://example.com/")
    assert r.status_code == 302
    assert r.headers["x-archive-redirect-reason"] == "found capture at 20240101000000"
    cdx = bclient.get("/cdx/search/cdx", params={"url": "example.com"})
    assert [row[1] for row in cdx_text_rows(cdx)] == ["20240101000000", "20240301000000"]


def test_playback_only_unreplayable_captures_means_not_archived(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/x", "20240301000000", body=b"fresh", replayable=False)
    assert bclient.get("/web/20240301000000id_/https://example.com/x").status_code == 404


def test_playback_capture_not_in_cdx_is_still_playable(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML, in_cdx=False)
    assert bclient.get("/web/20240101000000id_/https://example.com/").status_code == 200
    assert bclient.get("/cdx/search/cdx", params={"url": "example.com"}).text == ""


def test_playback_gzip_quirk_sends_double_content_encoding_when_gzip_accepted(
    bare: WaybackEmulator,
) -> None:
    bare.add_capture("https://example.com/gz", "20240101000000", body=HTML, gzip_quirk=True)
    with (
        make_client(bare) as c,
        c.stream(
            "GET",
            "/web/20240101000000id_/https://example.com/gz",
            headers={"Accept-Encoding": "gzip, deflate"},
        ) as r,
    ):
        raw = b"".join(r.iter_raw())
        assert r.headers.get_list("content-encoding") == ["", "gzip"]
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == HTML


def test_playback_gzip_quirk_sends_plain_bytes_for_identity(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/gz", "20240101000000", body=HTML, gzip_quirk=True)
    r = bclient.get(
        "/web/20240101000000id_/https://example.com/gz", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in r.headers
    assert r.content == HTML
    # the CDX digest covers the stored (gzipped) payload, as on the real archive
    row = cdx_text_rows(bclient.get("/cdx/search/cdx", params={"url": "example.com/gz"}))[0]
    assert row[5] != sha1_base32(HTML)


def test_view_mode_wraps_html_in_toolbar_page_without_memento_datetime(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    r = bclient.get("/web/20240101000000/https://example.com/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "memento-datetime" not in r.headers
    assert r.headers["x-archive-src"]
    assert (
        f"The Wayback Machine - {bare.base_url}/web/20240101000000/https://example.com/" in r.text
    )
    assert r.content != HTML


def test_view_mode_archived_redirect_is_200_interstitial_without_memento_datetime(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture(
        "https://example.com/old", "20240101000000", status=301, location="https://example.com/new"
    )
    r = bclient.get("/web/20240101000000/https://example.com/old")
    assert r.status_code == 200
    assert "memento-datetime" not in r.headers
    assert "Got an HTTP 301 response at crawl time" in r.text
    assert "Redirecting to..." in r.text
    assert '<a href="/web/20240101000000/https://example.com/new">Impatient?</a>' in r.text


def test_head_request_has_headers_but_no_body(bare: WaybackEmulator, bclient: httpx.Client) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    r = bclient.head("/web/20240101000000id_/https://example.com/")
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(HTML))
    assert r.content == b""


# --------------------------------------------------------------------------------------
# CDX
# --------------------------------------------------------------------------------------


@pytest.fixture
def cdx_emu(bare: WaybackEmulator) -> WaybackEmulator:
    bare.add_capture("https://example.com/", "20200101000000", body=b"a")
    bare.add_capture(
        "http://www.example.com/", "20210101000000", body=b"b", status=301, location="/x"
    )
    bare.add_capture("https://example.com/", "20220101000000", body=b"c", content_type="text/plain")
    bare.add_capture("https://example.com/", "20230101000000", body=b"d", status=404)
    bare.add_capture(
        "https://example.com/doc.pdf",
        "20230601000000",
        body=b"%PDF",
        content_type="application/pdf",
    )
    return bare


def test_cdx_json_output_has_header_row_and_string_values(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    r = bclient.get("/cdx/search/cdx", params={"url": "example.com", "output": "json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert data[0] == list(wayback_emulator.CDX_FIELDS)
    assert len(data) == 5
    assert all(isinstance(v, str) for row in data for v in row)
    assert data[1] == [
        "com,example)/",
        "20200101000000",
        "https://example.com/",
        "text/html",
        "200",
        sha1_base32(b"a"),
        "1",
    ]
    assert data[2][2] == "http://www.example.com/"
    assert data[3][3] == "text/plain"


def test_cdx_text_output_is_seven_space_separated_fields_per_line(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    r = bclient.get("/cdx/search/cdx", params={"url": "https://www.example.com/"})
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.endswith("\n")
    rows = cdx_text_rows(r)
    assert [len(row) for row in rows] == [7, 7, 7, 7]
    assert [row[1] for row in rows] == sorted(row[1] for row in rows)


def test_cdx_fl_selects_and_orders_fields(cdx_emu: WaybackEmulator, bclient: httpx.Client) -> None:
    r = bclient.get(
        "/cdx/search/cdx",
        params={"url": "example.com", "output": "json", "fl": "timestamp,statuscode"},
    )
    assert r.json() == [
        ["timestamp", "statuscode"],
        ["20200101000000", "200"],
        ["20210101000000", "301"],
        ["20220101000000", "200"],
        ["20230101000000", "404"],
    ]


def test_cdx_filter_is_a_full_match_regex_and_can_be_negated_and_repeated(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    def ts(params: list[tuple[str, str]]) -> list[str]:
        r = bclient.get("/cdx/search/cdx", params=[("url", "example.com"), *params])
        return [row[1] for row in cdx_text_rows(r)]

    assert ts([("filter", "statuscode:200")]) == ["20200101000000", "20220101000000"]
    assert ts([("filter", "statuscode:20")]) == []  # full match, not search
    assert ts([("filter", "!statuscode:200")]) == ["20210101000000", "20230101000000"]
    assert ts([("filter", "statuscode:[23]0.*"), ("filter", "mimetype:text/html")]) == [
        "20200101000000",
        "20210101000000",
    ]


def test_cdx_limit_takes_first_n_and_negative_limit_takes_last_n(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    first = bclient.get("/cdx/search/cdx", params={"url": "example.com", "limit": "2"})
    assert [r[1] for r in cdx_text_rows(first)] == ["20200101000000", "20210101000000"]
    last = bclient.get(
        "/cdx/search/cdx", params={"url": "example.com", "limit": "-1", "fastLatest": "true"}
    )
    assert [r[1] for r in cdx_text_rows(last)] == ["20230101000000"]


def test_cdx_closest_sort_orders_rows_by_distance(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    r = bclient.get(
        "/cdx/search/cdx",
        params={"url": "example.com", "closest": "20211201", "sort": "closest", "limit": "2"},
    )
    assert [row[1] for row in cdx_text_rows(r)] == ["20220101000000", "20210101000000"]
    rev = bclient.get("/cdx/search/cdx", params={"url": "example.com", "sort": "reverse"})
    assert cdx_text_rows(rev)[0][1] == "20230101000000"


def test_cdx_from_and_to_are_inclusive_and_padded(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    r = bclient.get("/cdx/search/cdx", params={"url": "example.com", "from": "2021", "to": "2022"})
    assert [row[1] for row in cdx_text_rows(r)] == ["20210101000000", "20220101000000"]


def test_cdx_prefix_match_with_trailing_star_or_match_type(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    star = bclient.get("/cdx/search/cdx", params={"url": "example.com/*"})
    mt = bclient.get("/cdx/search/cdx", params={"url": "example.com/", "matchType": "prefix"})
    assert len(cdx_text_rows(star)) == 5
    assert star.text == mt.text
    assert cdx_text_rows(star)[-1][0] == "com,example)/doc.pdf"


def test_cdx_collapse_dedupes_adjacent_rows_only(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    r = bclient.get("/cdx/search/cdx", params={"url": "example.com", "collapse": "statuscode"})
    assert [row[4] for row in cdx_text_rows(r)] == ["200", "301", "200", "404"]
    r = bclient.get("/cdx/search/cdx", params={"url": "example.com", "collapse": "timestamp:2"})
    assert len(cdx_text_rows(r)) == 1


def test_cdx_show_resume_key_pages_through_and_omits_key_when_complete(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    params = {"url": "example.com", "limit": "3", "showResumeKey": "true"}
    r = bclient.get("/cdx/search/cdx", params=params)
    body, _, key = r.text.rstrip("\n").rpartition("\n\n")
    assert len(parse_cdx_lines(body)) == 3
    assert key and " " not in key
    r2 = bclient.get("/cdx/search/cdx", params={**params, "resumeKey": key})
    assert [row[1] for row in cdx_text_rows(r2)] == ["20230101000000"]
    assert "\n\n" not in r2.text
    full = bclient.get("/cdx/search/cdx", params={**params, "limit": "10"})
    assert "\n\n" not in full.text
    js = bclient.get("/cdx/search/cdx", params={**params, "output": "json"}).json()
    assert js[-2] == [] and js[-1] == [key]


def test_cdx_empty_results_are_an_empty_200(bclient: httpx.Client) -> None:
    text = bclient.get("/cdx/search/cdx", params={"url": "nothing.example"})
    assert text.status_code == 200
    assert text.content == b""
    js = bclient.get("/cdx/search/cdx", params={"url": "nothing.example", "output": "json"})
    assert js.status_code == 200
    assert js.json() == []


def test_cdx_requires_url(bclient: httpx.Client) -> None:
    assert bclient.get("/cdx/search/cdx").status_code == 400


@pytest.mark.parametrize(
    ("fixture", "url"),
    [
        ("bad_timestamp_cdx.txt", "www.usatoday.com/2000/century/tech/"),
        ("zero_length_cdx.txt", "www.cnn.com/"),
        ("malformed_cdx.txt", "https://epa.gov/"),
    ],
)
def test_cdx_quirky_recorded_rows_pass_through_verbatim(
    bare: WaybackEmulator, bclient: httpx.Client, fixture: str, url: str
) -> None:
    text = (EDGI / "test_files" / fixture).read_text(encoding="utf-8")
    rows = parse_cdx_lines(text)
    bare.add_cdx_rows(url, rows)
    r = bclient.get("/cdx/search/cdx", params={"url": url})
    assert r.status_code == 200
    assert r.text == "".join(" ".join(row) + "\n" for row in rows)
    js = bclient.get("/cdx/search/cdx", params={"url": url, "output": "json"}).json()
    assert js[1:] == rows


def test_cdx_raw_rows_are_never_playable(bare: WaybackEmulator, bclient: httpx.Client) -> None:
    rows = parse_cdx_lines((EDGI / "test_files" / "zero_length_cdx.txt").read_text())
    bare.add_cdx_rows("www.cnn.com/", rows)
    assert bclient.get("/web/20100215131836id_/http://www.cnn.com/").status_code == 404


def test_cdx_duplicate_and_revisit_rows_can_be_injected(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    dup = ["com,example)/", "20200101000000", "https://example.com/", "text/html", "200", "X", "1"]
    revisit = [
        "com,example)/",
        "20200102000000",
        "https://example.com/",
        "warc/revisit",
        "-",
        "X",
        "-",
    ]
    cdx_emu.add_cdx_rows("example.com", [dup, dup, revisit])
    rows = cdx_text_rows(bclient.get("/cdx/search/cdx", params={"url": "example.com"}))
    assert rows.count(dup) == 2
    assert revisit in rows
    filtered = cdx_text_rows(
        bclient.get("/cdx/search/cdx", params={"url": "example.com", "filter": "statuscode:-"})
    )
    assert filtered == [revisit]


def test_cdx_blocked_response_matches_the_recording(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    cassette = EDGI / "cassettes" / "test_search_raises_for_blocked_urls.yaml"
    rec = yaml.load(cassette.read_text(), Loader=yaml.Loader)["interactions"][0]["response"]
    bare.add_excluded("nationalpost.com")
    r = bclient.get("/cdx/search/cdx", params={"url": "https://nationalpost.com/health"})
    assert r.status_code == rec["status"]["code"] == 403
    assert r.content == gzip.decompress(rec["body"]["string"])
    assert r.headers["content-type"] == rec["headers"]["Content-Type"][0]
    assert (
        r.headers["x-archive-wayback-runtime-error"]
        == rec["headers"]["X-Archive-Wayback-Runtime-Error"][0]
    )


def test_timemap_link_lists_captures_and_uses_the_cdx_pool(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    r = bclient.get("/web/timemap/link/https://example.com/")
    assert r.status_code == 200
    assert r.text.count('rel="') >= 6
    assert 'rel="first memento"' in r.text and 'rel="last memento"' in r.text
    js = bclient.get("/web/timemap/json", params={"url": "example.com"})
    assert js.json()[0][0] == "urlkey"
    assert cdx_emu.counts["cdx"] == 2
    assert cdx_emu.counts["playback"] == 0


# --------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------


def test_availability_returns_closest_capture_and_echoes_timestamp(
    cdx_emu: WaybackEmulator, bclient: httpx.Client
) -> None:
    r = bclient.get("/wayback/available", params={"url": "example.com", "timestamp": "20210102"})
    assert r.status_code == 200
    data = r.json()
    assert data["url"] == "example.com"
    assert data["timestamp"] == "20210102"
    closest = data["archived_snapshots"]["closest"]
    assert closest == {
        "status": "301",
        "available": True,
        "url": f"http://127.0.0.1:{cdx_emu.port}/web/20210101000000/http://www.example.com/",
        "timestamp": "20210101000000",
    }
    latest = bclient.get("/wayback/available", params={"url": "example.com"}).json()
    assert latest["archived_snapshots"]["closest"]["timestamp"] == "20230101000000"
    assert "timestamp" not in latest
    assert cdx_emu.counts["availability"] == 2


def test_availability_returns_empty_snapshots_when_missing(bclient: httpx.Client) -> None:
    r = bclient.get("/wayback/available", params={"url": "nothing.example"})
    assert r.status_code == 200
    assert r.json() == {"url": "nothing.example", "archived_snapshots": {}}


# --------------------------------------------------------------------------------------
# Counters, rate limits, firewall, outage
# --------------------------------------------------------------------------------------


def test_counts_requests_per_pool_and_records_them_in_order(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bclient.get("/cdx/search/cdx?url=example.com")
    bclient.get("/web/2024id_/https://example.com/")
    bclient.get("/wayback/available?url=example.com")
    bclient.get("/favicon.ico")
    bclient.get("/web/timemap/link/https://example.com/")
    assert bare.counts == {"cdx": 2, "playback": 1, "availability": 1, "other": 1}
    assert bare.requests == [
        ("cdx", "GET", "/cdx/search/cdx?url=example.com"),
        ("playback", "GET", "/web/2024id_/https://example.com/"),
        ("availability", "GET", "/wayback/available?url=example.com"),
        ("other", "GET", "/favicon.ico"),
        ("cdx", "GET", "/web/timemap/link/https://example.com/"),
    ]
    bare.reset_counters()
    assert bare.counts == {"cdx": 0, "playback": 0, "availability": 0, "other": 0}
    assert bare.requests == []


def test_counts_body_bytes_per_pool_and_per_path(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    redirect = bclient.get("/web/2024id_/https://example.com/")
    capture = bclient.get("/web/20240101000000id_/https://example.com/")
    cdx = bclient.get("/cdx/search/cdx?url=example.com")
    assert redirect.status_code == 302 and capture.content == HTML
    assert bare.body_bytes["playback"] == len(redirect.content) + len(HTML)
    assert bare.body_bytes["cdx"] == len(cdx.content) > 0
    assert bare.body_bytes_by_path == {
        "/web/2024id_/https://example.com/": len(redirect.content),
        "/web/20240101000000id_/https://example.com/": len(HTML),
        "/cdx/search/cdx?url=example.com": len(cdx.content),
    }
    bare.reset_counters()
    assert bare.body_bytes["playback"] == 0 and not bare.body_bytes_by_path


def test_cdx_pool_returns_429_after_budget_without_retry_after() -> None:
    with WaybackEmulator(cdx_per_minute=3, load_recordings=False) as e, make_client(e) as c:
        statuses = [c.get("/cdx/search/cdx?url=example.com").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        r = c.get("/web/timemap/link/https://example.com/")  # same pool
        assert r.status_code == 429
        assert "retry-after" not in r.headers
        assert r.headers["content-type"] == "text/html"
        assert r.content == (
            b"<html><body><h1>429 Too Many Requests</h1>\n"
            b"You have sent too many requests in a given amount of time.\n</body></html>"
        )
        assert e.count_429 == 3
        assert e.counts["cdx"] == 6
        # other pools are unaffected
        assert c.get("/web/2024id_/https://example.com/").status_code == 404


def test_playback_pool_limit_is_independent_of_cdx_pool() -> None:
    with WaybackEmulator(playback_per_minute=2, load_recordings=False) as e, make_client(e) as c:
        e.add_capture("https://example.com/", "20240101000000", body=HTML)
        url = "/web/20240101000000id_/https://example.com/"
        assert [c.get(url).status_code for _ in range(3)] == [200, 200, 429]
        assert c.get("/cdx/search/cdx?url=example.com").status_code == 200
        assert e.count_429 == 1


def test_rate_limit_window_slides_and_recovers() -> None:
    with (
        WaybackEmulator(cdx_per_minute=2, window_seconds=0.3, load_recordings=False) as e,
        make_client(e) as c,
    ):
        assert [c.get("/cdx/search/cdx?url=a.example").status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        time.sleep(0.35)
        assert c.get("/cdx/search/cdx?url=a.example").status_code == 200


def test_firewall_escalation_closes_connections_then_recovers() -> None:
    with (
        WaybackEmulator(
            cdx_per_minute=1,
            window_seconds=30,
            firewall_after_seconds=0.2,
            firewall_seconds=0.5,
            load_recordings=False,
        ) as e,
        make_client(e) as c,
    ):
        assert c.get("/cdx/search/cdx?url=a.example").status_code == 200
        deadline = time.monotonic() + 3
        saw_429 = False
        while not e.firewalled and time.monotonic() < deadline:
            r = c.get("/cdx/search/cdx?url=a.example")
            saw_429 = saw_429 or r.status_code == 429
            time.sleep(0.05)
        assert saw_429
        assert e.firewalled
        assert e.firewall_count == 1
        # the kept-alive connection is closed without a response ...
        with pytest.raises(httpx.TransportError):
            c.get("/cdx/search/cdx?url=a.example")
        # ... and so is every new connection, on every pool
        with make_client(e) as fresh, pytest.raises(httpx.TransportError):
            fresh.get("/wayback/available?url=a.example")
        assert e.count_dropped >= 2
        time.sleep(0.6)
        assert not e.firewalled
        with make_client(e) as fresh:
            assert fresh.get("/wayback/available?url=a.example").status_code == 200


def test_firewall_can_be_switched_on_and_off_by_hand(bare: WaybackEmulator) -> None:
    bare.firewall_seconds = 30
    bare.firewalled = True
    with make_client(bare) as c, pytest.raises(httpx.TransportError):
        c.get("/nope")
    bare.firewalled = False
    with make_client(bare) as c:
        assert c.get("/nope").status_code == 404
    assert bare.counts["other"] == 1


def test_firewall_is_off_by_default(bare: WaybackEmulator) -> None:
    bare.set_rate_limits(cdx_per_minute=1, window_seconds=30)
    with make_client(bare) as c:
        c.get("/cdx/search/cdx?url=a.example")
        for _ in range(5):
            assert c.get("/cdx/search/cdx?url=a.example").status_code == 429
    assert not bare.firewalled


def test_outage_returns_503_for_every_endpoint_then_recovers(
    bare: WaybackEmulator, bclient: httpx.Client
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    bare.set_outage(503)
    for path in (
        "/web/20240101000000id_/https://example.com/",
        "/cdx/search/cdx?url=example.com",
        "/wayback/available?url=example.com",
    ):
        r = bclient.get(path)
        assert r.status_code == 503
        assert r.reason_phrase == "Service Temporarily Unavailable"
        assert "memento-datetime" not in r.headers
        assert "Service Temporarily Unavailable" in r.text
    assert bare.counts["playback"] == bare.counts["cdx"] == bare.counts["availability"] == 1
    bare.set_outage(None)
    assert bclient.get("/web/20240101000000id_/https://example.com/").status_code == 200


def test_unknown_paths_are_404(bclient: httpx.Client) -> None:
    assert bclient.get("/nope").status_code == 404
    assert bclient.get("/cdx/other").status_code == 404


# --------------------------------------------------------------------------------------
# HTTP plumbing, demo, CLI
# --------------------------------------------------------------------------------------


def test_every_response_has_content_length_on_one_kept_alive_connection(
    bare: WaybackEmulator,
) -> None:
    bare.add_capture("https://example.com/", "20240101000000", body=HTML)
    paths = [
        "/web/20240101000000id_/https://example.com/",
        "/web/2023id_/https://example.com/",
        "/cdx/search/cdx?url=nothing.example",
        "/nope",
    ]
    with socket.create_connection(("127.0.0.1", bare.port), timeout=5) as s:
        f = s.makefile("rb")
        for p in paths:
            s.sendall(f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status = f.readline()
            assert status.startswith(b"HTTP/1.1 ")
            headers: dict[str, str] = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            assert "content-length" in headers, p
            f.read(int(headers["content-length"]))
            assert headers.get("connection") == "keep-alive"


def test_demo_captures_serve_an_example_com_page() -> None:
    with WaybackEmulator(load_recordings=False) as e, make_client(e) as c:
        add_demo_captures(e)
        r = c.get("/web/20240101000000id_/https://example.com/")
        assert r.status_code == 200
        assert "<title>" in r.text and "<p>" in r.text
        pdf = c.get("/web/20240101000000id_/https://example.com/report.pdf")
        assert pdf.content.startswith(b"%PDF-")


def test_emulator_writes_nothing_to_stderr(
    bare: WaybackEmulator, bclient: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    bclient.get("/web/2024id_/https://example.com/")
    bclient.get("/nope")
    _out, err = capfd.readouterr()
    assert err == ""


def test_stop_releases_the_port() -> None:
    e = WaybackEmulator(load_recordings=False).start()
    port = e.port
    e.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/nope", timeout=2, trust_env=False)
    with pytest.raises(RuntimeError):
        _ = e.base_url


def test_main_serves_until_interrupted_and_prints_base_url() -> None:
    script = Path(__file__).parent / "wayback_emulator.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--demo", "--no-recordings"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        r = httpx.get(f"{base}/wayback/available?url=example.com", timeout=5, trust_env=False)
        assert json.loads(r.text)["archived_snapshots"]["closest"]["timestamp"] == "20240101000000"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
