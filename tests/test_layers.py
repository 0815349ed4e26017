"""The package's layers, bottom up: config and boxes (``hyp``, ``hooks``, ``boxes``), models and
assignment, loss, data, engine, pipeline and CLI. No import loop, lazy and ``TYPE_CHECKING`` imports
included, and no lower layer importing a higher one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "yolov7lib"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (functions and
    ``if TYPE_CHECKING`` blocks included); a package's ``__init__`` counts as its own module."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        package = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join((package[: len(package) - node.level + 1] if node.level else [])
                                + ([node.module] if node.module else []))
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[m] |= {t for t in targets if t in mods and t != m and not m.startswith(t + ".")
                         and t != "yolov7lib"}
    return graph


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_loops():
    assert loops(import_graph()) == []


def test_the_loop_finder_finds_a_loop():
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lower_layers_import_nothing_above_them():
    graph = import_graph()
    ground = {"yolov7lib.hyp", "yolov7lib.hooks", "yolov7lib.boxes", "yolov7lib.console"}
    assert all(graph[m] == set() for m in ground)
    for module, imported in graph.items():
        if module.startswith("yolov7lib.data"):  # the data pipeline: itself, the hyp and the boxes only
            assert {m for m in imported if not m.startswith("yolov7lib.data")} <= ground, module
        if module.startswith(("yolov7lib.models", "yolov7lib.assign")) and module != "yolov7lib.models.__main__":
            assert all(m.startswith(("yolov7lib.models", "yolov7lib.assign")) or m in ground for m in imported), module


def test_importing_the_data_pipeline_imports_neither_the_loss_nor_the_assignment():
    data = sorted(m for m in _modules() if m.startswith("yolov7lib.data"))
    code = (f"import sys\nfor m in {data!r}: __import__(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('yolov7lib.loss', 'yolov7lib.assign'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]"
