"""Where the demo archive's recordings come from: a few of the real recorded Wayback
responses under ``tests/data/recordings``, as the package ships them under
``fetcher/demo/data/<source>/recordings.jsonl`` with the source's LICENSE beside them.

``tests/test_demo.py`` checks that the shipped files are exactly what :func:`expected_files`
builds from the recordings. After changing :data:`DEMO_RECORDINGS`, write them again with
``.venv/bin/python -m tests.demo_data``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from snapcache.demo.server import RECORDINGS_FILE
from snapcache.demo.wayback import RecordedResponse

from tests.wayback_emulator import DEFAULT_RECORDINGS_DIR, load_recordings

#: The package's data folder in this repository.
DEMO_DATA_DIR = Path(__file__).resolve().parent.parent / "fetcher" / "demo" / "data"

_EDGI = "wayback/src/wayback/tests/cassettes/"
#: Recording files (relative to tests/data/recordings) whose playback responses the demo
#: serves. The first folder of each path is its source, with its LICENSE.
DEMO_RECORDINGS: tuple[str, ...] = (
    # edgi-govdata-archiving/wayback (BSD-3-Clause)
    "wayback/docs/source/cassettes/tutorial.yaml",  # www.nasa.gov, 1996
    _EDGI + "test_get_memento_with_redirects.yaml",  # an archived 301 to a 200
    _EDGI + "test_get_memento_follows_historical_redirects.yaml",  # 302, 301, 302, 200
    _EDGI + "test_get_memento_with_path_based_redirects.yaml",  # a 301 to an archived 404
    # cocrawler/cdx_toolkit (Apache-2.0)
    "cdx_toolkit/tests/data/mock_responses/test_cli/test_warc_prefix_2.jsonl",  # 2008
)


def demo_recordings() -> list[RecordedResponse]:
    """The chosen recorded responses, in the order of :data:`DEMO_RECORDINGS`."""
    everything = load_recordings(DEFAULT_RECORDINGS_DIR)
    chosen: list[RecordedResponse] = []
    for source in DEMO_RECORDINGS:
        found = [r for r in everything if r.source == source]
        if not found:
            raise LookupError(f"no playback response recorded in {source}")
        chosen += found
    return chosen


def expected_files() -> dict[str, bytes]:
    """Each file of the demo's data folder (path relative to it) and its bytes."""
    lines: dict[str, list[str]] = {}
    for rec in demo_recordings():
        folder = rec.source.split("/", 1)[0]
        lines.setdefault(folder, []).append(
            json.dumps(rec.to_json_dict(), ensure_ascii=False, separators=(",", ":")))
    files: dict[str, bytes] = {}
    for folder, rows in lines.items():
        files[f"{folder}/{RECORDINGS_FILE}"] = ("\n".join(rows) + "\n").encode("utf-8")
        files[f"{folder}/LICENSE"] = (DEFAULT_RECORDINGS_DIR / folder / "LICENSE").read_bytes()
    return files


def write(target: Path = DEMO_DATA_DIR) -> None:
    """Write the demo's data folder afresh from the recordings."""
    if target.exists():
        shutil.rmtree(target)
    for name, data in expected_files().items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


if __name__ == "__main__":
    write()
    sys.stdout.write(f"wrote {DEMO_DATA_DIR}\n")
