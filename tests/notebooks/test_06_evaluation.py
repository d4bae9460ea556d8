"""Run 06_Evaluation with papermill on a few questions (the 'fine-tuned' model is the base itself)."""

from __future__ import annotations

import json

import nbformat
import pytest

from ktools.models import embedded_model_dir
from ktools.paths import OutputPaths

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

NOTEBOOK = ("06_Evaluation", "Evaluation.ipynb")


def test_notebook_compares_with_tiny_parameters(repo_root, tmp_output, tmp_path):
    papermill = pytest.importorskip("papermill")
    paths = OutputPaths(tmp_output)
    paths.eval_set.parent.mkdir(parents=True)
    paths.eval_set.write_text(json.dumps({"id": "h1", "question": "What colour is the ferry?",
                                          "answer": "Teal."}) + "\n")
    step = repo_root / NOTEBOOK[0]
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(step / NOTEBOOK[1]), str(executed), cwd=str(step), kernel_name="python3", progress_bar=False,
        parameters={"TUNED_MODEL": str(embedded_model_dir()), "EXAM_LIMIT": 2, "GENERAL_LIMIT": 2,
                    "HELD_OUT_LIMIT": 5, "MAX_NEW_TOKENS": 8, "USE_JUDGE": False, "SIDE_BY_SIDE": 2},
    )
    report = json.loads(paths.eval_report_json.read_text())
    assert set(report["comparison"]) >= {"general", "held_out"}
    assert len(report["side_by_side"]["general"]) == 2
    assert paths.eval_report_md.is_file() and (paths.step(6) / "eval_metrics.png").is_file()
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
