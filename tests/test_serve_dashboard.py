"""The dashboard without a browser: the record page shows the CLI card's fields, every
stored string is escaped, pages and queries are bounded, search finds URLs, titles and
aliases. Also the server's configuration, its CLI command and its layer rule."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from snapcache.cache import Record, SnapshotCache
from snapcache.cli import render
from snapcache.cli.serve import is_loopback
from snapcache.config import Config, ServeConfig, config_from_mapping
from snapcache.errors import ConfigError
from snapcache.serve import create_app, present
from snapcache.serve.summary import SummaryCache, build_summary

from tests import layers
from tests.servekit import (
    HOSTILE_TITLE,
    demo_store,
    live_server,
    make_record,
    save,
    synthetic_mix,
)


def _card_lines(record: Record) -> list[tuple[str, str]]:
    """The CLI card's labelled lines up to the preview, as (label, value)."""
    lines = render.render_card(record).splitlines()[1:]
    found = []
    for line in lines:
        match = re.match(r"^  ([A-Z][A-Za-z ]+):\s+(.*)$", line)
        if line.strip() == "Preview:" or line.startswith("  Resource ID:"):
            break
        assert match, line
        found.append((match.group(1), match.group(2)))
    return found


def _variety() -> list[Record]:
    base = make_record("https://v.example/a", title="Plain", preview="Some words.")
    return [
        base,
        replace(base, original_url="https://www.v.example/a", body_truncated=True,
                preview_note="only the first 10 pages were read", content_length=5_000_000),
        replace(base, error="latest attempt: error: reset; kept the earlier good capture",
                last_outcome="error"),
        make_record("https://v.example/none", "not_archived"),
        make_record("https://v.example/404", "archived_error"),
        make_record("https://v.example/err", "error", error="\x1b[31mconnect\x1b[0m failed"),
        replace(base, title=HOSTILE_TITLE, archive=None, content_type=None, fetched_at=None,
                capture_timestamp="junk", last_attempt_at="not a time"),
        replace(base, content_length=None, archived_status=None, title=None),
    ]


def test_the_record_page_has_the_fields_of_the_cli_card() -> None:
    for record in _variety():
        assert present.title_of(record) == render.render_card(record).splitlines()[0]
        rows = [(row.label, row.value) for row in present.card_rows(record)]
        assert rows == _card_lines(record)
    for size in (None, 0, 1023, 1024, 1536, 1048576, 5_000_000):
        assert present.human_size(size) == render.human_size(size)
    for ts in (None, "20260408194323", "junk", "20261301000000"):
        assert present.human_timestamp(ts) == render.human_timestamp(ts)
    for iso in (None, "2026-11-29T11:27:00Z", "2026-11-29T11:27:00+02:00", "bad"):
        assert present.human_iso(iso) == render.human_iso(iso)


def test_links_are_only_http() -> None:
    assert present.safe_href("https://a.example/x?y=1") == "https://a.example/x?y=1"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x",
                " https://a/", "https://a/\nx", "", None, "//evil.example/"):
        assert present.safe_href(bad) is None


@pytest.fixture
def dashboard(tmp_path: Path, emulator: Any) -> Any:
    config = demo_store(tmp_path, emulator, synthetic=40)
    config = replace(config, serve=ServeConfig(page_size=5, max_page_size=50))
    with live_server(create_app(config, summary_ttl=0.0)) as server, \
            httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client, config


def test_stored_strings_are_escaped_everywhere(dashboard: Any) -> None:
    client, config = dashboard
    with SnapshotCache(config.cache_path) as store:
        hostile = [r for r in store.records() if r.title == HOSTILE_TITLE]
    assert len(hostile) == 2
    pages = ["/", "/failing", "/search?q=pwned", "/search?q=<script>",
             *(f"/records/{r.resource_id}" for r in hostile)]
    for path in pages:
        html = client.get(path).text
        assert "<script" not in html and "<img" not in html and "<b>" not in html, path
        assert "\x1b" not in html and "\x07" not in html and "\u202e" not in html, path
    record_page = client.get(f"/records/{hostile[0].resource_id}").text
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in record_page
    # Every value of the CLI card is on the page (escaped as HTML).
    import html as htmllib

    for _, value in _card_lines(hostile[0]):
        assert htmllib.escape(value) in record_page


def test_pages_are_bounded(dashboard: Any) -> None:
    client, config = dashboard
    with SnapshotCache(config.cache_path) as store:
        failing = sum(1 for r in store.records()
                      if r.status != "ok" or r.last_outcome not in (None, "ok"))
    assert failing > 10
    index = client.get("/").text
    assert index.count("<tr data-resource-id") == 5
    assert f"All {failing} failing sources" in index
    seen = set()
    pages = -(-failing // 5)
    for page in range(1, pages + 1):
        html = client.get("/failing", params={"page": page}).text
        seen |= set(re.findall(r'<tr data-resource-id="([0-9a-f]{16})"', html))
    assert len(seen) == failing
    for bad in ("0", "-1", "x", "1000001", "9" * 30):
        response = client.get("/failing", params={"page": bad})
        assert response.status_code == 400 and "text/html" in response.headers["content-type"]
    long = client.get("/search", params={"q": "x" * 501})
    assert long.status_code == 400 and "invalid_parameter" in long.text


def test_search_by_url_title_and_alias(dashboard: Any) -> None:
    client, config = dashboard
    with SnapshotCache(config.cache_path) as store:
        store.move("https://good.example/", "https://good.example/moved")
    found = client.get("/search", params={"q": "NTIA AI"}).text
    assert "NTIA AI Open Model Report" in found
    assert "1 record with" in client.get("/search", params={"q": "ntia.gov/report"}).text
    alias = client.get("/search", params={"q": "https://good.example/"}).text
    assert "https://good.example/moved" in alias
    paged = client.get("/search", params={"q": "site", "page": 2}).text
    assert paged.count("<tr data-resource-id") == 5 and "page 2 of" in paged
    assert "Type part of a URL" in client.get("/search").text


def test_the_summary_counts_as_the_store_does_and_is_reused(tmp_path: Path) -> None:
    with SnapshotCache(tmp_path / "store") as store:
        for record, text in synthetic_mix(30):
            save(store, record, text)
        assert build_summary(store, Config()).stats == store.stats()
        # A summary that took 3 s to count is reused for 30 s (10x), a quick one for the ttl.
        times = iter([0.0, 3.0, 20.0, 33.0, 33.0, 33.5, 37.0, 38.6, 38.6, 38.7])
        cache = SummaryCache(store, Config(), ttl=5.0, clock=lambda: next(times))
        first = cache.get()
        save(store, make_record("https://later.example/"))
        assert cache.get() is first  # at 20 s
        assert cache.get().stats.records == 31  # at 33 s: recounted, in 0.5 s
        second = cache.get()  # at 37 s: within the 5 s ttl
        assert second.stats.records == 31
        assert cache.get() is not second  # at 38.6 s: 5.1 s old


def test_the_serve_section_is_validated_and_the_token_kept_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for doc, named in [
        ({"serve": {"port": 0}}, "serve.port"),
        ({"serve": {"port": 70000}}, "serve.port"),
        ({"serve": {"host": ""}}, "serve.host"),
        ({"serve": {"token": "short"}}, "serve.token"),
        ({"serve": {"token": "has a space in it, long enough"}}, "serve.token"),
        ({"serve": {"cors_origins": ["https://a.example/path"]}}, "serve.cors_origins"),
        ({"serve": {"cors_origins": ["wiki.example.org"]}}, "serve.cors_origins"),
        ({"serve": {"cors_origins": "https://a.example"}}, "serve.cors_origins"),
        ({"serve": {"page_size": 600}}, "serve.page_size"),
        ({"serve": {"max_page_size": 0}}, "serve.max_page_size"),
        ({"serve": {"max_fetch_urls": -1}}, "serve.max_fetch_urls"),
        ({"serve": {"tokn": "x"}}, "serve.tokn"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(named)):
            config_from_mapping(doc)
    secret = "s3cret-token-value-123456"
    config = config_from_mapping({"serve": {"token": secret,
                                            "cors_origins": ["https://wiki.example.org", "*"]}})
    assert secret not in repr(config) and config.serve.effective_token() == secret
    monkeypatch.setenv("SNAPCACHE_SERVE_TOKEN", "env-token-abcdefghijklmnop")
    assert Config().serve.effective_token() == "env-token-abcdefghijklmnop"
    monkeypatch.setenv("SNAPCACHE_SERVE_TOKEN", "short")
    with pytest.raises(ConfigError, match="SNAPCACHE_SERVE_TOKEN") as info:
        Config().serve.effective_token()
    assert "short" not in str(info.value)


def test_only_the_cli_may_import_the_server(tmp_path: Path) -> None:
    files = {
        "fetcher/__init__.py": "",
        "fetcher/api.py": "",
        "fetcher/engine.py": "from .serve import create_app\n",
        "fetcher/serve/__init__.py": "from ..api import x\nfrom .app import create_app\n",
        "fetcher/serve/app.py": "create_app = 1\n",
        "fetcher/cli/__init__.py": "from ..serve import create_app\n",
        "cache/__init__.py": "",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    findings = list(layers.report(tmp_path))
    assert findings == ["only the CLI imports the server: snapcache.engine imports "
                        "snapcache.serve (line 1)"]


def test_listening_beyond_loopback_without_a_token_warns(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.2") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("wiki")
    # The port is taken (bound, never listening), so the server prints its warning and
    # stops at once: nothing is ever served beyond loopback.
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))
        port = blocker.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(f'[cache]\npath = "{tmp_path / "store"}"\n[rates]\n'
                          f'state_path = "{tmp_path / "rl.sqlite"}"\n', encoding="utf-8")
        command = [sys.executable, "-m", "snapcache.cli", "--config", str(config), "serve",
                   "--host", "0.0.0.0", "--port", str(port)]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        bare = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert bare.returncode != 0
        assert "warning: listening on 0.0.0.0" in bare.stderr
        assert "write API off" in bare.stderr
        token = "cli-token-0123456789abcdef"
        guarded = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                 env={**env, "SNAPCACHE_SERVE_TOKEN": token})
        assert "warning" not in guarded.stderr and "write API on" in guarded.stderr
        assert token not in guarded.stderr + guarded.stdout
        short = subprocess.run(command, capture_output=True, text=True, timeout=60,
                               env={**env, "SNAPCACHE_SERVE_TOKEN": "short"})
        assert short.returncode == 2 and "SNAPCACHE_SERVE_TOKEN" in short.stderr
