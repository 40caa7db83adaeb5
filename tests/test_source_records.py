"""CSV/TSV source lists are read record by record (the csv module over the stream), and a
JSON Lines line nested too deeply is that line's error, not the run's end.

Before, CSV was split line by line: the second line of a quoted cell became a citation
(``https://bulk.example/31"``, stray quote included, was fetched and the run exited 0), and
a CSV whose URL column is not called ``url`` was read as plain text (``https://example.com/,Ex``
became a URL).
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snapcache import Fetcher
from snapcache.sources import (
    MAX_RECORD_CHARS,
    SourceEntry,
    SourceError,
    detect_format,
    parse_sources,
)

from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.test_cli import run, write_config


def parse(text: str, fmt: str | None = None) -> list[SourceEntry | SourceError]:
    lines = text.encode().split(b"\n")
    data = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    return list(parse_sources(data, fmt))  # type: ignore[arg-type]


def test_a_quoted_cell_spanning_lines_is_one_record_numbered_by_its_first_line() -> None:
    items = parse('url,note\nhttps://bulk.example/1,"see also\nhttps://bulk.example/31"\n'
                  "https://bulk.example/2,plain\n")
    assert items == [SourceEntry(2, "https://bulk.example/1"),
                     SourceEntry(4, "https://bulk.example/2")]


def test_tsv_cells_span_lines_too_and_comments_inside_them_are_text() -> None:
    items = parse('url\tnote\n\n# a comment\nhttps://a.example/\t"two\n# not a comment\n'
                  'lines"\nhttps://b.example/\tx\n')
    assert items == [SourceEntry(4, "https://a.example/"), SourceEntry(7, "https://b.example/")]


def test_a_header_without_a_url_column_is_an_error_naming_the_columns() -> None:
    assert detect_format("link,title") == "csv"
    assert detect_format("Link\tTitle") == "tsv"
    assert detect_format("https://example.com/a,b") == "text"  # a URL holding a comma
    items = parse("link,title\nhttps://example.com/,Ex\n")
    assert items == [SourceError(1, "CSV header has no 'url' column"
                                    " (columns found: 'link', 'title')")]
    assert parse("URL,Title\nhttps://example.com/,Ex\n") == [
        SourceEntry(2, "https://example.com/")]  # the column name is case-insensitive


def test_an_unclosed_quote_is_named_and_nothing_after_it_is_read_as_urls() -> None:
    at_end = parse('url,note\nhttps://a.example/,ok\nhttps://b.example/,"never closed\n'
                   "https://c.example/,x\n")
    assert at_end == [SourceEntry(2, "https://a.example/"),
                      SourceError(3, "CSV record has a quoted cell that is never closed")]
    runaway = ('url,note\nhttps://a.example/,"' + ("x" * 8000 + "\n") * 20
               + 'y"\nhttps://b.example/,z\n')
    items = parse(runaway)
    assert len(items) == 1 and isinstance(items[0], SourceError) and items[0].line == 2
    assert f"longer than {MAX_RECORD_CHARS} characters" in items[0].reason


def test_an_unusable_line_inside_a_record_spoils_that_record_only() -> None:
    lines = [b"url,note\n", b'https://a.example/,"x\n', b"\xff\n", b'y"\n',
             b"https://b.example/" + b"a" * 9300 + b",z\n", b"https://c.example/,z\n"]
    items = list(parse_sources(lines))
    assert [(type(i).__name__, i.line) for i in items] == [
        ("SourceError", 3), ("SourceError", 2), ("SourceError", 5), ("SourceEntry", 6)]
    assert "not valid UTF-8" in items[0].reason  # type: ignore[union-attr]
    assert "its line 3 is unusable" in items[1].reason  # type: ignore[union-attr]
    assert "longer than" in items[2].reason  # type: ignore[union-attr]


def test_a_csv_list_streams_in_bounded_memory() -> None:
    def rows() -> Iterator[bytes]:
        yield b"url,note\n"
        for i in range(50_000):
            yield f'https://m.example/{i},"a note\nover two lines"\n'.encode()

    tracemalloc.start()
    count = 0
    for item in parse_sources(rows()):
        assert isinstance(item, SourceEntry)
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 50_000
    assert peak < 2_000_000, peak


def test_a_json_line_nested_3000_deep_is_that_lines_error_and_the_run_goes_on() -> None:
    deep = "[" * 3000 + "]" * 3000
    items = parse('{"url": "https://a.example/"}\n' + deep + '\n{"url": "https://b.example/"}\n')
    assert items == [SourceEntry(1, "https://a.example/"),
                     SourceError(2, "unparsable JSON: nested too deeply"),
                     SourceEntry(3, "https://b.example/")]


def test_a_run_fetches_neither_a_cells_second_line_nor_a_headerless_url_column(
    tmp_path: Path, emulator: Any
) -> None:
    for i in (1, 2, 31):
        emulator.add_capture(f"https://bulk.example/{i}", "20220101000000",
                             body=html_page("B", "bulk"))
    cfg = write_config(tmp_path, emulator.base_url)
    listing = tmp_path / "bulk.csv"
    listing.write_text('url,note\nhttps://bulk.example/1,"see also\nhttps://bulk.example/31"\n'
                       "https://bulk.example/2,plain\n")
    out = run("--config", str(cfg), "run", "--json", str(listing))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outcomes"] == {"ok": 2}
    assert not [p for _pool, _m, p in emulator.requests if "/31" in p]
    other = tmp_path / "links.csv"
    other.write_text("link,title\nhttps://example.com/,Ex\n")
    bad = run("--config", str(cfg), "run", str(other))
    assert bad.returncode == 1
    assert "line 1: invalid: CSV header has no 'url' column (columns found: 'link', 'title')" \
        in bad.stderr


def test_a_run_over_json_lines_keeps_going_past_a_deeply_nested_line(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.add_capture("https://j.example/", "20220101000000", body=html_page("J", "j"))
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        summary = f.run(['{"url": "https://j.example/"}', "[" * 3000 + "]" * 3000])
    assert summary.outcomes == {"ok": 1} and summary.invalid == 1
