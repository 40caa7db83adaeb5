"""Source-list parsing (pure): formats, detection, per-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from snapcache.sources import SourceEntry, SourceError, detect_format, parse_sources

CORPUS = Path(__file__).parent.parent / "examples" / "wiki-resources.tsv"


def parse(text: str | bytes, fmt: str | None = None) -> list[SourceEntry | SourceError]:
    data = text.encode() if isinstance(text, str) else text
    return list(parse_sources(data.splitlines(keepends=True), fmt))  # type: ignore[arg-type]


def test_plain_text_skips_blanks_and_comments_and_keeps_line_numbers() -> None:
    items = parse("# sources\n\nhttps://a.example/\n  https://b.example/x  \n# end\n")
    assert items == [SourceEntry(3, "https://a.example/"), SourceEntry(4, "https://b.example/x")]


def test_the_wiki_export_parses_with_its_stable_ids() -> None:
    with CORPUS.open("rb") as fh:
        items = list(parse_sources(fh))
    entries = [i for i in items if isinstance(i, SourceEntry)]
    errors = [i for i in items if isinstance(i, SourceError)]
    assert len(entries) + len(errors) == 44
    assert not errors, errors
    first = entries[0]
    assert first.line == 2 and first.stable_id == "sid_PC79HD2HUf"
    assert any(e.stable_id and not e.stable_id.startswith("sid_") for e in entries)
    assert any(e.url.startswith("https://web.archive.org/web/") for e in entries)


def test_csv_with_at_and_quoted_cells() -> None:
    items = parse('title,url,at\n"A, B",https://a.example/,20200101\nx,https://b.example/,\n')
    assert items == [SourceEntry(2, "https://a.example/", None, "20200101000000"),
                     SourceEntry(3, "https://b.example/", None, None)]


def test_jsonl_with_the_same_keys() -> None:
    items = parse('{"url": "https://a.example/", "stable_id": "sid_AAAAAAAAAA", "at": "2021"}\n'
                  '{"url": 5}\n[1]\n{bad json\n')
    assert items[0] == SourceEntry(1, "https://a.example/", "sid_AAAAAAAAAA", "20210101000000")
    assert [(e.line, type(e).__name__) for e in items[1:]] == [
        (2, "SourceError"), (3, "SourceError"), (4, "SourceError")]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"ftp://a.example/", "not an http(s) URL"),
        (b"https://a.example/\x1b[31m", "control characters"),
        (b"https://a.example/" + b"a" * 9300, "longer than"),
        (b"https://a.example/\xff\xfe", "not valid UTF-8"),
        (b"http://[::1/", "unparsable"),
        (b"just words", "whitespace"),
    ],
)
def test_bad_lines_are_named_and_the_rest_goes_on(line: bytes, reason: str) -> None:
    items = parse(b"https://ok.example/1\n" + line + b"\nhttps://ok.example/2\n", "text")
    assert isinstance(items[0], SourceEntry) and isinstance(items[2], SourceEntry)
    bad = items[1]
    assert isinstance(bad, SourceError) and bad.line == 2
    assert reason in bad.reason


def test_bad_at_and_stable_id_cells_are_line_errors() -> None:
    items = parse("url,at,stable_id\nhttps://a.example/,2020-01-01,\n"
                  "https://b.example/,,sid_bad\n")
    assert [type(i).__name__ for i in items] == ["SourceError", "SourceError"]
    assert "timestamp" in items[0].reason  # type: ignore[union-attr]
    assert "stable_id" in items[1].reason  # type: ignore[union-attr]


def test_csv_without_a_url_column_is_one_clear_error() -> None:
    items = parse("name,link\nx,https://a.example/\n", "csv")
    assert items == [SourceError(1, "CSV header has no 'url' column"
                                    " (columns found: 'name', 'link')")]


@pytest.mark.parametrize(
    ("first", "fmt"),
    [("https://a/", "text"), ("url\tresource_id", "tsv"), ("id,url", "csv"),
     ('{"url": "x"}', "jsonl"), ("https://a/?x=1,2", "text")],
)
def test_detect_format(first: str, fmt: str) -> None:
    assert detect_format(first) == fmt


@given(st.lists(st.binary(max_size=120), max_size=30))
def test_any_bytes_give_entries_or_line_errors_never_exceptions(lines: list[bytes]) -> None:
    data = [line.replace(b"\n", b"") + b"\n" for line in lines]
    for item in parse_sources(data):
        assert isinstance(item, SourceEntry | SourceError)
        assert 1 <= item.line <= len(data)
        if isinstance(item, SourceEntry):
            assert item.url.startswith(("http://", "https://", "HTTP", "Http")) or "://" in item.url
