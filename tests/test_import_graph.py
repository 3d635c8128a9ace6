"""The import graph of calnas (searchers/ and objectives/ included, which install as
calnas.searchers and calnas.objectives), read with ``ast``: every import statement counts,
those inside functions too.

* No import circle among the modules.
* The engine (the study, the worker loop, result rebuilding, the seam and everything they
  import) reaches nothing under ``calnas.live``; the façade (:mod:`calnas.api`) imports the live
  factory, and nothing else of live, only inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"calnas": ROOT / "calnas", "calnas.searchers": ROOT / "searchers", "calnas.objectives": ROOT / "objectives"}
ENGINE = ("calnas.study", "calnas.worker_loop", "calnas.rebuild", "calnas.result", "calnas.record", "calnas.evaluators",
          "calnas.workers", "calnas.storage", "calnas.checks", "calnas.constraints", "calnas.optuna_compat")
FACADE = "calnas.api"
LIVE_FACTORY = "calnas.live.factory"


def module_files(packages: dict[str, Path] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every .py under the packages (a package is its __init__.py)."""
    out = {}
    for package, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if name.split(".")[:2] == ["calnas", "searchers"] and package == "calnas":
                continue  # never on disk under calnas/, but be safe
            out[name] = path
    return out


def imports_of(name: str, source: str, modules) -> list[tuple[str, bool]]:
    """(imported module, at top level?) for every import in ``source``, resolved to the
    modules of the graph (``from pkg import mod`` is an import of ``pkg.mod`` when that is a
    module, else of ``pkg``); imports of other packages are left out."""
    tree = ast.parse(source)
    is_package = name in modules and modules[name].name == "__init__.py"
    out = []

    def add(target: str, top: bool) -> None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.append((target, top))

    def visit(node, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, top)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    add(full if full in modules else base, top)
            visit(child, inner)

    visit(tree, True)
    return out


def graph(modules: dict[str, Path]) -> dict[str, list[tuple[str, bool]]]:
    return {name: imports_of(name, path.read_text(encoding="utf-8"), modules) for name, path in modules.items()}


def circles(edges: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w, _ in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(edges):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def reach(edges, start: str) -> dict[str, str]:
    """Every module ``start`` imports, directly or not -> the module that imports it on one path."""
    seen, todo = {}, [start]
    while todo:
        v = todo.pop()
        for w, _ in edges.get(v, ()):
            if w not in seen and w != start:
                seen[w] = v
                todo.append(w)
    return seen


def is_live(module: str) -> bool:
    return module == "calnas.live" or module.startswith("calnas.live.")


def test_no_import_circle():
    found = circles(graph(module_files()))
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_engine_reaches_nothing_of_live_training():
    edges = graph(module_files())
    for module in ENGINE:
        assert module in edges, module
        reached = reach(edges, module)
        live = sorted(m for m in reached if is_live(m))
        assert not live, f"{module} reaches {live[0]} (imported by {reached[live[0]]})"


def test_only_the_facade_live_factory_enters_live_and_lazily():
    edges = graph(module_files())
    entries = [(w, top) for w, top in edges[FACADE] if is_live(w)]
    assert entries == [(LIVE_FACTORY, False)], entries
    # Without the lazy door, the façade reaches no live module either.
    without = {**edges, FACADE: [(w, top) for w, top in edges[FACADE] if not is_live(w)]}
    reached = reach(without, FACADE)
    assert not [m for m in reached if is_live(m)]


def test_the_check_finds_a_circle_and_a_live_import_added_inside_a_function(tmp_path):
    package = tmp_path / "pkg"
    (package / "live").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "live" / "__init__.py").write_text("")
    (package / "live" / "train.py").write_text("import numpy\n")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from . import a\n    from pkg.live.train import fit\n")
    modules = module_files({"pkg": package})
    edges = graph(modules)
    assert circles(edges) == [["pkg.a", "pkg.b"]]
    assert ("pkg.live.train", False) in edges["pkg.b"]
    assert "pkg.live.train" in reach(edges, "pkg.a")
