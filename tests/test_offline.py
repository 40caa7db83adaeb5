"""Offline, a run says so at once: a short probe, one line naming the host and the cause,
exit 75. Before, the first command spent 54 s on 44 playback attempts for 11 URLs, said
"fetched: 11 new" and nothing useful, and a rerun repeated all of it.

Only 127.0.0.1 is contacted: a closed loopback port refuses the connection. (An unresolvable
host name would send a DNS query off the machine, so name resolution failures are checked
on the exception chain httpx raises for them.)
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from snapcache import Fetcher
from snapcache.cache import Record, SnapshotCache, Store, utc_now_iso
from snapcache.config import Config
from snapcache.errors import ArchiveUnreachableError
from snapcache.ids import parse_target, resource_id
from snapcache.protocols import Plan
from snapcache.runner import PROBE_URLS, RunEvent, Runner, RunPolicy
from snapcache.transport import TransportStats
from snapcache.transport.client import connect_failure_cause

from tests.conftest import emulator_config
from tests.test_cli import snapcache_exe


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_config(tmp_path: Path, port: int) -> Path:
    """A config with the default retries, pointing at a closed port."""
    base = f"http://127.0.0.1:{port}"
    path = tmp_path / "offline.toml"
    path.write_text(
        f'[archive]\nbase_url = "{base}"\navailability_url = "{base}/wayback/available"\n'
        f'[rates]\nstate_path = "{tmp_path / "rl.sqlite"}"\n'
        f'[cache]\npath = "{tmp_path / "store"}"\n',
        encoding="utf-8",
    )
    return path


def test_an_offline_run_stops_after_a_short_probe_with_one_clear_line(tmp_path: Path) -> None:
    import subprocess

    port = closed_port()
    cfg = offline_config(tmp_path, port)
    listing = tmp_path / "list.txt"
    urls = [f"https://site{i}.example/" for i in range(11)]
    listing.write_text("\n".join(urls) + "\n")
    for attempt in (1, 2):  # a rerun is just as quick: nothing was stored the first time
        started = time.monotonic()
        out = subprocess.run(
            [snapcache_exe(), "--config", str(cfg), "run", "--json", str(listing)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
        assert out.returncode == 75, out.stderr
        assert elapsed < 10, elapsed
        lines = [line for line in out.stderr.splitlines() if "cannot be reached" in line]
        assert lines == [
            f"snapcache: the archive cannot be reached: 127.0.0.1:{port}: connection refused;"
            " are you offline? Nothing was fetched; try later."], out.stderr
        summary = json.loads(out.stdout)
        assert summary["new"] == 0 and summary["refreshed"] == 0 and summary["failed"] == 0
        assert summary["deferred"] == 11 and summary["outcomes"] == {}
        assert summary["requests"] == {"playback": PROBE_URLS}
        assert summary["unreachable"].startswith("the archive cannot be reached")
        print(f"RELIABILITY offline run {attempt}: exit 75 after {PROBE_URLS} attempts for "
              f"{len(urls)} URLs in {elapsed:.1f} s")
    with SnapshotCache(tmp_path / "store") as store:
        assert len(store) == 0  # deferred URLs are left as they were


def test_the_readme_states_the_offline_figure() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Reliability"):readme.index("## Configuration")]
    assert f"after {PROBE_URLS} connection attempts (asserted under 10 s)" in section


def test_the_human_summary_says_what_happened(tmp_path: Path) -> None:
    import subprocess

    cfg = offline_config(tmp_path, closed_port())
    listing = tmp_path / "list.txt"
    listing.write_text("https://one.example/\n")
    out = subprocess.run([snapcache_exe(), "--config", str(cfg), "run", str(listing)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 75
    assert "fetched: 0 new, 0 refreshed; failed: 0;" in out.stdout
    assert "deferred: 1 (the archive cannot be reached" in out.stdout


def test_a_single_fetch_offline_is_recorded_at_once_not_after_the_retry_ladder(
    tmp_path: Path,
) -> None:
    from snapcache.config import load_config

    config = load_config(offline_config(tmp_path, closed_port()))
    started = time.monotonic()
    with Fetcher(config) as f:
        record = f.fetch("https://one.example/")
        stats = f.stats
    assert time.monotonic() - started < 3  # default retries: 2 + 4 + 8 s of backoff
    assert record.status == "error" and "cannot be reached" in (record.error or "")
    assert stats.retries == 0 and stats.requests == {"playback": 1}


def test_failed_attempts_are_counted_as_failed_not_as_new(tmp_path: Path, emulator: Any) -> None:
    emulator.set_outage(503)
    config = emulator_config(tmp_path, emulator.base_url, run={"circuit_breaker": 3,
                                                                "concurrency": 1},
                             retry={"max_attempts": 1})
    with Fetcher(config) as f:
        summary = f.run([f"https://x.example/{i}" for i in range(5)])
    assert summary.failed == 3 and summary.new == 0 and summary.refreshed == 0
    assert summary.outcomes == {"error": 3} and summary.unreachable is None
    assert summary.to_json_dict()["failed"] == 3


@pytest.mark.parametrize(
    ("cause", "words"),
    [(socket.gaierror(-2, "Name or service not known"), "the host name cannot be resolved"),
     (ConnectionRefusedError(111, "Connection refused"), "connection refused")],
)
def test_the_cause_of_a_failed_connection_is_named(cause: OSError, words: str) -> None:
    # The chain httpx raises: httpx.ConnectError from httpcore's, from the OSError.
    try:
        try:
            raise cause
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        assert connect_failure_cause(exc) == words
    timeout = httpx.ConnectTimeout("timed out")
    assert "connect timeout" in connect_failure_cause(timeout)


# --- the runner's probe, on an engine whose archive comes and goes --------------------------


class FlakyEngine:
    """A :class:`~snapcache.protocols.FetchEngine` whose archive cannot be connected to for
    the first ``down`` attempts, then answers every URL with an ok record."""

    def __init__(self, config: Config, store: Store, down: int) -> None:
        self._config = config
        self._store = store
        self.down = down
        self.calls: list[tuple[str, bool]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    @property
    def config(self) -> Config:
        return self._config

    @property
    def store(self) -> Store:
        return self._store

    def plan(self, url: str, at: str | None = None, force: bool = False, *,
             checked: bool = False, full: bool = False, with_record: bool = True) -> Plan:
        target = parse_target(url, checked=checked)
        return Plan(target, at, resource_id(url), None, True, "missing", full=full)

    async def attempt(self, plan: Plan, stable_id: str | None = None, *,
                      defer_unreachable: bool = False) -> Record:
        self.calls.append((plan.target.given, defer_unreachable))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if len(self.calls) <= self.down:
                if defer_unreachable:
                    raise ArchiveUnreachableError(
                        "the archive cannot be reached: a.example: connection refused",
                        host="a.example", cause="connection refused", first_contact=True)
                return Record(resource_id=plan.resource_id, stable_id="sid_AAAAAAAAAA",
                              url=plan.target.given, status="error", error="refused",
                              last_outcome="error", last_attempt_at=utc_now_iso())
            return Record(resource_id=plan.resource_id, stable_id="sid_AAAAAAAAAA",
                          url=plan.target.given, status="ok", last_outcome="ok",
                          capture_timestamp="20220101000000", last_attempt_at=utc_now_iso())
        finally:
            self.in_flight -= 1

    def stats(self) -> TransportStats:
        return TransportStats(requests={}, rate_limited=0, retries=0, pauses=0,
                              firewall_pauses=0)


def _run(tmp_path: Path, base_url: str, urls: list[str], down: int
         ) -> tuple[FlakyEngine, Any, list[RunEvent]]:
    config = emulator_config(tmp_path, base_url)
    events: list[RunEvent] = []
    with SnapshotCache(tmp_path / "store") as store:
        engine = FlakyEngine(config, store, down)
        runner = Runner(engine, RunPolicy(concurrency=4), on_result=events.append)
        summary = asyncio.run(runner.run(urls))
    return engine, summary, events


def test_a_blip_before_the_first_answer_is_retried_not_deferred(tmp_path: Path) -> None:
    urls = [f"https://u{i}.example/" for i in range(8)]
    engine, summary, events = _run(tmp_path, "http://127.0.0.1:9", urls, down=1)
    assert summary.verdict == "ok" and summary.deferred == 0
    assert summary.outcomes == {"ok": 8} and summary.new == 8
    # The first URL failed to connect (held, nothing stored), the second got through, and
    # then the first was tried again for real.
    assert engine.calls[:3] == [(urls[0], True), (urls[1], True), (urls[0], False)]
    assert Counter(e.kind for e in events) == {"fetched": 8}


def test_the_probe_tries_one_url_at_a_time_and_stops_after_probe_urls(tmp_path: Path) -> None:
    urls = [f"https://u{i}.example/" for i in range(20)]
    engine, summary, events = _run(tmp_path, "http://127.0.0.1:9", urls, down=100)
    assert engine.most_in_flight == 1
    assert engine.calls == [(u, True) for u in urls[:PROBE_URLS]]
    assert summary.verdict == "deferred" and summary.deferred == 20
    assert summary.unreachable == ("the archive cannot be reached: a.example: connection "
                                   "refused; are you offline?")
    assert sorted(e.line for e in events if e.kind == "deferred") == list(range(1, 21))
