"""The house's import rules, read from the source: data flows one way (web and worker call into
shared, never the reverse), no module imports another that imports it back, and web knows of
worker only its publisher."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "web", "worker", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module an import statement names, at any depth (a lazy import inside a function
    counts the same as one at the top)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from shared import inbox` imports the module shared.inbox
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _internal(name: str) -> str | None:
    """The project module an imported name resolves to (the longest known prefix)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES:
            return candidate
    return None


GRAPH = {
    module: {t for name in _imports(path) if (t := _internal(name)) and t != module} for module, path in MODULES.items()
}


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_tree_has_the_houses_rooms():
    for room in (
        "shared.inbox",
        "shared.inbox.registry",
        "shared.billing",
        "shared.email",
        "shared.stripe",
        "shared.stripe.handlers",
        "shared.paypal",
        "shared.dispatch",
        "shared.processing",
        "shared.event_ops",
        "web.webhooks",
        "web.webhooks.stripe",
        "web.webhooks.paypal",
        "worker.messages",
        "worker.publisher",
        "worker.tasks",
    ):
        assert room in MODULES, room


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _top(m) == "shared"))
def test_shared_imports_neither_flask_nor_celery_nor_the_processes(module):
    imported = {_top(name) for name in _imports(MODULES[module])}
    assert not imported & {"flask", "werkzeug", "celery", "kombu", "web", "worker", "cli"}, module


def test_web_imports_only_the_publisher_of_worker():
    for module, targets in GRAPH.items():
        if _top(module) == "web":
            assert {t for t in targets if _top(t) == "worker"} <= {"worker", "worker.publisher"}, module


def test_worker_imports_nothing_of_web_or_cli():
    for module, targets in GRAPH.items():
        if _top(module) == "worker":
            assert not {t for t in targets if _top(t) in ("web", "cli")}, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_shipped_module_imports_the_tests_or_the_bench(module):
    """`billhook dev trigger` builds its events in cli/, not from tests/factories: an installed
    billhook has no tests/ beside it."""
    assert not {_top(name) for name in _imports(MODULES[module])} & {"tests", "bench"}, module


def test_no_module_imports_one_that_imports_it_back():
    """No cycle in the import graph (a package and its own submodules aside: a package's
    `__init__` re-exporting its submodules is not a loop)."""

    def related(a: str, b: str) -> bool:
        return a.startswith(b + ".") or b.startswith(a + ".")

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if related(node, target):
                continue
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
