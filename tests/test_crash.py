"""Crash safety and concurrency of real ``snapcache`` processes on one cache.

* ``snapcache run`` is killed with SIGKILL at seeded random moments; after each kill the
  cache opens, every record parses under the current schema, no good record was lost or
  replaced by a worse one, and a rerun completes.
* Two runs, a refetch, a library run and a library reader work on one cache at once: no
  lost update, no corrupt record, and the combined request rate stays within the budget.

Everything talks to the loopback emulator only; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from snapcache.cache import SnapshotCache
from snapcache.cache.records import SCHEMA_VERSION, Record

from tests.docgen import html_page
from tests.test_batch import build_corpus
from tests.test_cli import snapcache_exe, write_config

#: SIGKILLs delivered to a live ``snapcache run`` (the README's figure).
KILL_POINTS = 20
SEED = 20261129


def _config(tmp_path: Path, base_url: str, per_minute: float, concurrency: int = 4) -> Path:
    path = write_config(tmp_path, base_url)
    text = path.read_text().replace(
        "[rates]\n", f"[rates]\nplayback_per_minute = {per_minute}\ncdx_per_minute = {per_minute}\n"
    )
    # A failed attempt is stale after a moment, so each rerun retries it.
    text = text.replace("[cache]\n", "[cache]\nttl_error_hours = 0.0001\n")
    path.write_text(text + f"[run]\nconcurrency = {concurrency}\n")
    return path


def _state(store: Path) -> dict[str, Record]:
    """Every record, each checked: current schema, text stored with its capture."""
    with SnapshotCache(store) as cache:
        records = {r.url: r for r in cache.records()}  # a corrupt record raises here
        for record in records.values():
            assert record.schema_version == SCHEMA_VERSION
            Record.from_json(record.to_json())
            if record.status == "ok" and record.text_length:
                text = cache.get_text(record.resource_id)
                # Record and text are written in one transaction: never one without the other.
                assert text is not None and len(text) == record.text_length, record.url
    return records


def _check_nothing_good_was_lost(before: dict[str, Record], after: dict[str, Record],
                                 emu: Any) -> int:
    """An ok record stays ok, with the same capture unless re-fetched to another ok one;
    identities never change. Returns how many ok records were checked."""
    checked = 0
    for url, old in before.items():
        new = after.get(url)
        assert new is not None, f"record of {url} lost"
        assert (new.resource_id, new.stable_id, new.created_at) == (
            old.resource_id, old.stable_id, old.created_at)
        assert new.attempts >= old.attempts
        if old.status != "ok":
            continue
        checked += 1
        assert new.status == "ok", f"good record of {url} replaced by {new.status}"
        if new.capture_timestamp == old.capture_timestamp:
            assert (new.preview, new.sha256, new.title) == (old.preview, old.sha256, old.title)
        else:
            served = {c.timestamp for c in emu.captures_for(new.original_url or url)}
            assert new.capture_timestamp in served, (url, new.capture_timestamp)
            assert (new.fetched_at or "") >= (old.fetched_at or "")
    return checked


def test_sigkill_at_twenty_random_moments_loses_nothing_and_a_rerun_completes(
    tmp_path: Path, emulator: Any
) -> None:
    rng = random.Random(SEED)
    corpus = build_corpus(emulator, 36, seed=11)
    source = tmp_path / "list.txt"
    source.write_text("\n".join(c.url for c in corpus) + "\n")
    cfg = _config(tmp_path, emulator.base_url, 3000.0)
    store = tmp_path / "store"
    ok_urls = [c.url for c in corpus if c.status == "ok" and "-moved" not in c.url]
    before: dict[str, Record] = {}
    kills = checked = iterations = 0
    started = time.monotonic()
    # A run whose records are all fresh ends within a second, sooner on a fast machine, so
    # many draws find it done: the bound on tries only stops a loop that never kills.
    while kills < KILL_POINTS and iterations < 4 * KILL_POINTS:
        iterations += 1
        force = iterations > 1 and rng.random() < 0.6
        if rng.random() < 0.4:
            emulator.add_fault("status", status=503, fraction=0.3)
        if iterations > 1 and rng.random() < 0.5:
            # A newer capture appears, so a forced refetch moves to another ok capture.
            for url in rng.sample(ok_urls, 4):
                ts = f"2025{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}12{iterations:02d}00"
                emulator.add_capture(url, ts, body=html_page(f"New {ts}", f"newer {url}"))
        args = [snapcache_exe(), "--config", str(cfg), "run", "--quiet", str(source)]
        proc = subprocess.Popen(args + (["--force"] if force else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.05, 1.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        emulator.clear_faults()
        if store.exists():
            after = _state(store)
            checked += _check_nothing_good_was_lost(before, after, emulator)
        rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "Traceback" not in rerun.stderr
        complete = _state(store)
        checked += _check_nothing_good_was_lost(before, complete, emulator)
        assert {c.url for c in corpus} <= set(complete)
        assert all(r.status in ("ok", "not_archived", "archived_error") for r in complete.values())
        before = complete
    elapsed = time.monotonic() - started
    assert kills == KILL_POINTS, f"only {kills} kills hit a live run in {iterations} tries"
    assert checked > KILL_POINTS * 25
    print(f"RELIABILITY kill points survived: {kills} SIGKILLs in {iterations} runs, "
          f"{checked} good-record checks, 0 lost, {elapsed:.0f} s")


_LIBRARY_RUN = """
import json, sys
from snapcache import Fetcher, load_config
with Fetcher(load_config(sys.argv[1])) as f:
    summary = f.run(sys.argv[2], force=True, full=True)
print(json.dumps(summary.to_json_dict()))
"""


_READER = """
import json, pathlib, sys, time
from snapcache.cache import SnapshotCache
from snapcache.cache.records import Record
store, done, shared = sys.argv[1], pathlib.Path(sys.argv[2]), set(sys.argv[3:])
reads, problems = 0, []
deadline = time.monotonic() + 150
while not done.exists() and time.monotonic() < deadline:
    try:
        with SnapshotCache(store) as cache:
            for record in cache.records():
                Record.from_json(record.to_json())
                if record.url in shared:
                    assert record.status == "ok" and record.title and record.capture_timestamp
        reads += 1
    except Exception as exc:
        problems.append(repr(exc))
    time.sleep(0.02)
print(json.dumps([reads, problems]))
"""


def test_two_runs_a_refetch_a_library_run_and_a_reader_share_one_cache(
    tmp_path: Path, emulator: Any
) -> None:
    rate = 1200.0  # per minute, shared by every process through the rate-limit state file
    cfg = _config(tmp_path, emulator.base_url, rate, concurrency=3)
    store = tmp_path / "store"

    def pages(prefix: str, n: int) -> list[str]:
        urls = [f"https://{prefix}{i}.example/doc" for i in range(n)]
        for i, url in enumerate(urls):
            emulator.add_capture(url, f"202101{i % 28 + 1:02d}000000",
                                 body=html_page(f"{prefix} {i}", f"text of {prefix} {i}"))
        return urls

    shared = pages("shared", 8)
    seeded = subprocess.run([snapcache_exe(), "--config", str(cfg), "fetch", "--json", *shared],
                            capture_output=True, text=True, timeout=60)
    assert seeded.returncode == 0, seeded.stderr
    ids = [json.loads(line)["resource_id"] for line in seeded.stdout.splitlines()]
    list_a, list_b, list_c = pages("alpha", 30) + shared, pages("beta", 30), pages("gamma", 20)
    list_c += shared
    for name, urls in (("a", list_a), ("b", list_b), ("c", list_c)):
        (tmp_path / f"{name}.txt").write_text("\n".join(urls) + "\n")
    (tmp_path / "lib.py").write_text(_LIBRARY_RUN)
    emulator.reset_counters()

    exe = [snapcache_exe(), "--config", str(cfg)]
    (tmp_path / "reader.py").write_text(_READER)
    done = tmp_path / "done"
    reader = subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(store),
                               str(done), *shared], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    # --full: every forced attempt downloads its capture (a refresh that only confirms
    # would make too few requests for the combined-rate check below to mean anything).
    run_a = subprocess.Popen([*exe, "run", "--force", "--full", "--quiet", "--json",
                              str(tmp_path / "a.txt")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while emulator.counts["playback"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    run_b = subprocess.Popen([*exe, "run", "--wait", "--quiet", "--json",
                              str(tmp_path / "b.txt")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    refetch = subprocess.Popen([*exe, "refetch", "--full", "--quiet", "--json", *ids],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    library = subprocess.Popen([sys.executable, str(tmp_path / "lib.py"), str(cfg),
                                str(tmp_path / "c.txt")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=os.getcwd())
    outputs = {}
    try:
        for name, proc in (("a", run_a), ("b", run_b), ("refetch", refetch),
                           ("library", library)):
            out, err = proc.communicate(timeout=150)
            assert proc.returncode == 0, (name, err[-3000:])
            outputs[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        done.touch()
        out, err = reader.communicate(timeout=60)
        for proc in (run_a, run_b, refetch, library):
            if proc.poll() is None:
                proc.kill()
    assert reader.returncode == 0, err[-3000:]
    reads, problems = json.loads(out)
    assert not problems, problems[:3]
    assert reads >= 5
    # No lost update: each shared record saw its seed fetch, run a, the refetch and the
    # library run, whichever order their transactions took.
    final = _state(store)
    with SnapshotCache(store) as cache:
        for rid in ids:
            record = cache.get(rid)
            assert record is not None and record.status == "ok"
            assert record.attempts == 4, (record.url, record.attempts)
            assert len(cache.history(rid)) == 4
    for url in list_a + list_b + list_c:
        assert final[url].status == "ok", url
        assert final[url].capture_timestamp == emulator.captures_for(url)[-1].timestamp
    assert outputs["b"]["new"] == 30 and outputs["a"]["new"] == 30
    # Combined rate: in any window of w seconds at most burst + rate * w requests.
    burst = max(1.0, rate / 60.0)
    times = sorted(t for t, pool, _status in emulator.request_log if pool == "playback")
    assert len(times) >= 2 * (30 + 30 + 20 + 3 * 8)
    worst = 0.0
    peaks = {}
    for window in (1.0, 2.0, 5.0):
        allowed = burst + rate / 60.0 * window
        peak = max(sum(1 for t in times[i:] if t < start + window)
                   for i, start in enumerate(times))
        peaks[window] = (peak, allowed)
        worst = max(worst, peak / allowed)
        # Times are taken where the emulator reads the request, a moment after the token.
        # On a loaded machine (measured: load 6-11 on 2 cores) a stalled process delivers
        # a few requests late, bunched with later ones: two to three of them over budget.
        # Three requests of slack cover that; four processes not sharing one budget would
        # show four times the allowed rate.
        assert peak <= allowed + 3, (window, peak, allowed)
    assert emulator.count_429 == 0
    print(f"RELIABILITY concurrency: 4 writers + reader ({reads} full reads), "
          f"{len(times)} playback requests, peak {worst:.0%} of budget, 0 lost updates")
