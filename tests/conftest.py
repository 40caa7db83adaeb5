"""Shared fixtures: the loopback Wayback emulator and configs pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import pgkit

DATA = Path(__file__).parent / "data"

#: snapcache honours these (tests/test_proxy.py); a developer's own proxy must not carry the
#: suite's loopback traffic.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_ambient_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without proxy variables (the commands it starts inherit that)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(autouse=True)
def drop_postgres_schemas() -> Iterator[None]:
    """Drop the PostgreSQL schemas a test made (tests/pgkit.py), whatever its outcome."""
    yield
    pgkit.drop_created()


@pytest.fixture
def emulator() -> Iterator[Any]:
    """A fresh loopback Wayback emulator (real recordings loaded) for one test."""
    from tests.wayback_emulator import WaybackEmulator

    with WaybackEmulator() as emu:
        yield emu


def emulator_config(tmp_path: Path, base_url: str, **sections: dict[str, Any]) -> Any:
    """A Config pointing at a loopback archive, with fast retries and a private cache."""
    from snapcache.config import config_from_mapping

    doc: dict[str, dict[str, Any]] = {
        "archive": {
            "base_url": base_url,
            "availability_url": f"{base_url}/wayback/available",
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
            "request_timeout": 20.0,
        },
        "rates": {"pause_on_429": 1.0, "state_path": str(tmp_path / "ratelimit.sqlite"),
                  "max_wait": 30.0},
        "retry": {"max_attempts": 3, "initial_backoff": 0.05, "max_backoff": 0.2,
                  "max_total_seconds": 10.0},
        "cache": {"path": str(tmp_path / "store")},
    }
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return config_from_mapping(doc, source="test")


@pytest.fixture
def config(tmp_path: Path, emulator: Any) -> Any:
    return emulator_config(tmp_path, emulator.base_url)


@pytest.fixture
def fetcher(config: Any) -> Iterator[Any]:
    from snapcache import Fetcher

    with Fetcher(config) as f:
        yield f
