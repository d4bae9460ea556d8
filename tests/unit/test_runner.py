"""`ktools run` on a throw-away repository of tiny notebooks (real papermill, real kernels)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ktools.runner import parse_steps, run_pipeline
from ktools.runner.pipeline import STEPS, StepFailed


def _notebook(parameters: str, *body: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(src) for src in body]
    return nb


@pytest.fixture
def fake_repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / "src" / "ktools").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname='x'\n")
    for step in STEPS[:3]:
        folder = root / step.folder
        folder.mkdir()
        body = [
            "import json, os, pathlib\n"
            "out = pathlib.Path(os.environ['KTOOLS_OUTPUT_DIR'])\n"
            f"(out / 'log').mkdir(parents=True, exist_ok=True)\n"
            f"(out / 'log' / 'step{step.number}.json').write_text(json.dumps({{'size': SIZE, 'cwd': os.getcwd()}}))",
        ]
        if step.number == 2:  # step 02 must write its contract files
            body.append("(out / 'step_02').mkdir(exist_ok=True)\n"
                        "(out / 'step_02' / 'chunks.jsonl').write_text('{}\\n')\n"
                        "(out / 'step_02' / 'seed_data.jsonl').write_text('{}\\n')")
        if step.number == 1:
            body.append("(out / 'step_01').mkdir(exist_ok=True)\n"
                        "(out / 'step_01' / 'base_eval.json').write_text('{}')")
        nbformat.write(_notebook("SIZE = 1", *body), folder / step.notebook)
    return root


@pytest.fixture
def out(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "output"
    monkeypatch.setenv("KTOOLS_OUTPUT_DIR", str(path))
    return path


def test_parse_steps():
    assert parse_steps("2-4") == [2, 3, 4]
    assert parse_steps("3") == [3]
    assert parse_steps("0,2-3") == [0, 2, 3]
    assert parse_steps(None) == [0, 1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="no step"):
        parse_steps("7")
    with pytest.raises(ValueError, match="not a step number"):
        parse_steps("two")


def test_runs_in_order_with_parameters_and_skips_complete_steps(fake_repo, out):
    outcomes = run_pipeline([0, 1, 2], {"SIZE": 7, "UNDECLARED": 1}, repo_root=fake_repo)
    assert [o.status for o in outcomes] == ["ran", "ran", "ran"]
    import json

    log0 = json.loads((out / "log" / "step0.json").read_text())
    assert log0["size"] == 7
    assert Path(log0["cwd"]).name == "00_Setup"  # cwd is the step folder
    assert (out / "executed" / "02_Data_Processing.ipynb").is_file()

    again = run_pipeline([0, 1, 2], {"SIZE": 7}, repo_root=fake_repo)
    assert [o.status for o in again] == ["skipped", "skipped", "skipped"]

    # A changed parameter or a missing output makes the step run again.
    (out / "step_02" / "seed_data.jsonl").unlink()
    third = run_pipeline([1, 2], {"SIZE": 7}, repo_root=fake_repo)
    assert [o.status for o in third] == ["skipped", "ran"]
    fourth = run_pipeline([1], {"SIZE": 8}, repo_root=fake_repo)
    assert [o.status for o in fourth] == ["ran"]
    forced = run_pipeline([1], {"SIZE": 8}, repo_root=fake_repo, force=True)
    assert [o.status for o in forced] == ["ran"]


def test_failing_cell_is_named(fake_repo, out):
    step = STEPS[1]
    nbformat.write(_notebook("SIZE = 1", "x = 1", "raise RuntimeError('boom in step one')"),
                   fake_repo / step.folder / step.notebook)
    with pytest.raises(StepFailed) as info:
        run_pipeline([0, 1, 2], {}, repo_root=fake_repo)
    message = str(info.value)
    assert "01 Base Model Evaluation" in message
    assert "cell 3 of 3" in message
    assert "boom in step one" in message
    assert not (out / "log" / "step2.json").exists()  # later steps did not run


def test_cli_exit_code_and_message(fake_repo, out):
    step = STEPS[2]
    nbformat.write(_notebook("SIZE = 1", "1/0"), fake_repo / step.folder / step.notebook)
    env = dict(os.environ, KTOOLS_OUTPUT_DIR=str(out))
    proc = subprocess.run([sys.executable, "-m", "ktools", "run", "--steps", "2", "-p", "SIZE", "3"],
                          cwd=fake_repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "02 Data Processing" in proc.stderr
    assert "ZeroDivisionError" in proc.stderr


def test_generation_step_with_partial_report_is_not_complete(tmp_path):
    from ktools.io import write_json
    from ktools.paths import GENERATORS, OutputPaths
    from ktools.runner.pipeline import is_complete

    paths = OutputPaths(tmp_path / "output")
    step = STEPS[3]
    for g in GENERATORS:
        paths.generated(g).parent.mkdir(parents=True, exist_ok=True)
        paths.generated(g).write_text("")
    outputs = [str(p) for p in step.outputs(paths)]
    write_json(step.marker_path(paths), {"fingerprint": "f", "outputs": outputs})
    write_json(paths.generation_report, {"status": "budget_reached"})
    assert not is_complete(step, paths, "f")
    write_json(paths.generation_report, {"status": "complete"})
    assert is_complete(step, paths, "f")
    assert not is_complete(step, paths, "other parameters")


def test_step_after_a_rerun_step_is_stale(fake_repo, out):
    run_pipeline([1, 2], {"SIZE": 1}, repo_root=fake_repo)
    rerun = run_pipeline([1], {"SIZE": 2}, repo_root=fake_repo)  # step 01 ran again after step 02
    assert [o.status for o in rerun] == ["ran"]
    after = run_pipeline([1, 2], {"SIZE": 2}, repo_root=fake_repo)
    assert [o.status for o in after] == ["skipped", "ran"]
