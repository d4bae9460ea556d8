"""`ktools run` on a throw-away repository of tiny notebooks (real papermill, real kernels)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ktools.notebook_runner import parse_steps, run_pipeline
from ktools.notebook_runner.execute import STEPS, StepFailed


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
def out(tmp_output) -> Path:
    return tmp_output  # conftest's: KTOOLS_OUTPUT_DIR points at a temp dir


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
    from ktools.notebook_runner.execute import is_complete
    from ktools.paths import GENERATORS, OutputPaths

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


def test_ctrl_c_reaches_the_running_cell_and_exits_130(fake_repo, out):
    """SIGINT to the runner's process group (a terminal's Ctrl+C) is forwarded to the kernel:
    the cell sees KeyboardInterrupt and can clean up; no marker; exit 130 with a resume hint."""
    import signal
    import time

    step = STEPS[1]
    started, cleaned = out / "started", out / "cleaned"
    nbformat.write(_notebook(
        "SIZE = 1",
        "import pathlib, time\n"
        f"pathlib.Path({str(started)!r}).write_text('')\n"
        "try:\n"
        "    time.sleep(120)\n"
        "except KeyboardInterrupt:\n"
        f"    pathlib.Path({str(cleaned)!r}).write_text('')\n"
        "    raise"), fake_repo / step.folder / step.notebook)
    env = dict(os.environ, KTOOLS_OUTPUT_DIR=str(out))
    command = [sys.executable, "-m", "ktools", "run", "--steps", "0-1"]
    proc = subprocess.Popen(command, cwd=fake_repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted during step 01 Base Model Evaluation" in stderr
    assert "ktools run --steps 0-1" in stderr and "again to resume" in stderr
    assert cleaned.exists()  # the cell itself got the KeyboardInterrupt
    assert not step.marker_path(_paths(out)).exists()
    assert STEPS[0].marker_path(_paths(out)).exists()

    # The next run skips step 00 and runs step 01 (here: fast).
    nbformat.write(_notebook("SIZE = 1", "import pathlib\n"
                             f"(pathlib.Path({str(out)!r}) / 'step_01').mkdir(exist_ok=True)\n"
                             f"(pathlib.Path({str(out)!r}) / 'step_01' / 'base_eval.json').write_text('{{}}')"),
                   fake_repo / step.folder / step.notebook)
    again = subprocess.run(command, cwd=fake_repo, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "step 00 Setup: skipped" in again.stdout
    assert "step 01 Base Model Evaluation: done" in again.stdout


def _paths(out: Path):
    from ktools.paths import OutputPaths

    return OutputPaths(out)


def test_an_old_parameter_name_sets_the_new_names_a_notebook_declares():
    from ktools.notebook_runner.execute import notebook_parameters

    mixing = {"MIX_MAX_SEQ_LEN": None, "SEED": 42}
    training = {"TRAIN_MAX_SEQ_LEN": 512}
    assert notebook_parameters({"MAX_SEQ_LEN": 640, "SEED": 1}, mixing) == (
        {"SEED": 1, "MIX_MAX_SEQ_LEN": 640}, {"SEED", "MAX_SEQ_LEN"})
    assert notebook_parameters({"MAX_SEQ_LEN": 640}, training) == ({"TRAIN_MAX_SEQ_LEN": 640}, {"MAX_SEQ_LEN"})
    # the new name wins when both are given; a notebook still declaring the old name gets it as is
    assert notebook_parameters({"MAX_SEQ_LEN": 640, "TRAIN_MAX_SEQ_LEN": 256}, training)[0] == {"TRAIN_MAX_SEQ_LEN": 256}
    assert notebook_parameters({"MAX_SEQ_LEN": 640}, {"MAX_SEQ_LEN": None})[0] == {"MAX_SEQ_LEN": 640}
