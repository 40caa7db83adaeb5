"""Citation URLs are untrusted: nothing in one may move a request out of the replay prefix.

The finding: the input URL was pasted into ``/web/<ts>id_/<url>`` and httpx resolves dot
segments, so ``https://x.example/../../../../../save/https://target.example/`` sent
``GET /save/https://target.example/`` (legacy Save Page Now on the real archive) with saving
disabled, and the same trick reached ``/cdx/search/cdx`` on the *playback* budget. Here:
the pure URL functions exhaustively, the transport's last check, redirects, and 40 hostile
URLs end to end against the loopback emulator and a real pywb server.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from snapcache import Fetcher
from snapcache.archive import WaybackArchive
from snapcache.capture import Hop, HopKind, Walk, WalkEnd, pywb_redirect_replay
from snapcache.config import config_from_mapping
from snapcache.errors import DisallowedHostError, DisallowedRequestError, InputError
from snapcache.ids import (
    build_replay_url,
    check_url,
    find_dot_segment,
    parse_target,
    resolve_dot_segments,
    safe_original,
    safe_replay_target,
)
from snapcache.runner import RunEvent
from snapcache.transport import FULL, PathRule, Pool, Transport

from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.pywb_server import Capture, PywbServer
from tests.replay_hostile import HOSTILE, leaves_prefix

TS = "20240101000000"
PREFIX = "http://127.0.0.1:8080/web/"


# --- the dot-segment test ---------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "", "/", "/a/b", "//a//b", "/.well-known/x", "/...", "/a.../..b/.c./c..", "/a%2eb",
    "/file%2Etxt", "/%2e%2e%2e", "/a;..", "/a/b;x=..", "/%25", "/%zz/%", "/a\\b",
    "/\u00e9t\u00e9", "/%C3%A9", "/a%2F%2Fb", "/~user/", "/..a/a../",
])
def test_ordinary_segments_are_no_dot_segments(path: str) -> None:
    assert find_dot_segment(path) is None


@pytest.mark.parametrize(("path", "said"), [
    ("/..", "'..'"), ("/.", "'.'"), ("/a/../b", "'..'"), ("..", "'..'"), (".", "'.'"),
    ("/%2e%2e/", "one round of percent-decoding"), ("/%2E%2e", "one round"),
    ("/.%2e", "one round"), ("/%2e./", "one round"), ("/%2e", "one round"),
    ("/%252e%252e", "2 rounds"), ("/%25252e%25252e", "3 rounds"),
    ("/a\\..\\b", "between backslashes"), ("\\..", "between backslashes"),
    ("/..;/", "with a parameter"), ("/..;jsessionid=1/", "with a parameter"),
    ("/.;x", "with a parameter"), ("/%2e%2e%3b/", "one round"),
    ("/..%2fsave", "one round"), ("/..%5csave", "one round"), ("/a%2F..%2Fb", "one round"),
    ("/%c0%ae%c0%ae/", "one round"), ("/%e0%80%ae/", "one round"),
    ("/%u002e%u002e/", "one round"), ("/\uff0e\uff0e/", "read as a dot segment"),
    ("/..%00/", "one round"), ("/.. /", "read as a dot segment"),
    ("/..%252f", "2 rounds"), ("/%%32%65%%32%65", "2 rounds"),
])
def test_dot_segments_in_every_spelling_are_found_and_named(path: str, said: str) -> None:
    found = find_dot_segment(path)
    assert found is not None and said in found


@settings(max_examples=600)
@given(st.text(alphabet=st.sampled_from(list("./\\;=a \t\r\n\x00\x0b\x0c")), max_size=24))
def test_ascii_paths_without_escapes_are_judged_as_the_decoding_rounds_judge_them(
    path: str,
) -> None:
    # Such paths take a short cut (no decoding round can change them); a last segment
    # that is not ASCII sends the same path through the rounds, and must change nothing.
    assert find_dot_segment(path) == find_dot_segment(path + "/\u00e9")


def _rfc3986_remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, literally (the oracle for plain dot segments)."""
    out = ""
    buf = path
    while buf:
        if buf.startswith("../"):
            buf = buf[3:]
        elif buf.startswith("./"):
            buf = buf[2:]
        elif buf.startswith("/./"):
            buf = "/" + buf[3:]
        elif buf == "/.":
            buf = "/"
        elif buf.startswith("/../"):
            buf = "/" + buf[4:]
            out = out[: out.rfind("/")] if "/" in out else ""
        elif buf == "/..":
            buf = "/"
            out = out[: out.rfind("/")] if "/" in out else ""
        elif buf in (".", ".."):
            buf = ""
        else:
            start = 1 if buf.startswith("/") else 0
            cut = buf.find("/", start)
            cut = len(buf) if cut < 0 else cut
            out += buf[:cut]
            buf = buf[cut:]
    return out


@given(st.lists(st.sampled_from(["a", "b", "", ".", "..", "x.y", "..."]), max_size=12))
def test_plain_dot_segments_resolve_as_rfc_3986_says(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    resolved = resolve_dot_segments(path)
    assert resolved == _rfc3986_remove_dot_segments(path)
    assert resolved.startswith("/") and find_dot_segment(resolved) is None


@pytest.mark.parametrize(("path", "resolved"), [
    ("/a/b/../c", "/a/c"), ("/a/./b", "/a/b"), ("/..", "/"), ("/.", "/"), ("/a/b/..", "/a/"),
    ("/../../../../save/https://t.example/", "/save/https://t.example/"),
    ("/%2e%2e/%2E%2E/x", "/x"), ("/.%2e/%2e./x/%2e", "/x/"), ("//..//..//x", "//x"),
    ("", ""), ("/a..b/..c", "/a..b/..c"),
])
def test_browser_dot_segments_resolve_within_the_path(path: str, resolved: str) -> None:
    assert resolve_dot_segments(path) == resolved


# --- safe_original and the input check -----------------------------------------------

_FINE = st.from_regex(
    r"https?://[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){1,2}(:[1-9][0-9]{1,3})?"
    r"(/([A-Za-z0-9_~!$&'()*+,;=:@-]|%[0-9A-F]{2}|\.[A-Za-z0-9]){0,12}){0,6}/?"
    r"(\?[A-Za-z0-9=&./%-]{0,20})?(#[A-Za-z0-9./-]{0,10})?", fullmatch=True)


@given(_FINE)
def test_a_url_without_dot_segments_is_kept_exactly(url: str) -> None:
    """The archive matches originals textually: a fine URL is never rewritten."""
    if find_dot_segment(re.split(r"[?#]", url, maxsplit=1)[0]) is not None:
        return
    assert safe_original(url) == url
    assert parse_target(url).original == url
    assert build_replay_url(PREFIX, TS, url) == f"{PREFIX}{TS}id_/{url}"


@pytest.mark.parametrize(("url", "original"), [
    ("https://x.example/../../../../../save/https://target.example/",
     "https://x.example/save/https://target.example/"),
    ("https://x.example/%2e%2e/%2E%2E/cdx/search/cdx?url=t&x=/../",
     "https://x.example/cdx/search/cdx?url=t&x=/../"),
    ("https://x.example/a/./b/../c#/../../", "https://x.example/a/c#/../../"),
    ("https://x.example/.", "https://x.example/"),
    ("HTTPS://X.EXAMPLE:443/a/..", "HTTPS://X.EXAMPLE:443/"),
    ("https://x.example@t.example/../save", "https://x.example@t.example/save"),
    ("https://x.example/?/../../save", "https://x.example/?/../../save"),
    ("https://x.example/#/../../save", "https://x.example/#/../../save"),
])
def test_plain_dot_segments_are_resolved_inside_the_original(url: str, original: str) -> None:
    assert safe_original(url) == original
    target = parse_target(url)
    assert (target.given, target.original) == (url, original)


@pytest.mark.parametrize(("url", "reason"), [
    ("https://x.example/a\\..\\..\\b", "between backslashes"),
    ("https://x.example/..;/..;/save", "with a parameter"),
    ("https://x.example/%252e%252e/save", "2 rounds of percent-decoding"),
    ("https://x.example/a/..%2f..%2fsave", "one round"),
    ("https://x.example/%c0%ae%c0%ae/save", "one round"),
    ("https://x.example/\uff0e\uff0e/save", "read as a dot segment"),
    ("https://../../save/", "host holds a dot segment"),
    ("https://%2e%2e/save/", "host holds a dot segment"),
    ("https://x.example\\..\\..\\save/", "host holds a dot segment"),
])
def test_disguised_dot_segments_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(InputError, match=re.escape(reason)) as caught:
        parse_target(url)
    assert "replay path" in str(caught.value)


def test_a_lone_surrogate_is_refused_at_input_not_by_a_traceback() -> None:
    with pytest.raises(InputError, match="lone surrogate"):
        check_url("https://x.example/\ud800")
    assert find_dot_segment("/\ud800/..") is not None


def test_archive_urls_given_as_input_have_their_originals_checked_too() -> None:
    target = parse_target("https://web.archive.org/web/2020id_/https://x.example/a/../b")
    assert (target.original, target.at) == ("https://x.example/b", "20200101000000")
    with pytest.raises(InputError, match="host holds a dot segment"):
        parse_target("https://web.archive.org/web/2020/../../../../save/https://t.example/")
    with pytest.raises(InputError, match="host holds a dot segment"):
        parse_target("https://web.archive.org/web/2020*/../../save/")


@given(st.text(max_size=120))
def test_any_text_is_refused_or_made_safe(text: str) -> None:
    try:
        original = parse_target(text).original
    except InputError:
        return
    assert find_dot_segment(re.split(r"[?#]", original, maxsplit=1)[0]) is None


# --- build_replay_url and what httpx sends -----------------------------------------------

def _sent_path(url: str) -> str:
    """The path httpx puts on the wire for ``url``, without the query."""
    return httpx.Request("GET", url).url.raw_path.split(b"?", 1)[0].decode("ascii")


@pytest.mark.parametrize("url", HOSTILE)
def test_every_hostile_url_is_refused_or_replayed_inside_the_prefix(url: str) -> None:
    try:
        original = parse_target(url, checked=True).original
    except InputError:
        return
    for flag in ("id_", ""):
        built = build_replay_url(PREFIX, TS, original, flag)  # type: ignore[arg-type]
        sent = _sent_path(built)
        assert sent.startswith(f"/web/{TS}{flag}/"), (url, sent)
        assert not leaves_prefix(sent), (url, sent)
        assert PathRule(frozenset({"127.0.0.1:8080"}), "/web/", "replay").allows(
            "127.0.0.1:8080", sent)


@given(st.text(max_size=80))
def test_a_built_replay_url_never_leaves_its_prefix(text: str) -> None:
    url = "https://x.example/" + text
    try:
        built = build_replay_url(PREFIX, TS, url)
        sent = _sent_path(built)
    except (InputError, httpx.InvalidURL):
        return
    assert sent.startswith(f"/web/{TS}id_/") and not leaves_prefix(sent)


@pytest.mark.parametrize(("timestamp", "flag"), [
    ("", "id_"), ("2024/../..", "id_"), ("123456789012345", ""), ("2024", "../"),
    ("2024", "id_/../.."), ("2024", "ID_"), ("\u0662\u0660", ""),
])
def test_a_replay_url_needs_a_digit_timestamp_and_a_mode_flag(timestamp: str, flag: str) -> None:
    with pytest.raises(InputError):
        build_replay_url(PREFIX, timestamp, "https://x.example/", flag)


# --- redirects ---------------------------------------------------------------------------

B = "http://127.0.0.1:8080"


@pytest.mark.parametrize(("target", "followed"), [
    (f"{B}/web/{TS}id_/https://x.example/", f"{B}/web/{TS}id_/https://x.example/"),
    (f"{B}/web/{TS}/https://x.example/p?q=/../", f"{B}/web/{TS}/https://x.example/p?q=/../"),
    (f"{B}/web/{TS}id_/https://x.example/a/../../../save/",
     f"{B}/web/{TS}id_/https://x.example/save/"),
    (f"{B}/save/https://x.example/", None),
    (f"{B}/cdx/search/cdx?url=x.example", None),
    (f"{B}/web/timemap/json?url=x.example", None),
    (f"{B}/web/{TS}id_/https://x.example/..;/..;/save/", None),
    (f"{B}/web/{TS}id_/https://x.example/%252e%252e/save/", None),
    (f"{B}/web/{TS}id_/https://../../save/", None),
    (f"{B}/web/../save/", None),
    (f"{B}/web/{TS}*/x.example", None),
    ("not a url", None),
])
def test_a_redirect_is_followed_only_to_a_safe_replay_url(target: str, followed: str | None
                                                          ) -> None:
    assert safe_replay_target(target, ("/web/",)) == followed
    walk = Walk(f"{B}/web/{TS}id_/https://a.example/", frozenset({"127.0.0.1:8080"}),
                replay_paths=("/web/",))
    nxt = walk.step(Hop(HopKind.NEAREST_REDIRECT, 302, walk.start, location=target))
    assert nxt == followed
    if followed is None:
        assert walk.end is WalkEnd.OFF_ARCHIVE and walk.refused == target
        assert walk.refusal in ("redirect outside the archive's replay path refused",
                                "redirect to a non-archive host refused")


def test_a_pywb_redirect_to_an_unusable_url_gives_none() -> None:
    prefix, here = f"{B}/coll/", f"{B}/coll/{TS}id_/https://x.example/a"
    assert pywb_redirect_replay("/b", "https://x.example/a", TS, prefix, here) == (
        f"{prefix}{TS}id_/https://x.example/b")
    assert pywb_redirect_replay("https://y.example/..;/..;/x", "https://x.example/a", TS,
                                prefix, here) is None
    assert pywb_redirect_replay("http://[x", "https://x.example/a", TS, prefix, here) is None


# --- the transport's last check -------------------------------------------------------------

def test_each_pool_declares_the_paths_it_may_request(tmp_path: Path) -> None:
    config = config_from_mapping({
        "archive": {"base_url": "http://127.0.0.1:9/wb",
                    "availability_url": "http://127.0.0.1:9/wb/wayback/available"},
        "archives": [{"name": "p", "base_url": "http://127.0.0.1:7", "dialect": "pywb",
                      "collection": "c"}],
        "cache": {"path": str(tmp_path / "store")},
    }, source="test")
    rules = {pool: pool.path_rules(config) for pool in Pool}
    main, other = "127.0.0.1:9", "127.0.0.1:7"

    def allowed(pool: Pool, netloc: str, path: str) -> bool:
        return any(rule.allows(netloc, path) for rule in rules[pool])

    assert allowed(Pool.CDX, main, "/wb/cdx/search/cdx")
    assert allowed(Pool.CDX, other, "/c/cdx")
    assert not allowed(Pool.CDX, main, "/c/cdx")
    assert not allowed(Pool.CDX, other, "/wb/cdx/search/cdx")
    assert not allowed(Pool.CDX, main, "/wb/cdx/search/cdx/x")
    assert allowed(Pool.PLAYBACK, main, f"/wb/web/{TS}id_/https://x.example/")
    assert allowed(Pool.PLAYBACK, other, f"/c/{TS}id_/https://x.example/")
    for bad in ("/wb/web/", "/wb/web/x", f"/wb/web/{TS}id_/https://x.example/%2e%2e/%2e%2e/",
                f"/wb/web/{TS}id_/https://x.example/..;/", "/wb/cdx/search/cdx", "/wb/save"):
        assert not allowed(Pool.PLAYBACK, main, bad), bad
    assert not allowed(Pool.PLAYBACK, other, "/c/cdx")  # pywb's CDX is under its prefix
    assert allowed(Pool.SAVE, main, "/wb/save")
    assert not allowed(Pool.SAVE, main, "/wb/save/https://x.example/")
    assert not allowed(Pool.SAVE, other, "/wb/save")
    assert allowed(Pool.SAVE_STATUS, main, "/wb/save/status/spn2-abc")
    for bad in ("/wb/save/status/", "/wb/save/status/../../cdx/search/cdx",
                "/wb/save/status/%2e%2e/x"):
        assert not allowed(Pool.SAVE_STATUS, main, bad), bad


def test_the_transport_refuses_what_a_pool_may_not_request_before_sending(
    tmp_path: Path, emulator: Any
) -> None:
    """Defence in depth: even a hand-made URL (no builder) is checked as httpx sends it."""
    config = emulator_config(tmp_path, emulator.base_url)
    base = emulator.base_url
    cases = [
        (f"{base}/web/{TS}id_/https://x.example/../../../../save/https://t.example/",
         Pool.PLAYBACK),
        (f"{base}/web/{TS}id_/https://x.example/../../../../cdx/search/cdx", Pool.PLAYBACK),
        (f"{base}/web/{TS}id_/https://x.example/%2e%2e/%2e%2e/%2e%2e/%2e%2e/save/", Pool.PLAYBACK),
        (f"{base}/cdx/search/cdx", Pool.PLAYBACK),
        (f"{base}/web/{TS}id_/https://x.example/", Pool.CDX),
        (f"{base}/save/https://t.example/", Pool.SAVE),
        (f"{base}/save/status/../../cdx/search/cdx", Pool.SAVE_STATUS),
        (f"{base}/wayback/available?url=x", Pool.PLAYBACK),
    ]

    async def go() -> dict[str, int]:
        transport = Transport(config)
        try:
            for url, pool in cases:
                with pytest.raises(DisallowedRequestError, match=f"on the {pool} pool"):
                    await transport.request("GET", url, pool, want_body=lambda s, h: FULL)
            ok = await transport.request("GET", f"{base}/cdx/search/cdx", Pool.CDX,
                                         want_body=lambda s, h: FULL,
                                         params={"url": "../../../save/x"})
            assert ok.status == 200
            ok.discard()
            return dict(transport.stats_snapshot().requests)
        finally:
            await transport.aclose()

    assert asyncio.run(go()) == {"cdx": 1}
    assert [(pool, path.split("?")[0]) for pool, _m, path in emulator.requests] == [
        ("cdx", "/cdx/search/cdx")]
    assert issubclass(DisallowedRequestError, DisallowedHostError)


def test_a_walk_started_outside_the_prefix_is_refused_by_the_transport(
    tmp_path: Path, emulator: Any
) -> None:
    """Even a replay URL that skipped the builder never reaches the wire."""
    config = emulator_config(tmp_path, emulator.base_url)

    async def go() -> None:
        transport = Transport(config)
        try:
            archive = WaybackArchive(config, transport)
            with pytest.raises(DisallowedRequestError):
                await archive.walk(f"{archive.prefix}{TS}id_/https://x.example/../../../../save/x")
            with pytest.raises(DisallowedRequestError, match="refusing to replay"):
                archive.replay_url(TS, "https://x.example/..;/..;/save/")
        finally:
            await transport.aclose()

    asyncio.run(go())
    assert emulator.requests == []


def test_an_archived_redirect_out_of_the_prefix_is_recorded_as_refused(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.add_capture("https://r.example/", TS, status=302,
                         location="https://r.example/..;/..;/..;/..;/save/https://t.example/")
    emulator.add_capture("https://s.example/", TS, status=302,
                         location="https://s.example/../../../../save/https://t.example/")
    emulator.add_capture("https://s.example/save/https://t.example/", TS,
                         body=html_page("Landed", "inside the prefix"))
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        refused = f.fetch("https://r.example/")
        resolved = f.fetch("https://s.example/")
    assert refused.status == "error"
    assert refused.error is not None and "outside the archive's replay path" in refused.error
    assert resolved.status == "ok" and resolved.title == "Landed"
    assert not [p for _pool, _m, p in emulator.requests if leaves_prefix(p)]


# --- end to end: the finding, and 40 hostile URLs ------------------------------------------

def test_the_finding_sends_nothing_to_save_page_now(tmp_path: Path, emulator: Any) -> None:
    emulator.add_capture("https://x.example/save/https://target.example/", TS,
                         body=html_page("A page", "under the original's own path"))
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        record = f.fetch("https://x.example/../../../../../save/https://target.example/")
    assert record.url == "https://x.example/../../../../../save/https://target.example/"
    assert record.status == "ok" and record.title == "A page"
    paths = [path for _pool, _m, path in emulator.requests]
    assert paths and all(p.startswith("/web/") and not leaves_prefix(p) for p in paths), paths
    assert emulator.counts["other"] == 0


def _good(emulator: Any, count: int) -> list[str]:
    urls = [f"https://good.example/{i}" for i in range(count)]
    for i, url in enumerate(urls):
        emulator.add_capture(url, TS, body=html_page(f"Good {i}", f"page {i}"))
    return urls


def _run(config: Any, lines: list[str]) -> tuple[Any, list[RunEvent], dict[str, int]]:
    events: list[RunEvent] = []
    with Fetcher(config) as f:
        summary = f.run(lines, on_result=events.append, concurrency=8)
    return summary, events, dict(summary.requests)


def _every_line_answered(lines: list[str], events: list[RunEvent]) -> dict[int, RunEvent]:
    by_line = {event.line: event for event in events}
    assert sorted(by_line) == list(range(1, len(lines) + 1)), "a line went unreported"
    for event in events:
        assert event.kind in ("fetched", "invalid", "duplicate"), event
        if event.kind == "fetched":
            assert event.record is not None, event.reason  # "not stored: <exception>"
        else:
            assert event.reason, event
    return by_line


def test_forty_hostile_urls_among_good_ones_never_leave_the_replay_prefix(
    tmp_path: Path,
) -> None:
    """The finding's list, generalised: good URLs alternating with hostile ones, on the
    real default CDX budget (24/min) against the archive's hard limit (30/min)."""
    from tests.wayback_emulator import WaybackEmulator

    with WaybackEmulator(cdx_per_minute=30, load_recordings=False) as emulator:
        good = _good(emulator, len(HOSTILE))
        # Two URLs whose three newest captures are 404s: their good capture costs one
        # legitimate CDX query each (the Link header steps back two captures only).
        needs_cdx = ["https://cdx.example/a", "https://cdx.example/b"]
        for url in needs_cdx:
            emulator.add_capture(url, "20200101000000", body=html_page("Old", "the good one"))
            for year in ("2021", "2022", "2023"):
                emulator.add_capture(url, f"{year}0101000000", status=404, body=b"gone")
        lines = [u for pair in zip(good, HOSTILE, strict=True) for u in pair] + needs_cdx
        config = emulator_config(tmp_path, emulator.base_url,
                                 archive={"confirm_not_archived": False},
                                 rates={"playback_per_minute": 6000.0})
        summary, events, sent = _run(config, lines)
        outside = [p for _pool, _m, p in emulator.requests if leaves_prefix(p)]
        counts = dict(emulator.counts)
        limited = emulator.count_429
    by_line = _every_line_answered(lines, events)
    assert outside == []
    assert counts["other"] == counts["availability"] == 0
    # Every CDX query is on the CDX budget (none disguised as playback), and only the
    # two that were needed.
    assert counts["cdx"] == sent.get("cdx", 0) == 2
    assert counts["playback"] == sent["playback"]
    assert limited == 0
    for index, url in enumerate(lines, start=1):
        event = by_line[index]
        if url in good or url in needs_cdx:
            assert event.record is not None and event.record.status == "ok", event
    invalid = [e for e in events if e.kind == "invalid"]
    assert summary.invalid == len(invalid) >= 10
    assert all(("replay path" in e.reason or "longer than" in e.reason
                or "whitespace" in e.reason) for e in invalid), invalid


# --- a real pywb server ------------------------------------------------------------------

COLL = "snapcache-test"
PYWB_HOSTILE = (
    f"https://pywb.example/../../../../{COLL}/cdx?url=pywb.example/report&output=json",
    "https://pywb.example/%2e%2e/%2e%2e/%2e%2e/%2e%2e/collinfo.json",
    f"https://pywb.example/..;/..;/..;/..;/{COLL}/cdx",
    "https://pywb.example/..\\..\\..\\..\\static\\",
    "https://pywb.example/%252e%252e/%252e%252e/%252e%252e/",
    "https://pywb.example/x/../report",
    f"https://pywb.example/a/b/../../../../../../{COLL}/20200101000000id_/https://other.example/",
)
_PYWB_LOG_RE = re.compile(r'"(?:GET|POST|HEAD|PUT) (\S+) HTTP/1\.[01]"')


def test_hostile_urls_against_a_real_pywb_never_leave_the_collection(tmp_path: Path) -> None:
    root = tmp_path / "pywb"
    captures = [Capture("https://pywb.example/report", "20200101000000",
                        html_page("Report", "the report"))]
    with PywbServer(root, COLL, captures) as server:
        config = emulator_config(tmp_path, server.base_url, archive={
            "name": "pywb-local", "base_url": server.base_url, "dialect": "pywb",
            "collection": COLL})
        lines = ["https://pywb.example/report", *PYWB_HOSTILE]
        _summary, events, sent = _run(config, lines)
    log = (root / "wayback.log").read_text(errors="replace")
    # pywb's log also holds its own lookups (index, resource/postreq) and the fixture's
    # probe: what remains must be exactly what the transport sent.
    paths = [p for p in _PYWB_LOG_RE.findall(log)
             if not p.startswith((f"/{COLL}/index?", f"/{COLL}/resource/postreq?"))
             and p != f"/{COLL}/cdx?url=example.org&output=json"]
    by_line = _every_line_answered(lines, events)
    assert by_line[1].record is not None and by_line[1].record.status == "ok"
    # ".../x/../report" is the report: resolved as a browser would, then found.
    assert by_line[7].record is not None and by_line[7].record.status == "ok"
    assert len(paths) == sum(sent.values()) > 0, log[-2000:]
    outside = [p for p in paths if leaves_prefix(p, f"/{COLL}/", f"/{COLL}/cdx")]
    assert outside == []
    assert sum(p.startswith(f"/{COLL}/cdx?") for p in paths) == sent.get("cdx", 0)


def test_check_url_and_the_replay_check_agree_on_the_list() -> None:
    """Each hostile URL is either refused at input (a reason) or has a safe original."""
    refused = 0
    for url in HOSTILE:
        try:
            parse_target(check_url(url))
        except InputError:
            refused += 1
    assert len(HOSTILE) == 40 and 10 <= refused < 40
