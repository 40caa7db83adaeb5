"""Identifiers and input URLs (pure)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from snapcache.errors import InputError
from snapcache.ids import (
    MAX_URL_LENGTH,
    check_url,
    is_stable_id,
    mint_stable_id,
    normalize_timestamp,
    parse_target,
    resource_id,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com", "100680ad546ce6a5"),
        (
            "https://www.ntia.gov/sites/default/files/publications/ntia-ai-open-model-report.pdf",
            "a6ec2c2fe408fea3",
        ),
        # The wiki's own export (examples/wiki-resources.tsv) agrees for these.
        ("https://intelligence.org/files/IEM.pdf", "a1186c87f23ab9ce"),
    ],
)
def test_resource_id_matches_the_wiki_test_vectors(url: str, expected: str) -> None:
    assert resource_id(url) == expected


def test_resource_id_strips_surrounding_whitespace_but_nothing_else() -> None:
    assert resource_id("  https://example.com\n") == "100680ad546ce6a5"
    assert resource_id("https://example.com/") != resource_id("https://example.com")
    assert resource_id("https://Example.com") != resource_id("https://example.com")


def test_stable_ids_have_the_wiki_shape_and_do_not_repeat() -> None:
    ids = {mint_stable_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"sid_[A-Za-z0-9]{10}", i) for i in ids)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("sid_PC79HD2HUf", True), ("ZTI1Mjg0Zj", True), ("sid_short", False),
     ("sid_PC79HD2HU!", False), ("a6ec2c2fe408fea3", False)],
)
def test_is_stable_id_accepts_prefixed_and_bare_legacy_ids(text: str, ok: bool) -> None:
    assert is_stable_id(text) is ok


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("ftp://example.com/x", "not an http(s) URL"),
        ("example.com/path", "not an http(s) URL"),
        ("https://", "no host"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\x1b[31m", "control characters"),
        ("https://example.com/a\x85b", "control characters"),
        ("https://example.com:99999/", "unparsable"),
        ("https://example.com/" + "a" * 9000, "longer than"),
    ],
)
def test_check_url_names_the_problem(url: str, reason: str) -> None:
    with pytest.raises(InputError, match=re.escape(reason)):
        check_url(url)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2026", "20260101000000"), ("202604", "20260401000000"), ("20260408", "20260408000000"),
     ("20260408194323", "20260408194323"), ("2026040819", "20260408190000")],
)
def test_normalize_timestamp_pads_to_the_start_of_the_period(value: str, expected: str) -> None:
    assert normalize_timestamp(value) == expected


@pytest.mark.parametrize("value", ["20261301", "20260230", "2026-04-08", "123", "20260408246060",
                                   "202604081", ""])
def test_normalize_timestamp_rejects_impossible_dates(value: str) -> None:
    with pytest.raises(InputError):
        normalize_timestamp(value)


def test_calendar_archive_url_gives_original_and_time() -> None:
    target = parse_target("https://web.archive.org/web/20221020000000*/ftxfuturefund.org")
    assert target.given == "https://web.archive.org/web/20221020000000*/ftxfuturefund.org"
    assert target.original == "http://ftxfuturefund.org"
    assert target.at == "20221020000000"


def test_raw_archive_url_gives_original_with_scheme_and_query() -> None:
    target = parse_target("https://web.archive.org/web/20200101id_/https://x.org/a?b=1")
    assert target.original == "https://x.org/a?b=1"
    assert target.at == "20200101000000"


def test_archive_url_on_a_configured_archive_host_is_understood() -> None:
    target = parse_target(
        "http://127.0.0.1:8080/web/2019/https://example.com/", frozenset({"127.0.0.1:8080"})
    )
    assert (target.original, target.at) == ("https://example.com/", "20190101000000")


def test_ordinary_url_is_its_own_original() -> None:
    target = parse_target("https://example.com/web/2019/page")
    assert (target.original, target.at) == ("https://example.com/web/2019/page", None)


@given(st.text(max_size=200))
def test_check_url_either_accepts_or_raises_input_error(text: str) -> None:
    try:
        out = check_url(text)
    except InputError:
        return
    assert out.startswith(("http://", "https://", "HTTP://", "HTTPS://")) or "://" in out


def _split_judge(url: str) -> tuple[str, str] | str:
    """check_url and parse_target's host as they were before their short cut for plain
    URLs, by urlsplit alone: the stripped URL and its ``host[:port]``, or why it is
    refused. The oracle for the short cut."""
    stripped = url.strip()
    if not stripped:
        return "empty URL"
    if len(stripped.encode("utf-8", "surrogatepass")) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} bytes"
    if re.search(r"[\x00-\x1f\x7f-\x9f]", stripped):
        return "URL contains control characters"
    if re.search(r"\s", stripped):
        return "URL contains whitespace"
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError:
        return "URL is not valid Unicode (a lone surrogate)"
    try:
        parts = urlsplit(stripped)
        port = parts.port
    except ValueError as exc:
        return f"unparsable URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) URL (scheme {parts.scheme or 'missing'!r})"
    if not parts.hostname:
        return "URL has no host"
    host = parts.hostname.lower()
    return stripped, host if port is None else f"{host}:{port}"


_AUTHORITY = st.text(alphabet=st.sampled_from(list("aZ09.-:@[]%_\\")), max_size=12)
_PORTS = st.sampled_from(["", ":", ":0", ":80", ":00080", ":65535", ":65536", ":99999", ":8a"])
_ARCHIVED = "/web/2020/https://x.org/"


@settings(max_examples=400)
@example("HTTPS://", "Archive.Example", ":00080", _ARCHIVED)
@example("http://", "a.b", ":65536", "/")
@example("http://", "a@b", "", _ARCHIVED)
@given(st.sampled_from(["http://", "HTTPS://", "hTtp://", "ftp://", "http:/", "https:///"]),
       _AUTHORITY, _PORTS,
       st.sampled_from(["", "/", "/a?b#c", "?q", "#f", "/../x", "\\x", "/\u00e9", ":1/",
                        _ARCHIVED]))
def test_plain_urls_are_accepted_and_split_exactly_as_urlsplit_splits_them(
    scheme: str, authority: str, port: str, tail: str
) -> None:
    url = scheme + authority + port + tail
    judged = _split_judge(url)
    try:
        checked = check_url(url)
    except InputError as exc:
        assert str(exc) == judged
        return
    assert isinstance(judged, tuple) and checked == judged[0]
    # Configured as an archive host under the name urlsplit gives it, the URL's own host
    # makes it an archive URL: parse_target must name the host and port the same way.
    if urlsplit(url).path == _ARCHIVED:
        try:
            target = parse_target(url, frozenset({judged[1]}))
        except InputError:
            return  # its host is not one a replay URL may hold (a dot segment)
        assert (target.original, target.at) == ("https://x.org/", "20200101000000")


def test_every_resource_id_in_the_wiki_corpus_is_reproduced() -> None:
    import csv
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "wiki-resources.tsv"
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == 44
    for row in rows:
        assert resource_id(row["url"]) == row["resource_id"], row["url"]
