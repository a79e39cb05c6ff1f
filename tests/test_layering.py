"""The package layering CONVENTIONS.md describes: ``api/`` is the composition root and
nothing imports it; no module imports itself back through a circle; the operator CLI
starts without the web framework."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "api",
    "audit",
    "auth",
    "console",
    "core",
    "idempotency",
    "ledger",
    "ops",
    "sequences",
    "storage",
    "tenants",
    "usage",
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of this project that ``path`` imports, TYPE_CHECKING blocks included."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def test_nothing_outside_api_imports_api() -> None:
    known = _modules()
    offenders = [
        f"{mod} imports {dep}"
        for mod, path in known.items()
        if not mod.startswith("api")
        for dep in _imports(path, known)
        if dep == "api" or dep.startswith("api.")
    ]
    assert offenders == []


def test_no_import_cycles_between_modules() -> None:
    known = _modules()
    graph = {
        mod: {d for d in _imports(p, known) if d != mod and not mod.startswith(d + ".")}
        for mod, p in known.items()
    }
    # A package's __init__ re-exporting its submodules is not a circle.
    for mod in graph:
        graph[mod] = {d for d in graph[mod] if not d.startswith(mod + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert cycles == []


def test_the_cli_starts_without_the_web_framework() -> None:
    """``tally tenants …`` and the other operator commands never serve a request, so
    importing the command must not import FastAPI or Starlette: that was 0.2 s of every
    invocation's 1 s (``core.settings`` imported ``fastapi.Request`` for one dependency).
    ``tally serve`` imports the app in its workers, after the command has started."""
    probe = (
        "import json, sys; import api.cli; loaded = {m.split('.')[0] for m in sys.modules}; "
        "print(json.dumps(sorted(loaded & {'fastapi', 'starlette'})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
