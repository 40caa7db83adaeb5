"""The product's import graph, read from the source with :mod:`ast` (nothing is imported),
and the layer rules it must keep. ``tests/test_layers.py`` runs the rules on this checkout;
``python -m tests.layers <checkout>`` prints what they find in any checkout.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where each top-level folder installs (pyproject's package-dir).
FOLDERS = {"fetcher": "snapcache", "cache": "snapcache.cache"}


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target: a product module and the names taken from it."""

    line: int
    module: str
    names: tuple[str, ...]


@dataclass(slots=True)
class Graph:
    """Product modules (dotted names) and what each imports from the product."""

    files: dict[str, Path] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)
    imports: dict[str, list[Import]] = field(default_factory=dict)

    def edges(self, module: str) -> set[str]:
        """The product modules ``module`` imports."""
        return {imp.module for imp in self.imports.get(module, [])}


def module_files(root: Path) -> dict[str, Path]:
    """Every product module of the checkout at ``root``, by its installed dotted name."""
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            found[name] = path
    return found


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *(node.module.split(".") if node.module else [])])


def _to_product(name: str) -> str | None:
    """The installed name for a product import, whichever spelling it used."""
    head = name.split(".")[0]
    if head == "snapcache":
        return name
    if head in FOLDERS:
        return FOLDERS[head] + name[len(head):]
    return None


def read_graph(root: Path = ROOT) -> Graph:
    """Parse every product module under ``root`` and collect its product imports."""
    graph = Graph(files=module_files(root))
    graph.packages = {m for m, p in graph.files.items() if p.name == "__init__.py"}
    for module, path in graph.files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found: list[Import] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _to_product(alias.name)
                    if target is not None:
                        found.append(Import(node.lineno, target, ()))
            elif isinstance(node, ast.ImportFrom):
                target = _to_product(_resolve(module, module in graph.packages, node))
                if target is None:
                    continue
                names = tuple(a.name for a in node.names)
                submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in graph.files]
                rest = tuple(n for n in names if f"{target}.{n}" not in graph.files)
                if rest or not submodules:
                    found.append(Import(node.lineno, target, rest))
                found.extend(Import(node.lineno, sub, ()) for sub in submodules)
        graph.imports[module] = found
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Every import cycle among product modules (each reported once, from its smallest
    member), found by depth-first search."""
    found: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.edges(node)):
            if nxt not in graph.files:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):]
                start = cycle.index(min(cycle))
                found.add(tuple(cycle[start:] + cycle[:start]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph.files):
        if module not in state:
            visit(module)
    return [list(c) for c in sorted(found)]


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@dataclass(frozen=True, slots=True)
class Rule:
    """Modules under ``source`` must not import modules under any of ``forbidden``."""

    name: str
    source: str
    forbidden: tuple[str, ...]
    except_within: str | None = None


RULES: tuple[Rule, ...] = (
    Rule("the store imports nothing from the fetching layers", "snapcache.cache",
         ("snapcache",), except_within="snapcache.cache"),
    Rule("extraction imports no transport, archive or engine", "snapcache.extract",
         ("snapcache.transport", "snapcache.archive", "snapcache.engine", "snapcache.config")),
    Rule("the one-fetch engine imports neither the runner nor the saver", "snapcache.engine",
         ("snapcache.runner", "snapcache.save", "snapcache.api", "snapcache.cli",
          "snapcache.worker", "snapcache.enqueue")),
    Rule("the runner depends on the engine interface, not the engine or the facade",
         "snapcache.runner", ("snapcache.engine", "snapcache.api", "snapcache.cli",
                              "snapcache.worker", "snapcache.enqueue")),
    # The worker and enqueue are layers like the runner (enqueue reuses its triage).
    Rule("the worker depends on the engine interface, not the engine or the facade",
         "snapcache.worker", ("snapcache.engine", "snapcache.api", "snapcache.cli",
                              "snapcache.save", "snapcache.enqueue")),
    Rule("enqueue depends on the engine interface, not the engine or the facade",
         "snapcache.enqueue", ("snapcache.engine", "snapcache.api", "snapcache.cli",
                               "snapcache.save", "snapcache.worker")),
    # The PostgreSQL limiter state is plugged into the transport from above (the facade
    # builds it): it may use the store's connection helpers, and nothing that fetches.
    Rule("the PostgreSQL limiter state knows only the transport's interface and the store",
         "snapcache.pglimits", ("snapcache.engine", "snapcache.runner", "snapcache.save",
                                "snapcache.worker", "snapcache.enqueue", "snapcache.api",
                                "snapcache.cli", "snapcache.archive")),
    # Facts in, a flag out: the classifier of junk captures reads no archive, body or store.
    Rule("the junk classifier is pure and imports only the untrusted-input readers",
         "snapcache.junk", ("snapcache.engine", "snapcache.archive", "snapcache.capture",
                            "snapcache.transport", "snapcache.extract", "snapcache.cache",
                            "snapcache.runner", "snapcache.save", "snapcache.api",
                            "snapcache.cli", "snapcache.serve", "snapcache.worker",
                            "snapcache.enqueue", "snapcache.stores", "snapcache.config")),
    Rule("the saver depends on the engine interface, not the engine or the facade",
         "snapcache.save", ("snapcache.engine", "snapcache.api", "snapcache.runner",
                            "snapcache.cli")),
    # snapcache.cache.files (private folders, temporary files naming their writer, what an
    # SQLite error says about its file) knows nothing of records: it sits in the store
    # package only because that is the bottom of the graph, and every layer uses it.
    Rule("the transport knows nothing of captures' meaning, runs or the store",
         "snapcache.transport", ("snapcache.archive", "snapcache.engine", "snapcache.runner",
                                 "snapcache.save", "snapcache.api", "snapcache.cli",
                                 "snapcache.cache", "snapcache.pglimits", "snapcache.worker",
                                 "snapcache.enqueue", "snapcache.stores"),
         except_within="snapcache.cache.files"),
)


def rule_violations(graph: Graph) -> list[str]:
    """Each import that breaks a rule of :data:`RULES`, or the CLI, server and facade
    rules."""
    problems: list[str] = []
    for module, imports in sorted(graph.imports.items()):
        for imp in imports:
            for rule in RULES:
                if not within(module, rule.source):
                    continue
                if rule.except_within and within(imp.module, rule.except_within):
                    continue
                if any(within(imp.module, f) for f in rule.forbidden):
                    problems.append(f"{rule.name}: {module} imports {imp.module} "
                                    f"(line {imp.line})")
            # ``python -m snapcache`` is the command line's second entry point, not library.
            library = not within(module, "snapcache.cli") and module != "snapcache.__main__"
            if library and within(imp.module, "snapcache.cli"):
                problems.append(f"no library module imports the CLI: {module} imports "
                                f"{imp.module} (line {imp.line})")
            server = within(imp.module, "snapcache.serve")
            if server and not (within(module, "snapcache.cli")
                               or within(module, "snapcache.serve")):
                problems.append(f"only the CLI imports the server: {module} imports "
                                f"{imp.module} (line {imp.line})")
            # The server sits on top, beside the CLI: it may use the facade.
            top = module in ("snapcache", "snapcache.api") or any(
                within(module, m) for m in ("snapcache.cli", "snapcache.serve"))
            if not top and within(imp.module, "snapcache.api"):
                problems.append(f"nothing below the facade imports it: {module} imports "
                                f"{imp.module} (line {imp.line})")
            if imp.module == "snapcache" and module != "snapcache" and not within(
                module, "snapcache.cli"
            ):
                problems.append(f"no library module imports the package root: {module} "
                                f"(line {imp.line})")
    return problems


def private_imports(graph: Graph) -> list[str]:
    """Names with a leading underscore imported from another product module."""
    return [
        f"{module} imports {name} from {imp.module} (line {imp.line})"
        for module, imports in sorted(graph.imports.items())
        for imp in imports
        for name in imp.names
        if name.startswith("_") and not name.startswith("__") and imp.module != module
    ]


def unlisted_packages(root: Path = ROOT) -> list[str]:
    """Product packages that pyproject's ``packages`` list leaves out (they would be
    missing from the wheel, though an editable install finds them)."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(data["tool"]["setuptools"].get("packages", []))
    graph = read_graph(root)
    return sorted(p for p in graph.packages if p not in listed)


def report(root: Path) -> Iterator[str]:
    """Every finding of every rule in the checkout at ``root``, one line each."""
    graph = read_graph(root)
    for cycle in cycles(graph):
        yield "import cycle: " + " -> ".join([*cycle, cycle[0]])
    yield from rule_violations(graph)
    for line in private_imports(graph):
        yield "private name across modules: " + line


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    findings = list(report(target))
    print("\n".join(findings) or "no findings")
    sys.exit(1 if findings else 0)
