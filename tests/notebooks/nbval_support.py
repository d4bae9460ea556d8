"""Run nbval (lax mode, our sanitizers) on an executed notebook, as a subprocess.

nbval re-executes the notebook with the notebook's folder as working directory and
compares the outputs of cells marked `# NBVAL_CHECK_OUTPUT` with the stored ones.
Step notebooks find the repository from their working directory, so an executed
copy is placed in its step folder (as `_nbval_<name>.ipynb`, git-ignored) for the
check and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")


def run_nbval(executed: Path, run_in: Path, env: dict[str, str] | None = None,
              timeout: float = 1800) -> subprocess.CompletedProcess:
    target = run_in / f"_nbval_{executed.name}"
    shutil.copyfile(executed, target)
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-sanitize-with", str(SANITIZE),
             "-p", "no:cacheprovider", "-q", "--rootdir", str(run_in), "-o", "addopts=", str(target)],
            cwd=run_in, env=dict(os.environ, **(env or {})), capture_output=True, text=True, timeout=timeout,
        )
    finally:
        target.unlink(missing_ok=True)
