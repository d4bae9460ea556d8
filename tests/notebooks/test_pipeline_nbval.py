"""The whole pipeline as a user batch-runs it, then nbval regression checks.

`ktools run --profile smoke` executes 00–06 in order (real kernels, the real embedded
teacher and student, tiny sizes) into a temporary output folder. Each executed
notebook is then re-executed by nbval in lax mode: cells marked
`# NBVAL_CHECK_OUTPUT` (counts, tables, schemas) must give the same output again —
for step 03 that second run is a full resume from the response store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ktools.notebook_runner.execute import STEPS
from ktools.paths import OutputPaths

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbval_support import run_nbval  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.notebook]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "output"
    env = dict(os.environ, KTOOLS_OUTPUT_DIR=str(out))
    proc = subprocess.run([sys.executable, "-m", "ktools", "run", "--profile", "smoke"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=2400)
    return out, env, proc


def test_smoke_profile_runs_every_step(smoke_run):
    out, _, proc = smoke_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for step in STEPS:
        assert f"step {step.name}: done" in proc.stdout, proc.stdout
    paths = OutputPaths(out)
    assert paths.eval_report_md.is_file()
    assert "step timings" in proc.stdout
    # The run ends with base vs tuned, and how much the model trained (cli/run.py, evaluate.report.result_lines).
    outcome = proc.stdout.split("base vs fine-tuned (95 % intervals):", 1)[-1]
    assert outcome != proc.stdout and "training: " in outcome and "epochs" in outcome, proc.stdout[-2000:]


def test_second_run_skips_completed_steps(smoke_run):
    out, env, proc = smoke_run
    if proc.returncode != 0:
        pytest.skip("the smoke run failed (reported by test_smoke_profile_runs_every_step)")
    again = subprocess.run([sys.executable, "-m", "ktools", "run", "--profile", "smoke", "--steps", "1-4"],
                           cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipped, outputs complete") == 4, again.stdout


@pytest.mark.parametrize("step", STEPS, ids=[s.folder for s in STEPS])
def test_nbval(smoke_run, step):
    out, env, proc = smoke_run
    executed = step.executed_path(OutputPaths(out))
    if not executed.is_file():
        pytest.skip(f"{executed.name} was not executed (see test_smoke_profile_runs_every_step)")
    nb = nbformat.read(str(executed), as_version=4)
    checked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    result = run_nbval(executed, REPO_ROOT / step.folder, env={"KTOOLS_OUTPUT_DIR": str(out)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    if checked:
        assert "passed" in result.stdout
