"""The layer rules, checked on the source (see tests/layers.py): the arrows point one way."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from tests import layers


@pytest.fixture(scope="module")
def graph() -> layers.Graph:
    return layers.read_graph()


def test_the_graph_sees_every_layer(graph: layers.Graph) -> None:
    # A rule over modules the reader failed to find would pass by accident.
    for module in ("snapcache", "snapcache.api", "snapcache.engine", "snapcache.runner",
                   "snapcache.save", "snapcache.protocols", "snapcache.cache",
                   "snapcache.cache.store", "snapcache.cache.contract", "snapcache.cli",
                   "snapcache.extract", "snapcache.transport", "snapcache.worker",
                   "snapcache.enqueue", "snapcache.pglimits", "snapcache.cache.postgres.queue",
                   "snapcache.transport.state", "snapcache.transport.statefile",
                   "snapcache.junk", "snapcache.junk.rules"):
        assert module in graph.files, module
    assert "snapcache.engine" in graph.edges("snapcache.api")
    assert "snapcache.protocols" in graph.edges("snapcache.runner")
    assert "snapcache.protocols" in graph.edges("snapcache.worker")
    assert "snapcache.transport" in graph.edges("snapcache.pglimits")
    junk = [m for m in graph.files if layers.within(m, "snapcache.junk")]
    assert {e for m in junk for e in graph.edges(m)
            if not layers.within(e, "snapcache.junk")} == {"snapcache.untrusted"}
    assert any(layers.within(m, "snapcache.cache") for m in graph.edges("snapcache.engine"))


def test_no_import_cycle_among_product_modules(graph: layers.Graph) -> None:
    assert layers.cycles(graph) == []


def test_every_layer_rule_holds(graph: layers.Graph) -> None:
    assert layers.rule_violations(graph) == []


def test_no_private_name_is_imported_across_modules(graph: layers.Graph) -> None:
    assert layers.private_imports(graph) == []


def test_every_product_package_is_listed_for_the_wheel() -> None:
    assert layers.unlisted_packages() == []


def test_no_product_module_is_over_700_lines(graph: layers.Graph) -> None:
    long = {m: n for m, p in graph.files.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 700}
    assert long == {}


def test_tests_and_bench_use_only_the_installed_names() -> None:
    # `fetcher` and `cache` are folders, not import names: nothing may import them.
    offenders = []
    for folder in ("tests", "bench"):
        for path in sorted((layers.ROOT / folder).rglob("*.py")):
            if any(part.startswith(".") for part in path.relative_to(layers.ROOT).parts):
                continue  # a virtual environment (bench/.venv) or other hidden folder
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom)
                         and node.level == 0 else [])
                offenders += [f"{path.name}:{node.lineno} {n}" for n in names
                              if n.split(".")[0] in layers.FOLDERS]
    assert offenders == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_the_checker_finds_each_kind_of_breach(tmp_path: Path) -> None:
    # The rules must fail on code that breaks them, or a passing run proves nothing.
    root = _tree(tmp_path, {
        "fetcher/__init__.py": "",
        "fetcher/engine.py": "from .runner import Runner\n",
        "fetcher/runner.py": "from . import engine\nfrom .api import _secret\n",
        "fetcher/api.py": "_secret = 1\n",
        "fetcher/extract/__init__.py": "from ..transport import Transport\n",
        "fetcher/transport.py": "from snapcache.cache.store import Store\n",
        "fetcher/worker.py": "from .engine import Engine\n",
        "fetcher/pglimits.py": "from .runner import Runner\n",
        "fetcher/cli/__init__.py": "",
        "fetcher/config.py": "from snapcache.cli import main\n",
        "cache/__init__.py": "",
        "cache/store.py": "from snapcache.engine import Engine\nStore = 1\n",
    })
    findings = list(layers.report(root))
    text = "\n".join(findings)
    assert "import cycle: snapcache.engine -> snapcache.runner -> snapcache.engine" in text
    assert "the store imports nothing from the fetching layers: snapcache.cache.store" in text
    assert "extraction imports no transport" in text
    assert "the one-fetch engine imports neither the runner nor the saver" in text
    assert "the runner depends on the engine interface" in text
    assert "no library module imports the CLI: snapcache.config" in text
    assert "nothing below the facade imports it: snapcache.runner" in text
    assert "private name across modules: snapcache.runner imports _secret" in text
    assert "the transport knows nothing of captures' meaning, runs or the store" in text
    assert "the worker depends on the engine interface" in text
    assert "the PostgreSQL limiter state knows only the transport's interface" in text
