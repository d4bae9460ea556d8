"""Build 06_Evaluation/Evaluation.ipynb (stored without outputs).

    python tools/notebooks/build_06_evaluation.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_step_notebook

TARGET = Path(__file__).resolve().parents[2] / "06_Evaluation" / "Evaluation.ipynb"

CELLS = [
    new_markdown_cell(
        "# Step 06 — Evaluation: did the model learn the document?\n\n"
        "The base model and the fine-tuned model (step 05) answer the same eval sets — the exam, the "
        "general-knowledge questions (forgetting check) and step 04's held-out questions — and are scored with "
        "the same metrics as in step 01. Differences are paired (same questions) with 95% bootstrap intervals; "
        "a verdict says *better* or *worse* only when the interval excludes zero.\n\n"
        "The base model's results are reused set by set from step 01 (or an earlier run of this step) when the "
        "weights, questions and options match; step 01 usually ran before step 04 wrote the held-out set, so "
        "only that set is scored for the base model here. "
        "Outputs: `output/step_06/eval_report.json`, `eval_report.md`, `eval_metrics.png`, "
        "`per_question_<set>.png`."
    ),
    new_code_cell(
        "# Parameters (papermill overrides these). None / \"\" = the default.\n"
        "STUDENT_MODEL_NAME = \"\"   # the base model (default: the embedded SmolLM2-135M-Instruct)\n"
        "TUNED_MODEL = \"\"          # default: output/fine_tuned_model/<student>\n"
        "SOURCES = None            # the documents of step 02 (set by `ktools run -p SOURCES`); None: from step 02\n"
        "EXAM_PATH = \"\"            # your own exam (JSONL question/answer/key_facts); default: the sample's for the sample\n"
        "EXAM_LIMIT = None\n"
        "GENERAL_LIMIT = None      # 0 skips the set\n"
        "HELD_OUT_LIMIT = 60       # 0 skips the set\n"
        "MAX_NEW_TOKENS = 64\n"
        "BATCH_SIZE = 16\n"
        "USE_JUDGE = None          # None: auto (off for the embedded teacher); True/False force it\n"
        "REUSE_BASE = True         # reuse step 01's base results for the sets where they match\n"
        "SIDE_BY_SIDE = 8          # answers shown side by side per set",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "import pandas as pd\n"
        "from IPython.display import Image, Markdown, display\n\n"
        "from ktools.config import find_repo_root, load_settings\n"
        "from ktools.evaluate import EvalOptions, comparison_rows, default_eval_sets, make_judge_client, run_evaluation\n"
        "from ktools.evaluate.headline import headline_markdown\n"
        "from ktools.paths import OutputPaths\n\n"
        "REPO = find_repo_root()\n"
        "settings = load_settings(step_dir=REPO / \"06_Evaluation\", repo_root=REPO,\n"
        "                         student_model_name=STUDENT_MODEL_NAME or None)\n"
        "paths = OutputPaths.from_settings(settings, repo_root=REPO)\n"
        "tuned_model = TUNED_MODEL or str(paths.fine_tuned_model(settings.student_model_name))\n"
        "sets = default_eval_sets(paths, REPO, held_out_limit=HELD_OUT_LIMIT, exam_limit=EXAM_LIMIT,\n"
        "                         general_limit=GENERAL_LIMIT, exam_path=EXAM_PATH or None, sources=SOURCES)\n"
        "judge = make_judge_client(settings, USE_JUDGE)\n"
        "options = EvalOptions(max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH_SIZE, judge=judge is not None)\n"
        "pd.DataFrame([{\"set\": name, \"questions\": len(items)} for name, items in sets.items()])"
    ),
    new_markdown_cell("## Evaluate both models"),
    new_code_cell(
        "report = run_evaluation(settings.student_model_name, tuned_model, sets, paths, options=options,\n"
        "                        judge_client=judge, reuse_base=REUSE_BASE, side_by_side_n=SIDE_BY_SIDE)\n"
        "if judge is not None:\n"
        "    judge.close()\n"
        "pd.DataFrame(comparison_rows(report))"
    ),
    new_markdown_cell("## At a glance\n\nWhat the student learned of the documents and kept of what it knew: ratios to "
                      "the base with 95% paired intervals."),
    new_code_cell("display(Markdown(\"\\n\".join(headline_markdown(report[\"headline\"])[2:])))"),
    new_markdown_cell("## Plots\n\nMetric means with 95% intervals, then per-question changes (green = better)."),
    new_code_cell("for plot in report[\"plots\"].values():\n    display(Image(plot))"),
    new_markdown_cell("## Side by side"),
    new_code_cell(
        "for name, rows in report[\"side_by_side\"].items():\n"
        "    display(Markdown(f\"### {name}\"))\n"
        "    display(pd.DataFrame(rows)[[\"question\", \"reference\", \"base\", \"tuned\"]])"
    ),
]


if __name__ == "__main__":
    write_step_notebook(CELLS, TARGET, "evaluation")
