"""The house rules of the source tree (see docs/ARCHITECTURE.md): imports
flow one way (no circles between modules, lazy imports included), nothing in
``fmrecon`` imports the benchmark package, and every model run goes through
the inference engine."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in (SRC / package).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement in ``path``, at any depth
    (function-level imports count: they are circles too, only postponed)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    mods = _modules(package)
    return {name: {m for m in _imports(path) if m in mods} - {name} for name, path in mods.items()}


def test_no_import_circles():
    graph = _graph("fmrecon")
    assert len(graph) > 40  # the walk found the package
    assert _cycles(graph) == []


# the rooms of fmrecon, bottom up: a room imports only from rooms below it
LAYERS = (
    ("errors",),
    ("utils", "physics", "metrics", "losses"),
    ("data",),
    ("encoders",),
    ("models",),
    ("inference",),
    ("training", "evaluation", "api"),
    ("commands", "cli"),
)


def test_rooms_import_only_from_rooms_below():
    level = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
    wrong = []
    for name, path in _modules("fmrecon").items():
        parts = name.split(".")
        if len(parts) < 2:
            continue  # the package itself
        assert parts[1] in level, f"{name}: a room not in LAYERS"
        for m in _imports(path):
            other = m.split(".")
            if other[0] == "fmrecon" and len(other) > 1 and other[1] != parts[1]:
                if other[1] in level and level[other[1]] >= level[parts[1]]:
                    wrong.append(f"{name} imports {m}")
    assert wrong == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_in_fmrecon_imports_the_benchmark():
    offenders = [
        str(path.relative_to(SRC))
        for path in _modules("fmrecon").values()
        if any(m.split(".")[0] == "fmrecon_bench" for m in _imports(path))
    ]
    assert offenders == []


def test_models_run_through_the_engine():
    """The callers of models (training, evaluation, reconstruction) import the
    engine; none of them calls ``autocast_context`` itself (the engine does)."""
    callers = ["training/module.py", "evaluation/evaluate.py", "inference/reconstruct.py"]
    for rel in callers:
        imports = _imports(SRC / "fmrecon" / rel)
        assert "fmrecon.inference.engine" in imports, rel
        assert "fmrecon.utils.autocast_context" not in imports, rel
