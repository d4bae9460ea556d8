"""Every failure case of issue 13's "Why": a non-zero exit with one line saying why, and no
`complete` / `completed` status on disk (report.json, per-document _qa.json), through the
real CLI and the real HTTP client against the scripted server."""

from __future__ import annotations

import socket

import pytest

from ktools.cli import main
from ktools.io import read_json, write_json, write_jsonl
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.scripted import scripted_responder

DOC = "The Orvane harbour levy is 7 euros per berth, due each March to the harbour office."


@pytest.fixture
def seed(tmp_path, tmp_output, monkeypatch):
    for name in ("TEACHER_MODEL_BASE_URL", "TEACHER_PROVIDER", "TEACHER_MODEL_NAME", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEACHER_MAX_RETRIES", "0")
    path = tmp_path / "seed.jsonl"
    write_jsonl(path, [{"document": f"{DOC} Chunk {i}.", "chunk_id": f"c{i}", "source": "levy.md"}
                       for i in range(3)])
    return path


def generate(seed, qa, base_url, *extra):
    return main(["generate", "--seed", str(seed), "--qa-dir", str(qa), "--provider", "vllm", "--model", "m",
                 "--base-url", base_url, "--generators", "document_based_qa", "--no-progress", *extra])


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def one_line_reason(err: str, prefix: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, err
    return lines[0]


def no_complete_on_disk(qa):
    assert read_json(qa / "report.json")["status"] not in ("complete", "completed")
    for path in qa.glob("*_qa.json"):
        assert read_json(path)["status"] != "completed", path


def test_every_request_failing_is_a_failed_run_everywhere(seed, tmp_path, capsys):
    qa = tmp_path / "qa"
    with FakeOpenAIServer(responder=scripted_responder, faults=["401"] * 10) as server:
        assert generate(seed, qa, server.base_url) == 1
    line = one_line_reason(capsys.readouterr().err, "ktools generate: failed:")
    assert "3 of 3 chunk runs failed" in line and "401" in line
    report = read_json(qa / "report.json")
    assert report["status"] == "failed" and report["generators"]["document_based_qa"]["status"] == "failed"
    assert read_json(qa / "levy_qa.json")["status"] == "failed"
    no_complete_on_disk(qa)

    # combine refuses: the only Q&A file failed, and there are no pairs.
    assert main(["combine", "--qa-dir", str(qa), "--output-file", str(tmp_path / "t.json")]) != 0
    assert "status is 'failed'" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
    assert main(["combine", "--qa-dir", str(qa), "--output-file", str(tmp_path / "t.json"),
                 "--allow-partial"]) == 0

    # `ktools run` does not take this step 03 as done.
    from ktools.notebook_runner.execute import _generation_unfinished

    class Paths:
        generation_report = qa / "report.json"

    assert "failed" in _generation_unfinished(Paths())


def test_all_pairs_rejected_is_empty_not_complete(seed, tmp_path, capsys):
    qa = tmp_path / "qa"

    def refuses(body, index):
        return "I cannot help with that."

    with FakeOpenAIServer(responder=refuses) as server:
        assert generate(seed, qa, server.base_url) == 1
    line = one_line_reason(capsys.readouterr().err, "ktools generate: empty:")
    assert "document_based_qa kept no rows" in line
    assert read_json(qa / "levy_qa.json")["status"] == "empty"
    no_complete_on_disk(qa)
    assert main(["combine", "--qa-dir", str(qa), "--output-file", str(tmp_path / "t.json")]) != 0
    assert not (tmp_path / "t.json").exists()


def test_step03_folder_with_a_partial_report_is_not_combined(tmp_path, capsys):
    step3 = tmp_path / "step_03"
    write_jsonl(step3 / "document_based_qa" / "gen.jsonl",
                [{"question": "What is the levy?", "response": "7 euros.", "source": "levy.md", "chunk_id": "c0"}])
    write_json(step3 / "report.json", {"status": "partial", "status_reason": "1 of 3 chunk runs failed"})
    assert main(["combine", "--qa-dir", str(step3), "--output-file", str(tmp_path / "t.json")]) != 0
    assert "says 'partial' (1 of 3 chunk runs failed)" in capsys.readouterr().err
    assert main(["combine", "--qa-dir", str(step3), "--output-file", str(tmp_path / "t.json"),
                 "--allow-partial"]) == 0


@pytest.mark.parametrize("where", ["401", "closed port"])
def test_a_dry_run_whose_requests_all_fail_fails(seed, tmp_path, capsys, where):
    qa = tmp_path / "qa"
    if where == "401":
        with FakeOpenAIServer(responder=scripted_responder, faults=["401"] * 10) as server:
            code = generate(seed, qa, server.base_url, "--dry-run")
    else:
        code = generate(seed, qa, closed_port_url(), "--dry-run")
    assert code == 1
    line = one_line_reason(capsys.readouterr().err, "ktools generate: dry run failed:")
    assert ("401" in line) if where == "401" else ("connection" in line.lower())


def test_a_dry_run_that_works_still_exits_0(seed, tmp_path, capsys):
    with FakeOpenAIServer(responder=scripted_responder) as server:
        assert generate(seed, tmp_path / "qa", server.base_url, "--dry-run") == 0
    assert "estimated" in capsys.readouterr().out


def test_run_skips_a_partial_step03_only_when_nothing_is_left_to_retry(tmp_path):
    """A partial run whose chunks all ran (a generator's rows were all rejected) would
    come out the same if run again; one with failed or unrun chunks is run again."""
    from ktools.notebook_runner.execute import _generation_unfinished

    class Paths:
        generation_report = tmp_path / "report.json"

    def report(status, **chunks):
        counts = {"done": 3, "failed": 0, "pending": 0, **chunks}
        write_json(Paths.generation_report, {"status": status, "status_reason": "x kept no rows",
                                             "generators": {"extractive_summary": {"chunks": counts},
                                                            "key_facts_to_qa": {"chunks": {"done": 3}}}})

    report("partial")
    assert _generation_unfinished(Paths()) is None
    report("partial", failed=1)
    assert "partial" in _generation_unfinished(Paths())
    report("partial", pending=2)
    assert "partial" in _generation_unfinished(Paths())
    report("interrupted")
    assert "interrupted" in _generation_unfinished(Paths())
    report("empty")
    assert "empty" in _generation_unfinished(Paths())
    report("complete")
    assert _generation_unfinished(Paths()) is None
