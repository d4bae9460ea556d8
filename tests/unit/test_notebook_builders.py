"""The committed step notebooks are exactly what `tools/notebooks/build_*.py` write.

Each builder writes to `<repo>/<step folder>/<notebook>` relative to its own file, so the
builders run from a copy of `tools/notebooks/` in a temporary tree and the files they write
there are compared byte for byte with the committed ones: an edit made to a notebook by
hand (or a builder edited and not run) fails here with the fix to make.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDERS = sorted((REPO_ROOT / "tools" / "notebooks").glob("build_*.py"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("built")
    shutil.copytree(REPO_ROOT / "tools" / "notebooks", root / "tools" / "notebooks")
    for builder in BUILDERS:
        subprocess.run([sys.executable, str(root / "tools" / "notebooks" / builder.name)],
                       check=True, capture_output=True, text=True)
    return root


def test_there_is_a_builder_per_step_notebook():
    assert len(BUILDERS) == 7, [b.name for b in BUILDERS]


def test_committed_notebooks_equal_what_the_builders_write(built):
    written = sorted(p.relative_to(built) for p in built.glob("0*/*.ipynb"))
    assert len(written) == len(BUILDERS), written
    stale = [str(rel) for rel in written if (REPO_ROOT / rel).read_bytes() != (built / rel).read_bytes()]
    assert not stale, (f"{stale} differ from what their builders write: edit tools/notebooks/build_*.py "
                       "and run it (python tools/notebooks/build_NN_*.py), never the .ipynb by hand")
