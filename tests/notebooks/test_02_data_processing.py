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
