"""The packaged demo archive (``snapcache demo-archive``, ``snapcache.demo``) and the
README's "Trying it offline" section, run as written."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from snapcache.demo import TRY_URLS, DemoArchive, DemoServer
from snapcache.demo.server import listen, load_demo_recordings
from snapcache.demo.wayback import RecordedResponse, capture_from_recording

from tests import demo_data

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: Modules only the test extras install: the demo must not need any of them.
TEST_ONLY_MODULES = ("yaml", "fpdf", "pytest", "hypothesis", "pywb", "warcio")

#: What differs from one try of the README's demo to the next, as the README says, and
#: what each is replaced with before the README's examples and the output are compared.
VARYING: tuple[tuple[str, str], ...] = (
    (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
    (r"\b(pid|kill) \d+", r"\1 PID"),
    (r"\S*/snapcache-demo-[A-Za-z0-9_]+", "FOLDER"),
    (r"Fetched [A-Z][a-z]{2} \d{1,2}, \d{4} \d\d:\d\d UTC", "Fetched TIME"),
    (r"sid_[A-Za-z0-9]{10}", "sid_STABLEID"),
    (r" in \d+\.\d s$", " in SECONDS s"),
)


def normalise(text: str) -> str:
    """``text`` with every varying part (:data:`VARYING`) replaced by a placeholder."""
    for pattern, placeholder in VARYING:
        text = re.sub(pattern, placeholder, text, flags=re.MULTILINE)
    return text.strip("\n")


def offline_section() -> tuple[str, list[str]]:
    """The README's offline section: its shell commands and the example outputs that
    follow them (banner, card, run lines), in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Trying it offline\n"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.DOTALL)
    commands = [body for lang, body in blocks if lang == "sh"]
    outputs = [body for lang, body in blocks if lang == ""]
    assert len(commands) == 1 and len(outputs) == 3, blocks
    return commands[0], outputs


def blocked_test_extras(folder: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes every test-only module unimportable."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TEST_ONLY_MODULES:
        (folder / f"{name}.py").write_text(
            f"raise ImportError('{name} is a test extra: the demo must not need it')\n")
    return folder


def run_readme_demo(tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run the README's offline commands as written (``.venv/bin/`` meaning the test
    environment's scripts), in a shell that cannot import the test extras, with the demo's
    temporary folder under ``tmp``. A trap stops the demo archive whatever happens."""
    commands, _outputs = offline_section()
    script = commands.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNAPCACHE_", "PYTHON", "COV_"))}
    env.update(TMPDIR=str(tmp), PYTHONPATH=str(blocked_test_extras(tmp / "blocked")))
    return subprocess.run(
        ["bash", "-c", "set -eo pipefail\n"
         "trap 'kill \"${SNAPCACHE_DEMO_PID:-0}\" 2>/dev/null || true' EXIT\n" + script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_the_readme_offline_demo_prints_what_the_readme_shows(tmp_path: Path) -> None:
    done = run_readme_demo(tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    _commands, (banner, card, run_lines) = offline_section()
    assert normalise(done.stderr) == normalise(banner), done.stderr
    shown_card, _, shown_run = done.stdout.partition("\n\n")
    assert normalise(shown_card) == normalise(card)
    # The run's URLs finish in any order; its summary comes last.
    got, want = normalise(shown_run).splitlines(), normalise(run_lines).splitlines()
    lines = [line for line in want if line.startswith("line ")]
    assert sorted(got[:len(lines)]) == sorted(lines)
    assert got[len(lines):] == want[len(lines):]
    # Everything the demo wrote is in its temporary folder: config, cache, rate limits.
    [folder] = tmp_path.glob("snapcache-demo-*")
    assert {p.name for p in folder.iterdir()} >= {"config.toml", "store", "ratelimit.sqlite"}
    # And the README's `kill` stopped the archive.
    pid = int(re.findall(r"pid (\d+)", done.stderr)[0])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- the archive itself ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    server = DemoServer(listen(0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def get(server: DemoServer, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = server.socket.getsockname()[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()


def test_recorded_responses_are_replayed_verbatim_pointing_at_the_demo(
        demo: DemoServer) -> None:
    path = "/web/20180808094144id_/https://www.epa.gov/ghgreporting/san5779-factsheet"
    status, headers, body = get(demo, path)
    assert status == 301 and "memento-datetime" in headers
    assert headers["location"].startswith(f"{demo.base_url}/web/20180808094144id_/https://")
    assert body == b""


def test_playback_redirects_to_the_nearest_capture_or_says_never_archived(
        demo: DemoServer) -> None:
    status, headers, _ = get(demo, "/web/20250101000000id_/http://nasa.gov/")
    assert status == 302 and "memento-datetime" not in headers
    assert headers["location"] == f"{demo.base_url}/web/19961231235847id_/http://www.nasa.gov/"
    status, headers, body = get(demo, headers["location"][len(demo.base_url):])
    assert status == 200 and b"NASA" in body and "memento-datetime" in headers
    status, headers, body = get(demo, "/web/2024id_/https://example.com/never-archived")
    assert status == 404 and b"has not archived that URL" in body
    assert "memento-datetime" not in headers


def test_cdx_answers_the_query_snapcache_sends(demo: DemoServer) -> None:
    url = "https://www.whitehouse.gov/ostp/about/student/faqs"
    query = f"/cdx/search/cdx?url={url}&output=json&limit=-10&fl=urlkey,timestamp,original,"
    status, _, body = get(demo, query + "mimetype,statuscode,digest,length")
    assert status == 200
    header, row = json.loads(body)
    assert header[:2] == ["urlkey", "timestamp"] and row[1:5] == [
        "20201027220743", url, "text/html", "404"]
    status, _, body = get(demo, query + "statuscode&filter=statuscode:2[0-9][0-9]")
    assert (status, json.loads(body)) == (200, [])


def test_every_url_the_demo_suggests_is_served() -> None:
    archive = DemoArchive()
    for url in TRY_URLS[:-1]:
        reply = archive.playback(f"/web/2026id_/{url}", "http://127.0.0.1:1")
        assert reply.status == 302, url
    never = archive.playback(f"/web/2026id_/{TRY_URLS[-1]}", "http://127.0.0.1:1")
    assert never.status == 404


# --- what the package ships -----------------------------------------------------------


def test_the_shipped_recordings_are_the_real_ones_with_their_licences() -> None:
    shipped = {str(p.relative_to(demo_data.DEMO_DATA_DIR)): p.read_bytes()
               for p in demo_data.DEMO_DATA_DIR.rglob("*") if p.is_file()}
    assert shipped == demo_data.expected_files()
    for folder in {name.split("/", 1)[0] for name in shipped}:
        assert f"{folder}/LICENSE" in shipped
    recordings = load_demo_recordings()

    def by_source(r: RecordedResponse) -> str:
        return r.source

    assert sorted(recordings, key=by_source) == sorted(demo_data.demo_recordings(), key=by_source)
    assert sum(capture_from_recording(r) is not None for r in recordings) >= 8


def test_the_wheel_holds_the_demo_and_its_data(tmp_path: Path) -> None:
    # A copy of the sources: the build's own folders stay out of the working tree.
    tree = tmp_path / "src"
    tree.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("fetcher", "cache"):
        shutil.copytree(ROOT / name, tree / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(tmp_path)],
        cwd=tree, capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("snapcache-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"snapcache/demo/data/{name}" for name in demo_data.expected_files()}
    wanted |= {"snapcache/demo/__init__.py", "snapcache/demo/__main__.py",
               "snapcache/demo/server.py", "snapcache/demo/wayback.py"}
    assert wanted <= names, wanted - names
