"""Save Page Now answers are untrusted: a hostile or broken archive, against the emulator.

Each test scripts the SPN2 emulator (tests/spn2.py) to answer with something a real archive
should never send: JSON nested a hundred thousand deep, a job ID that is a header injection
or a path out of ``/save/status/``, a ``status_ext`` that names a save status, a capture
time of ``"0"``, 90 KB of escape codes. Another archive of the chain may also try to name
the URL that gets submitted. None of it may crash a run, send the keys elsewhere, or become
a save status the archive did not earn.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from snapcache import Fetcher
from snapcache.cache.records import Record
from snapcache.cache.times import utc_now_iso
from snapcache.config import config_from_mapping
from snapcache.errors import DisallowedRequestError
from snapcache.save import interpret_status, interpret_submit
from snapcache.transport import FULL, Pool, Transport

from tests.docgen import html_page
from tests.spn2 import Reply, SaveEmulator
from tests.test_cli import snapcache_exe, write_config
from tests.test_save import ACCESS, SECRET, URL, save_config
from tests.wayback_emulator import Capture, WaybackEmulator

OLD = "20200101000000"
TRACKER = "http://tracker.example/?victim=1"
GOOD_JOB = "spn2-" + "0123456789abcdef" * 2 + "01234567"
#: Job IDs that must never be stored or polled: header injection, paths out of
#: /save/status/ (plain, encoded, behind a fragment), not a string at all.
BAD_JOBS: tuple[object, ...] = (
    "spn2-0123abcd\r\nX-Injected: 1",
    "spn2-0123abcd\r\n",
    "../../web/LEAK?x=",
    "spn2-0123abcd/../../../web/LEAK",
    "%2e%2e/%2e%2e/web/LEAK",
    "spn2-1#/../../web/LEAK",
    "spn2-abc?x=/../../web/LEAK",
    "SPN2-ABC DEF",
    ["spn2-0123abcd"],
)


@pytest.fixture
def spn(emulator: Any) -> SaveEmulator:
    return SaveEmulator(emulator, ACCESS, SECRET)


def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def history(f: Fetcher, record: Record) -> list[dict[str, Any]]:
    return f.cache.history(record.resource_id)


def status_paths(emulator: Any) -> list[str]:
    return [path for pool, _method, path in emulator.requests if pool == "save_status"]


def no_leak(emulator: Any) -> None:
    """No request left the endpoints a save may use for /web/LEAK (with or without keys)."""
    assert not [path for _pool, _method, path in emulator.requests if "LEAK" in path]


def cli(cfg: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([snapcache_exe(), "--config", str(cfg), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def save_cli_config(tmp_path: Path, emulator: Any) -> Path:
    path = write_config(tmp_path, emulator.base_url,
                        f'[save]\nenabled = true\naccess_key = "{ACCESS}"\n'
                        f'secret_key = "{SECRET}"\npoll_interval = 0.05\npoll_budget = 2.0\n'
                        "per_minute = 6000.0\n")
    # No CDX pacing (one query every 2.5 s): replay confirmations are CDX queries too.
    text = path.read_text(encoding="utf-8").replace("[rates]\n",
                                                    "[rates]\ncdx_per_minute = 60000.0\n", 1)
    path.write_text(text, encoding="utf-8")
    return path


# --- finding 3: nesting and job IDs -----------------------------------------------------


def test_deeply_nested_answers_are_unexpected_not_a_recursion_error() -> None:
    for body in (deep(100_000), b"[" * 1_000_000, b'{"job_id": ' + b"[" * 50_000):
        assert interpret_submit(200, body).kind == "unexpected"
        assert interpret_status(200, body).kind == "unexpected"


@pytest.mark.parametrize("where", ["submit", "status"])
def test_a_deeply_nested_answer_through_save_is_stored_not_a_traceback(
    tmp_path: Path, emulator: Any, spn: SaveEmulator, where: str
) -> None:
    if where == "submit":
        spn.script(URL, submit_reply=Reply(deep(100_000)))
    else:
        spn.script(URL, status_replies=[Reply(deep(100_000))])
    with Fetcher(save_config(tmp_path, emulator, poll_budget=1.0)) as f:
        (record,), _ = f.save([URL])
    assert isinstance(record, Record)
    # A submission answered with junk is submitted again later; a job whose status is junk
    # is confirmed by replay (nothing new is served yet).
    assert record.save_status == ("deferred" if where == "submit" else "not_replayable_yet")


@pytest.mark.parametrize("job", BAD_JOBS, ids=repr)
def test_a_bad_job_id_is_an_error_never_stored_or_polled(
    tmp_path: Path, emulator: Any, spn: SaveEmulator, job: object
) -> None:
    spn.script(URL, submit_reply=Reply.json({"url": URL, "job_id": job}))
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), _ = f.save([URL])
        assert isinstance(record, Record)
        entries = history(f, record)
    assert record.save_status == "error:bad-job-id" and record.save_job_id is None
    assert all(e.get("save_job_id") is None for e in entries if "save_status" in e)
    assert status_paths(emulator) == []
    no_leak(emulator)


def test_a_crlf_job_id_does_not_break_later_saves_or_runs(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    spn.script(URL, submit_reply=Reply.json({"url": URL, "job_id": "spn2-ab\r\nX: 1"}))
    cfg = save_cli_config(tmp_path, emulator)
    first = cli(cfg, "save", "--json", URL)
    second = cli(cfg, "save", "--json", URL)
    run = cli(cfg, "run", "--save-missing", "--json", "-", stdin=URL + "\n")
    for out in (first, second, run):
        assert "Traceback" not in out.stderr, out.stderr
        assert out.returncode in (0, 1), out.stderr
    assert json.loads(first.stdout)["save_status"] == "error:bad-job-id"
    assert json.loads(second.stdout)["save_status"] == "error:bad-job-id"
    assert status_paths(emulator) == []
    assert spn.submissions == [URL]  # a recent error is not resubmitted at once


@pytest.mark.parametrize("job", [j for j in BAD_JOBS if isinstance(j, str)], ids=repr)
def test_a_bad_job_id_stored_before_the_check_is_dropped_with_a_note_not_polled(
    tmp_path: Path, emulator: Any, spn: SaveEmulator, job: str
) -> None:
    """Records written by an earlier version hold such IDs as pending jobs."""
    config = save_config(tmp_path, emulator)
    with Fetcher(config) as f:
        fetched = f.fetch(URL)
        f.cache.update_save(fetched.resource_id, job_id=job, requested_at=utc_now_iso(),
                            status="pending")
        (record,), stats = f.save([URL])
        assert isinstance(record, Record)
        notes = [str(e.get("note")) for e in history(f, record)]
    assert record.save_status == "error:bad-job-id" and record.save_job_id is None
    assert any("stored job ID" in note and "dropped" in note for note in notes)
    assert "\r" not in "".join(notes) and "\n" not in "".join(notes)
    assert status_paths(emulator) == [] and stats.polled == 0
    assert spn.submissions == []  # not resubmitted at once either
    no_leak(emulator)


def test_run_save_missing_repairs_a_stored_crlf_job(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    cfg = save_cli_config(tmp_path, emulator)
    with Fetcher(save_config(tmp_path, emulator)) as f:
        fetched = f.fetch(URL)
        f.cache.update_save(fetched.resource_id, job_id="spn2-ab\r\n",
                            requested_at=utc_now_iso(), status="pending")
    for _ in range(2):
        out = cli(cfg, "run", "--save-missing", "--force", "--json", "-", stdin=URL + "\n")
        assert "Traceback" not in out.stderr and out.returncode in (0, 1), out.stderr
    with Fetcher(save_config(tmp_path, emulator)) as f:
        record = f.lookup(URL)
    assert record is not None and record.save_status == "error:bad-job-id"
    assert record.save_job_id is None and status_paths(emulator) == []


# --- finding 11: the transport wall, verified -------------------------------------------


def test_the_transport_refuses_a_status_path_a_job_id_would_climb_out_of(
    tmp_path: Path, emulator: Any
) -> None:
    config = save_config(tmp_path, emulator)
    base = emulator.base_url

    async def go() -> None:
        transport = Transport(config)
        try:
            for job in ("../../web/LEAK?x=", "%2e%2e/%2e%2e/web/LEAK", "spn2-1/../../web/LEAK",
                        "spn2-ab\r\nX: 1"):
                with pytest.raises(DisallowedRequestError):
                    await transport.request("GET", f"{base}/save/status/{job}",
                                            Pool.SAVE_STATUS, want_body=lambda s, h: FULL,
                                            headers={"Authorization": "LOW a:b"})
        finally:
            await transport.aclose()

    asyncio.run(go())
    assert emulator.requests == []


# --- finding 6: another archive names the URL -------------------------------------------


class SteeringArchive(WaybackEmulator):
    """An archive whose mementos name another URL as their original (Link rel=original)."""

    def _link_header(self, cap: Capture) -> str:
        header = super()._link_header(cap)
        return header.replace(f'<{cap.url}>; rel="original"', f'<{TRACKER}>; rel="original"', 1)


def test_a_second_archive_cannot_steer_what_is_submitted(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    with SteeringArchive(load_recordings=False) as second:
        second.add_capture(URL, OLD, body=html_page("Second", "from the second archive"))
        doc = {
            "archive": {"base_url": emulator.base_url,
                        "availability_url": f"{emulator.base_url}/wayback/available",
                        "connect_timeout": 2.0, "read_timeout": 5.0},
            "archives": [{"name": "second", "base_url": second.base_url}],
            "rates": {"pause_on_429": 1.0, "state_path": str(tmp_path / "rl.sqlite"),
                      "cdx_per_minute": 60_000.0},
            "retry": {"max_attempts": 2, "initial_backoff": 0.05, "max_backoff": 0.1},
            "cache": {"path": str(tmp_path / "store")},
            "save": {"enabled": True, "access_key": ACCESS, "secret_key": SECRET,
                     "poll_interval": 0.05, "poll_budget": 5.0, "per_minute": 6000.0},
        }
        archived = "https://web.archive.org/web/2019/https://other.example/cited"
        with Fetcher(config_from_mapping(doc, source="test")) as f:
            results, _ = f.save([URL, archived])
    assert all(isinstance(r, Record) for r in results)
    # Never the tracker. The second archive's capture names another URL, so it is not the
    # cited URL's capture at all (recorded as an error, nothing submitted for it); a cited
    # archive URL submits the original in it.
    assert not any("tracker" in u for u in spn.submissions)
    assert spn.submissions in ([URL, "https://other.example/cited"],
                               ["https://other.example/cited"])
    first = results[0]
    assert isinstance(first, Record)
    if spn.submissions == ["https://other.example/cited"]:
        assert first.status == "error" and "another URL" in (first.error or "")


# --- finding 8: answers taken at their word ---------------------------------------------


def job_reply(**fields: Any) -> Reply:
    return Reply.json({"job_id": GOOD_JOB, **fields})


def test_a_status_ext_naming_a_save_status_is_an_unknown_error(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    spn.script(URL, status_replies=[job_reply(status="error", status_ext="success")])
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), stats = f.save([URL])
        assert isinstance(record, Record)
        notes = [str(e.get("note")) for e in history(f, record)]
    assert record.save_status == "error:unknown" and record.status == "not_archived"
    assert any("'success'" in note for note in notes)
    assert stats.outcomes == {"error": 1}


@pytest.mark.parametrize("answer", [
    {"status": "error", "status_ext": "pending"},
    {"status_ext": "pending"},
    {"status": "pending", "status_ext": "pending", "message": "queued"},
])
def test_a_pending_without_a_job_is_not_a_state_that_never_ends(
    tmp_path: Path, emulator: Any, spn: SaveEmulator, answer: dict[str, str]
) -> None:
    spn.script(URL, submit_reply=Reply.json(answer))
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), _ = f.save([URL])
    assert isinstance(record, Record) and record.save_status == "error:unknown"


def test_a_stored_pending_without_a_job_is_submitted_again(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    """What the answers above once left behind: pending, no job, never saved again."""
    spn.script(URL, pending_polls=0)
    with Fetcher(save_config(tmp_path, emulator)) as f:
        fetched = f.fetch(URL)
        f.cache.update_save(fetched.resource_id, job_id=None, requested_at=utc_now_iso(),
                            status="pending")
        (record,), _ = f.save([URL])
    assert isinstance(record, Record) and record.save_status == "success"
    assert spn.submissions == [URL]


@pytest.mark.parametrize("timestamp", ["0", OLD, "20200101000000 ", "20261399000000",
                                       "99991231235959", 20300101000000, None])
def test_a_success_at_a_time_that_cannot_be_the_new_capture_is_not_taken(
    tmp_path: Path, emulator: Any, spn: SaveEmulator, timestamp: object
) -> None:
    emulator.add_capture(URL, OLD, body=html_page("Old", "old text"))
    spn.script(URL, status_replies=[job_reply(status="success", timestamp=timestamp,
                                              original_url=URL)])
    with Fetcher(save_config(tmp_path, emulator, poll_budget=2.0)) as f:
        (record,), _ = f.save([URL])
    assert isinstance(record, Record)
    assert record.save_status == "not_replayable_yet"
    assert record.capture_timestamp == OLD  # the old capture is not reported as the new one


def test_huge_archive_text_with_escape_codes_is_capped_and_cleaned(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    junk = "\x1b[2J\x1b]0;owned\x07\u202e\r\n" + "A" * 90_000
    spn.script(URL, status_replies=[job_reply(status="error", status_ext="error:" + junk,
                                              message=junk)])
    other = "https://other.example/page"
    spn.script(other, submit_reply=Reply.json({"status": "error", "status_ext": junk,
                                               "message": junk}))
    with Fetcher(save_config(tmp_path, emulator)) as f:
        records, _ = f.save([URL, other])
        stored = [(r, history(f, r)) for r in records if isinstance(r, Record)]
    assert len(stored) == 2
    for record, entries in stored:
        assert record.save_status == "error:unknown"
        text = json.dumps([record.to_json_dict(), entries], ensure_ascii=False)
        for bad in ("\x1b", "\x07", "\u202e", "\r", "\n"):
            assert bad not in text
        assert all(len(str(e.get("note") or "")) <= 300 for e in entries)
        assert len(text) < 20_000


def test_an_answer_longer_than_any_real_one_is_not_parsed(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    padding = "x" * (3 * 1024 * 1024)
    spn.script(URL, submit_reply=Reply.json({"url": URL, "job_id": GOOD_JOB,
                                             "message": padding}))
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), _ = f.save([URL])
    assert isinstance(record, Record) and record.save_status == "deferred"
    assert status_paths(emulator) == []
