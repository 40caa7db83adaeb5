"""The OpenAPI document: the copy in the repository is the one the code builds, the server
serves it, it names every route, and schemathesis finds no response that breaks it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from snapcache.cache import FIELD_ORDER, SnapshotCache
from snapcache.serve import PACKAGED_OPENAPI, create_app, openapi_document, openapi_json
from starlette.routing import Route

from tests.conftest import emulator_config
from tests.servekit import LiveServer, live_server, save, synthetic_mix

TOKEN = "schemathesis-token-0123456789"
ROOT = Path(__file__).resolve().parent.parent
#: Generated cases and failures, per operation (printed when the module ends).
TALLY: dict[str, list[int]] = {}


def test_the_document_in_the_repository_is_the_one_the_code_builds() -> None:
    # Regenerate with: snapcache serve --write-openapi fetcher/serve/openapi.json
    kept = ROOT / "fetcher" / "serve" / "openapi.json"
    assert kept.read_text(encoding="utf-8") == openapi_json(), (
        "fetcher/serve/openapi.json is out of date: run "
        "`snapcache serve --write-openapi fetcher/serve/openapi.json`")
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    record = document["components"]["schemas"]["Record"]
    assert list(record["properties"]) == list(FIELD_ORDER) == record["required"]


def test_the_write_openapi_command_writes_that_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    done = subprocess.run(
        [sys.executable, "-m", "snapcache.cli", "--config", str(ROOT / "config.toml"), "serve",
         "--write-openapi", str(target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert target.read_text(encoding="utf-8") == openapi_json()
    # The installed package ships the same copy.
    assert PACKAGED_OPENAPI.read_text(encoding="utf-8") == openapi_json()


def test_every_api_route_is_documented_and_every_documented_path_is_routed(
    tmp_path: Path,
) -> None:
    config = emulator_config(tmp_path, "http://127.0.0.1:9")
    app = create_app(config)
    routed = {r.path for r in app.routes if isinstance(r, Route)
              and r.path.startswith(("/v1", "/healthz", "/openapi.json"))}
    assert routed == set(openapi_document()["paths"])
    # The served document follows the server's own bounds.
    config = emulator_config(tmp_path, "http://127.0.0.1:9",
                             serve={"max_page_size": 42, "page_size": 10})
    with live_server(create_app(config)) as server:
        served = httpx.get(f"{server.base_url}/openapi.json").json()
    assert served == openapi_document(config.serve)
    assert served["components"]["schemas"]["Page"]["properties"]["items"]["maxItems"] == 42


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over a store of every outcome, with the write API on and a loopback
    emulator (with high budgets) as its archive."""
    from tests.wayback_emulator import WaybackEmulator

    tmp = tmp_path_factory.mktemp("schemathesis")
    with WaybackEmulator() as emulator:
        config = emulator_config(tmp, emulator.base_url,
                                 rates={"cdx_per_minute": 6000.0,
                                        "playback_per_minute": 60000.0})
        with SnapshotCache(config.cache_path) as store:
            for record, text in synthetic_mix(40):
                save(store, record, text)
        server = LiveServer(create_app(config, token=TOKEN)).start()
        try:
            served = httpx.get(f"{server.base_url}/openapi.json").json()
            assert served == openapi_document(config.serve)
            yield server.base_url
        finally:
            server.stop()
    total = sum(n for n, _ in TALLY.values())
    failed = sum(f for _, f in TALLY.values())
    paths = openapi_document()["paths"]
    documented = [k for k in TALLY if k.split()[0].lower() in paths.get(k.split()[1], {})]
    print(f"\nSCHEMATHESIS {total} generated cases, {failed} failures: "
          f"{sum(TALLY[k][0] for k in documented)} on the {len(documented)} documented "
          f"operations, {total - sum(TALLY[k][0] for k in documented)} probes with "
          f"unsupported methods")
    for name, (n, f) in sorted(TALLY.items()):
        print(f"SCHEMATHESIS   {name}: {n} cases, {f} failures")


schema = schemathesis.openapi.from_dict(openapi_document())
# A request body over [serve] max_body_bytes is refused before it is parsed, with 413
# (documented): also a correct refusal of data the schema rejects.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]


@schema.parametrize()
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_the_api_keeps_its_document(case: Any, api_server: str) -> None:
    """Positive and negative cases on every operation: no 5xx, every status, header and
    body as documented, invalid input refused with a 4xx, auth not ignored."""
    tally = TALLY.setdefault(f"{case.method} {case.path}", [0, 0])
    tally[0] += 1
    # A cursor is opaque: only one this server gave, for the same filter and without
    # ?url=, is accepted, which no schema can say. So a generated cursor that fits the
    # schema is still refused (400 invalid_cursor), and that one check is left out then.
    excluded = [positive_data_acceptance] if "cursor" in (case.query or {}) else []
    try:
        case.call_and_validate(base_url=api_server, excluded_checks=excluded,
                               headers={"Authorization": f"Bearer {TOKEN}"})
    except Exception:
        tally[1] += 1
        raise

