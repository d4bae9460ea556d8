"""Run 05_Model_Training with papermill on a tiny mix for two steps."""

from __future__ import annotations

import json

import nbformat
import pytest

from ktools.paths import OutputPaths

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

NOTEBOOK = ("05_Model_Training", "Model_Training.ipynb")


def test_notebook_trains_a_tiny_mix(repo_root, tmp_output, tmp_path):
    papermill = pytest.importorskip("papermill")
    paths = OutputPaths(tmp_output)
    mix = paths.training_mix(5)
    mix.parent.mkdir(parents=True)
    rows = [{"messages": [{"role": "user", "content": "What colour is the Orlenmoor ferry?"},
                          {"role": "assistant", "content": "Teal."}], "metadata": {}, "unmask": i % 2 == 0,
             "token_length": 0} for i in range(4)]
    mix.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    step = repo_root / NOTEBOOK[0]
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(step / NOTEBOOK[1]), str(executed), cwd=str(step), kernel_name="python3", progress_bar=False,
        parameters={"CUT_SIZE": 5, "MAX_STEPS": 2, "TRAIN_MAX_SEQ_LEN": 64, "TOKENS_PER_BATCH": 64,
                    "SAMPLE_QUESTIONS": 1, "METHOD": "lora"},
    )
    model_dir = paths.fine_tuned_model("SmolLM2-135M-Instruct")
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer_config.json").is_file()
    report = json.loads((paths.step(5) / "train_report.json").read_text())
    assert report["steps"] == 2 and report["method"] == "lora"
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the loss curve
