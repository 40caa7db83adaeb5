"""A real browser for the dashboard's tests: Playwright's Python API driving Debian's
``chromium`` (Playwright's own browser download cannot work on these machines).

Without chromium the tests skip with the reason, except under CI (``$CI`` set), where a
missing browser is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: Where Debian's chromium package puts the browser.
CHROMIUM = os.environ.get("SNAPCACHE_CHROMIUM", "/usr/bin/chromium")
#: Quiet, offline, throwaway: no GPU, no QUIC, no first-run, no background traffic.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    """The chromium executable, or ``None`` when it is not installed."""
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def require_chromium() -> str:
    """The chromium executable; skip the test without one (fail under CI)."""
    path = chromium_path()
    if path is None:
        reason = (f"chromium not found at {CHROMIUM} (Debian: apt-get install chromium); "
                  "the dashboard's browser tests need it")
        if os.environ.get("CI"):
            pytest.fail(reason + " — and CI must run them", pytrace=False)
        pytest.skip(reason)
    return path


@contextmanager
def browser_context(executable: str, *, width: int = 1280, height: int = 900,
                    scale: float = 1.0) -> Iterator[Any]:
    """A Chromium context with a new, empty user data directory, closed after use."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="snapcache-chromium-") as profile, \
            sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": width, "height": height}, device_scale_factor=scale,
        )
        try:
            yield context
        finally:
            context.close()
