"""The dashboard in a real browser (Playwright driving Debian's chromium): its counts are
those of ``snapcache stats``, its failing table lists the failing records, hostile titles
stay inert text, the stylesheet loads under the Content-Security-Policy, and it fits a
phone's width. Screenshots are saved in the test's temporary directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from snapcache.cli import cli
from snapcache.serve import create_app

from tests.browser import browser_context, require_chromium
from tests.servekit import HOSTILE_TITLE, demo_store, live_server, write_config


def _cli_json_lines(path: Path, *args: str) -> list[Any]:
    result = CliRunner().invoke(cli, ["--config", str(path), *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def test_the_dashboard_in_a_real_browser(tmp_path: Path, emulator: Any) -> None:
    chromium = require_chromium()
    config = demo_store(tmp_path, emulator)
    path = write_config(tmp_path, emulator.base_url)
    [stats] = _cli_json_lines(path, "stats", "--json")
    exported = _cli_json_lines(path, "export")
    failing = {r["resource_id"] for r in exported
               if r["status"] != "ok" or r["last_outcome"] not in (None, "ok")}
    hostile = next(r for r in exported if r["url"] == "https://hostile.example/title")
    assert failing and len(failing) < config.serve.page_size

    with live_server(create_app(config)) as server, browser_context(chromium) as context:
        page = context.new_page()
        console: list[str] = []
        dialogs: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        response = page.goto(f"{server.base_url}/")
        assert response is not None and response.status == 200
        assert "default-src 'none'" in response.headers["content-security-policy"]

        # Counts per outcome, and the total: those of `snapcache stats`.
        shown = {el.get_attribute("data-outcome"): int(el.inner_text())
                 for el in page.locator("[data-outcome]").all()}
        assert shown == {"total": stats["records"], **stats["outcomes"]}

        # The failing table: every failing record, each with a reason and an archive link.
        rows = page.locator("#failing tbody tr[data-resource-id]")
        assert {r.get_attribute("data-resource-id") for r in rows.all()} == failing
        for row in rows.all():
            assert row.locator("td.reason").inner_text().strip()
            link = row.locator("td:last-child a").get_attribute("href") or ""
            assert link.startswith((emulator.base_url, "https://web.archive.org/")), link

        # The histogram is an inline SVG with one bar per age bucket.
        assert page.locator("svg.hist rect.bar").count() == 7
        # The stylesheet loaded (the CSP allows it) and nothing was refused or run.
        background = page.eval_on_selector(".top", "e => getComputedStyle(e).backgroundColor")
        assert background == "rgb(29, 35, 42)"
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

        # A hostile title is inert text: no script ran, no element was made of it.
        page.goto(f"{server.base_url}/records/{hostile['resource_id']}")
        title = page.locator("#record-title").inner_text()
        assert "<script>document.title='pwned'</script>" in title
        assert "<img src=x onerror=alert(1)>" in title
        assert "\x1b" not in title and "[31m" not in title and "evil\x07" not in title
        assert page.title() != "pwned" and "pwned" not in page.title().split(" · ")[-1]
        assert page.locator("script").count() == 0 and page.locator("img").count() == 0
        assert "<script>alert('preview')</script>" in page.locator("#preview").inner_text()
        page.screenshot(path=str(tmp_path / "record.png"), full_page=True)

        # Search by title finds it, still as text.
        page.goto(f"{server.base_url}/search?q=pwned")
        assert page.locator("#results tbody tr").count() == 2
        assert page.locator("script").count() == 0 and page.locator("img").count() == 0
        search_box = page.locator("input[name=q]").input_value()
        assert search_box == "pwned"

        # A phone's width: nothing wider than the screen; table rows become cards.
        phone = context.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(f"{server.base_url}/")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.eval_on_selector("#failing", "t => t.parentElement.scrollWidth <= "
                                                  "t.parentElement.clientWidth")
        phone.goto(f"{server.base_url}/records/{hostile['resource_id']}")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        phone.goto(f"{server.base_url}/")
        phone.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)

        assert dialogs == []
        assert [m for m in console if m.startswith("error")] == []
    assert HOSTILE_TITLE.startswith("<script>")
    print(f"SERVE screenshots in {tmp_path}: dashboard.png, record.png, dashboard-phone.png")
