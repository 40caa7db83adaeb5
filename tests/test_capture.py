"""The pure capture decisions, tested against real recorded archive responses and
exhaustive synthetic cases. No sockets."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from snapcache.capture import (
    CdxRow,
    Earlier,
    Hop,
    HopKind,
    Walk,
    WalkEnd,
    choose_captures,
    classify_playback,
    earlier_capture,
    header_map,
    link_original,
    memento_timestamp,
    netloc_of,
    parse_cdx,
    plausible_original,
    valid_timestamp,
)

DATA = Path(__file__).parent / "data" / "recordings"
CASSETTES = DATA / "wayback" / "src" / "wayback" / "tests" / "cassettes"
FILES = DATA / "wayback" / "src" / "wayback" / "tests" / "test_files"
ARCHIVE = frozenset({"web.archive.org"})


def interactions(name: str) -> list[dict[str, Any]]:
    """(uri, status, headers, body) of each interaction in a recorded cassette."""
    with (CASSETTES / name).open(encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=yaml.Loader)
    out = []
    for item in doc["interactions"]:
        response = item["response"]
        body = response["body"]["string"]
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body.startswith(b"\x1f\x8b"):
            body = gzip.decompress(body)
        headers = header_map(
            (k, v) for k, values in response["headers"].items() for v in values
        )
        out.append(
            {
                "uri": item["request"]["uri"],
                "status": response["status"]["code"],
                "headers": headers,
                "body": body,
            }
        )
    return out


def classify(i: dict[str, Any]) -> Hop:
    return classify_playback(i["status"], i["headers"], i["body"][:256 * 1024], i["uri"])


def walk_recording(name: str, max_hops: int = 10) -> Walk:
    """Replay a recorded chain through the pure walker, checking it asks for each next
    recorded URL in turn."""
    recorded = interactions(name)
    by_uri = {i["uri"]: i for i in recorded}
    walk = Walk(recorded[0]["uri"], ARCHIVE, max_hops)
    url: str | None = recorded[0]["uri"]
    while url is not None:
        assert url in by_uri, f"walker asked for {url}, which was never recorded"
        url = walk.step(classify(by_uri[url]))
    return walk


# --- classification of real responses ---------------------------------------------------


def test_nearest_capture_302_is_not_a_capture_and_carries_its_target() -> None:
    first = interactions("test_get_memento_target_window.yaml")[0]
    hop = classify(first)
    assert hop.kind is HopKind.NEAREST_REDIRECT
    assert hop.timestamp is None
    assert hop.location is not None and "/web/20171124151315id_/" in hop.location
    assert "found capture at" in hop.reason


def test_archived_301_is_a_capture_of_a_redirect() -> None:
    hop = classify(interactions("test_get_memento_with_redirects.yaml")[0])
    assert hop.kind is HopKind.ARCHIVED_REDIRECT
    assert (hop.status, hop.timestamp) == (301, "20180808094144")


def test_archived_429_is_an_archived_status_not_a_rate_limit() -> None:
    hop = classify(interactions("test_get_memento_works_on_archived_rate_limit_responses.yaml")[0])
    assert hop.kind is HopKind.MEMENTO
    assert (hop.status, hop.timestamp) == (429, "20150129034904")


def test_exclusion_page_is_blocked_despite_http_200() -> None:
    hop = classify(interactions("test_get_memento_raises_blocked_error.yaml")[0])
    assert hop.kind is HopKind.BLOCKED


def test_never_archived_404_is_not_archived() -> None:
    hop = classify(interactions("test_get_memento_raises_no_memento_error.yaml")[0])
    assert hop.kind is HopKind.NOT_ARCHIVED


def test_view_mode_redirect_interstitial_is_never_taken_for_a_capture() -> None:
    hop = classify(interactions("test_get_memento_with_redirect_in_view_mode.yaml")[0])
    assert hop.kind is HopKind.UNKNOWN
    assert hop.timestamp is None


def test_link_original_differs_from_the_request_and_is_kept() -> None:
    hop = classify(interactions("test_get_memento_returns_memento_with_accurate_url.yaml")[0])
    assert hop.kind is HopKind.MEMENTO
    assert hop.original == "https://www.fws.gov/"
    assert "http://fws.gov/" in hop.url


# --- walking real chains -------------------------------------------------------------------


def test_walk_follows_the_full_historical_redirect_chain() -> None:
    walk = walk_recording("test_get_memento_follows_historical_redirects.yaml")
    assert walk.end is WalkEnd.CAPTURE and walk.good
    assert walk.final is not None and walk.final.timestamp == "20200201024405"
    assert len(walk.hops) == 4


@pytest.mark.parametrize(
    "name",
    ["test_get_memento_with_path_based_redirects.yaml",
     "test_get_memento_with_schemeless_redirects.yaml"],
)
def test_walk_resolves_path_only_and_scheme_relative_locations_to_an_archived_404(
    name: str,
) -> None:
    walk = walk_recording(name)
    assert walk.end is WalkEnd.CAPTURE
    assert walk.final is not None and walk.final.status == 404
    assert not walk.good
    assert all(u.startswith("https://web.archive.org/web/") for u in walk.visited)


def test_walk_detects_the_recorded_springer_redirect_loop() -> None:
    walk = walk_recording("test_get_memento_raises_for_mementos_that_redirect_in_a_loop.yaml")
    assert walk.end is WalkEnd.LOOP
    assert len(walk.hops) == 4
    assert walk.last_capture is not None and walk.last_capture.status in (302, 303)


def test_walk_of_a_non_playbackable_capture_records_the_served_time() -> None:
    first = interactions("test_get_memento_should_fail_for_non_playbackable_mementos.yaml")[0]
    hop = classify(first)
    # The archive answers a request for 20150509080314 with a capture six days earlier, on
    # another scheme: the walker must follow it, and the record must show the served time.
    assert hop.kind is HopKind.NEAREST_REDIRECT
    assert hop.location is not None and "20150503090125" in hop.location


# --- the walker's rules, synthetically -------------------------------------------------------


def _hop(kind: HopKind, url: str, location: str | None = None, status: int = 302,
         ts: str | None = None) -> Hop:
    return Hop(kind, status, url, ts, location)


B = "https://web.archive.org/web/"


def test_walk_refuses_a_redirect_off_the_archive_and_records_it() -> None:
    walk = Walk(B + "1id_/a", ARCHIVE)
    nxt = walk.step(_hop(HopKind.NEAREST_REDIRECT, B + "1id_/a", "https://evil.example/x"))
    assert nxt is None and walk.end is WalkEnd.OFF_ARCHIVE
    assert walk.refused == "https://evil.example/x"


def test_walk_stops_after_the_hop_cap() -> None:
    walk = Walk(B + "0id_/a", ARCHIVE, max_hops=3)
    url: str | None = B + "0id_/a"
    n = 0
    while url is not None:
        n += 1
        url = walk.step(_hop(HopKind.ARCHIVED_REDIRECT, url, f"{B}{n}id_/a", 301, "20200101000000"))
    assert walk.end is WalkEnd.TOO_MANY_HOPS
    assert n == 4


@pytest.mark.parametrize(
    ("kind", "end"),
    [(HopKind.NOT_ARCHIVED, WalkEnd.NOT_ARCHIVED), (HopKind.BLOCKED, WalkEnd.BLOCKED),
     (HopKind.UNKNOWN, WalkEnd.UNKNOWN), (HopKind.MEMENTO, WalkEnd.CAPTURE)],
)
def test_walk_ends_on_terminal_hops(kind: HopKind, end: WalkEnd) -> None:
    walk = Walk(B + "1id_/a", ARCHIVE)
    assert walk.step(_hop(kind, B + "1id_/a", status=200, ts="20200101000000")) is None
    assert walk.end is end


# --- classify_playback, exhaustively over status x memento-datetime x location -----------------

STATUSES = [200, 204, 301, 302, 303, 307, 308, 400, 403, 404, 410, 429, 500, 502, 503, 504]


@pytest.mark.parametrize(
    ("status", "memento", "location"),
    list(itertools.product(STATUSES, [True, False], [True, False])),
)
def test_classify_playback_rules(status: int, memento: bool, location: bool) -> None:
    headers: dict[str, str] = {}
    if memento:
        headers["memento-datetime"] = "Tue, 27 Oct 2020 21:55:55 GMT"
    if location:
        headers["location"] = "/web/20201027215555id_/https://x.org/"
    hop = classify_playback(status, headers, b"", "https://web.archive.org/web/1id_/https://x.org/")
    redirect = 300 <= status < 400
    if memento:
        expected = HopKind.ARCHIVED_REDIRECT if redirect and location else HopKind.MEMENTO
        assert hop.kind is expected
        assert hop.timestamp == "20201027215555"
        return
    if redirect:
        assert hop.kind is (HopKind.NEAREST_REDIRECT if location else HopKind.UNKNOWN)
    elif status == 429:
        assert hop.kind is HopKind.RATE_LIMITED
    elif status >= 500:
        assert hop.kind is HopKind.TRANSIENT
    elif status == 404:
        assert hop.kind is HopKind.NOT_ARCHIVED
    else:
        assert hop.kind is HopKind.UNKNOWN
    assert hop.timestamp is None


def test_runtime_error_header_marks_blocked_and_not_archived() -> None:
    blocked = classify_playback(
        403, {"x-archive-wayback-runtime-error": "RobotAccessControlException: Blocked By Robots"},
        b"", "u")
    missing = classify_playback(
        404, {"x-archive-wayback-runtime-error": "ResourceNotInArchiveException: x"}, b"", "u")
    assert blocked.kind is HopKind.BLOCKED
    assert missing.kind is HopKind.NOT_ARCHIVED


def test_memento_datetime_parsing() -> None:
    assert memento_timestamp("Tue, 27 Oct 2020 21:55:55 GMT") == "20201027215555"
    assert memento_timestamp("Tue, 27 Oct 2020 23:55:55 +0200") == "20201027215555"
    assert memento_timestamp("garbage") is None
    assert memento_timestamp(None) is None


def test_link_original_parsing() -> None:
    header = ('<https://x.org/a>; rel="original", <https://web.archive.org/web/timemap/link/'
              'https://x.org/a>; rel="timemap"; type="application/link-format"')
    assert link_original(header) == "https://x.org/a"
    assert link_original('<https://y>; rel="memento"') is None


def test_header_map_joins_repeated_headers_like_the_gzip_quirk() -> None:
    assert header_map([("Content-Encoding", ""), ("content-encoding", "gzip")]) == {
        "content-encoding": ", gzip"
    }


def test_netloc_of() -> None:
    assert netloc_of("https://Web.Archive.org:443/x") == "web.archive.org"
    assert netloc_of("http://127.0.0.1:8080/x") == "127.0.0.1:8080"
    assert netloc_of("http://[::1]:99999/") == ""


# --- CDX ------------------------------------------------------------------------------------


def _cdx_text(name: str) -> str:
    return (FILES / name).read_text(encoding="utf-8")


def test_cdx_month_00_timestamps_are_skipped() -> None:
    rows = parse_cdx(_cdx_text("bad_timestamp_cdx.txt"))
    assert any(not valid_timestamp(r.timestamp) for r in rows)
    chosen = choose_captures(rows, None, limit=10)
    assert chosen and all(valid_timestamp(r.timestamp) for r in chosen)


def test_cdx_length_dash_is_tolerated() -> None:
    rows = parse_cdx(_cdx_text("zero_length_cdx.txt"))
    assert rows[-1].length is None
    assert choose_captures(rows, None)


def test_cdx_junk_originals_are_never_chosen() -> None:
    rows = parse_cdx(_cdx_text("malformed_cdx.txt"))
    chosen = choose_captures(rows, None, limit=100)
    assert all(plausible_original(r.original) for r in chosen)
    assert len(chosen) < len([r for r in rows if r.status == 200])


def test_recorded_duplicate_and_revisit_rows_collapse_to_distinct_good_captures() -> None:
    body = interactions("test_search_does_not_repeat_results.yaml")[0]["body"].decode()
    rows = parse_cdx(body)
    chosen = choose_captures(rows, None, limit=1000)
    assert len({(r.timestamp, r.digest) for r in chosen}) == len(chosen)
    assert all(r.status is not None and 200 <= r.status < 300 for r in chosen)
    assert any(r.mimetype == "warc/revisit" for r in rows)


def test_recorded_cdx_json_with_custom_field_order_parses() -> None:
    path = DATA / "wayback-rs" / "examples" / "wayback" / "cdx-result.json"
    if not path.exists():
        pytest.skip("wayback-rs recording not copied")
    rows = parse_cdx(path.read_text(encoding="utf-8"))
    assert len(rows) == 37
    assert {r.status for r in rows} <= {200, 302}


def test_truncated_cdx_json_keeps_the_complete_rows() -> None:
    body = ('[["urlkey","timestamp","original","mimetype","statuscode","digest","length"],\n'
            '["org,x)/","20200101000000","https://x.org/","text/html","200","AAA","10"],\n'
            '["org,x)/","20210101000000","https://x.org/","text/html","200","BBB","1')
    rows = parse_cdx(body)
    assert [r.timestamp for r in rows] == ["20200101000000"]


def test_empty_cdx_answers() -> None:
    assert parse_cdx("") == []
    assert parse_cdx("[]") == []


def _row(ts: str, status: int | None = 200, digest: str = "D", original: str = "https://x.org/"
         ) -> CdxRow:
    return CdxRow("org,x)/", ts, original, "text/html", status, digest, 100)


def test_choose_newest_when_no_target() -> None:
    rows = [_row("20200101000000", digest="a"), _row("20220101000000", digest="b"),
            _row("20230101000000", 404, "c"), _row("20210101000000", None, "d")]
    assert [r.timestamp for r in choose_captures(rows, None)] == [
        "20220101000000", "20200101000000"]


def test_choose_closest_in_either_direction_earlier_on_tie() -> None:
    rows = [_row("20200101000000", digest="a"), _row("20200103000000", digest="b"),
            _row("20200110000000", digest="c")]
    assert choose_captures(rows, "20200102000000")[0].timestamp == "20200101000000"
    assert choose_captures(rows, "20200109000000")[0].timestamp == "20200110000000"


@given(st.lists(st.tuples(st.text("0123456789", min_size=14, max_size=14),
                          st.sampled_from([None, 200, 204, 301, 404, 500]),
                          st.sampled_from(["a", "b"])), max_size=30))
def test_choose_captures_only_ever_returns_good_distinct_rows(
    spec: list[tuple[str, int | None, str]],
) -> None:
    rows = [_row(ts, status, digest) for ts, status, digest in spec]
    chosen = choose_captures(rows, None, limit=100)
    for row in chosen:
        assert row.status is not None and 200 <= row.status < 300
        assert valid_timestamp(row.timestamp)
    assert len({(r.timestamp, r.digest) for r in chosen}) == len(chosen)
    assert [r.timestamp for r in chosen] == sorted((r.timestamp for r in chosen), reverse=True)


@given(st.text(max_size=400))
def test_parse_cdx_never_raises(text: str) -> None:
    parse_cdx(text)


# --- earlier captures from Link headers --------------------------------------------------


def test_earlier_capture_is_read_from_a_recorded_link_header() -> None:
    first = interactions("test_get_memento_with_path_based_redirects.yaml")[0]
    earlier = earlier_capture(first["headers"]["link"], "20201027215555")
    assert earlier.known
    assert earlier.timestamp == "20201026212550"
    assert earlier.url is not None and "/web/20201026212550/" in earlier.url


def _link(*mementos: tuple[str, str]) -> str:
    parts = ['<https://x.org/>; rel="original"']
    for rel, ts in mementos:
        when = f"{ts[6:8]} Jan {ts[:4]} {ts[8:10]}:{ts[10:12]}:{ts[12:14]} GMT"
        parts.append(f'<https://web.archive.org/web/{ts}/https://x.org/>; rel="{rel}"; '
                     f'datetime="Mon, {when}"')
    return ", ".join(parts)


def test_the_first_memento_proves_there_is_nothing_earlier() -> None:
    link = _link(("first memento", "20240101000000"), ("memento", "20240101000000"),
                 ("last memento", "20240301000000"))
    assert earlier_capture(link, "20240101000000") == Earlier(True)


def test_without_a_first_memento_nothing_is_concluded() -> None:
    """pywb lists only the memento itself."""
    assert earlier_capture(_link(("memento", "20240101000000")), "20240101000000") == Earlier(
        False)
    assert earlier_capture(None, "20240101000000") == Earlier(False)
    assert earlier_capture('<https://x.org/>; rel="original"', "20240101000000") == Earlier(
        False)


def test_the_latest_earlier_memento_wins_whatever_its_rel() -> None:
    link = _link(("first memento", "20190101000000"), ("prev memento", "20230101000000"),
                 ("memento", "20240101000000"), ("next memento", "20240201000000"))
    assert earlier_capture(link, "20240101000000").timestamp == "20230101000000"
    # If only first and last are given, the first is still an earlier capture to try.
    link = _link(("first memento", "20190101000000"), ("memento", "20240101000000"))
    assert earlier_capture(link, "20240101000000").timestamp == "20190101000000"
