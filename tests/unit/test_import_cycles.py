"""Imports inside ktools point one way: no two modules import each other, even lazily.

A lazy import (inside a function) hides a cycle from Python but not from a reader: the
modules still cannot be understood, tested or moved apart. Every `import` statement in
the package counts here, wherever it stands.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
# Cycles left to other work, each with the issue that removes it; an entry that no longer
# occurs fails the test too, so the list only shrinks.
KNOWN: set[frozenset[str]] = {
    # #17 "one CPU thread rule": llama_backend reads server.default_threads.
    frozenset({"ktools.llm.local.llama_backend", "ktools.llm.local.server"}),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "ktools").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from pkg import submodule` imports the submodule; `from mod import name`, the module
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [s for s in subs if s in modules] or [node.module]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_cycles_in_the_package():
    modules = _modules()
    # A package importing its own submodules (lazily, for its public names) is not a cycle.
    graph = {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in _graph(modules).items()}
    cycles = set(_cycles(graph))
    new = [sorted(c) for c in cycles - KNOWN]
    assert not new, f"import cycles: {new}; move what both sides need into a module below them"
    gone = [sorted(c) for c in KNOWN - cycles]
    assert not gone, f"{gone} no longer form a cycle: remove them from KNOWN"
