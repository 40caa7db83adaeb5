"""pywb archives and fallback chains, against a REAL pywb server on 127.0.0.1.

The collection is built by the tests (tests/pywb_server.py): WARCs written with warcio, added
with ``wb-manager``, served by ``wayback``. One server serves the whole module.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from snapcache import ConfigError, Fetcher
from snapcache.capture import (
    HopKind,
    best_outcome,
    choose_captures,
    classify_playback,
    parse_pywb_cdx,
    pywb_redirect_replay,
)
from snapcache.config import UNLIMITED, config_from_mapping
from snapcache.transport import per_host_budgets

from tests.conftest import emulator_config
from tests.docgen import NTIA_SENTENCE, NTIA_TS, NTIA_URL, html_page, ntia_pdf
from tests.pywb_server import Capture, PywbServer
from tests.test_cli import run, write_config

COLL = "snapcache-test"
NAME = "pywb-local"
PDF = "application/pdf"

REPORT = "https://pywb.example/report"
OLD, REL, NEW = ("https://pywb.example/old", "https://pywb.example/rel",
                 "https://pywb.example/new")
ONLY_HERE = "https://fallback.example/only-here"
SECRET = "https://blocked.example/secret"


def captures() -> list[Capture]:
    return [
        Capture(REPORT, "20200101000000", html_page("Report 2020", "first edition text")),
        Capture(REPORT, "20210101000000", html_page("Report 2021", "second edition text")),
        Capture(REPORT, "20220101000000", html_page("Report 2022", "third edition text")),
        Capture(REPORT, "20240101000000", b"<h1>Not Found</h1>", status=404),
        Capture(OLD, "20230101000000", status=301, location=NEW),
        # A Location relative to the captured URL, as sites send them.
        Capture(REL, "20230101000000", status=302, location="/new"),
        Capture(NEW, "20230101000500", html_page("New home", "Moved here.")),
        Capture(NTIA_URL, NTIA_TS, ntia_pdf(), content_type=PDF),
        Capture(ONLY_HERE, "20190101000000", html_page("Only here", "Kept by pywb alone.")),
        Capture(SECRET, "20190101000000", html_page("Secret", "never shown")),
    ]


@pytest.fixture(scope="module")
def pywb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PywbServer]:
    root = tmp_path_factory.mktemp("pywb")
    with PywbServer(root, COLL, captures(), blocked_prefixes=["https://blocked.example/"]) as s:
        yield s


def pywb_entry(server: PywbServer) -> dict[str, Any]:
    return {"name": NAME, "base_url": server.base_url, "dialect": "pywb", "collection": COLL}


def pywb_config(tmp_path: Path, server: PywbServer) -> Any:
    """A config whose only archive is the pywb server."""
    return emulator_config(tmp_path, server.base_url,
                           archive={**pywb_entry(server)})


def chain_config(tmp_path: Path, emulator: Any, server: PywbServer) -> Any:
    """The IA emulator first, then pywb."""
    base = emulator_config(tmp_path, emulator.base_url)
    doc = {
        "archive": {"base_url": emulator.base_url,
                    "availability_url": f"{emulator.base_url}/wayback/available",
                    "connect_timeout": 2.0, "read_timeout": 5.0, "request_timeout": 20.0},
        "archives": [pywb_entry(server)],
        "rates": {"pause_on_429": 1.0, "state_path": base.rates.state_path, "max_wait": 30.0},
        "retry": {"max_attempts": 2, "initial_backoff": 0.05, "max_backoff": 0.1,
                  "max_total_seconds": 5.0},
        "cache": {"path": base.cache.path},
    }
    return config_from_mapping(doc, source="test")


@pytest.fixture
def fetcher(tmp_path: Path, pywb: PywbServer) -> Iterator[Fetcher]:
    with Fetcher(pywb_config(tmp_path, pywb)) as f:
        yield f


# --- pywb facts the code relies on (checked on the real server) -----------------------


def test_pywb_serves_the_nearest_capture_directly_for_an_inexact_timestamp(
    pywb: PywbServer,
) -> None:
    """pywb 2.x (default config) does not redirect to the nearest capture: it serves it with
    Memento-Datetime and a Content-Location naming the exact capture."""
    url = f"{pywb.base_url}/{COLL}/20201001id_/{REPORT}"
    with httpx.Client(trust_env=False) as client:
        resp = client.get(url)
    assert resp.status_code == 200
    assert resp.headers["memento-datetime"] == "Fri, 01 Jan 2021 00:00:00 GMT"
    assert resp.headers["content-location"].endswith(f"/{COLL}/20210101000000id_/{REPORT}")


def test_pywb_replays_an_archived_redirect_with_the_live_location(pywb: PywbServer) -> None:
    with httpx.Client(trust_env=False) as client:
        resp = client.get(f"{pywb.base_url}/{COLL}/20230101000000id_/{OLD}")
    assert resp.status_code == 301
    assert "memento-datetime" in resp.headers
    assert resp.headers["location"] == NEW  # the live site: never to be followed as is


def test_pywb_cdx_answers_json_lines_with_its_own_field_names(pywb: PywbServer) -> None:
    with httpx.Client(trust_env=False) as client:
        resp = client.get(f"{pywb.base_url}/{COLL}/cdx",
                          params={"url": REPORT, "output": "json"})
    lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
    assert len(lines) == 4
    assert {"urlkey", "timestamp", "url", "mime", "status", "digest", "length"} <= set(lines[0])
    rows = parse_pywb_cdx(resp.text)
    assert [r.status for r in rows] == [200, 200, 200, 404]
    assert choose_captures(rows, None)[0].timestamp == "20220101000000"


# --- resolution against pywb alone ------------------------------------------------------


def test_pywb_newest_good_capture_is_chosen_over_a_newer_archived_404(fetcher: Fetcher) -> None:
    record = fetcher.fetch(REPORT)
    assert record.status == "ok"
    assert record.capture_timestamp == "20220101000000"
    assert record.archived_status == 200
    assert "third edition text" in record.preview
    assert record.archive == NAME
    prefix = f"{fetcher.config.archive.base_url}/{COLL}/"
    assert record.raw_url == f"{prefix}20220101000000id_/{REPORT}"
    assert record.archive_url == f"{prefix}20220101000000/{REPORT}"


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("20201001", "20210101000000"),  # nearest is later: pywb serves it directly
        ("20200301", "20200101000000"),  # nearest is earlier
        ("20231201", "20220101000000"),  # nearest is the 404: the CDX finds the closest 200
    ],
)
def test_pywb_at_picks_the_closest_good_capture(fetcher: Fetcher, at: str, expected: str) -> None:
    record = fetcher.fetch(REPORT, at=at)
    assert record.status == "ok"
    assert record.capture_timestamp == expected
    assert record.requested_timestamp == at.ljust(14, "0")


@pytest.mark.parametrize("start", [OLD, REL])
def test_pywb_archived_redirect_is_followed_inside_the_archive(
    fetcher: Fetcher, start: str
) -> None:
    record = fetcher.fetch(start)
    assert record.status == "ok"
    assert record.original_url == NEW
    assert record.capture_timestamp == "20230101000500"
    assert record.title == "New home"
    prefix = f"{fetcher.config.archive.base_url}/{COLL}/"
    assert record.redirects and all(r.startswith(prefix) for r in record.redirects)
    assert any(r.endswith(f"id_/{start}") for r in record.redirects)
    assert fetcher.stats.requests.get("cdx", 0) == 0


def test_pywb_pdf_preview_comes_from_the_pdf_text(fetcher: Fetcher) -> None:
    record = fetcher.fetch(NTIA_URL)
    assert record.status == "ok"
    assert record.content_type == PDF
    assert record.content_length == len(ntia_pdf())
    assert record.preview.startswith(NTIA_SENTENCE)
    assert record.archive == NAME


def test_pywb_access_rule_block_gives_blocked(fetcher: Fetcher) -> None:
    record = fetcher.fetch(SECRET)
    assert record.status == "blocked"
    assert record.preview == "" and record.title is None


def test_pywb_never_archived_gives_not_archived(fetcher: Fetcher) -> None:
    record = fetcher.fetch("https://never.example/nothing")
    assert record.status == "not_archived"
    assert record.archive == NAME


# --- chains ------------------------------------------------------------------------------


@pytest.mark.parametrize("in_ia", ["excluded", "unarchived"])
def test_fallback_record_comes_from_pywb_when_the_ia_has_no_good_capture(
    tmp_path: Path, emulator: Any, pywb: PywbServer, in_ia: str
) -> None:
    if in_ia == "excluded":
        emulator.add_excluded("https://fallback.example/")
    with Fetcher(chain_config(tmp_path, emulator, pywb)) as f:
        record = f.fetch(ONLY_HERE)
    assert record.status == "ok"
    assert record.archive == NAME
    assert record.raw_url == f"{pywb.base_url}/{COLL}/20190101000000id_/{ONLY_HERE}"
    assert "Kept by pywb alone." in record.preview
    assert emulator.counts.get("playback", 0) >= 1  # the IA was asked first


def test_the_first_archive_with_a_good_capture_wins(
    tmp_path: Path, emulator: Any, pywb: PywbServer
) -> None:
    emulator.add_capture(REPORT, "20250101000000", body=html_page("IA copy", "from the IA"))
    with Fetcher(chain_config(tmp_path, emulator, pywb)) as f:
        record = f.fetch(REPORT)
        assert f.stats.requests["playback"] == 2  # pywb never asked
    assert record.archive == "ia"
    assert record.capture_timestamp == "20250101000000"


def test_when_no_archive_has_a_good_capture_the_best_outcome_is_kept(
    tmp_path: Path, emulator: Any, pywb: PywbServer
) -> None:
    url = "https://gone.example/page"
    emulator.add_capture(url, "20200101000000", status=404, body=b"gone")
    with Fetcher(chain_config(tmp_path, emulator, pywb)) as f:
        record = f.fetch(url)
    # ia: archived_error beats pywb: not_archived.
    assert record.status == "archived_error"
    assert record.archived_status == 404
    assert record.archive == "ia"
    assert record.error is None


def test_an_unavailable_archive_is_not_cached_as_not_archived(
    tmp_path: Path, emulator: Any, pywb: PywbServer
) -> None:
    """The IA is down and pywb has no capture: the IA may hold one, so the attempt is an
    error naming the IA, retried after the error TTL; not a week-long not_archived."""
    url = "https://maybe.example/page"
    emulator.set_outage(503)
    with Fetcher(chain_config(tmp_path, emulator, pywb)) as f:
        record = f.fetch(url)
        assert record.status == "error"
        assert record.error is not None
        assert record.error.startswith("ia: ") and "503" in record.error
        assert f"not_archived from {NAME}" in record.error
        emulator.set_outage(None)
        emulator.add_capture(url, "20200101000000", body=html_page("Back", "IA is back"))
        again = f.fetch(url, force=True)
    assert again.status == "ok" and again.archive == "ia"


def test_a_pywb_archive_that_is_down_falls_through_to_the_next(
    tmp_path: Path, emulator: Any, pywb: PywbServer
) -> None:
    """Order reversed: a pywb primary that refuses connections, then the IA emulator."""
    from tests.pywb_server import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    doc = {
        "archive": {"name": "dead-pywb", "base_url": dead, "dialect": "pywb",
                    "collection": COLL, "connect_timeout": 1.0},
        "archives": [{"name": "ia", "base_url": emulator.base_url}],
        "rates": {"state_path": str(tmp_path / "rl.sqlite")},
        "retry": {"max_attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.02},
        "cache": {"path": str(tmp_path / "store")},
    }
    emulator.add_capture(REPORT, "20250101000000", body=html_page("IA copy", "from the IA"))
    with Fetcher(config_from_mapping(doc)) as f:
        record = f.fetch(REPORT)
    assert record.status == "ok" and record.archive == "ia"


# --- the command line and the README ----------------------------------------------------


def test_cli_fetch_json_against_pywb_prints_the_same_fields_as_against_the_ia(
    tmp_path: Path, emulator: Any, pywb: PywbServer
) -> None:
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type=PDF)
    ia_dir, pywb_dir = tmp_path / "ia", tmp_path / "pywb"
    ia_dir.mkdir()
    pywb_dir.mkdir()
    ia_cfg = write_config(ia_dir, emulator.base_url)
    pywb_cfg = write_config(pywb_dir, pywb.base_url)
    text = pywb_cfg.read_text(encoding="utf-8").replace(
        "[archive]\n",
        f'[archive]\nname = "{NAME}"\ndialect = "pywb"\ncollection = "{COLL}"\n', 1,
    )
    pywb_cfg.write_text(text, encoding="utf-8")
    outputs = []
    for cfg in (ia_cfg, pywb_cfg):
        out = run("--config", str(cfg), "fetch", NTIA_URL, "--json")
        assert out.returncode == 0, out.stderr
        outputs.append(json.loads(out.stdout))
    ia, pw = outputs
    assert list(ia) == list(pw)  # same fields, same order
    for key in ("status", "archived_status", "capture_timestamp", "original_url",
                "content_type", "content_length", "title", "preview", "text_length",
                "resource_id", "url"):
        assert ia[key] == pw[key], key
    assert (ia["archive"], pw["archive"]) == ("ia", NAME)
    assert pw["raw_url"] == f"{pywb.base_url}/{COLL}/{NTIA_TS}id_/{NTIA_URL}"


def readme_chain_example() -> str:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = re.search(r"## Other archives \(pywb\) and fallback chains\n(.*?)\n## ", readme,
                        re.DOTALL)
    assert section is not None
    block = re.search(r"```toml\n(.*?)```", section.group(1), re.DOTALL)
    assert block is not None
    return block.group(1)


def test_the_readme_chain_example_runs(tmp_path: Path, emulator: Any, pywb: PywbServer) -> None:
    """The README's example, with the IA emulator and this pywb server in place of the
    real hosts: a URL the IA lacks comes from pywb, one the IA holds from the IA."""
    text = readme_chain_example()
    parsed = tomllib.loads(text)
    assert parsed["archive"]["base_url"] == "https://web.archive.org"
    text = text.replace("https://web.archive.org", emulator.base_url)
    text = text.replace("http://127.0.0.1:8080", pywb.base_url)
    text = text.replace('"my-archive"', f'"{COLL}"')
    text += (
        f'\n[rates]\nstate_path = "{tmp_path / "rl.sqlite"}"\n'
        f'[cache]\npath = "{tmp_path / "store"}"\n'
    )
    cfg = tmp_path / "chain.toml"
    cfg.write_text(text, encoding="utf-8")
    emulator.add_capture(NEW, "20250101000000", body=html_page("IA copy", "from the IA"))
    with Fetcher(cfg) as f:
        assert [e.name for e in f.config.chain] == ["ia", NAME]
        from_pywb = f.fetch(ONLY_HERE)
        from_ia = f.fetch(NEW)
    assert (from_pywb.status, from_pywb.archive) == ("ok", NAME)
    assert (from_ia.status, from_ia.archive) == ("ok", "ia")


# --- configuration -----------------------------------------------------------------------


def test_a_config_with_only_archive_is_a_chain_of_one_named_ia() -> None:
    config = config_from_mapping({"archive": {"base_url": "http://127.0.0.1:9"}})
    assert [(e.name, e.dialect, e.base_url) for e in config.chain] == [
        ("ia", "ia", "http://127.0.0.1:9")
    ]
    assert config.chain[0].cdx_per_minute == 24.0
    assert config.archives == ()


def test_archives_entries_take_dialect_default_budgets_and_extend_the_allowed_hosts() -> None:
    config = config_from_mapping({
        "archives": [
            {"name": "p", "base_url": "http://127.0.0.1:7/", "dialect": "pywb",
             "collection": "c"},
            {"name": "p-slow", "base_url": "http://127.0.0.1:8", "dialect": "pywb",
             "collection": "c", "cdx_per_minute": 6},
            {"name": "mirror", "base_url": "https://mirror.example"},
        ]
    })
    p, slow, mirror = config.archives
    assert p.base_url == "http://127.0.0.1:7"
    assert math.isinf(p.cdx_per_minute) and math.isinf(p.playback_per_minute)
    assert slow.cdx_per_minute == 6.0 and math.isinf(slow.playback_per_minute)
    assert (mirror.dialect, mirror.cdx_per_minute, mirror.playback_per_minute) == (
        "ia", 24.0, 480.0)
    assert {"127.0.0.1:7", "127.0.0.1:8", "mirror.example", "web.archive.org"} <= (
        config.allowed_hosts)
    budgets = per_host_budgets(config)
    assert budgets["127.0.0.1:8"] == {"cdx": 6.0, "playback": UNLIMITED}
    assert budgets["web.archive.org"] == {"cdx": 24.0, "playback": 480.0}


def test_a_pywb_primary_is_unlimited_unless_rates_says_otherwise() -> None:
    entry = {"base_url": "http://127.0.0.1:7", "dialect": "pywb", "collection": "c"}
    assert math.isinf(config_from_mapping({"archive": entry}).primary.cdx_per_minute)
    limited = config_from_mapping({"archive": entry, "rates": {"cdx_per_minute": 5}})
    assert limited.primary.cdx_per_minute == 5.0
    assert math.isinf(limited.primary.playback_per_minute)


def test_two_archives_on_one_host_share_the_stricter_budget() -> None:
    config = config_from_mapping({
        "archive": {"base_url": "http://127.0.0.1:7", "dialect": "pywb", "collection": "a",
                    "name": "a"},
        "rates": {"playback_per_minute": 100},
        "archives": [{"name": "b", "base_url": "http://127.0.0.1:7", "dialect": "pywb",
                      "collection": "b", "playback_per_minute": 50}],
    })
    assert per_host_budgets(config)["127.0.0.1:7"] == {"cdx": UNLIMITED, "playback": 50.0}


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"archive": {"dialect": "wayback"}}, "archive.dialect"),
        ({"archive": {"dialect": "pywb"}}, "archive.collection"),
        ({"archive": {"name": ""}}, "archive.name"),
        ({"archives": {"name": "x"}}, "[[archives]]"),
        ({"archives": [{"base_url": "http://127.0.0.1:1"}]}, "archives[0].name"),
        ({"archives": [{"name": "x"}]}, "archives[0].base_url"),
        ({"archives": [{"name": "x", "base_url": "ftp://h"}]}, "archives[0].base_url"),
        ({"archives": [{"name": "x", "base_url": "http://h", "dialect": "pywb"}]},
         "archives[0].collection"),
        ({"archives": [{"name": "x", "base_url": "http://h", "cdx_per_minute": 0}]},
         "archives[0].cdx_per_minute"),
        ({"archives": [{"name": "x", "base_url": "http://h", "colection": "c"}]},
         "archives[0].colection"),
        ({"archives": [{"name": "ia", "base_url": "http://h"}]}, "'ia' is used twice"),
    ],
)
def test_bad_archive_config_names_the_key(doc: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(doc, source="t.toml")
    assert named in str(info.value)


# --- pure pieces ------------------------------------------------------------------------


def test_pywb_redirect_targets_are_mapped_into_the_archive() -> None:
    prefix = "http://127.0.0.1:9/c/"
    here = f"{prefix}20230101000000id_/https://x.org/a/b"
    original = "https://x.org/a/b"
    ts = "20230101000000"
    assert pywb_redirect_replay("https://y.org/z", original, ts, prefix, here) == (
        f"{prefix}{ts}id_/https://y.org/z")
    assert pywb_redirect_replay("/z", original, ts, prefix, here) == (
        f"{prefix}{ts}id_/https://x.org/z")
    assert pywb_redirect_replay("c2", original, ts, prefix, here) == (
        f"{prefix}{ts}id_/https://x.org/a/c2")
    assert pywb_redirect_replay("//y.org/q", original, ts, prefix, here) == (
        f"{prefix}{ts}id_/https://y.org/q")
    # Already a replay URL of this archive (pywb in redirect_to_exact mode): kept.
    exact = f"{prefix}20240101000000id_/https://x.org/z"
    assert pywb_redirect_replay(exact, original, ts, prefix, here) == exact
    assert pywb_redirect_replay("/c/20240101000000id_/https://x.org/z", original, ts, prefix,
                                here) == exact


def test_pywb_cdx_parser_skips_junk_blocked_rows_and_maps_field_names() -> None:
    body = "\n".join([
        '{"urlkey": "org,x)/", "timestamp": "20200101000000", "url": "https://x.org/",'
        ' "mime": "text/html", "status": "200", "digest": "D1", "length": "10",'
        ' "offset": "0", "filename": "a.warc.gz", "access": "allow"}',
        '{"urlkey": "org,x)/", "timestamp": "20210101000000", "url": "https://x.org/",'
        ' "status": "200", "access": "block"}',
        '{"urlkey": "org,x)/", "timestamp": "20220101000000", "url": "https://x.org/",'
        ' "mime": "warc/revisit", "status": "-", "digest": "D1", "length": "-"}',
        "not json",
        '["a", "list"]',
        '{"urlkey": "org,x)/", "timestamp": "2023',  # cut connection
    ])
    rows = parse_pywb_cdx(body)
    assert [(r.timestamp, r.original, r.mimetype, r.status, r.length) for r in rows] == [
        ("20200101000000", "https://x.org/", "text/html", 200, 10),
        ("20220101000000", "https://x.org/", "warc/revisit", None, None),
    ]
    assert [r.timestamp for r in choose_captures(rows, None)] == ["20200101000000"]


def test_451_without_memento_datetime_is_blocked() -> None:
    hop = classify_playback(451, {}, b"<html>Pywb Error</html>", "http://h/c/1id_/https://x/")
    assert hop.kind is HopKind.BLOCKED


def test_best_outcome_ranks_ok_then_archived_error_then_blocked_then_not_archived() -> None:
    assert best_outcome([]) is None
    assert best_outcome(["not_archived", "blocked", "archived_error", "blocked"]) == 2
    assert best_outcome(["error", "not_archived"]) == 1
    assert best_outcome(["blocked", "blocked"]) == 0
    assert best_outcome(["archived_error", "ok"]) == 1
