"""Helpers for the server's tests: records written straight through the store contract, a
store filled by real fetches from the loopback emulator, and the server run by uvicorn on a
loopback port (the same way ``snapcache serve`` runs it)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from snapcache import Fetcher
from snapcache.cache import Record, Status, Store, utc_now_iso
from snapcache.ids import mint_stable_id, resource_id

from tests.docgen import html_page, ntia_pdf

#: A title as hostile as stored strings get: markup, a script, ANSI colour and an OSC title
#: sequence, a bidi override and an entity.
HOSTILE_TITLE = ("<script>document.title='pwned'</script>\x1b[31mRED\x1b[0m"
                 "\x1b]0;evil\x07 <img src=x onerror=alert(1)> &amp; \u202eevil")


def make_record(url: str, status: Status = "ok", *, title: str | None = None,
                ts: str | None = "20240101000000", error: str | None = None,
                attempted: str | None = None, preview: str = "",
                last_outcome: Status | None = None, archive: str = "ia") -> Record:
    """A record as the engine would write it for one attempt (no network involved)."""
    now = attempted or utc_now_iso()
    good = status == "ok"
    return Record(
        resource_id=resource_id(url), stable_id=mint_stable_id(), url=url, status=status,
        archived_status=200 if good else (404 if status == "archived_error" else None),
        capture_timestamp=ts if status in ("ok", "archived_error") else None,
        archive_url=f"https://web.archive.org/web/{ts}/{url}" if good else None,
        raw_url=f"https://web.archive.org/web/{ts}id_/{url}" if good else None,
        original_url=url if good else None, fetched_at=now if good else None,
        content_type="text/html" if good else None, content_length=1234 if good else None,
        title=title, preview=preview, text_length=len(preview), error=error,
        last_attempt_at=now, attempts=1, last_outcome=last_outcome or status, archive=archive,
        created_at=now,
    )


def save(store: Store, record: Record, text: str | None = None) -> Record:
    """Store ``record`` as one attempt (its text too when given) and return what is stored."""
    entry = {"at": record.last_attempt_at, "outcome": record.status}
    return store.save_attempt(record, text=text, history_entry=entry)


def synthetic_mix(n: int) -> Iterator[tuple[Record, str | None]]:
    """``n`` records of every outcome with capture ages from days to decades, and texts."""
    statuses: tuple[Status, ...] = ("ok", "ok", "ok", "ok", "not_archived", "archived_error",
                                    "blocked", "error")
    years = (2026, 2025, 2024, 2021, 2016, 2009, 2001)
    for i in range(n):
        status = statuses[i % len(statuses)]
        url = f"https://site{i % 97}.example.org/page/{i}"
        ts = f"{years[i % len(years)]}0{1 + i % 9}15120000"
        preview = f"Preview of page {i}: a cited source about topic {i % 13}."
        record = make_record(url, status, title=f"Page {i}", ts=ts, preview=preview,
                             error="connect failed" if status == "error" else None)
        yield record, (preview + " More text." if status == "ok" else None)


def fill_from_emulator(emulator: Any, fetcher: Fetcher) -> list[Record]:
    """Real fetches through the emulator: an HTML page, a PDF, a page whose only capture is
    an archived 404, one never archived, and a page titled with markup."""
    emulator.add_capture("https://good.example/", "20230105101010",
                         body=html_page("A good page", "Cited text about archives."))
    emulator.add_capture("https://www.ntia.gov/report.pdf", "20260408194323",
                         body=ntia_pdf(), content_type="application/pdf")
    emulator.add_capture("https://gone.example/", "20210101000000", status=404,
                         body=b"not found")
    emulator.add_capture("https://markup.example/", "20190202020202",
                         body=html_page("&lt;script&gt;alert(1)&lt;/script&gt; Title",
                                        "A page whose title carries markup."))
    urls = ["https://good.example/", "https://www.ntia.gov/report.pdf",
            "https://gone.example/", "https://never.example/", "https://markup.example/"]
    results = fetcher.fetch_many(urls)
    records = [r for r in results if isinstance(r, Record)]
    assert len(records) == len(urls), results
    return records


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port) in a thread."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, lifespan="on", log_level="warning", server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


@contextmanager
def live_server(app: Any) -> Iterator[LiveServer]:
    """Serve ``app`` on a loopback port for the duration of the block."""
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()


def write_config(tmp_path: Path, base_url: str, **serve: Any) -> Path:
    """A config file for the CLI that points at the emulator and a private store."""
    lines = [
        "[archive]", f'base_url = "{base_url}"',
        f'availability_url = "{base_url}/wayback/available"',
        "[rates]", f'state_path = "{tmp_path / "ratelimit.sqlite"}"',
        "[cache]", f'path = "{tmp_path / "store"}"',
    ]
    if serve:
        lines.append("[serve]")
        for key, value in serve.items():
            lines.append(f"{key} = {value!r}".replace("'", '"'))
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def demo_store(tmp_path: Path, emulator: Any, synthetic: int = 40) -> Any:
    """A store as a wiki's would look: real fetches through the emulator, ``synthetic``
    records of every outcome and capture age, and records whose strings are hostile.
    Returns the config that serves it."""
    from snapcache.cache import SnapshotCache

    from tests.conftest import emulator_config

    config = emulator_config(tmp_path, emulator.base_url)
    with Fetcher(config) as fetcher:
        fill_from_emulator(emulator, fetcher)
    with SnapshotCache(config.cache_path) as store:
        for record, text in synthetic_mix(synthetic):
            save(store, record, text)
        save(store, make_record("https://hostile.example/title", title=HOSTILE_TITLE,
                                preview="Body with <script>alert('preview')</script> and "
                                        "\x1b[2J\x1b[31mANSI\x1b[0m codes."),
             "hostile text")
        save(store, make_record("https://hostile.example/failing", "error", title=HOSTILE_TITLE,
                                error="<b>bold</b> \x1b[31mreset by peer\x1b[0m"))
    return config
