"""The package's rooms and doors: no import circles, and ``model/`` imports nothing
above it (the network never depends on the trainer, the forecasters or the daemon).

Read from the source with :mod:`ast`, every import counted (top level and inside
functions; ``if TYPE_CHECKING:`` blocks excepted), so a lazy import that closes a
circle fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
#: what the network may import: itself and the leaves every layer shares
MODEL_MAY_IMPORT = ("nowcast.model", "nowcast.errors", "nowcast.fsutil", "nowcast.times")


def _modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "nowcast").rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = {
        id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
        and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nowcast"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nowcast")}
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, known) for name, path in known.items()}


def _related(a: str, b: str) -> bool:
    """A package and its own module (``__init__`` re-exports) are one room."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def _circles(graph: dict[str, set[str]]) -> list[str]:
    circles, state, stack = [], {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if _related(u, v):
                continue
            if state.get(v) == "open":
                circles.append(" -> ".join([*stack[stack.index(v):], v]))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return circles


def test_no_import_circles():
    circles = _circles(_graph())
    assert not circles, "\n".join(circles)


def test_model_imports_nothing_above_it():
    up = {
        name: sorted(m for m in deps if not m.startswith(MODEL_MAY_IMPORT))
        for name, deps in _graph().items()
        if name.startswith("nowcast.model")
    }
    assert {k: v for k, v in up.items() if v} == {}
    assert "nowcast.model.network" in up  # the walk found the package


def test_the_checker_sees_a_circle(tmp_path, monkeypatch):
    """The circle test can fail: two modules importing each other are found."""
    pkg = tmp_path / "nowcast"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from nowcast.b import g\n")
    (pkg / "b.py").write_text("from nowcast.a import f\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    graph = _graph()
    assert graph["nowcast.a"] == {"nowcast.b"} and graph["nowcast.b"] == {"nowcast.a"}
    assert _circles(graph) == ["nowcast.a -> nowcast.b -> nowcast.a"]
