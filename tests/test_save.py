"""Save Page Now 2: every answer the API gives, against the emulator's SPN2 endpoints."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from snapcache import ConfigError, Fetcher
from snapcache.cache.records import Record
from snapcache.runner import SaveOptions
from snapcache.save import (
    MAX_ANSWER_BYTES,
    MAX_ANSWER_DEPTH,
    clean_text,
    interpret_status,
    interpret_submit,
    json_depth,
    needs_poll,
    needs_save,
    parse_answer,
    plausible_capture_time,
    valid_job_id,
)

from tests.conftest import emulator_config
from tests.docgen import html_page
from tests.spn2 import SaveEmulator
from tests.test_cli import snapcache_exe, write_config

URL = "https://lost.example/page"
ACCESS, SECRET = "ACCESS123", "SECRET456"


@pytest.fixture
def spn(emulator: Any) -> SaveEmulator:
    return SaveEmulator(emulator, ACCESS, SECRET)


def save_config(tmp_path: Path, emulator: Any, **save: Any) -> Any:
    values = {"enabled": True, "access_key": ACCESS, "secret_key": SECRET,
              "poll_interval": 0.05, "poll_budget": 5.0, "per_minute": 6000.0}
    values.update(save)
    # The CDX budget (one query every 2.5 s) would pace every replay confirmation.
    return emulator_config(tmp_path, emulator.base_url, save=values,
                           rates={"cdx_per_minute": 60_000.0})


def save_requests(emulator: Any) -> int:
    return emulator.counts.get("save", 0) + emulator.counts.get("save_status", 0)


# --- pure mapping -------------------------------------------------------------------------


def test_submit_answers_are_mapped() -> None:
    assert interpret_submit(200, b'{"url": "u", "job_id": "spn2-ab"}').kind == "job"
    same = interpret_submit(200, b'{"url": "u", "job_id": "spn2-ab", "message": '
                                 b'"The same snapshot had been made 2 minutes ago."}')
    assert same.kind == "job" and same.message and "2 minutes ago" in same.message
    refused = interpret_submit(200, b'{"status": "error", "status_ext": '
                                    b'"error:too-many-daily-captures", "message": "5 times"}')
    assert (refused.kind, refused.status_ext) == ("error", "error:too-many-daily-captures")
    assert interpret_submit(401, b"You need to be logged in").kind == "unauthorized"
    assert interpret_submit(502, b"<html>").kind == "unexpected"
    assert interpret_submit(200, b"not json").kind == "unexpected"


def test_status_answers_are_mapped() -> None:
    assert interpret_status(200, b'{"status": "pending", "job_id": "j"}').kind == "pending"
    ok = interpret_status(200, b'{"status": "success", "job_id": "j", "timestamp": '
                               b'"20261129120000", "original_url": "https://x/"}')
    assert (ok.kind, ok.timestamp, ok.original_url) == ("success", "20261129120000",
                                                       "https://x/")
    err = interpret_status(200, b'{"status": "error", "status_ext": "error:blocked-url"}')
    assert (err.kind, err.status_ext) == ("error", "error:blocked-url")
    assert interpret_status(404, b"{}").kind == "unexpected"
    assert interpret_status(200, b'{"status": "success"}').kind == "unexpected"


def test_only_job_ids_in_the_apis_shape_are_valid() -> None:
    for good in ("spn2-" + "a" * 40, "spn2-0123abcd", "e70f33c7-9eca-4c88-826d-26930564d7c8"):
        assert valid_job_id(good), good
    for bad in ("", "j", "spn2-", "spn2-xyz", "spn2-ab\r\n", "spn2-ab\n", "SPN2-AB",
                "../../web/LEAK?x=", "spn2-ab/../x", "spn2-" + "a" * 65, " spn2-ab", None, 1,
                ["spn2-ab"], "spn2-ab#x", "spn2-ab?x", "spn2-\uff41b"):
        assert not valid_job_id(bad), bad


def test_answers_are_parsed_within_a_size_and_a_depth() -> None:
    assert parse_answer(b'{"a": [1, {"b": "[[[[[["}]}') == {"a": [1, {"b": "[[[[[["}]}
    assert json_depth('{"a": "}}}{{{[[[\\"[[["}') == 1
    nested = "[" * (MAX_ANSWER_DEPTH + 1) + "]" * (MAX_ANSWER_DEPTH + 1)
    assert json_depth(nested) == MAX_ANSWER_DEPTH + 1 and parse_answer(nested.encode()) is None
    at_limit = "[" * MAX_ANSWER_DEPTH + "]" * MAX_ANSWER_DEPTH
    assert parse_answer(('{"a": ' + at_limit[1:-1] + "}").encode()) is not None
    assert json_depth("[" * 10_000_000) == MAX_ANSWER_DEPTH + 1  # stops counting early
    assert parse_answer(b'{"a": "' + b"x" * MAX_ANSWER_BYTES + b'"}') is None
    for junk in (b"[]", b'"x"', b"1", b"nul", b"\xff\xfe", b'{"a": 1' , b"9" * 5000):
        assert parse_answer(junk) is None, junk


def test_archive_text_is_cleaned_and_capped() -> None:
    assert clean_text("a\x1b[2J\r\nb\u202ec\u200bd\ud800e\x00f  g") == "a [2J b c d e f g"
    assert clean_text("x" * 10_000, 50) == "x" * 50
    assert clean_text(" \x00 ") is None and clean_text(123) is None and clean_text(None) is None


def test_a_reported_capture_time_must_be_near_the_request() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    asked = "2026-11-29T11:59:00Z"
    assert plausible_capture_time("20261129115930", asked, now)
    assert plausible_capture_time("20261129110000", asked, now)  # the same snapshot, 59 min
    assert plausible_capture_time("20261129120400", asked, now)  # clocks 4 minutes apart
    for bad in ("0", "20200101000000", "20261129104500", "20261129121000", "99991231235959",
                "20261399000000", "2026112911593", "202611291159300", None,
                "".join(chr(0xFF10 + int(d)) for d in "20261129115930")):  # fullwidth
        assert not plausible_capture_time(bad, asked, now), bad


def test_a_status_ext_is_taken_only_from_a_known_set_with_status_error() -> None:
    def submitted(data: dict[str, Any]) -> Any:
        return interpret_submit(200, json.dumps(data).encode())

    def status(data: dict[str, Any]) -> Any:
        return interpret_status(200, json.dumps(data).encode())

    for answer in (submitted, status):
        assert answer({"status": "error", "status_ext": "error:blocked-url"}).status_ext == (
            "error:blocked-url")
        for ext in ("success", "pending", "error:made-up", "error:blocked-url\n", 7,
                    {"a": 1}, "error:" + "x" * 90_000):
            got = answer({"status": "error", "status_ext": ext})
            assert (got.kind, got.status_ext) == ("error", "error:unknown"), ext
            assert got.message and len(got.message) < 2000
    # A known status_ext without status: error is not taken either.
    assert submitted({"status_ext": "error:blocked-url"}).status_ext == "error:unknown"
    assert submitted({"status": "error", "job_id": "spn2-ab"}).kind == "error"
    bad = submitted({"url": "u", "job_id": "../../web/LEAK?x="})
    assert (bad.kind, bad.status_ext, bad.job_id) == ("error", "error:bad-job-id", None)
    assert status({"status": "success", "timestamp": "0"}).kind == "unexpected"
    assert status({"status": "pending", "job_id": "../x"}).job_id is None


def _record(**kw: Any) -> Record:
    base: dict[str, Any] = {"resource_id": "0" * 16, "stable_id": "sid_AAAAAAAAAA", "url": URL}
    base.update(kw)
    return Record(**base)


def test_which_records_need_a_save_or_a_poll() -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    recent = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert needs_save(_record(status="not_archived"), now)
    assert not needs_save(_record(status="ok", capture_timestamp="20261101000000"), now)
    assert needs_save(_record(status="ok", capture_timestamp="20200101000000"), now,
                      stale_days=30)
    assert not needs_save(_record(status="ok", capture_timestamp="20261120000000"), now,
                          stale_days=30)
    assert not needs_save(_record(status="not_archived", save_status="pending",
                                  save_job_id="j"), now)
    assert not needs_save(_record(status="not_archived", save_status="error:blocked-url",
                                  save_requested_at=recent), now)
    assert needs_save(_record(status="not_archived", save_status="error:blocked-url",
                              save_requested_at=old), now)
    assert needs_save(_record(status="not_archived", save_status="deferred"), now)
    assert not needs_save(_record(status="blocked"), now, stale_days=1)
    # Pending without a job can never be polled: submitted like a URL never tried.
    assert needs_save(_record(status="not_archived", save_status="pending"), now)
    assert needs_poll(_record(save_status="pending", save_job_id="j"))
    assert needs_poll(_record(save_status="not_replayable_yet", save_job_id="j"))
    assert not needs_poll(_record(save_status="success", save_job_id="j"))


# --- against the emulator -------------------------------------------------------------------


def test_with_saving_disabled_no_request_ever_goes_to_save(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        summary = f.run([URL, "https://other.example/"])
        assert summary.outcomes["not_archived"] == 2
        with pytest.raises(ConfigError, match="disabled"):
            f.save([URL])
        with pytest.raises(ConfigError, match="disabled"):
            f.run([URL], save=SaveOptions(), force=True)
    cfg = write_config(tmp_path, emulator.base_url)
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "save", URL],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "saving is disabled" in out.stderr
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "run", "--save-missing", "-"],
                         input=URL + "\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "saving is disabled" in out.stderr
    assert save_requests(emulator) == 0
    assert spn.submissions == []


def test_a_successful_save_is_fetched_as_the_new_capture(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    spn.script(URL, pending_polls=2)
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), stats = f.save([URL])
    assert isinstance(record, Record)
    assert record.status == "ok" and record.save_status == "success"
    assert record.save_job_id and record.save_job_id.startswith("spn2-")
    assert len(record.save_job_id) == 45
    assert record.capture_timestamp == spn.jobs[record.save_job_id].timestamp
    assert record.title == "Saved now"
    assert stats.submitted == 1 and stats.polled == 3
    assert spn.submissions == [URL]


def test_a_pending_job_is_finished_by_the_next_run_never_resubmitted(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    script = spn.script(URL, pending_polls=10_000)
    config = save_config(tmp_path, emulator)
    with Fetcher(config) as f:
        first = f.run([URL], save=SaveOptions(budget=0.3))
        record = f.lookup(URL)
        assert record is not None and record.save_status == "pending"
        assert first.saves == {"pending": 1}
        script.pending_polls = 0
        second = f.run([URL], save=SaveOptions(budget=5))
        record = f.lookup(URL)
    assert record is not None and record.save_status == "success" and record.status == "ok"
    assert spn.submissions == [URL]
    assert second.saves == {"success": 1}


def test_a_misreported_failure_that_is_a_good_capture_is_reported_as_success(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    """The API may report an error although the capture worked (internetarchive/wayback#297)."""
    spn.script(URL, outcome="false_failure")
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), _ = f.save([URL])
        history = f.cache.history(record.resource_id)  # type: ignore[union-attr]
    assert isinstance(record, Record)
    assert record.save_status == "success" and record.status == "ok"
    assert any("capture exists" in str(h.get("note")) for h in history)


def test_a_capture_not_yet_replayable_is_retried_on_a_later_run(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    emulator.add_capture(URL, "20200101000000", body=html_page("Old", "old text"))
    spn.script(URL, visible=False)
    config = save_config(tmp_path, emulator)
    with Fetcher(config) as f:
        summary = f.run([URL], save=SaveOptions(stale_days=30, budget=5))
        record = f.lookup(URL)
        assert record is not None
        assert record.save_status == "not_replayable_yet"
        assert record.capture_timestamp == "20200101000000"  # not reported as the new one
        assert summary.saves == {"not_replayable_yet": 1}
        spn.make_visible(URL)
        f.run([URL], save=SaveOptions(stale_days=30, budget=5))
        record = f.lookup(URL)
    assert record is not None and record.save_status == "success"
    assert record.capture_timestamp > "20200101000000"
    assert spn.submissions == [URL]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("refuse:error:blocked-url", "error:blocked-url"),
     ("error:not-found", "error:not-found"),
     ("refuse:error:too-many-daily-captures", "error:too-many-daily-captures")],
)
def test_refusals_and_failures_are_recorded_with_their_status_ext(
    tmp_path: Path, emulator: Any, spn: SaveEmulator, outcome: str, status: str
) -> None:
    spn.script(URL, outcome=outcome)
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), _ = f.save([URL])
        (again,), _ = f.save([URL])  # a recent error is not resubmitted at once
    assert isinstance(record, Record) and isinstance(again, Record)
    assert record.save_status == status and record.status == "not_archived"
    assert again.save_status == status
    assert spn.submissions == [URL]


def test_the_daily_per_url_limit_of_the_archive_is_an_error_not_a_crash(
    tmp_path: Path, emulator: Any
) -> None:
    spn = SaveEmulator(emulator, ACCESS, SECRET, daily_limit=0)
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (record,), _ = f.save([URL])
    assert isinstance(record, Record)
    assert record.save_status == "error:too-many-daily-captures"
    assert spn.submissions == [URL]


def test_our_daily_budget_defers_without_submitting(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    with Fetcher(save_config(tmp_path, emulator, per_day=1)) as f:
        results, stats = f.save([URL, "https://second.example/"])
    assert [r.save_status for r in results] == ["success", "deferred"]  # type: ignore[union-attr]
    assert stats.stopped and "daily save budget" in stats.stopped
    assert spn.submissions == [URL]


def test_bad_keys_stop_saving_for_the_run_and_say_so_once(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    cfg = write_config(tmp_path, emulator.base_url,
                       '[save]\nenabled = true\naccess_key = "WRONG"\nsecret_key = "KEYS"\n'
                       "poll_interval = 0.05\n")
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "save", URL,
                          "https://second.example/"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert out.stderr.count("saving stopped") == 1 and "401" in out.stderr
    assert out.stdout.count("Save:         unauthorized") == 1
    assert emulator.counts["save"] == 1  # the second URL was never submitted
    assert "WRONG" not in out.stdout + out.stderr and "KEYS" not in out.stdout + out.stderr


def test_a_429_pauses_the_save_pool_and_defers_the_rest(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    emulator.limits["save"] = 0
    config = save_config(tmp_path, emulator)
    with Fetcher(config) as f:
        results, stats = f.save([URL, "https://second.example/"])
        key = emulator.base_url.split("//")[1]
        paused = max(s.paused_for for s in f.rate_limits() if s.key == key and s.pool == "save")
    assert [r.save_status for r in results] == ["deferred", None]  # type: ignore[union-attr]
    assert paused > 0
    assert emulator.counts["save"] == 1 and emulator.count_429 == 1
    assert stats.stopped and "paused" in stats.stopped


def test_the_same_snapshot_made_minutes_ago_is_used(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    spn.script(URL, pending_polls=0)
    with Fetcher(save_config(tmp_path, emulator)) as f:
        (first,), _ = f.save([URL])
        assert isinstance(first, Record) and first.save_status == "success"
        # Ask again with a zero-day window: the archive answers with the same job.
        f.run([URL], save=SaveOptions(stale_days=0, budget=5), force=True)
        again = f.lookup(URL)
    assert again is not None and again.save_status == "success"
    assert again.capture_timestamp == first.capture_timestamp
    assert spn.submissions == [URL, URL]
    assert len(spn.jobs) == 1


def test_save_keys_never_reach_records_exports_logs_or_the_cache_files(
    tmp_path: Path, emulator: Any, spn: SaveEmulator
) -> None:
    spn.script(URL, outcome="false_failure")
    cfg = write_config(tmp_path, emulator.base_url,
                       f'[save]\nenabled = true\naccess_key = "{ACCESS}"\n'
                       f'secret_key = "{SECRET}"\npoll_interval = 0.05\nper_minute = 6000.0\n')
    outputs = []
    for args in (["save", "--json", URL], ["run", "--save-missing", "--json", "-"],
                 ["export"], ["export", "--format", "csv"], ["show", "--json", URL]):
        out = subprocess.run([snapcache_exe(), "--config", str(cfg), *args],
                             input=URL + "\n", capture_output=True, text=True, timeout=60)
        outputs.append(out.stdout + out.stderr)
    text = "\n".join(outputs)
    assert json.loads(outputs[0].splitlines()[0])["save_status"] == "success"
    for secret in (ACCESS, SECRET):
        assert secret not in text
        for path in (tmp_path / "store").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    from snapcache.config import load_config

    assert SECRET not in repr(load_config(cfg))
