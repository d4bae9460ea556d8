"""Build 01_Base_Model_Evaluation/Base_Model_Evaluation.ipynb (stored without outputs).

    python tools/notebooks/build_01_base_model_evaluation.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_step_notebook

TARGET = Path(__file__).resolve().parents[2] / "01_Base_Model_Evaluation" / "Base_Model_Evaluation.ipynb"

CELLS = [
    new_markdown_cell(
        "# Step 01 — Base model evaluation\n\n"
        "What does the student know *before* fine-tuning? It answers three eval sets (where present):\n\n"
        "- `exam` — hand-written questions about the sample document (`assets/sample/exam.jsonl`, or your own);\n"
        "- `general` — general-knowledge questions the base model gets right (`assets/general_questions.jsonl`), "
        "to detect forgetting later;\n"
        "- `held_out` — generated Q&A held out by step 04 (`output/step_04/eval_set.jsonl`), once it exists.\n\n"
        "Metrics: the mean negative log-likelihood of the reference answer given the question (teacher-forced, "
        "deterministic), token F1, ROUGE-L, key-fact hit rate, and an LLM judge (the configured teacher scores "
        "1–5 against the reference). Means come with 95% bootstrap intervals. Results go to "
        "`output/step_01/base_eval.json` (+ `.md`, `.png`); step 06 reuses them."
    ),
    new_code_cell(
        "# Parameters (papermill overrides these). None / \"\" = the default.\n"
        "STUDENT_MODEL_NAME = \"\"   # default: the embedded SmolLM2-135M-Instruct\n"
        "SOURCES = None            # the documents of step 02 (set by `ktools run -p SOURCES`); None: from step 02\n"
        "EXAM_PATH = \"\"            # your own exam (JSONL question/answer/key_facts); default: the sample's for the sample\n"
        "EXAM_LIMIT = None         # first N exam questions\n"
        "GENERAL_LIMIT = None      # first N general questions (0 skips the set)\n"
        "HELD_OUT_LIMIT = 60       # first N held-out questions from step 04 (0 skips the set)\n"
        "MAX_NEW_TOKENS = 64       # answer length (greedy)\n"
        "BATCH_SIZE = 16\n"
        "USE_JUDGE = None          # None: judge with the configured teacher unless it is the embedded 135M one\n"
        "                          # (it cannot grade); True/False force it. Failures are recorded, not fatal.",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "import pandas as pd\n"
        "from IPython.display import Image, Markdown, display\n\n"
        "from ktools.config import find_repo_root, load_settings\n"
        "from ktools.evaluate import (\n"
        "    EvalOptions,\n"
        "    default_eval_sets,\n"
        "    make_judge_client,\n"
        "    run_base_evaluation,\n"
        "    summary_rows,\n"
        ")\n"
        "from ktools.paths import OutputPaths\n\n"
        "REPO = find_repo_root()\n"
        "settings = load_settings(step_dir=REPO / \"01_Base_Model_Evaluation\", repo_root=REPO,\n"
        "                         student_model_name=STUDENT_MODEL_NAME or None)\n"
        "paths = OutputPaths.from_settings(settings, repo_root=REPO)\n"
        "sets = default_eval_sets(paths, REPO, held_out_limit=HELD_OUT_LIMIT, exam_limit=EXAM_LIMIT,\n"
        "                         general_limit=GENERAL_LIMIT, exam_path=EXAM_PATH or None, sources=SOURCES)\n"
        "judge = make_judge_client(settings, USE_JUDGE)\n"
        "options = EvalOptions(max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH_SIZE, judge=judge is not None)\n"
        "pd.DataFrame([{\"set\": name, \"questions\": len(items)} for name, items in sets.items()])"
    ),
    new_markdown_cell("## Evaluate"),
    new_code_cell(
        "result = run_base_evaluation(settings.student_model_name, sets, paths, options=options, judge_client=judge)\n"
        "if judge is not None:\n"
        "    judge.close()\n"
        "pd.DataFrame(summary_rows(result))"
    ),
    new_code_cell("display(Image(str(paths.base_eval_json.with_suffix(\".png\"))))"),
    new_markdown_cell("## Answers"),
    new_code_cell(
        "for name, data in result[\"sets\"].items():\n"
        "    display(Markdown(f\"### {name}\"))\n"
        "    display(pd.DataFrame(data[\"items\"])[[\"id\", \"question\", \"reference\", \"prediction\", \"nll\",\n"
        "                                          \"token_f1\", \"key_fact_hit\", \"judge_score\"]].head(10))"
    ),
]


if __name__ == "__main__":
    write_step_notebook(CELLS, TARGET, "base-eval")
