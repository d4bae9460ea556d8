"""Run 01_Base_Model_Evaluation with papermill on a few questions, judged by a scripted teacher."""

from __future__ import annotations

import json

import nbformat
import pytest

from ktools.paths import OutputPaths
from ktools.testing.fake_openai import FakeOpenAIServer

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

NOTEBOOK = ("01_Base_Model_Evaluation", "Base_Model_Evaluation.ipynb")


def test_notebook_runs_with_tiny_parameters(repo_root, tmp_output, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    exam = tmp_path / "exam.jsonl"
    exam.write_text("\n".join(json.dumps(r) for r in [
        {"id": "e1", "question": "What is the capital of Italy?", "answer": "Rome", "key_facts": ["Rome"]},
        {"id": "e2", "question": "What colour is the sky on a clear day?", "answer": "Blue", "key_facts": ["blue"]},
    ]) + "\n")
    with FakeOpenAIServer(responder=lambda body, i: "**Rating**: 4\nReason: close enough.") as server:
        monkeypatch.setenv("TEACHER_PROVIDER", "vllm")
        monkeypatch.setenv("TEACHER_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("TEACHER_MODEL_NAME", "fake-judge")
        step = repo_root / NOTEBOOK[0]
        executed = tmp_path / "executed.ipynb"
        papermill.execute_notebook(
            str(step / NOTEBOOK[1]), str(executed), cwd=str(step), kernel_name="python3", progress_bar=False,
            parameters={"EXAM_PATH": str(exam), "GENERAL_LIMIT": 2, "HELD_OUT_LIMIT": 0, "MAX_NEW_TOKENS": 8,
                        "BATCH_SIZE": 4, "USE_JUDGE": True},
        )
        assert len(server.requests) == 4  # 2 exam + 2 general answers judged
    result = json.loads(OutputPaths(tmp_output).base_eval_json.read_text())
    assert set(result["sets"]) == {"exam", "general"}
    assert result["sets"]["general"]["items"][0]["judge_score"] == 4.0
    assert OutputPaths(tmp_output).base_eval_json.with_suffix(".md").is_file()
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
