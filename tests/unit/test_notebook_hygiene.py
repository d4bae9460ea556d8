"""Every step notebook stays a thin, clean front end over the package."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ktools.notebook_runner.execute import STEPS

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = [REPO_ROOT / s.folder / s.notebook for s in STEPS if (REPO_ROOT / s.folder / s.notebook).is_file()]
MAX_FUNCTION_LINES = 6

SECRET_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_-]{10,}"),
    re.compile(r"(?i)api[_-]?key\s*[=:]\s*['\"][A-Za-z0-9_\-]{12,}['\"]"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9_\-.]{16,}"),
]
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/(home|root|work|tmp|Users|mnt|opt)/|[A-Z]:\\\\)")


def test_every_step_has_a_notebook():
    missing = [f"{s.folder}/{s.notebook}" for s in STEPS if not (REPO_ROOT / s.folder / s.notebook).is_file()]
    assert not missing, f"step notebooks missing: {missing}"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.parent.name)
def notebook(request) -> tuple[Path, nbformat.NotebookNode]:
    return request.param, nbformat.read(str(request.param), as_version=4)


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_exactly_one_parameters_cell(notebook):
    path, nb = notebook
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path}: {len(tagged)} cells tagged 'parameters' (papermill needs exactly one)"
    assert tagged[0].cell_type == "code"


def test_imports_ktools(notebook):
    path, nb = notebook
    assert any(re.search(r"^\s*(from|import)\s+ktools\b", src, re.M) for src in _code(nb)), \
        f"{path}: never imports ktools — logic belongs in the package"


def test_no_long_functions(notebook):
    path, nb = notebook
    for src in _code(nb):
        clean = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(clean)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= MAX_FUNCTION_LINES, (
                    f"{path}: {node.name} is {length} lines; move it into ktools and call it"
                )


def test_no_secrets_or_absolute_paths(notebook):
    path, nb = notebook
    text = path.read_text(encoding="utf-8")
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{path}: looks like it holds a secret ({pattern.pattern})"
    for src in _code(nb) + [c.source for c in nb.cells if c.cell_type == "markdown"]:
        assert not ABSOLUTE_PATH.search(src), f"{path}: absolute path in a cell: {ABSOLUTE_PATH.search(src)[0]}"


def test_stored_without_outputs(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path}: cell {i + 1} has stored outputs; store notebooks clean"
            assert cell.execution_count is None, f"{path}: cell {i + 1} has an execution count"


def test_kernelspec_is_python3(notebook):
    path, nb = notebook
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path}: kernelspec must be python3"


def test_papermill_sees_every_parameter(notebook):
    """papermill silently ignores a parameter line it cannot parse (e.g. a ';' in its
    comment); such a parameter could then never be set by `ktools run -p`."""
    import papermill

    path, nb = notebook
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)]
    seen = set(papermill.inspect_notebook(str(path)))
    assert not set(assigned) - seen, f"{path}: papermill cannot parse parameters {set(assigned) - seen}"


def test_notebooks_pass_the_linter():
    """ruff over every notebook (imports, unused names, ...), as `make lint` does for the package."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).is_file():
        pytest.skip("ruff is not installed (the test extra installs it)")
    result = subprocess.run([ruff, "check", "--no-cache", *map(str, NOTEBOOKS)], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
