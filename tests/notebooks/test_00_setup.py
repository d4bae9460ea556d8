"""00_Setup/Setup.ipynb executed by papermill: the notebook itself starts the embedded
teacher on a free (non-default) local port, creates .env in a temp place, and never shows the key."""

from __future__ import annotations

import json
import socket

import nbformat
import pytest

from ktools.llm.local import lifecycle

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

SECRET = "sk-test-DO-NOT-SHOW-4242424242"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_setup_notebook(repo_root, tmp_output, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    source = repo_root / "00_Setup" / "Setup.ipynb"
    notebook = nbformat.read(source, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")

    port = _free_port()
    monkeypatch.setenv("TEACHER_PROVIDER", "local")
    monkeypatch.setenv("TEACHER_MODEL_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("TEACHER_MODEL_API_KEY", SECRET)
    env_file = tmp_path / "dot.env"
    executed = tmp_path / "Setup.executed.ipynb"
    try:
        papermill.execute_notebook(
            str(source), str(executed), cwd=str(repo_root / "00_Setup"), kernel_name="python3",
            parameters={"ENV_FILE": str(env_file), "STRICT": True, "TEACHER_PROMPT": "Say hello."},
            progress_bar=False, execution_timeout=900)
        assert lifecycle.probe(f"http://127.0.0.1:{port}/v1").ready  # started by the notebook
    finally:
        lifecycle.stop("127.0.0.1", port)

    text = executed.read_text()
    assert SECRET not in text
    assert env_file.read_text() == (repo_root / "00_Setup" / ".env.example").read_text()
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(executed, as_version=4).cells])
    assert "TEACHER_MODEL_API_KEY" in outputs and "sk-" in outputs  # the masked key is shown
    assert "answered in" in outputs and "All set." in outputs
