"""Batch runs (`snapcache run` and `Fetcher.run`) against the loopback emulator."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapcache import Fetcher
from snapcache.runner import RunEvent
from snapcache.transport import Pool, RateLimiter

from tests.conftest import emulator_config
from tests.docgen import html_page, make_pdf
from tests.test_cli import snapcache_exe, write_config

#: The archive's real limits scaled by K so a run takes seconds, not minutes.
K = 40


@dataclass(frozen=True)
class Expected:
    url: str
    status: str
    capture: str | None


def build_corpus(emu: Any, n: int, seed: int = 7) -> list[Expected]:
    """``n`` URLs of mixed kinds on the emulator, with what a correct client must find."""
    rng = random.Random(seed)
    out: list[Expected] = []
    for i in range(n):
        url = f"https://site{i % 17}.example/doc/{i}"
        kind = rng.choices(["html", "pdf", "newer404", "only404", "missing", "redirect"],
                           weights=[50, 10, 10, 8, 12, 10])[0]
        ts = f"2021{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}120000"
        if kind == "html":
            emu.add_capture(url, ts, body=html_page(f"Doc {i}", f"Body of document {i}."))
            out.append(Expected(url, "ok", ts))
        elif kind == "pdf":
            emu.add_capture(url, ts, body=make_pdf([f"PDF number {i}"]),
                            content_type="application/pdf")
            out.append(Expected(url, "ok", ts))
        elif kind == "newer404":
            emu.add_capture(url, ts, body=html_page(f"Doc {i}", "good"))
            emu.add_capture(url, "20240101000000", status=404, body=b"gone")
            out.append(Expected(url, "ok", ts))
        elif kind == "only404":
            emu.add_capture(url, ts, status=404, body=b"gone")
            out.append(Expected(url, "archived_error", ts))
        elif kind == "missing":
            out.append(Expected(url, "not_archived", None))
        else:
            target = url + "-moved"
            emu.add_capture(url, ts, status=301, location=target)
            emu.add_capture(target, ts[:-4] + "0500", body=html_page(f"Moved {i}", "here"))
            out.append(Expected(url, "ok", ts[:-4] + "0500"))
    return out


def scaled_config(tmp_path: Path, emu: Any, **extra: Any) -> Any:
    emu.set_rate_limits(cdx_per_minute=30 * K, playback_per_minute=600 * K,
                        window_seconds=60.0)
    return emulator_config(
        tmp_path, emu.base_url,
        rates={"cdx_per_minute": 24.0 * K, "playback_per_minute": 480.0 * K},
        run={"concurrency": 8}, **extra,
    )


def test_a_run_of_300_urls_reaches_every_right_outcome_then_costs_nothing(
    tmp_path: Path, emulator: Any
) -> None:
    corpus = build_corpus(emulator, 320)
    dupes = [c.url for c in corpus[:25]]
    lines = [c.url for c in corpus] + dupes
    random.Random(1).shuffle(lines)
    source = tmp_path / "sources.txt"
    source.write_text("# nightly list\n" + "\n".join(lines) + "\n")
    config = scaled_config(tmp_path, emulator)
    events: list[RunEvent] = []
    with Fetcher(config) as f:
        summary = f.run(source, on_result=events.append)
        assert summary.verdict == "ok", summary.to_json_dict()
        assert summary.seen == 345 and summary.duplicates == 25 and summary.new == 320
        for expected in corpus:
            record = f.lookup(expected.url)
            assert record is not None, expected.url
            assert (record.status, record.capture_timestamp if record.status == "ok"
                    else expected.capture if record.status == "not_archived"
                    else record.capture_timestamp) == (expected.status, expected.capture), expected
        assert emulator.count_429 == 0
        first_requests = sum(emulator.counts.values())
        # Duplicates cost one fetch: no URL was fetched twice.
        fetched = [e.url for e in events if e.kind == "fetched"]
        assert len(fetched) == len(set(fetched)) == 320
        emulator.reset_counters()
        again = f.run(source)
        assert sum(emulator.counts.values()) == 0
        assert again.skipped_fresh == 320 and again.new == again.refreshed == 0
        assert again.requests == {}
    assert first_requests == sum(summary.requests.values())


def test_stable_ids_from_the_list_are_bound_and_conflicts_name_the_line(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    source = tmp_path / "s.csv"
    source.write_text("url,stable_id\nhttps://a.example/,sid_AAAAAAAAAA\n"
                      "https://b.example/,LEGACY0001\n")
    events: list[RunEvent] = []
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        f.run(source)
        assert f.lookup("https://a.example/").stable_id == "sid_AAAAAAAAAA"  # type: ignore[union-attr]
        assert f.lookup("LEGACY0001").url == "https://b.example/"  # type: ignore[union-attr]
        source.write_text("url,stable_id\nhttps://a.example/,sid_BBBBBBBBBB\n")
        summary = f.run(source, on_result=events.append, force=True)
        assert f.lookup("https://a.example/").stable_id == "sid_AAAAAAAAAA"  # type: ignore[union-attr]
    assert summary.invalid == 1 and summary.verdict == "failed"
    bad = [e for e in events if e.kind == "invalid"]
    assert bad[0].line == 2 and "conflicts" in bad[0].reason


def test_dry_run_says_what_and_why_without_any_request(tmp_path: Path, emulator: Any) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    config = emulator_config(tmp_path, emulator.base_url)
    with Fetcher(config) as f:
        f.fetch("https://a.example/")
        emulator.reset_counters()
        events: list[RunEvent] = []
        summary = f.run(["https://a.example/", "https://b.example/"], dry_run=True,
                        on_result=events.append)
    assert sum(emulator.counts.values()) == 0
    assert summary.would_fetch == 1 and summary.skipped_fresh == 1
    assert [(e.kind, e.reason) for e in events] == [
        ("fresh", events[0].reason), ("would_fetch", "missing")]
    assert events[0].reason.startswith("fresh until")


def test_an_outage_trips_the_circuit_breaker_and_defers_the_rest(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.set_outage(503)
    config = emulator_config(tmp_path, emulator.base_url, run={"circuit_breaker": 3,
                                                                "concurrency": 1},
                             retry={"max_attempts": 2})
    with Fetcher(config) as f:
        summary = f.run([f"https://x.example/{i}" for i in range(30)])
    assert summary.outcomes["error"] == 3
    assert summary.deferred == 27
    assert summary.verdict == "deferred"
    assert emulator.counts["playback"] == 3 * 2


def test_a_pause_longer_than_max_wait_defers_and_leaves_records_as_they_were(
    tmp_path: Path, emulator: Any
) -> None:
    config = emulator_config(tmp_path, emulator.base_url, rates={"pause_on_429": 120.0})
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    with Fetcher(config) as f:
        good = f.fetch("https://a.example/")
        key = emulator.base_url.split("//")[1]
        # Another process sharing the state file met a 429: the pause holds for us too.
        RateLimiter.from_config(config).pause(key, Pool.PLAYBACK, 120.0)
        summary = f.run(["https://a.example/", "https://b.example/"], force=True, max_wait=1.0)
        assert f.lookup("https://a.example/") == good
        assert f.lookup("https://b.example/") is None
    assert summary.deferred == 2 and summary.verdict == "deferred"


# --- the CLI, as cron runs it ------------------------------------------------------------


def run_cli(*args: str, timeout: float = 120, stdin: bytes | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([snapcache_exe(), *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin.decode() if stdin else None)


def test_cli_run_with_fuzzed_bad_lines_reports_each_by_number_and_fetches_the_rest(
    tmp_path: Path, emulator: Any
) -> None:
    rng = random.Random(42)
    good = [f"https://good{i}.example/page" for i in range(60)]
    for url in good:
        emulator.add_capture(url, "20220101000000", body=html_page("G", "good page"))
    makers = [
        lambda: b"ftp://" + rng.randbytes(4).hex().encode(),
        lambda: b"https://x.example/" + bytes([rng.choice([0, 7, 27, 127])]) + b"z",
        lambda: b"https://x.example/" + b"a" * rng.randint(9300, 12000),
        lambda: b"https://x.example/" + bytes([0xff, rng.randint(0x80, 0xfe)]),
        lambda: b"http://[" + rng.randbytes(3).hex().encode(),
        lambda: b"mailto:" + rng.randbytes(3).hex().encode(),
        lambda: b"https://exa mple.com/",
        lambda: b"https:///nohost",
        lambda: b"javascript:alert(1)",
        lambda: b"https://x.example:99999/",
    ]
    lines: list[bytes] = [u.encode() for u in good]
    bad_lines: set[int] = set()
    for _ in range(200):
        lines.insert(rng.randint(0, len(lines)), rng.choice(makers)())
    for number, line in enumerate(lines, start=1):
        if not line.startswith(b"https://good"):
            bad_lines.add(number)
    source = tmp_path / "fuzzed.txt"
    source.write_bytes(b"\n".join(lines) + b"\n")
    cfg = _with_rates(tmp_path, emulator.base_url, 6000.0)
    out = run_cli("--config", str(cfg), "run", "--format", "text", "--json", str(source))
    assert out.returncode == 1, out.stderr[-2000:]
    reported = {int(line.split()[1].rstrip(":")) for line in out.stderr.splitlines()
                if line.startswith("line ") and ": invalid:" in line}
    assert reported == bad_lines
    summary = json.loads(out.stdout)
    assert summary["invalid_lines"] == 200
    assert summary["outcomes"] == {"ok": 60}
    assert "Traceback" not in out.stderr


def _with_rates(tmp_path: Path, base_url: str, per_minute: float) -> Path:
    path = write_config(tmp_path, base_url)
    rates = f"playback_per_minute = {per_minute}\ncdx_per_minute = {per_minute}\n"
    text = path.read_text().replace("[rates]\n", "[rates]\n" + rates)
    path.write_text(text + "[run]\nconcurrency = 2\n")
    return path


def test_a_second_run_on_the_same_cache_exits_75_while_fetch_still_works(
    tmp_path: Path, emulator: Any
) -> None:
    urls = [f"https://slow{i}.example/" for i in range(40)]
    for url in urls:
        emulator.add_capture(url, "20220101000000", body=html_page("S", "slow"))
    emulator.add_capture("https://other.example/", "20220101000000", body=html_page("O", "o"))
    cfg = _with_rates(tmp_path, emulator.base_url, 240.0)
    source = tmp_path / "slow.txt"
    source.write_text("\n".join(urls) + "\n")
    first = subprocess.Popen([snapcache_exe(), "--config", str(cfg), "run", "--quiet", str(source)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while emulator.counts.get("playback", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run_cli("--config", str(cfg), "run", str(source), timeout=30)
        assert second.returncode == 75
        assert "another run holds this cache" in second.stderr
        fetched = run_cli("--config", str(cfg), "fetch", "--json", "https://other.example/")
        assert fetched.returncode == 0, fetched.stderr
        assert json.loads(fetched.stdout)["status"] == "ok"
        assert first.poll() is None  # the first run was still going all along
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    assert first.returncode == 143, err
    assert "interrupted by SIGTERM" in out


def _snapshot(store: Path) -> dict[str, tuple[Any, ...]]:
    from snapcache.cache import SnapshotCache

    with SnapshotCache(store) as cache:
        return {r.url: (r.status, r.capture_timestamp, r.archived_status, r.preview,
                        r.content_length, r.title) for r in cache.records()}


def test_sigterm_mid_run_keeps_what_was_fetched_and_a_rerun_completes_it(
    tmp_path: Path, emulator: Any
) -> None:
    corpus = build_corpus(emulator, 40, seed=3)
    source = tmp_path / "list.txt"
    source.write_text("\n".join(c.url for c in corpus) + "\n")
    interrupted = tmp_path / "a"
    interrupted.mkdir()
    cfg = _with_rates(interrupted, emulator.base_url, 240.0)
    proc = subprocess.Popen([snapcache_exe(), "--config", str(cfg), "run", str(source)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while emulator.counts.get("playback", 0) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in out
    before = _snapshot(interrupted / "store")
    assert 0 < len(before) < 40
    from snapcache.cache import SnapshotCache

    with SnapshotCache(interrupted / "store") as cache:
        attempts_before = {r.url: r.attempts for r in cache.records()}
    cfg = _with_rates(interrupted, emulator.base_url, 6000.0)
    rerun = run_cli("--config", str(cfg), "run", "--json", str(source))
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["skipped_fresh"] == len(before)
    with SnapshotCache(interrupted / "store") as cache:
        for url, attempts in attempts_before.items():
            record = cache.by_url(url)
            assert record is not None and record.attempts == attempts  # not fetched again
    straight = tmp_path / "b"
    straight.mkdir()
    cfg_b = _with_rates(straight, emulator.base_url, 6000.0)
    full = run_cli("--config", str(cfg_b), "run", "--quiet", str(source))
    assert full.returncode == 0, full.stderr
    assert _snapshot(interrupted / "store") == _snapshot(straight / "store")


def test_cli_run_reads_stdin_and_jsonl_and_prints_a_plain_line_per_url(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "a"))
    cfg = write_config(tmp_path, emulator.base_url)
    data = b'{"url": "https://a.example/"}\n{"url": "https://none.example/"}\n'
    out = run_cli("--config", str(cfg), "run", "-", stdin=data)
    assert out.returncode == 0, out.stderr
    assert "line 1: ok 20220101000000 https://a.example/" in out.stdout
    assert "line 2: not_archived - https://none.example/" in out.stdout
    assert "snapcache run: 2 URLs" in out.stdout
    quiet = run_cli("--config", str(cfg), "run", "--quiet", "-", stdin=data)
    assert "line " not in quiet.stdout


def test_export_list_stats_and_refetch(tmp_path: Path, emulator: Any) -> None:
    emulator.add_capture("https://a.example/", "20220101000000", body=html_page("A", "alpha"))
    cfg = _with_rates(tmp_path, emulator.base_url, 6000.0)
    run_cli("--config", str(cfg), "fetch", "https://a.example/", "https://none.example/")
    jsonl = run_cli("--config", str(cfg), "export")
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert {r["status"] for r in records} == {"ok", "not_archived"}
    assert list(records[0])[:3] == ["resource_id", "stable_id", "url"]
    out_file = tmp_path / "export.csv"
    run_cli("--config", str(cfg), "export", "--format", "csv", "-o", str(out_file),
            "--status", "ok")
    import csv

    with out_file.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:4] == ["resource_id", "stable_id", "url", "status"]
    assert len(rows) == 2 and "alpha" in rows[1][rows[0].index("preview")]
    listing = run_cli("--config", str(cfg), "list", "--status", "not_archived")
    assert "https://none.example/" in listing.stdout and "https://a.example/" not in listing.stdout
    stats = json.loads(run_cli("--config", str(cfg), "stats", "--json").stdout)
    assert stats["records"] == 2 and stats["outcomes"] == {"not_archived": 1, "ok": 1}
    assert stats["cache_bytes"] > 0
    emulator.reset_counters()
    refetch = run_cli("--config", str(cfg), "refetch", "--json", "--status", "not_archived")
    assert refetch.returncode == 0, refetch.stderr
    assert json.loads(refetch.stdout)["refreshed"] == 1
    assert emulator.counts["playback"] >= 1
    by_id = run_cli("--config", str(cfg), "refetch", "--quiet", records[0]["stable_id"])
    assert by_id.returncode == 0


def test_run_summary_exit_codes_are_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("Exit codes"):]
    for code in ("`0`", "`1`", "`2`", "`75`", "`130`", "`143`"):
        assert code in section[:1500], code
