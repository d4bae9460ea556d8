"""Our nbval set-up (lax mode + sanitizers) passes a faithful notebook and fails a broken one."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import papermill
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))
from nbval_support import run_nbval  # noqa: E402


def _make(tmp_path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("N = 3")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    src = tmp_path / "src.ipynb"
    nbformat.write(nb, src)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(src), str(executed), parameters={"N": 5}, kernel_name="python3",
                               progress_bar=False)
    return executed


@pytest.mark.slow
def test_deterministic_marked_cells_pass_and_volatile_ones_are_sanitized(tmp_path):
    executed = _make(
        tmp_path,
        "# NBVAL_CHECK_OUTPUT\nprint('rows:', N * 2)",
        "# NBVAL_CHECK_OUTPUT\nimport time, tempfile\nprint('took', round(time.time() % 7, 2), 's at',"
        " time.strftime('%H:%M:%S'), 'in', tempfile.mkdtemp())",
        "import random\nprint(random.random())  # unmarked: never compared",
    )
    proc = run_nbval(executed, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_changed_output_fails(tmp_path):
    executed = _make(tmp_path, "# NBVAL_CHECK_OUTPUT\nprint('rows:', N * 2)")
    nb = nbformat.read(str(executed), as_version=4)
    nb.cells[-1].source = "# NBVAL_CHECK_OUTPUT\nprint('rows:', N * 3)"  # behaviour changed
    nbformat.write(nb, executed)
    proc = run_nbval(executed, tmp_path)
    assert proc.returncode != 0
    assert "rows: 10" in proc.stdout or "rows:" in proc.stdout


@pytest.mark.slow
def test_raising_cell_fails(tmp_path):
    executed = _make(tmp_path, "x = 1")
    nb = nbformat.read(str(executed), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('broken step')"))
    nbformat.write(nb, executed)
    proc = run_nbval(executed, tmp_path)
    assert proc.returncode != 0
    assert "broken step" in proc.stdout
