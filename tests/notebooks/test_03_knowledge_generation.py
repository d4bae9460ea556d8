"""Run 03_Knowledge_Generation/Knowledge_Generation.ipynb with papermill against the scripted fake teacher."""

from __future__ import annotations

import json

import nbformat
import pytest

from ktools.io import read_jsonl
from ktools.paths import GENERATORS, OutputPaths
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.scripted import scripted_responder

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

NOTEBOOK = "Knowledge_Generation.ipynb"
SECRET = "sk-test-DO-NOT-SHOW-0123456789abcdef"


def _seed(paths: OutputPaths) -> None:
    paths.seed_data.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"document": f"Section {i}: the Orvane ferry carries {20 + i} cars and sails every {i + 1} hours.",
             "chunk_id": f"doc.md#{i}", "source": "doc.md", "document_outline": "Ferry rules", "domain": "transport",
             "icl_document": "Ships dock at pier 4.", "icl_query_1": "Where do ships dock?",
             "icl_query_2": "", "icl_query_3": ""} for i in range(3)]
    paths.seed_data.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_notebook_runs_against_fake_teacher(repo_root, tmp_output, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    paths = OutputPaths(tmp_output)
    _seed(paths)
    with FakeOpenAIServer(responder=scripted_responder) as server:
        monkeypatch.setenv("TEACHER_PROVIDER", "openai")
        monkeypatch.setenv("TEACHER_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("TEACHER_MODEL_NAME", "fake-model")
        monkeypatch.setenv("TEACHER_MODEL_API_KEY", SECRET)
        step = repo_root / "03_Knowledge_Generation"
        executed = tmp_path / "executed.ipynb"
        papermill.execute_notebook(
            str(step / NOTEBOOK), str(executed), cwd=str(step), kernel_name="python3",
            parameters={"NUMBER_OF_SUMMARIES": 2, "QUESTIONS_PER_CHUNK": 2, "SEED_DATA_SUBSAMPLE": 2,
                        "MAX_CONCURRENCY": 4, "CUSTOMISATION_PROMPT": "Use British spelling."},
            progress_bar=False,
        )
        sent = list(server.requests)
    for g in GENERATORS:
        rows = read_jsonl(paths.generated(g))
        assert rows and {r["chunk_id"] for r in rows} == {"doc.md#0", "doc.md#1"}  # subsample 2
    report = json.loads(paths.generation_report.read_text())
    assert report["status"] == "complete" and report["options"]["number_of_summaries"] == 2
    assert report["judges"]["faithfulness"]["enabled"] is True  # a real (non-embedded) teacher: auto = on
    generator_prompts = [b["messages"][-1]["content"] for b in sent if "Score" not in b["messages"][-1]["content"]]
    assert generator_prompts and all("Use British spelling." in p for p in generator_prompts)
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert SECRET not in text and "0123456789abcdef" not in text
    assert "extractive_summary" in text and "requests_per_chunk" in text  # yield table and dry-run estimate


@pytest.mark.parametrize("teacher, raised", [("refuses", "generation empty"), ("401", "dry run failed")])
def test_notebook_raises_after_the_report_when_the_run_is_not_complete(repo_root, tmp_output, tmp_path, monkeypatch,
                                                                       teacher, raised):
    papermill = pytest.importorskip("papermill")
    paths = OutputPaths(tmp_output)
    _seed(paths)

    def refuses(body, index):
        return "I cannot help with that."

    faults = ["401"] * 50 if teacher == "401" else None
    with FakeOpenAIServer(responder=refuses if teacher == "refuses" else scripted_responder, faults=faults) as server:
        monkeypatch.setenv("TEACHER_PROVIDER", "openai")
        monkeypatch.setenv("TEACHER_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("TEACHER_MODEL_NAME", "fake-model")
        monkeypatch.setenv("TEACHER_MODEL_API_KEY", SECRET)
        monkeypatch.setenv("TEACHER_MAX_RETRIES", "0")
        step = repo_root / "03_Knowledge_Generation"
        executed = tmp_path / "executed.ipynb"
        with pytest.raises(papermill.PapermillExecutionError, match=raised):
            papermill.execute_notebook(
                str(step / NOTEBOOK), str(executed), cwd=str(step), kernel_name="python3",
                parameters={"NUMBER_OF_SUMMARIES": 1, "QUESTIONS_PER_CHUNK": 1, "SEED_DATA_SUBSAMPLE": 2,
                            "GENERATORS": "document_based_qa", "JUDGES": "off", "DRY_RUN": teacher == "401"},
                progress_bar=False,
            )
    nb = nbformat.read(executed, as_version=4)
    text = json.dumps([o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])])
    assert SECRET not in text
    if teacher == "refuses":  # the report was shown before the cell raised
        assert "document_based_qa" in text and json.loads(paths.generation_report.read_text())["status"] == "empty"


def test_ktools_generate_writes_what_the_notebook_writes(repo_root, tmp_output, tmp_path, monkeypatch):
    """`ktools generate` and notebook 03 take one path: the same seed, settings and fake teacher give
    byte-identical generated and rejected rows."""
    papermill = pytest.importorskip("papermill")
    from ktools.cli import main

    paths = OutputPaths(tmp_output)
    _seed(paths)
    cli_dir = tmp_path / "cli_step_03"
    with FakeOpenAIServer(responder=scripted_responder) as server:
        monkeypatch.setenv("TEACHER_PROVIDER", "openai")
        monkeypatch.setenv("TEACHER_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("TEACHER_MODEL_NAME", "fake-model")
        monkeypatch.setenv("TEACHER_MODEL_API_KEY", SECRET)
        monkeypatch.setenv("NUMBER_OF_SUMMARIES", "2")
        monkeypatch.setenv("MAX_CONCURRENCY", "4")
        step = repo_root / "03_Knowledge_Generation"
        papermill.execute_notebook(
            str(step / NOTEBOOK), str(tmp_path / "executed.ipynb"), cwd=str(step), kernel_name="python3",
            parameters={"QUESTIONS_PER_CHUNK": 2, "DRY_RUN": False}, progress_bar=False)
        code = main(["generate", "--seed", str(paths.seed_data), "--qa-dir", str(cli_dir),
                     "--questions-per-chunk", "2", "--no-progress"])
    assert code == 0
    compared = 0
    for g in GENERATORS:
        for name in ("gen.jsonl", "rejected.jsonl"):
            notebook_file, cli_file = paths.step(3) / g / name, cli_dir / g / name
            assert notebook_file.is_file() == cli_file.is_file(), (g, name)
            if notebook_file.is_file():
                assert notebook_file.read_bytes() == cli_file.read_bytes(), f"{g}/{name} differs"
                compared += 1
    assert compared >= len(GENERATORS)
