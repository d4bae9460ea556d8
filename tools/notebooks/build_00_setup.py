"""Build 00_Setup/Setup.ipynb (stored without outputs). Run: python tools/notebooks/build_00_setup.py

The notebook only sets parameters, calls `ktools.setup_checks` and displays results.
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_step_notebook

TARGET = Path(__file__).resolve().parents[2] / "00_Setup" / "Setup.ipynb"

CELLS = [
    new_markdown_cell(
        "# 00 · Setup: is this machine ready?\n\n"
        "Checks Python and the installed extras, creates the repository's `.env` from "
        "`00_Setup/.env.example` if it is missing, shows the effective configuration (the API key "
        "masked), tells whether a GPU is present, and asks the configured teacher for one real "
        "completion (starting the embedded teacher if it is the configured one). The last cell "
        "lists what to fix. See `README.md` in this folder."),
    new_code_cell(
        "# Parameters (papermill can override these)\n"
        "CHECK_TEACHER = True  # ask the teacher for one real completion\n"
        "START_EMBEDDED_TEACHER = True  # start the embedded teacher if it is configured and not running\n"
        "CREATE_ENV_FILE = True  # create <repo>/.env from 00_Setup/.env.example when missing\n"
        "ENV_FILE = \"\"  # where to create it, empty for the repository root\n"
        "TEACHER_PROMPT = \"In one short sentence: what is the capital of France?\"\n"
        "STRICT = False  # raise at the end if any check needs attention (for automated runs)",
        metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import pandas as pd\n"
        "from IPython.display import Markdown, display\n\n"
        "from ktools import setup_checks\n"
        "from ktools.config import find_repo_root, load_settings\n\n"
        "REPO_ROOT = find_repo_root()\n"
        "checks = []\n"
        "pd.set_option(\"display.max_colwidth\", 120)"),
    new_markdown_cell("## Python, installed extras and the embedded model"),
    new_code_cell(
        "checks += [setup_checks.check_python(), *setup_checks.check_extras(), setup_checks.check_embedded_model()]\n"
        "display(pd.DataFrame(setup_checks.as_rows(checks)))"),
    new_markdown_cell("## The `.env` file"),
    new_code_cell(
        "if CREATE_ENV_FILE:\n"
        "    checks.append(setup_checks.ensure_env_file(ENV_FILE or None))\n"
        "    display(Markdown(checks[-1].detail))"),
    new_markdown_cell(
        "## Effective configuration\n\n"
        "Precedence: environment > step folder `.env` > root `.env` > default. The API key is masked."),
    new_code_cell(
        "settings = load_settings(step_dir=\"00_Setup\")\n"
        "display(pd.DataFrame(setup_checks.configuration_rows(settings)))"),
    new_markdown_cell("## GPU"),
    new_code_cell(
        "# NBVAL_CHECK_OUTPUT\n"
        "checks.append(setup_checks.check_gpu())\n"
        "display(Markdown(checks[-1].detail))"),
    new_markdown_cell("## Teacher endpoint: one real completion"),
    new_code_cell(
        "if CHECK_TEACHER:\n"
        "    checks.append(setup_checks.check_teacher(settings, prompt=TEACHER_PROMPT,\n"
        "                                             start_embedded=START_EMBEDDED_TEACHER))\n"
        "    display(pd.DataFrame([checks[-1].row()]))"),
    new_markdown_cell("## What to fix"),
    new_code_cell(
        "todo = setup_checks.fixes(checks)\n"
        "display(Markdown(\"**All set.** Continue with `01_Base_Model_Evaluation`.\" if not todo else\n"
        "                 \"**To fix:**\\n\\n\" + \"\\n\".join(f\"- {line}\" for line in todo)))\n"
        "if STRICT and todo:\n"
        "    raise RuntimeError(\"setup checks need attention: \" + \"; \".join(todo))"),
]


if __name__ == "__main__":
    write_step_notebook(CELLS, TARGET, "setup")
