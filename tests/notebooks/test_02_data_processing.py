"""Step 02 notebook executed with papermill on the sample document (ICL mode "given")."""

from __future__ import annotations

import pytest

from ktools.io import read_jsonl

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def test_data_processing_notebook(repo_root, tmp_output, tmp_path):
    papermill = pytest.importorskip("papermill")
    step = repo_root / "02_Data_Processing"
    papermill.execute_notebook(
        str(step / "Data_Processing.ipynb"), str(tmp_path / "executed.ipynb"), cwd=str(step),
        kernel_name="python3", progress_bar=False,
        parameters={"ICL_MODE": "given"},
    )
    chunks = read_jsonl(tmp_output / "step_02" / "chunks.jsonl")
    seed = read_jsonl(tmp_output / "step_02" / "seed_data.jsonl")
    assert 10 <= len(chunks) <= 20
    assert len(seed) == len(chunks)
    assert all(row["icl_query_1"].endswith("?") and row["icl_document"] for row in seed)
    markdown = (tmp_output / "step_02" / "converted" / "sample_document.md").read_text(encoding="utf-8")
    assert all(markdown[c["start"]:c["end"]] == c["document"] for c in chunks)
    executed = (tmp_path / "executed.ipynb").read_text()
    assert "image/png" in executed  # the histogram was drawn


def _fake_teacher(body, index):
    prompt = body["messages"][-1]["content"]
    if "Domain:" in prompt:
        return "Domain: ferry regulations\nOutline: The operating regulations of an estuary ferry authority."
    return "1. What is the document reference?\n2. When were the regulations approved?\n3. Which edition is it?"


def test_data_processing_notebook_teacher_mode(repo_root, tmp_output, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    from ktools.testing.fake_openai import FakeOpenAIServer

    step = repo_root / "02_Data_Processing"
    with FakeOpenAIServer(responder=_fake_teacher) as server:
        monkeypatch.setenv("TEACHER_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("TEACHER_MODEL_NAME", "fake-teacher")
        monkeypatch.setenv("TEACHER_PROVIDER", "openai")
        monkeypatch.setenv("TEACHER_MODEL_API_KEY", "test-key-not-secret")
        papermill.execute_notebook(
            str(step / "Data_Processing.ipynb"), str(tmp_path / "executed.ipynb"), cwd=str(step),
            kernel_name="python3", progress_bar=False, parameters={"ICL_MODE": "teacher", "ICL_FILE": ""},
        )
        asked = len(server.requests)
    seed = read_jsonl(tmp_output / "step_02" / "seed_data.jsonl")
    assert asked == 2
    assert {row["domain"] for row in seed} == {"ferry regulations"}
    assert seed[0]["icl_query_2"] == "When were the regulations approved?"
    assert "drafted" in (tmp_path / "executed.ipynb").read_text()  # the review table shows the origin
