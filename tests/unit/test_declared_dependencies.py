"""Every third-party package the code imports is declared in pyproject.toml.

A package that arrives only as another package's dependency (httpx2 came with openai) works
until that package changes its own; declaring it says ktools relies on it directly.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "src" / "ktools"
# Import names of optional packages that may be absent from this environment.
NOT_INSTALLED = {"docling": "docling-slim", "llama_cpp": "llama-cpp-python", "kfp": "kfp"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    return {_norm(re.match(r"[A-Za-z0-9_.\-]+", spec).group(0)) for spec in specs}


def _imported() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in sys.stdlib_module_names and top not in ("ktools", "__future__"):
                    found.setdefault(top, str(path.relative_to(REPO_ROOT)))
    return found


def test_every_imported_package_is_declared():
    declared, installed = _declared(), packages_distributions()
    missing = []
    for top, where in _imported().items():
        dists = installed.get(top) or [NOT_INSTALLED.get(top, top)]
        if not any(_norm(d) in declared for d in dists):
            missing.append(f"{top} (imported in {where}; distribution {dists})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
