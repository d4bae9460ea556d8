"""Ctrl+C during step 03 of `ktools run`, then the same command again (issue 7's acceptance).

`ktools run --profile smoke` (real kernels, the real embedded teacher on a port of its
own) is interrupted with SIGINT to its process group — what Ctrl+C in the terminal
running `make demo` sends — once step 03 has stored a few answers. We check that
- the run exits with 130 and says how to resume; step 03 has no completion marker
  and its report says "interrupted";
- the second run skips steps 00-02 (markers untouched) and finishes step 03;
- no stored answer was asked again: the requests the teacher received during the
  second run (its own counter) equal the requests newly stored by it, and every
  response stored before is still there, unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ktools.notebook_runner.execute import STEPS
from ktools.paths import OutputPaths

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
# Enough step-03 work (3 chunks x 4 generators, 2 requests in flight) to interrupt it midway.
COMMAND = [sys.executable, "-m", "ktools", "run", "--profile", "smoke", "--steps", "0-3",
           "-p", "SEED_DATA_SUBSAMPLE", "3", "-p", "MAX_CONCURRENCY", "2"]
STORED_BEFORE_INTERRUPT = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _teacher_requests(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
        return int(json.load(r)["stats"]["requests"])


def _stored(store: Path) -> dict[tuple[str, int], str]:
    if not store.is_file():
        return {}
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
            return {(h, i): t for h, i, t in db.execute("SELECT request_hash, sample_index, text FROM responses")}
    except sqlite3.OperationalError:  # created but no table yet
        return {}


@pytest.fixture
def teacher_port():
    """An embedded teacher started before both runs, as a user's own teacher would be: `ktools run`
    stops only the teachers it started itself, so this one serves both runs and its request
    counter says what each of them sent."""
    from ktools.llm.local import lifecycle

    port = _free_port()
    lifecycle.start_background("127.0.0.1", port)
    yield port
    lifecycle.stop("127.0.0.1", port)


def test_interrupt_during_step03_then_resume_sends_only_unanswered_requests(tmp_path, teacher_port):
    out = tmp_path / "output"
    paths = OutputPaths(out)
    env = dict(os.environ, KTOOLS_OUTPUT_DIR=str(out), TEACHER_PROVIDER="local",
               TEACHER_MODEL_BASE_URL=f"http://127.0.0.1:{teacher_port}/v1")
    store = paths.step(3) / "responses.sqlite"

    first = subprocess.Popen(COMMAND, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    deadline = time.monotonic() + 900
    while len(_stored(store)) < STORED_BEFORE_INTERRUPT:
        if first.poll() is not None or time.monotonic() > deadline:
            stdout, stderr = first.communicate()
            pytest.fail(f"step 03 never stored {STORED_BEFORE_INTERRUPT} answers (exit {first.returncode}):\n"
                        f"{stdout}\n{stderr}")
        time.sleep(0.3)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl+C in the terminal
    stdout, stderr = first.communicate(timeout=180)

    assert first.returncode == 130, stdout + stderr
    assert "interrupted during step 03 Knowledge Generation" in stderr
    assert "again to resume" in stderr and "only the requests not answered yet" in stderr
    assert not STEPS[3].marker_path(paths).exists()
    assert json.loads(paths.generation_report.read_text())["status"] == "interrupted"
    early_markers = {s.number: s.marker_path(paths).stat().st_mtime_ns for s in STEPS[:3]}

    before = _stored(store)
    served_before = _teacher_requests(teacher_port)

    second = subprocess.run(COMMAND, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert second.returncode == 0, second.stdout + second.stderr
    for step in STEPS[:3]:
        assert f"step {step.name}: skipped" in second.stdout
    assert {s.number: s.marker_path(paths).stat().st_mtime_ns for s in STEPS[:3]} == early_markers
    assert STEPS[3].marker_path(paths).exists()
    report = json.loads(paths.generation_report.read_text())
    # Every chunk ran to the end. The status is "complete" unless the 135M teacher's draw left a
    # generator with no row over the smoke profile's 3 chunks ("partial", which the smoke profile
    # allows: ALLOW_PARTIAL) — a fact about the teacher, not about resuming.
    unfinished = {name: {k: n for k, n in g["chunks"].items() if k in ("failed", "pending") and n}
                  for name, g in report["generators"].items()}
    assert not any(unfinished.values()), unfinished
    assert report["status"] == "complete" or (
        report["status"] == "partial" and any(g["rows"] == 0 for g in report["generators"].values())), report

    after = _stored(store)
    assert all(after.get(key) == text for key, text in before.items())  # nothing stored was lost or redone
    new_requests = {h for h, _ in after} - {h for h, _ in before}
    assert new_requests, "the first run had finished step 03 before the interrupt: nothing was left to resume"
    sent_again = _teacher_requests(teacher_port) - served_before
    assert sent_again == len(new_requests), (sent_again, len(new_requests))
    assert report["requests"]["sent"] == len(new_requests)
    assert report["requests"]["cached"] >= len({h for h, _ in before})
