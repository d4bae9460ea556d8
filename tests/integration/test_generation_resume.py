"""kill -9 a generation run at random points, resume, and compare with an uninterrupted run.

The fake teacher runs in its own process and logs every request body it receives. We
check that
- the final gen.jsonl / rejected.jsonl files are byte-identical to an uninterrupted run;
- no output file is ever torn (every kill leaves whole files or none);
- every request a resumed run sends was NOT fully answered in the store when that run
  started (the only repeats are requests that were in flight at a kill), and the number
  of repeats is at most the in-flight limit per kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ktools.generate.store import request_hash
from ktools.io import read_jsonl
from ktools.llm.types import SamplingParams
from ktools.paths import GENERATORS

pytestmark = pytest.mark.slow

CONCURRENCY = 6
KILLS = 4

CHILD = textwrap.dedent("""
    import json, sys
    from ktools.generate import GenerationOptions, run_generation
    from ktools.llm.client import TeacherClient
    url, seed, out = sys.argv[1:4]
    CONCURRENCY = int(sys.argv[4])
    client = TeacherClient(url, "fake-model", max_concurrency=CONCURRENCY, max_retries=2)
    options = GenerationOptions(number_of_summaries=3, questions_per_chunk=2, facts_per_chunk=3,
                                show_progress=False)
    report = run_generation(seed, options, client, out)
    print(json.dumps({"status": report.status, "sent": report.requests["sent"]}))
""")


def _start_server(tmp_path: Path, log: Path, latency: float = 0.02) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ktools.testing.fake_openai", "--port", "0", "--latency", str(latency),
         "--responder", "ktools.testing.scripted:scripted_responder", "--log", str(log)],
        stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("FAKE_OPENAI_URL="):
            return proc, line.split("=", 1)[1].strip()
    proc.kill()
    raise RuntimeError("fake server did not start")


def _seed(path: Path) -> None:
    rows = [{"document": f"Section {i}: the Orvane ferry carries {20 + i} cars and sails every {i + 1} hours "
                         f"from pier {i}. Tickets cost {5 + i} euros and are sold at the terminal.",
             "chunk_id": f"doc.md#{i}", "source": "doc.md", "document_outline": "Ferry rules",
             "icl_document": "Ships dock at pier 4.", "icl_query_1": "Where do ships dock?"} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@contextmanager
def _scripted_run(tmp_path: Path, child_source: str,
                  latency: float = 0.02) -> Iterator[tuple[Path, str, Path, Path, dict[str, str]]]:
    """The scripted server (logging each request), the child script and the seed; the server
    is stopped at the end. Yields (request log, server URL, child script, seed, child env)."""
    log = tmp_path / "requests.log"
    server, url = _start_server(tmp_path, log, latency)
    child = tmp_path / "child.py"
    child.write_text(child_source)
    seed = tmp_path / "seed.jsonl"
    _seed(seed)
    try:
        yield log, url, child, seed, {**os.environ, "PYTHONUNBUFFERED": "1"}
    finally:
        server.kill()
        server.wait()


def _log_lines(log: Path) -> list[dict]:
    # The server may be writing a line right now: a torn last line is not a request yet.
    return read_jsonl(log) if log.exists() else []


def _body_hash(body: dict) -> tuple[str, int]:
    params = SamplingParams(temperature=body["temperature"], max_tokens=body["max_tokens"])
    return request_hash(body["model"], body["messages"], params), int(body.get("n") or 1)


def _answered(store: Path) -> dict[str, int]:
    if not store.exists():
        return {}
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT request_hash, COUNT(*) FROM responses GROUP BY request_hash"))
    finally:
        conn.close()


def _outputs(out: Path) -> dict[str, bytes]:
    return {f"{g}/{name}": (out / g / name).read_bytes() for g in GENERATORS for name in ("gen.jsonl", "rejected.jsonl")}


def test_kill_9_and_resume_is_exact(tmp_path):
    with _scripted_run(tmp_path, CHILD) as (log, url, child, seed, env):
        # The uninterrupted reference.
        t0 = time.time()
        ref = subprocess.run([sys.executable, str(child), url, str(seed), str(tmp_path / "ref"), str(CONCURRENCY)],
                             capture_output=True, text=True, env=env, timeout=300)
        wall = time.time() - t0
        assert ref.returncode == 0, ref.stderr
        assert json.loads(ref.stdout.strip().splitlines()[-1])["status"] == "complete"
        reference = _outputs(tmp_path / "ref")
        assert all(reference[f"{g}/gen.jsonl"] for g in GENERATORS)
        ref_requests = len(_log_lines(log))

        out = tmp_path / "run"
        store = out / "responses.sqlite"
        rng = random.Random(int(os.environ.get("KTOOLS_KILL_SEED", "1234")))
        phases: list[tuple[int, int, dict[str, int]]] = []  # (first log line, last log line, answered before)
        kills = 0
        for attempt in range(KILLS + 1):
            before = _answered(store)
            start_line = len(_log_lines(log))
            proc = subprocess.Popen([sys.executable, str(child), url, str(seed), str(out), str(CONCURRENCY)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            if attempt < KILLS:
                # Kill at a random point of the remaining work, measured in requests the server saw.
                remaining = max(2, ref_requests - len(before))
                target = start_line + rng.randint(1, max(1, remaining * 2 // 3))
                deadline = time.time() + 4 * wall + 30
                while proc.poll() is None and len(_log_lines(log)) < target and time.time() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, 0.05))
            if attempt < KILLS and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                time.sleep(0.1)  # let the server finish writing its log lines
                phases.append((start_line, len(_log_lines(log)), before))
                for g in GENERATORS:  # whatever is on disk is whole
                    for name in ("gen.jsonl", "rejected.jsonl"):
                        if (out / g / name).exists():
                            read_jsonl(out / g / name, drop_torn_tail=False)
                continue
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            phases.append((start_line, len(_log_lines(log)), before))
            if json.loads(stdout.strip().splitlines()[-1])["status"] == "complete":
                break
        assert kills >= 2, "the run finished before it could be killed; make it longer"

        assert _outputs(out) == reference

        bodies = _log_lines(log)
        repeats = 0
        for first, last, answered_before in phases:
            for body in bodies[first:last]:
                h, n = _body_hash(body)
                assert answered_before.get(h, 0) < n, "a resumed run re-sent a request already answered"
        sent_hashes = [_body_hash(b)[0] for b in bodies[ref_requests:]]
        repeats = len(sent_hashes) - len(set(sent_hashes))
        # Lost per kill: requests in flight plus answers still waiting in the store's
        # group commit (at most another CONCURRENCY); answered-and-stored ones are never re-sent (above).
        assert repeats <= kills * 2 * CONCURRENCY
        assert len(set(sent_hashes)) == len({_body_hash(b)[0] for b in bodies[:ref_requests]})


CHILD_SIGINT = textwrap.dedent("""
    import json, signal, sys
    # Ctrl+C as a terminal delivers it, even when the test suite itself was started in the
    # background by a shell without job control (which makes children inherit SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from ktools.generate import GenerationInterrupted, GenerationOptions, run_generation
    from ktools.llm.client import TeacherClient
    url, seed, out = sys.argv[1:4]
    client = TeacherClient(url, "fake-model", max_concurrency=4, max_retries=2)
    options = GenerationOptions(number_of_summaries=3, questions_per_chunk=2, facts_per_chunk=3,
                                show_progress=False)
    try:
        report = run_generation(seed, options, client, out)
    except GenerationInterrupted as exc:
        print(json.dumps({"status": exc.report.status if exc.report else None}))
        sys.exit(130)
    print(json.dumps({"status": report.status}))
""")


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    with _scripted_run(tmp_path, CHILD_SIGINT) as (log, url, child, seed, env):
        ref = subprocess.run([sys.executable, str(child), url, str(seed), str(tmp_path / "ref")],
                             capture_output=True, text=True, env=env, timeout=300)
        assert ref.returncode == 0, ref.stderr
        total = len(_log_lines(log))
        out = tmp_path / "run"
        proc = subprocess.Popen([sys.executable, str(child), url, str(seed), str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        while len(_log_lines(log)) < total + total // 3 and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        assert json.loads(stdout.strip().splitlines()[-1])["status"] == "interrupted"
        assert "re-run the same command" in stderr  # how to resume is logged
        answered = _answered(out / "responses.sqlite")
        assert answered  # what came back before Ctrl+C was kept
        first_phase = len(_log_lines(log))
        resumed = subprocess.run([sys.executable, str(child), url, str(seed), str(out)],
                                 capture_output=True, text=True, env=env, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        for body in _log_lines(log)[first_phase:]:
            h, n = _body_hash(body)
            assert answered.get(h, 0) < n
        assert _outputs(out) == _outputs(tmp_path / "ref")
