"""Workers on several hosts sharing one PostgreSQL store, one queue and one polite budget:
``snapcache enqueue``, ``snapcache worker`` and ``snapcache queue`` as real processes, against
the loopback emulator and the real PostgreSQL server (one schema per test, dropped after).

* 3 workers over 300 URLs at the (scaled) default budgets, one SIGKILLed mid-run: every URL
  reaches its right outcome, none is fetched more than twice, no 429, and the combined
  request rate stays within the budget in every 5 s window;
* enqueue + 3 workers store the same records as one ``run`` on diskcache; a second ``run``
  on PostgreSQL sends nothing; ``copy-store`` to diskcache exports the same;
* a job fresh meanwhile costs no request; SIGTERM finishes or gives back jobs in flight;
  a job whose workers keep dying fails; the commands need the PostgreSQL store.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from snapcache.cache.postgres import PostgresStore
from snapcache.cache.postgres.queue import JobQueue, NewJob
from snapcache.ids import resource_id

from tests import pgkit
from tests.docgen import html_page
from tests.test_batch import build_corpus
from tests.test_cli import snapcache_exe, write_config

#: The archive's limits sped up K times, windows shortened to match (as bench/batch_bench
#: does): K <= 15 keeps a bucket's one-second burst inside the archive's window.
K = 12
#: A dead worker's jobs are taken over this long after it died.
LEASE = 4.0


def env() -> dict[str, str]:
    """The environment of the commands: no DSN or config from the developer's shell."""
    return {k: v for k, v in os.environ.items() if k not in ("SNAPCACHE_DSN", "SNAPCACHE_CONFIG")}


def pg_config(tmp_path: Path, base_url: str, dsn: str, *, rates: str = "",
              extra: str = "") -> Path:
    path = write_config(tmp_path, base_url, f'backend = "postgres"\ndsn = "{dsn}"\n' + extra)
    text = path.read_text().replace("[rates]\n", f"[rates]\n{rates}")
    path.write_text(text.replace("connect_timeout = 2.0\n",
                                 "connect_timeout = 2.0\nread_timeout = 30.0\n"))
    return path


def cli(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([snapcache_exe(), "--config", str(cfg), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env())


def start(cfg: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([snapcache_exe(), "--config", str(cfg), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=env())


def queue_counts(cfg: Path) -> dict[str, Any]:
    out = cli(cfg, "queue", "--json")
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def peak(times: list[float], window: float) -> int:
    """The most requests in any ``window`` seconds."""
    return max((sum(1 for t in times[i:] if t < start + window)
                for i, start in enumerate(times)), default=0)


_REPLAY = re.compile(r"^/web/(\d{1,14})id_/(.*)$")


def first_requests(emu: Any, urls: set[str]) -> Counter[str]:
    """Attempts per URL, counted by their first request: every attempt asks playback for
    the URL at the current time, which is no capture's timestamp (later hops ask for a
    capture's)."""
    captures = {url: {c.timestamp for c in emu.captures_for(url)} for url in urls}
    found: Counter[str] = Counter()
    for pool, _method, path in emu.requests:
        match = _REPLAY.match(path) if pool == "playback" else None
        if match and match[2] in urls and match[1] not in captures[match[2]]:
            found[match[2]] += 1
    return found


# ---------------------------------------------------------------------------------------------


def test_three_workers_one_sigkilled_share_the_budget_and_finish_every_url(
    tmp_path: Path, emulator: Any
) -> None:
    emulator.set_rate_limits(cdx_per_minute=30, playback_per_minute=600,
                             window_seconds=60.0 / K)
    corpus = build_corpus(emulator, 300, seed=23)
    source = tmp_path / "list.txt"
    source.write_text("\n".join(c.url for c in corpus) + "\n")
    cdx_rate, playback_rate = 24.0 * K, 480.0 * K
    dsn = pgkit.new_schema()
    cfg = pg_config(tmp_path, emulator.base_url, dsn, rates=(
        f"cdx_per_minute = {cdx_rate}\nplayback_per_minute = {playback_rate}\n"),
        extra="[run]\nconcurrency = 4\n")
    queued = cli(cfg, "enqueue", "--json", str(source))
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["queued"] == 300
    emulator.reset_counters()

    started = time.monotonic()
    args = ["worker", "--until-empty", "--lease", str(LEASE), "--json"]
    workers = [start(cfg, *args) for _ in range(3)]
    victim = workers[0]
    try:
        # Mid-run: a third of the playback requests made, the victim holding jobs.
        wait_for(lambda: emulator.counts["playback"] >= 220, 90, "a third of the run")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = time.monotonic() - started
        outputs = []
        for proc in workers[1:]:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    elapsed = time.monotonic() - started

    counts = queue_counts(cfg)
    assert (counts["pending"], counts["leased"], counts["done"], counts["failed"]) == (
        0, 0, 300, 0), counts
    taken_over = sum(o["taken_over"] for o in outputs)
    assert taken_over >= 1, outputs  # the victim's leased jobs went to the others

    with PostgresStore(dsn) as store, JobQueue(dsn) as queue:
        for expected in corpus:
            record = store.by_url(expected.url)
            assert record is not None, expected.url
            assert record.status == expected.status, (expected, record.status, record.error)
            if expected.capture is not None:
                assert record.capture_timestamp == expected.capture, expected.url
            assert 1 <= record.attempts <= 2, (expected.url, record.attempts)
            job = queue.job(record.resource_id)
            assert job is not None and job["state"] == "done" and job["attempts"] <= 2
        twice = sum(1 for c in corpus
                    if (j := queue.job(resource_id(c.url))) and j["attempts"] == 2)
    attempts = first_requests(emulator, {c.url for c in corpus})
    assert set(attempts) == {c.url for c in corpus}
    assert max(attempts.values()) <= 2, attempts.most_common(3)
    refetched = sum(1 for n in attempts.values() if n == 2)

    assert emulator.count_429 == 0
    assert sum(o["rate_limited"] for o in outputs) == 0
    # The combined rate of all three workers: in any 5 s, at most one bucket's burst plus
    # 5 s of the budget. Times are taken where the emulator reads each request, a moment
    # after its token was taken: a process stalled on a loaded machine delivers a few
    # late, bunched with later ones (test_crash measured two or three). Three requests of
    # slack cover that; three workers each spending the budget would show three times it.
    figures = []
    for pool, rate in (("cdx", cdx_rate), ("playback", playback_rate)):
        times = sorted(t for t, p, _status in emulator.request_log if p == pool)
        allowed = max(1.0, rate / 60.0) + rate / 60.0 * 5.0
        worst = peak(times, 5.0)
        assert worst <= allowed + 3, (pool, worst, allowed)
        figures.append(f"{pool} {worst}/{allowed:.0f} ({worst / allowed:.0%})")
    print(f"RELIABILITY workers: 300 URLs, 3 workers, one SIGKILLed at {killed_at:.1f} s; "
          f"{taken_over} of its jobs taken over, {twice} jobs claimed twice, {refetched} URLs "
          f"fetched twice, none more; peak requests per 5 s window vs budget: "
          f"{', '.join(figures)}; 429s: {emulator.count_429}; {elapsed:.0f} s")


def test_enqueue_and_three_workers_store_what_one_run_on_diskcache_stores(
    tmp_path: Path, emulator: Any
) -> None:
    corpus = build_corpus(emulator, 120, seed=5)
    lines = [c.url for c in corpus] + [c.url for c in corpus[:10]] + ["not a url"]
    source = tmp_path / "list.txt"
    source.write_text("\n".join(lines) + "\n")
    fast = "cdx_per_minute = 1e6\nplayback_per_minute = 1e6\n"
    disk_dir = tmp_path / "disk"
    disk_dir.mkdir()
    disk_cfg = write_config(disk_dir, emulator.base_url)
    disk_cfg.write_text(disk_cfg.read_text().replace("[rates]\n", f"[rates]\n{fast}"))
    single = cli(disk_cfg, "run", "--quiet", "--json", str(source))
    assert single.returncode == 1, single.stderr  # the invalid line
    assert json.loads(single.stdout.splitlines()[-1])["new"] == 120

    dsn = pgkit.new_schema()
    pg_dir = tmp_path / "pg"
    pg_dir.mkdir()
    cfg = pg_config(pg_dir, emulator.base_url, dsn, rates=fast)
    queued = cli(cfg, "enqueue", "--json", str(source))
    assert queued.returncode == 1  # the invalid line, named with its number
    assert f"line {len(lines)}: invalid" in queued.stderr
    figures = json.loads(queued.stdout)
    figures.pop("elapsed_seconds")
    assert figures == {"urls": 130, "invalid_lines": 1, "duplicates": 10, "skipped_fresh": 0,
                       "queued": 120, "already_queued": 0}
    again = cli(cfg, "enqueue", "--json", str(source))  # nothing twice while still queued
    assert json.loads(again.stdout)["already_queued"] == 120
    workers = [start(cfg, "worker", "--until-empty", "--quiet", "--json") for _ in range(3)]
    summaries = []
    for proc in workers:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        summaries.append(json.loads(out))
    assert sum(s["claimed"] for s in summaries) == 120

    def fields(export: str) -> dict[str, tuple[Any, ...]]:
        rows = [json.loads(line) for line in export.splitlines()]
        return {r["url"]: (r["resource_id"], r["status"], r["last_outcome"],
                           r["capture_timestamp"], r["archived_status"], r["archive_url"],
                           r["content_length"], r["title"], r["sha256"]) for r in rows}

    disk_export = cli(disk_cfg, "export").stdout
    pg_export = cli(cfg, "export")
    assert pg_export.returncode == 0, pg_export.stderr
    assert fields(pg_export.stdout) == fields(disk_export)
    assert len(fields(disk_export)) == 120

    emulator.reset_counters()
    rerun = cli(cfg, "run", "--quiet", "--json", str(source))
    summary = json.loads(rerun.stdout.splitlines()[-1])
    assert summary["skipped_fresh"] == 120 and summary["requests"] == {}
    assert sum(emulator.counts.values()) == 0  # a second run on PostgreSQL sends nothing

    copy = tmp_path / "copy"
    copied = subprocess.run([snapcache_exe(), "copy-store", dsn, f"diskcache:{copy}"],
                            capture_output=True, text=True, timeout=120, env=env())
    assert copied.returncode == 0, copied.stderr
    copy_cfg = write_config(tmp_path, emulator.base_url)
    copy_cfg.write_text(copy_cfg.read_text().replace(str(tmp_path / "store"), str(copy)))
    assert cli(copy_cfg, "export").stdout == pg_export.stdout  # identical, byte for byte


def test_a_job_fresh_meanwhile_is_done_without_a_request_and_a_sid_is_bound_at_enqueue(
    tmp_path: Path, emulator: Any
) -> None:
    urls = [f"https://fresh{i}.example/" for i in range(2)]
    for url in urls:
        emulator.add_capture(url, "20220101000000", body=html_page("F", url))
    dsn = pgkit.new_schema()
    cfg = pg_config(tmp_path, emulator.base_url, dsn)
    source = tmp_path / "list.csv"
    source.write_text(f"url,stable_id\n{urls[0]},sid_AAAAAAAAAA\n{urls[1]},\n"
                      f"https://other.example/,sid_AAAAAAAAAA\n")
    queued = cli(cfg, "enqueue", "--json", str(source))
    # The third line names a stable ID the first line bound: refused at once, by line.
    assert queued.returncode == 1 and "line 4: invalid" in queued.stderr
    assert "sid_AAAAAAAAAA" in queued.stderr
    assert json.loads(queued.stdout)["queued"] == 2
    with PostgresStore(dsn) as store:  # bound when queued, before any worker ran
        assert store.stable_id(resource_id(urls[0])) == "sid_AAAAAAAAAA"
    fetched = cli(cfg, "fetch", urls[0])  # fresh now, by another way
    assert fetched.returncode == 0, fetched.stderr
    emulator.reset_counters()
    worked = cli(cfg, "worker", "--until-empty")
    assert worked.returncode == 0, worked.stderr
    assert f"fresh - {urls[0]}" in worked.stdout
    assert f"ok 20220101000000 {urls[1]}" in worked.stdout
    playback = [path for pool, _m, path in emulator.requests if pool == "playback"]
    assert playback and all(urls[1] in path for path in playback)  # none for the fresh one
    with JobQueue(dsn) as queue:
        job = queue.job(resource_id(urls[0]))
        assert job is not None and (job["state"], job["outcome"]) == ("done", "fresh")
    shown = cli(cfg, "queue")
    assert shown.returncode == 0 and shown.stdout == "pending 0, leased 0, done 2, failed 0\n"
    with PostgresStore(dsn) as store:
        record = store.by_url(urls[0])
        assert record is not None and record.attempts == 1
        assert record.stable_id == "sid_AAAAAAAAAA"


@pytest.mark.parametrize("delay", [1.5, 30.0])
def test_sigterm_finishes_jobs_in_flight_within_the_grace_and_gives_back_the_rest(
    tmp_path: Path, emulator: Any, delay: float
) -> None:
    urls = ["https://probe.example/"] + [f"https://slow{i}.example/" for i in range(5)]
    for url in urls:
        emulator.add_capture(url, "20220101000000", body=html_page("S", url))
    # The first job (the probe, alone until an archive answered) is quick; the rest slow.
    emulator.add_fault("slow", pool="playback", match="slow", delay=delay)
    dsn = pgkit.new_schema()
    cfg = pg_config(tmp_path, emulator.base_url, dsn,
                    extra="[run]\nconcurrency = 2\n")
    cfg.write_text(cfg.read_text().replace("request_timeout = 20.0", "request_timeout = 60.0"))
    source = tmp_path / "list.txt"
    source.write_text("\n".join(urls) + "\n")
    assert cli(cfg, "enqueue", str(source)).returncode == 0
    proc = start(cfg, "worker", "--json")
    try:
        wait_for(lambda: emulator.counts["playback"] >= 4, 30, "two slow jobs in flight")
        counts = queue_counts(cfg)
        assert (counts["done"], counts["leased"]) == (1, 2), counts
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 143, err[-3000:]
    summary = json.loads(out)
    assert summary["interrupted"] == "SIGTERM"
    counts = queue_counts(cfg)
    assert counts["leased"] == 0 and counts["failed"] == 0, counts
    with JobQueue(dsn) as queue:
        jobs = [queue.job(resource_id(u)) for u in urls]
    if delay < 5:  # in flight, finished within the grace period; nothing else claimed
        assert (counts["done"], counts["pending"]) == (3, 3), counts
        assert took < 6.0, took
    else:  # still in flight after the grace period: given back, as if never claimed
        assert (counts["done"], counts["pending"]) == (1, 5), counts
        shown = cli(cfg, "queue").stdout
        assert shown.startswith("pending 5, leased 0, done 1, failed 0\n"), shown
        assert re.search(r"oldest pending: https://slow\d\.example/ \(queued \S+Z, \d+ s ago\)",
                         shown), shown
        assert summary["released"] == 2 and 4.5 < took < 15, (summary, took)
        assert all(j is not None and j["attempts"] == 0 for j in jobs[1:]), jobs


def test_a_job_whose_workers_keep_dying_fails_instead_of_killing_them_all() -> None:
    dsn = pgkit.new_schema()
    rid = resource_id("https://poison.example/")
    with PostgresStore(dsn), JobQueue(dsn) as queue:
        assert queue.add([NewJob(rid, "https://poison.example/", line=7)]) == 1
        assert queue.add([NewJob(rid, "https://poison.example/")]) == 0  # already queued
        first = queue.claim("w1", 5, lease=0.2, max_attempts=2)
        assert [(j.resource_id, j.attempts, j.line) for j in first] == [(rid, 1, 7)]
        assert queue.claim("w2", 5, lease=0.2, max_attempts=2) == []  # leased: skipped
        time.sleep(0.3)  # w1 died: its lease expires
        second = queue.claim("w2", 5, lease=0.2, max_attempts=2)
        assert [j.attempts for j in second] == [2]
        assert not queue.finish("w1", rid, failed=False, outcome="ok")  # w1's lease is gone
        time.sleep(0.3)  # and w2 died too
        assert queue.claim("w3", 5, lease=0.2, max_attempts=2) == []
        job = queue.job(rid)
        assert job is not None and job["state"] == "failed"
        assert "lost 2 times" in job["error"] and "w2" in job["error"]
        counts = queue.counts()
        assert (counts.pending, counts.leased, counts.failed) == (0, 0, 1)
        assert queue.add([NewJob(rid, "https://poison.example/")]) == 1  # queued anew
        assert queue.counts().oldest_pending is not None


def test_queue_commands_on_diskcache_are_a_usage_error_saying_they_need_postgres(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    source = tmp_path / "list.txt"
    source.write_text("https://example.com/\n")
    for args in (["enqueue", str(source)], ["worker", "--until-empty"], ["queue"]):
        out = cli(cfg, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert f"{args[0]} needs the PostgreSQL store" in out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists()


def test_the_run_lock_of_a_postgres_store_is_an_advisory_lock_across_processes(
    tmp_path: Path, emulator: Any
) -> None:
    from snapcache.cli.lock import AdvisoryRunLock, RunLockedError

    emulator.add_capture("https://lock.example/", "20220101000000", body=html_page("L", "l"))
    dsn = pgkit.new_schema()
    cfg = pg_config(tmp_path, emulator.base_url, dsn)
    source = tmp_path / "list.txt"
    source.write_text("https://lock.example/\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom snapcache.cli.lock import AdvisoryRunLock\n"
         "lock = AdvisoryRunLock(sys.argv[1]); lock.acquire(); print('held', flush=True)\n"
         "time.sleep(120)", dsn], stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        locked = cli(cfg, "run", str(source))
        assert locked.returncode == 75, locked.stderr
        assert "another run holds this cache (snapcache run pid" in locked.stderr
        assert f"pid {holder.pid} on " in locked.stderr
        with pytest.raises(RunLockedError):
            AdvisoryRunLock(dsn).acquire()
        waiting = start(cfg, "run", "--wait", "--quiet", str(source))
        time.sleep(1.0)
        assert waiting.poll() is None  # waits for the lock
        holder.send_signal(signal.SIGKILL)  # a killed holder leaves nothing locked
        _out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=10)
    other = pgkit.new_schema()  # another store in the same database: not locked by this one
    mine, theirs = AdvisoryRunLock(dsn), AdvisoryRunLock(other)
    mine.acquire()
    theirs.acquire()
    theirs.release()
    mine.release()
    assert not (tmp_path / "store").exists()  # no lock file in a folder nobody shares


_WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = sys.modules["psycopg_pool"] = None  # not installed
import importlib.util
found = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "psycopg" else found(name, *a)
from snapcache.cli.app import main
sys.argv = ["snapcache", *sys.argv[1:]]
main()
"""


def test_without_psycopg_the_postgres_commands_say_what_to_install(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[cache]\nbackend = "postgres"\ndsn = "postgresql://x@127.0.0.1:1/y"\n')
    source = tmp_path / "list.txt"
    source.write_text("https://example.com/\n")
    for args in (["queue"], ["worker"], ["enqueue", str(source)], ["run", str(source)]):
        out = subprocess.run([sys.executable, "-c", _WITHOUT_PSYCOPG, "--config", str(cfg),
                              *args], capture_output=True, text=True, timeout=60, env=env())
        assert out.returncode == 2, (args, out.stderr)
        assert "pip install 'snapcache[postgres]'" in out.stderr and "Traceback" not in out.stderr
