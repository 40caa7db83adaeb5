"""Take the README's screenshot of the dashboard: ``python -m tests.dashboard_screenshot
docs/dashboard.png``.

It builds the browser tests' demo store (real fetches through the loopback emulator, plus
synthetic records of every outcome and age, plus hostile titles) in a temporary folder,
serves it on 127.0.0.1 and photographs ``/`` with the same Chromium set-up as the tests.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from snapcache.config import ServeConfig
from snapcache.serve import create_app

from tests.browser import browser_context, chromium_path
from tests.servekit import demo_store, live_server
from tests.wayback_emulator import WaybackEmulator


def main(argv: list[str]) -> int:
    """Write the screenshot to ``argv[0]`` (default docs/dashboard.png)."""
    target = Path(argv[0] if argv else "docs/dashboard.png")
    chromium = chromium_path()
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="snapcache-shot-") as tmp, WaybackEmulator() as emu:
        config = demo_store(Path(tmp), emu, synthetic=160)
        # A short failing table, so that the whole page fits one picture.
        config = replace(config, serve=ServeConfig(page_size=8))
        with live_server(create_app(config)) as server, \
                browser_context(chromium, width=1100, height=900) as context:
            page = context.new_page()
            page.goto(f"{server.base_url}/")
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target), full_page=True)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
