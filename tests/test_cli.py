"""The ``snapcache`` command, run as a real subprocess against the loopback emulator."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from snapcache.cli import human_size, human_timestamp
from snapcache.cli.common import exit_code_for
from snapcache.cli.run import summary_json_dict
from snapcache.runner import RunSummary, Verdict

from tests.docgen import NTIA_SENTENCE, NTIA_TS, NTIA_URL, html_page, ntia_pdf

REQUIRED_JSON_FIELDS = {
    "resource_id", "stable_id", "url", "status", "archived_status", "capture_timestamp",
    "archive_url", "raw_url", "original_url", "fetched_at", "content_type", "content_length",
    "title", "preview", "text_length", "redirects", "error", "last_attempt_at", "attempts",
}


def snapcache_exe() -> str:
    exe = Path(sys.executable).parent / "snapcache"
    return str(exe) if exe.exists() else shutil.which("snapcache") or "snapcache"


def write_config(tmp_path: Path, base_url: str, extra: str = "") -> Path:
    path = tmp_path / "local.toml"
    path.write_text(
        f'[archive]\nbase_url = "{base_url}"\n'
        f'availability_url = "{base_url}/wayback/available"\n'
        "connect_timeout = 2.0\nrequest_timeout = 20.0\n"
        f'[rates]\nstate_path = "{tmp_path / "rl.sqlite"}"\npause_on_429 = 1.0\n'
        "[retry]\nmax_attempts = 2\ninitial_backoff = 0.05\nmax_backoff = 0.1\n"
        f'[cache]\npath = "{tmp_path / "store"}"\n' + extra,
        encoding="utf-8",
    )
    return path


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [snapcache_exe(), *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def cfg(tmp_path: Path, emulator: Any) -> Path:
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type="application/pdf")
    return write_config(tmp_path, emulator.base_url)


def test_fetch_prints_the_card_the_wiki_should_have_shown(cfg: Path, emulator: Any) -> None:
    out = run("--config", str(cfg), "fetch", NTIA_URL)
    assert out.returncode == 0, out.stderr
    card = out.stdout
    assert re.search(r"Resource ID: a6ec2c2fe408fea3 \| Stable ID: sid_[A-Za-z0-9]{10}", card)
    assert "archived status HTTP 200" in card
    assert "Captured:     Apr 8, 2026 19:43 UTC" in card
    assert re.search(r"Size:\s+\d+\.\d KB · application/pdf", card)
    assert NTIA_SENTENCE in card.replace("\n    ", " ")
    assert "Wayback Machine" not in card


def test_fetch_json_has_every_documented_field_and_a_rerun_makes_no_request(
    cfg: Path, emulator: Any
) -> None:
    first = run("--config", str(cfg), "fetch", "--json", NTIA_URL)
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert set(record) >= REQUIRED_JSON_FIELDS
    assert record["capture_timestamp"] == NTIA_TS
    assert record["content_length"] > 0
    emulator.reset_counters()
    second = run("--config", str(cfg), "fetch", "--json", NTIA_URL)
    assert json.loads(second.stdout)["stable_id"] == record["stable_id"]
    assert sum(emulator.counts.values()) == 0
    forced = run("--config", str(cfg), "fetch", "--json", "--force", NTIA_URL)
    assert json.loads(forced.stdout)["stable_id"] == record["stable_id"]
    # Unchanged: the nearest-capture redirect names the stored capture, so it is confirmed.
    assert emulator.counts["playback"] == 1
    assert json.loads(forced.stdout)["last_confirmed_at"] is not None
    emulator.reset_counters()
    full = run("--config", str(cfg), "fetch", "--json", "--full", NTIA_URL)
    assert json.loads(full.stdout)["last_confirmed_at"] is None
    assert emulator.counts["playback"] == 2


def test_show_finds_by_stable_id_resource_id_and_url_without_requests(
    cfg: Path, emulator: Any
) -> None:
    record = json.loads(run("--config", str(cfg), "fetch", "--json", NTIA_URL).stdout)
    emulator.reset_counters()
    for ident in (record["stable_id"], record["resource_id"], NTIA_URL):
        out = run("--config", str(cfg), "show", "--json", ident)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["resource_id"] == "a6ec2c2fe408fea3"
    assert sum(emulator.counts.values()) == 0
    missing = run("--config", str(cfg), "show", "sid_AAAAAAAAAA")
    assert missing.returncode == 1 and "no record" in missing.stderr


def test_move_via_cli_keeps_ids(cfg: Path, emulator: Any) -> None:
    old = "https://example.org/typo"
    emulator.add_capture(old, "20220101000000", body=html_page("T", "x"))
    record = json.loads(run("--config", str(cfg), "fetch", "--json", old).stdout)
    moved = run("--config", str(cfg), "move", "--json", old, "https://example.org/fixed")
    assert moved.returncode == 0, moved.stderr
    data = json.loads(moved.stdout)
    assert (data["resource_id"], data["stable_id"]) == (record["resource_id"],
                                                       record["stable_id"])


def test_bad_input_is_named_and_skipped_and_good_urls_still_fetched(cfg: Path) -> None:
    out = run("--config", str(cfg), "fetch", "--json", "notaurl", NTIA_URL)
    assert out.returncode == 1
    assert "notaurl" in out.stderr and "not an http(s) URL" in out.stderr
    assert json.loads(out.stdout)["status"] == "ok"
    assert "Traceback" not in out.stderr


def test_unknown_config_key_is_a_usage_error_naming_the_key(tmp_path: Path,
                                                            emulator: Any) -> None:
    cfg = write_config(tmp_path, emulator.base_url, "[preview]\nmax_charz = 3\n")
    out = run("--config", str(cfg), "fetch", NTIA_URL)
    assert out.returncode == 2
    assert "preview.max_charz" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_at_is_a_usage_error_not_raised(cfg: Path) -> None:
    out = run("--config", str(cfg), "fetch", "--at", "2026-13-01", NTIA_URL)
    assert out.returncode == 2
    assert "'--at'" in out.stderr and "Traceback" not in out.stderr


def test_hostile_title_never_reaches_the_terminal_raw(cfg: Path, emulator: Any) -> None:
    url = "https://example.org/evil"
    emulator.add_capture(url, "20220101000000",
                         body=html_page("Evil\x1b]0;pwned\x07\x1b[2J title", "body\x1b[31m red"))
    out = run("--config", str(cfg), "fetch", url)
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "Evil" in out.stdout


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"),
                                            (5 * 1024 * 1024, "5.0 MB"), (None, "size unknown")])
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


def test_human_timestamp() -> None:
    assert human_timestamp("20260408194323") == "Apr 8, 2026 19:43 UTC"
    assert human_timestamp(None) == "unknown"


def test_exit_codes_follow_the_run_verdict() -> None:
    assert {v: exit_code_for(v) for v in get_args(Verdict)} == {
        "ok": 0, "failed": 1, "deferred": 75, "SIGINT": 130, "SIGTERM": 143}
    # The printed summary ends with the CLI's exit code, whatever the library's dict holds.
    data = summary_json_dict(RunSummary(deferred=1, interrupted="SIGTERM"))
    assert list(data)[-1] == "exit_code" and data["exit_code"] == 143
