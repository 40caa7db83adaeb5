"""Hostile content, hostile input and the security promises, end to end.

Every document is generated here (tests/docgen.py), served by the loopback emulator and
fetched through the real transport, extraction and store. Inputs (config files, CLI
arguments) are fuzzed with hypothesis. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import sqlite3
import string
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from snapcache import Fetcher
from snapcache.cache import SnapshotCache
from snapcache.config import Config, load_config
from snapcache.errors import ConfigError

from tests.conftest import emulator_config
from tests.docgen import (
    deep_html,
    encrypted_pdf,
    gzip_bomb,
    html_page,
    image_only_pdf,
    large_pdf,
    make_pdf,
    single_line_html,
    slow_pdf,
)
from tests.test_cli import snapcache_exe, write_config

TS = "20220101000000"
CAP = 20_000_000  # archive.max_body_bytes in these tests
#: What no stored or printed text may contain: escapes and control characters.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
ANSI_TITLE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mRed\x1b[0m title\x07\x08\x9b31m\u202eevil"


@dataclass(frozen=True)
class Doc:
    """One hostile document, how the emulator serves it, and what the record must say."""

    name: str
    make: Callable[[], bytes]
    content_type: str = "text/html; charset=utf-8"
    encoding: str | None = None
    check: Callable[[Any, bytes], None] = lambda record, body: None


def _capped(record: Any, body: bytes) -> None:
    assert record.content_length == CAP and record.body_truncated


def _whole(record: Any, body: bytes) -> None:
    assert record.content_length == len(body) and not record.body_truncated
    assert record.sha256 == hashlib.sha256(body).hexdigest()


def _note(fragment: str) -> Callable[[Any, bytes], None]:
    def check(record: Any, body: bytes) -> None:
        assert record.preview_note is not None and fragment in record.preview_note, (
            record.preview_note)
    return check


def _all(*checks: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    def check(record: Any, body: bytes) -> None:
        for one in checks:
            one(record, body)
    return check


def _preview_has(fragment: str) -> Callable[[Any, bytes], None]:
    def check(record: Any, body: bytes) -> None:
        assert fragment in record.preview, record.preview[:300]
    return check


def _clean_title(record: Any, body: bytes) -> None:
    assert record.title is not None and "Red title" in record.title
    assert "\x1b" not in record.title and "pwned" not in record.title


HOSTILE_DOCS = [
    Doc("gzip bomb (2 GiB) announced as Content-Encoding gzip", gzip_bomb, encoding="gzip",
        check=_capped),
    Doc("gzip bomb (2 GiB) as a raw gzip payload", gzip_bomb, check=_capped),
    Doc("body over the size cap (25 MB)", lambda: html_page("Big", "word " * 5_000_000),
        check=_all(_capped, _preview_has("word word"))),
    Doc("large PDF (9 MB, spilled to a temp file)", lambda: large_pdf(9_000_000),
        "application/pdf", check=_all(_whole, _preview_has("Large report, first page."))),
    Doc("corrupt PDF", lambda: make_pdf(["Cut short"])[:400], "application/pdf",
        check=_note("corrupt PDF")),
    Doc("encrypted PDF", encrypted_pdf, "application/pdf", check=_note("encrypted PDF")),
    Doc("image-only PDF", image_only_pdf, "application/pdf", check=_note("image-only PDF")),
    Doc("PDF crafted to be slow (200 heavy pages)", slow_pdf, "application/pdf",
        check=_note("PDF extraction stopped after")),
    Doc("HTML nested 50,000 levels deep", deep_html,
        check=_all(_note("nesting capped"), _preview_has("Deep text at the bottom."))),
    Doc("30 MB single-line HTML", single_line_html,
        check=_all(_capped, _note("HTML cut at"), _preview_has("lorem ipsum"))),
    Doc("title with ANSI escapes and control characters",
        lambda: html_page(ANSI_TITLE, "Body \x1b[5mblink\x1b[0m \x00\x07 text"),
        check=_clean_title),
    Doc("invalid UTF-8 declared as UTF-8",
        lambda: html_page("Broken", "caf\xe9 and more").replace(b"caf\xc3\xa9", b"caf\xe9\xff"),
        check=_preview_has("and more")),
    Doc("cp1252 bytes mislabelled UTF-8",
        lambda: html_page("Caf\xe9", "Un caf\xe9 cr\xe8me, \u201cquoted\u201d.", charset="cp1252")
        .replace(b"charset='cp1252'", b"charset='utf-8'"),
        check=_preview_has("Un café crème")),
    Doc("UTF-8 bytes mislabelled Shift_JIS", lambda: html_page("Straße", "Grüße aus Köln"),
        "text/html; charset=shift_jis", check=_preview_has("Grüße aus Köln")),
    Doc("binary junk declared as HTML", lambda: bytes(range(256)) * 400,
        check=lambda record, body: None),
]


def _config(tmp_path: Path, base_url: str) -> Any:
    return emulator_config(
        tmp_path, base_url,
        archive={"max_body_bytes": CAP},
        rates={"playback_per_minute": 6000.0, "cdx_per_minute": 6000.0},
        preview={"pdf_max_pages": 10_000, "pdf_max_seconds": 1.0,
                 "max_text_chars": 50_000_000},
    )


def _assert_stored_clean(record: Any) -> None:
    for value in (record.title or "", record.preview, record.preview_note or ""):
        assert not UNSAFE.search(value), repr(value[:200])
    assert type(record).from_json(record.to_json()) == record


@pytest.mark.parametrize("doc", HOSTILE_DOCS, ids=lambda d: d.name)
def test_each_hostile_document_is_fetched_end_to_end_within_bounds(
    tmp_path: Path, emulator: Any, doc: Doc
) -> None:
    body = doc.make()
    url = "https://hostile.example/doc"
    emulator.add_capture(url, TS, body=body, content_type=doc.content_type,
                         content_encoding=doc.encoding)
    config = _config(tmp_path, emulator.base_url)
    started = time.monotonic()
    with Fetcher(config) as f:
        record = f.fetch(url)
        text = f.cache.get_text(record.resource_id)
    elapsed = time.monotonic() - started
    assert record.status == "ok" and record.capture_timestamp == TS, record.to_json()[:500]
    assert record.content_length is not None and record.content_length <= CAP
    doc.check(record, body)
    _assert_stored_clean(record)
    assert text is None or (not UNSAFE.search(text) and len(text) == record.text_length)
    # Any spilled body was removed; time stays bounded whatever the document.
    tmp = Path(config.cache.path) / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())
    assert elapsed < 20, f"{doc.name}: {elapsed:.1f} s"
    print(f"RELIABILITY hostile document ok: {doc.name} ({elapsed:.1f} s)")


def test_the_large_pdf_takes_the_temp_file_path(tmp_path: Path, emulator: Any) -> None:
    from snapcache.transport import SPILL_BYTES

    body = large_pdf(SPILL_BYTES + 500_000)
    emulator.add_capture("https://big.example/r.pdf", TS, body=body,
                         content_type="application/pdf")
    config = _config(tmp_path, emulator.base_url)
    with Fetcher(config) as f:
        record = f.fetch("https://big.example/r.pdf")
    tmp = Path(config.cache.path) / "tmp"
    assert tmp.is_dir() and not any(tmp.iterdir())  # made for the spill, then emptied
    assert record.content_length == len(body) and record.title == "Large report"


_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'\\nPEAK_RSS_KB {peak}\\n')\n"
    "sys.exit(code)\n"
)


def _run_measured(args: list[str], timeout: float = 120) -> tuple[int, str, str, int]:
    """Run a command; return its exit code, stdout, stderr and peak RSS in MB.

    A small launcher runs it and reports its children's peak: measured from the test
    process itself, the peak would include this process's own pages, copied at fork."""
    import sys

    out = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    err, _, peak = out.stderr.rpartition("\nPEAK_RSS_KB ")
    return out.returncode, out.stdout, err, int(peak.strip()) // 1024


def test_a_gzip_bomb_keeps_the_cli_process_memory_bounded(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.add_capture("https://bomb.example/", TS, body=gzip_bomb(),
                         content_type="text/html", content_encoding="gzip")
    cfg = write_config(tmp_path, emulator.base_url)
    cfg.write_text(cfg.read_text().replace("[archive]\n",
                                           f"[archive]\nmax_body_bytes = {CAP}\n"))
    code, out, err, peak_mb = _run_measured(
        [snapcache_exe(), "--config", str(cfg), "fetch", "--json", "https://bomb.example/"])
    assert code == 0, err
    record = json.loads(out)
    assert record["content_length"] == CAP and record["body_truncated"] is True
    # 2 GiB inflated; the process never held more than the cap and its own baseline.
    assert peak_mb < 150, peak_mb
    print(f"RELIABILITY gzip bomb: 2 GiB inflated, stored {CAP} bytes, peak RSS {peak_mb} MB")


def test_hostile_titles_never_reach_the_terminal_through_any_command(
    tmp_path: Path, emulator: Any
) -> None:
    url = "https://ansi.example/"
    emulator.add_capture(url, TS, body=html_page(ANSI_TITLE, "Body \x1b[5mblink\x1b[0m"))
    cfg = write_config(tmp_path, emulator.base_url)
    source = tmp_path / "list.txt"
    source.write_text(url + "\n")
    exe = [snapcache_exe(), "--config", str(cfg)]
    outputs = []
    for args in (["fetch", url], ["show", url], ["show", "--text", url], ["list"],
                 ["run", "--force", str(source)], ["stats"], ["fetch", "--json", url],
                 ["export"], ["export", "--format", "csv"]):
        out = subprocess.run([*exe, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (args, out.stderr)
        outputs.append((args, out.stdout + out.stderr))
    for args, text in outputs:
        # Raw escapes and controls never reach the terminal (JSON output may spell them as
        # \u001b escapes, which a terminal prints as text).
        assert not UNSAFE.search(text), (args, text[:300])
    assert "Red title" in outputs[0][1]


def test_the_hostile_document_figure_matches_the_list() -> None:
    assert len(HOSTILE_DOCS) == 15


# --- hostile input: configuration files --------------------------------------------------

_FIELDS = {
    "archive": ["base_url", "availability_url", "user_agent", "connect_timeout",
                "read_timeout", "request_timeout", "max_redirects", "max_body_bytes",
                "extra_hosts", "name", "dialect", "collection"],
    "rates": ["cdx_per_minute", "playback_per_minute", "pause_on_429", "max_wait",
              "state_path"],
    "retry": ["max_attempts", "initial_backoff", "max_backoff", "max_total_seconds"],
    "cache": ["path", "ttl_ok_days", "ttl_error_hours", "history_limit"],
    "preview": ["max_chars", "pdf_max_pages", "pdf_max_seconds", "html_max_bytes"],
    "run": ["concurrency", "max_wait", "circuit_breaker"],
}

_toml_string = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                       max_size=30).map(lambda s: json.dumps(s))
_toml_value = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: "nan" if f != f else ("inf" if f == float("inf") else
                                        "-inf" if f == float("-inf") else repr(f))),
    st.booleans().map(lambda b: "true" if b else "false"),
    _toml_string,
    st.sampled_from(['"http://[::1"', '"http://127.0.0.1:99999/"', '"http://"', '"ftp://x/"',
                     '"https://ok.example"', '"pywb"', '"ia"', '""', '"a\\nb"',
                     "1979-05-27T07:32:00Z", "07:32:00", "[]", "[1, 2]", '["a", 3]',
                     '["h.example"]', "{}", "{ a = 1 }", "0", "-1", "1e400", "0.0"]),
)


_toml_url = st.one_of(
    st.builds("{}://{}{}{}".format, st.sampled_from(["http", "https", "ftp", "", "HTTP"]),
              st.sampled_from(["127.0.0.1", "[::1", "[::1]", "", "a b", "h\u00e9.example",
                               "user@h.example"]),
              st.sampled_from(["", ":0", ":80", ":99999", ":x", ":-1", ":65535"]),
              st.sampled_from(["", "/", "/web", "/?q=1", "#f"])).map(json.dumps),
    _toml_value,
)


@st.composite
def _config_doc(draw: Any) -> tuple[str, str, str]:
    section = draw(st.sampled_from(sorted(_FIELDS)))
    key = draw(st.one_of(st.sampled_from(_FIELDS[section]),
                         st.text(alphabet=string.ascii_lowercase + "_", min_size=1,
                                 max_size=12)))
    value = draw(_toml_url if key.endswith("url") else _toml_value)
    return section, key, f"[{section}]\n{key} = {value}\n"


#: Generated inputs per property (the README's figures).
CONFIG_KEY_EXAMPLES, CONFIG_TEXT_EXAMPLES, CLI_EXAMPLES = 400, 300, 150


@settings(max_examples=CONFIG_KEY_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_config_doc())
# Once found by the generator: the error was about the collection the dialect requires.
@example(("archive", "dialect", '[archive]\ndialect = "pywb"\n'))
def test_any_single_key_config_loads_or_is_a_config_error_naming_that_key(
    doc: tuple[str, str, str]
) -> None:
    import tempfile

    section, key, text = doc
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_text(text, encoding="utf-8")
        try:
            config = load_config(path)
        except ConfigError as exc:
            message = str(exc)
            assert f"{section}.{key}" in message or "not valid TOML" in message, message
            return
        # A config that loads is usable: its hosts and paths can be computed.
        assert isinstance(config, Config)
        assert config.allowed_hosts and config.cache_path and config.rate_state_path


@settings(max_examples=CONFIG_TEXT_EXAMPLES, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_a_config_file_loads_or_is_a_config_error(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            config = load_config(path)
        except ConfigError:
            return
        assert config.allowed_hosts


# --- hostile input: command-line arguments ------------------------------------------------

_TOKENS = [
    "fetch", "show", "move", "run", "refetch", "export", "list", "stats", "--json", "--text",
    "--force", "--at", "--quiet", "--dry-run", "--wait", "--status", "--format", "-o",
    "--concurrency", "--max-wait", "--config", "--help", "ok", "error", "bogus", "csv",
    "jsonl", "tsv", "text", "-", "0", "-1", "99999", "nan", "1e999", "20200101", "2020-01-01",
    "https://kept.example/", "https://new.example/x", "javascript:alert(1)", "sid_AAAAAAAAAA",
    "\x1b[31m", "\x00", "é", "x" * 9000, "/nonexistent/dir/file", "--", "-x",
]


@pytest.fixture(scope="module")
def cli_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.wayback_emulator import WaybackEmulator

    tmp = tmp_path_factory.mktemp("cli-fuzz")
    with WaybackEmulator(load_recordings=False) as emu:
        emu.add_capture("https://kept.example/", TS, body=html_page("Kept", "kept text"))
        cfg = write_config(tmp, emu.base_url)
        out = subprocess.run([snapcache_exe(), "--config", str(cfg), "fetch", "--json",
                              "https://kept.example/"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        yield cfg, tmp / "store", emu


def _records(store: Path) -> dict[str, str]:
    with SnapshotCache(store) as cache:
        return {r.resource_id: r.to_json() for r in cache.records()}


@settings(max_examples=CLI_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_TOKENS), st.text(max_size=12)), max_size=6))
def test_any_cli_arguments_give_a_clear_error_never_a_traceback_nor_a_lost_record(
    cli_cache: Any, argv: list[str]
) -> None:
    from click.testing import CliRunner
    from snapcache.cli import cli

    cfg, store, _emu = cli_cache
    before = _records(store)
    argv = [a for a in argv if a not in ("--config", "-o", "move")]  # keep writes in the cache
    result = CliRunner().invoke(cli, ["--config", str(cfg), *argv])
    assert result.exit_code in (0, 1, 2, 75), (argv, result.exit_code, result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{argv!r} raised {result.exception!r}") from result.exception
    assert "Traceback" not in result.output
    after = _records(store)
    if result.exit_code == 2:
        # A usage error says what is wrong and changes nothing.
        assert "Error" in result.output or "snapcache:" in result.output or "Usage" in (
            result.output), (argv, result.output)
        assert after == before
    for rid, text in before.items():
        was, kept = json.loads(text), json.loads(after[rid])
        assert kept["stable_id"] == was["stable_id"]
        if was["status"] == "ok":  # a good record stays good whatever the arguments
            assert kept["status"] == "ok"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "--concurrency", "0", "x"], "--concurrency"),
        (["run", "--max-wait", "-5", "x"], "--max-wait"),
        (["run", "--format", "xml", "x"], "--format"),
        (["refetch", "--status", "bogus"], "--status"),
        (["export", "--format", "xml"], "--format"),
        (["fetch"], "URLS"),
        (["show"], "IDENT"),
        (["nope"], "nope"),
        (["fetch", "--bogus", "https://a.example/"], "--bogus"),
    ],
)
def test_usage_errors_exit_2_naming_the_argument_in_a_real_process(
    cli_cache: Any, args: list[str], named: str
) -> None:
    cfg, store, _emu = cli_cache
    before = _records(store)
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), *args], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, (args, out.stderr)
    assert named in out.stderr and "Traceback" not in out.stderr
    assert _records(store) == before


def test_export_to_a_missing_folder_is_a_clear_error(cli_cache: Any) -> None:
    cfg, _store, _emu = cli_cache
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "export", "-o",
                          "/nonexistent/dir/out.jsonl"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "/nonexistent/dir" in out.stderr


# --- security ---------------------------------------------------------------------------


class _Touch:
    """Unpickling this creates ``path``: stands in for arbitrary code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_a_pickle_planted_in_the_cache_is_refused_by_the_cli_never_unpickled(
    tmp_path: Path, emulator: Any
) -> None:
    from diskcache.core import MODE_PICKLE

    emulator.add_capture("https://p.example/", TS, body=html_page("P", "p"))
    cfg = write_config(tmp_path, emulator.base_url)
    exe = [snapcache_exe(), "--config", str(cfg)]
    first = subprocess.run([*exe, "fetch", "--json", "https://p.example/"],
                           capture_output=True, text=True, timeout=60)
    rid = json.loads(first.stdout)["resource_id"]
    marker = tmp_path / "pwned"
    with sqlite3.connect(tmp_path / "store" / "cache.db") as con:
        con.execute("UPDATE Cache SET mode = ?, value = ? WHERE key = ?",
                    (MODE_PICKLE, pickle.dumps(_Touch(marker)), f"rec:{rid}"))
    con.close()
    for args in (["show", rid], ["show", "https://p.example/"], ["export"],
                 ["export", "--format", "csv", "-o", str(tmp_path / "out.csv")], ["list"],
                 ["stats"]):
        out = subprocess.run([*exe, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode != 0, args
        assert "Traceback" not in out.stderr, (args, out.stderr[-2000:])
        assert "pickled" in out.stderr, (args, out.stderr)
        assert not marker.exists(), args
    assert not (tmp_path / "out.csv").exists()


def test_save_keys_never_appear_in_output_records_or_cache_files(
    tmp_path: Path, emulator: Any
) -> None:
    access, secret = "AKIAHOSTILEACCESS0001", "sEcReT-HoStIlE-KeY-0002"
    emulator.add_capture("https://s.example/", TS, body=html_page("S", "s"))
    cfg = write_config(tmp_path, emulator.base_url,
                       f'[save]\naccess_key = "{access}"\nsecret_key = "{secret}"\n')
    exe = [snapcache_exe(), "--config", str(cfg)]
    seen = ""
    for args in (["fetch", "--json", "https://s.example/"], ["show", "https://s.example/"],
                 ["export"], ["stats", "--json"], ["list"], ["fetch", "javascript:x"]):
        out = subprocess.run([*exe, *args], capture_output=True, text=True, timeout=60)
        seen += out.stdout + out.stderr
    loaded = load_config(cfg)
    assert secret not in repr(loaded) and access not in repr(loaded)
    bad = cfg.read_text().replace("[rates]\n", "[rates]\ncdx_per_minute = -1\n")
    cfg.write_text(bad)
    out = subprocess.run([*exe, "stats"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "rates.cdx_per_minute" in out.stderr
    seen += out.stdout + out.stderr
    assert access not in seen and secret not in seen
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != cfg.name:
            data = path.read_bytes()
            assert access.encode() not in data and secret.encode() not in data, path

