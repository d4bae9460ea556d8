"""Build 04_Knowledge_Mixing/Knowledge_Mixing.ipynb (stored without outputs).

    python tools/notebooks/build_04_knowledge_mixing.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_step_notebook

TARGET = Path(__file__).resolve().parents[2] / "04_Knowledge_Mixing" / "Knowledge_Mixing.ipynb"

CELLS = [
    new_markdown_cell(
        "# Step 04 — Knowledge mixing\n\n"
        "Turns the Q&A generated in step 03 (`output/step_03/<generator>/gen.jsonl`) into training mixes:\n\n"
        "1. **Hold out an eval set** (`EVAL_SHARE`) by whole families of paraphrases — by key fact, by summary, "
        "by chunk — so no held-out question has a sibling in training. Step 06 evaluates on it.\n"
        "2. **Cut sizes** (`CUT_SIZES`): a cut *N* keeps up to *N* distinct summaries per chunk from the two "
        "summary datasets and up to `QA_PER_DOC` Q&A per summary; key-facts and document Q&A go in whole.\n"
        "3. **Knowledge components** (`COMPONENTS`), the same in every cut, built by rule from step 02's "
        "chunks so they need no teacher: the chunk text itself, every sentence restated with its subject "
        "named in full, sentences shuffled, fill-in-the-blank (cloze) and \"what does the document say about "
        "X\" questions, step 03's document Q&A again without the document (closed-book), and a general "
        "replay share (`REPLAY_SHARE`: the base student's own answers to general prompts, against "
        "forgetting). Why and what each buys: `04_Knowledge_Mixing/README.md` and `bench/knowledge.py`.\n"
        "4. **Fidelity** (`DROP_INVENTED`): a step-03 row that states a number, or more than one name, found "
        "nowhere in its chunk is dropped: a teacher's invented facts would be learnt as facts. What was "
        "dropped, with examples, is in `mix_stats.json` (`fidelity`).\n"
        "5. **A corpus exam** (`CORPUS_EXAM`): closed-book questions about facts of *your* documents "
        "(`output/step_04/exam.jsonl`), whose sentences get no training question; any training row whose "
        "question is a near-copy of an exam question (this one or `EXAM_PATH`) is removed. Step 06 scores it.\n"
        "6. **Chat format** rows (`messages`, `metadata`, `unmask`, `token_length`), token lengths counted "
        "exactly with the student's chat template; optionally GPT-OSS and Alpaca copies.\n\n"
        "Settings come from `.env` (this folder, then the repository root); the parameters below override "
        "them when set."
    ),
    new_code_cell(
        "# Parameters (papermill overrides these). None / \"\" = take the value from .env or the default.\n"
        "CUT_SIZES = \"\"                # e.g. \"5,50\"\n"
        "QA_PER_DOC = None             # Q&A kept per summary, e.g. 3\n"
        "SAVE_GPT_OSS_FORMAT = None    # also write the GPT-OSS format (True/False)\n"
        "SAVE_ALPACA = False           # also write Alpaca JSONL of each mix\n"
        "MIX_MAX_SEQ_LEN = None        # drop rows longer than this many tokens (was MAX_SEQ_LEN)\n"
        "EVAL_SHARE = 0.1              # share of Q&A families held out for evaluation\n"
        "SEED = 42                     # sampling seed\n"
        "TOKENIZER_MODEL_NAME = \"\"     # default: the student's tokenizer (embedded SmolLM2)\n"
        "COMPONENTS = \"all\"           # knowledge components: all | none | a list | \"-cloze,-replay\" (all but)\n"
        "REPLAY_SHARE = 0.1            # share of the mix that is general replay\n"
        "REPLAY_SELF_PROMPTS = 0       # prompts the student may write itself to fill REPLAY_SHARE (0: none)\n"
        "CORPUS_EXAM = True            # build the exam of your documents (output/step_04/exam.jsonl)\n"
        "EXAM_SHARE = 0.12             # share of each document's fact sentences asked in the exam\n"
        "EXAM_PATH = \"\"                # your own exam: its questions are kept out of training too\n"
        "DROP_INVENTED = True          # drop step-03 rows stating numbers or names their chunk lacks",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "import pandas as pd\n"
        "from IPython.display import Markdown, display\n\n"
        "from ktools.config import find_repo_root, load_settings\n"
        "from ktools.mixing import MixOptions, check_feasibility, mixing_step, plot_token_histograms\n"
        "from ktools.paths import OutputPaths\n\n"
        "REPO = find_repo_root()\n"
        "settings = load_settings(\n"
        "    step_dir=REPO / \"04_Knowledge_Mixing\", repo_root=REPO,\n"
        "    cut_sizes=CUT_SIZES or None, qa_per_doc=QA_PER_DOC, save_gpt_oss_format=SAVE_GPT_OSS_FORMAT,\n"
        "    max_seq_len=MIX_MAX_SEQ_LEN, tokenizer_model_name=TOKENIZER_MODEL_NAME or None,\n"
        ")\n"
        "options = MixOptions.from_settings(settings, save_alpaca=SAVE_ALPACA, eval_share=EVAL_SHARE, seed=SEED,\n"
        "                                  components=COMPONENTS, replay_share=REPLAY_SHARE, corpus_exam=CORPUS_EXAM,\n"
        "                                  exam_share=EXAM_SHARE, exam_path=EXAM_PATH, drop_invented=DROP_INVENTED,\n"
        "                                  replay_self_prompts=REPLAY_SELF_PROMPTS)\n"
        "paths = OutputPaths.from_settings(settings, repo_root=REPO)\n"
        "pd.DataFrame([{\"option\": k, \"value\": v} for k, v in options.__dict__.items()])"
    ),
    new_markdown_cell("## Inputs and feasibility\n\nWhich step-03 datasets exist, and which cut sizes the "
                      "summaries per chunk allow (after the eval split)."),
    new_code_cell(
        "preview = check_feasibility(options, paths)\n"
        "display(pd.DataFrame(preview[\"inputs\"]))\n"
        "display(pd.DataFrame(preview[\"availability\"]))\n"
        "pd.DataFrame(preview[\"feasibility\"])"
    ),
    new_markdown_cell("## Build the mixes\n\nWrites `output/step_04/training_mix/combined_cut_{N}x.jsonl`, "
                      "`output/step_04/eval_set.jsonl` and `output/step_04/mix_stats.json`."),
    new_code_cell("# The same step-04 call as `ktools mix` and the Kubeflow component (ktools.mixing.step): a real\n"
                  "# teacher rewrites the rule-built exam questions; the embedded one is not asked.\n"
                  "report = mixing_step(settings, options, paths)\n"
                  "for note in report.notes:\n"
                  "    display(Markdown(f\"- {note}\"))"),
    new_markdown_cell("### Per cut"),
    new_code_cell("# NBVAL_CHECK_OUTPUT\nreport.cut_table()"),
    new_markdown_cell("### Per cut and dataset\n\n`items` = distinct summaries (summary datasets), key facts, "
                      "or chunks (document-based Q&A: one item per chunk)."),
    new_code_cell("# NBVAL_CHECK_OUTPUT\nreport.dataset_table()"),
    new_markdown_cell("### Knowledge components and the corpus exam\n\nRows per component (before cuts and the "
                      "length filter), the exam's size, and training rows removed because their question was a "
                      "near-copy of an exam question."),
    new_code_cell(
        "# NBVAL_CHECK_OUTPUT\n"
        "knowledge = report.knowledge\n"
        "pd.DataFrame([{\"component\": k, \"rows\": v} for k, v in knowledge[\"rows\"].items()]\n"
        "             + [{\"component\": \"corpus exam (questions)\", \"rows\": knowledge[\"exam_items\"]},\n"
        "                {\"component\": \"leaking rows removed\", \"rows\": knowledge[\"leaks_removed\"]}])"
    ),
    new_code_cell(
        "from ktools.io import iter_jsonl\n\n"
        "exam = list(iter_jsonl(paths.corpus_exam)) if paths.corpus_exam.is_file() else []\n"
        "pd.DataFrame(exam[:5], columns=[\"question\", \"answer\", \"choices\", \"written_by\"])"
    ),
    new_markdown_cell("### Eval split and dropped rows"),
    new_code_cell(
        "split = report.split\n"
        "display(pd.DataFrame({\"grouped by\": split[\"grouping\"], \"groups\": split[\"groups\"],\n"
        "                      \"held out\": split[\"held_out_groups\"], \"eval rows\": split[\"eval_rows\"],\n"
        "                      \"train rows\": split[\"train_rows\"]}).fillna(0))\n"
        "pd.DataFrame(report.dropped, columns=[\"cut\", \"format\", \"dataset\", \"reason\", \"rows\"])"
    ),
    new_markdown_cell("### Token lengths\n\nCounted exactly as "
                      "`len(tokenizer.apply_chat_template(messages, tokenize=True)[\"input_ids\"])`."),
    new_code_cell("display(pd.DataFrame([report.token_counting]))\n"
                  "fig = plot_token_histograms(report)"),
    new_markdown_cell("## Files written"),
    new_code_cell("report.files_table()"),
    new_code_cell(
        "# One training row, as the trainer will see it.\n"
        "first = next(iter_jsonl(paths.training_mix(report.cuts[0])), None)\n"
        "first"
    ),
    new_markdown_cell("Next: [05_Model_Training](../05_Model_Training/README.md) trains on one of the mixes; "
                      "[06_Evaluation](../06_Evaluation/README.md) uses `eval_set.jsonl`."),
]


if __name__ == "__main__":
    write_step_notebook(CELLS, TARGET, "mixing")
