"""Run 04_Knowledge_Mixing/Knowledge_Mixing.ipynb with papermill on synthetic step-03 data."""

from __future__ import annotations

import json

import nbformat
import pytest

from ktools.io import read_jsonl
from ktools.paths import OutputPaths
from ktools.testing.synthetic_generated import SyntheticShape, write_synthetic_step03

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def test_notebook_runs_on_synthetic_step03(repo_root, tmp_output, tmp_path):
    papermill = pytest.importorskip("papermill")
    shape = SyntheticShape(n_chunks=4, summaries_per_chunk=5, qa_per_summary=3, words_per_chunk=150,
                           words_per_summary=50)
    write_synthetic_step03(tmp_output, shape, seed=9)
    step = repo_root / "04_Knowledge_Mixing"
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(step / "Knowledge_Mixing.ipynb"), str(executed), cwd=str(step), kernel_name="python3",
        parameters={"CUT_SIZES": "2,50", "QA_PER_DOC": 2, "SAVE_GPT_OSS_FORMAT": True, "SAVE_ALPACA": True,
                    "MIX_MAX_SEQ_LEN": 2048, "EVAL_SHARE": 0.2, "SEED": 1,
                    "DROP_INVENTED": False},  # synthetic rows: random words, unrelated to their chunk
        progress_bar=False,
    )
    paths = OutputPaths(tmp_output)
    assert read_jsonl(paths.training_mix(2))
    assert not paths.training_mix(50).exists()  # infeasible with 5 summaries per chunk
    assert (paths.training_mix_dir / "gpt_oss" / "combined_cut_2x.jsonl").is_file()
    assert (paths.training_mix_dir / "alpaca" / "combined_cut_2x.jsonl").is_file()
    assert read_jsonl(paths.eval_set)
    stats = json.loads(paths.mix_stats.read_text())
    assert stats["options"]["qa_per_doc"] == 2 and stats["cuts"] == [2]
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the histograms
