"""Write a step notebook the same way from every builder: stable cell ids (rebuilding
gives the same file, so diffs stay readable), the python3 kernelspec, no outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook


def write_step_notebook(cells: list, target: Path, id_prefix: str) -> Path:
    notebook = new_notebook(cells=cells)
    for i, cell in enumerate(notebook.cells):
        cell.id = f"{id_prefix}-{i:02d}"
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(target))
    print(f"wrote {target}")
    return target
