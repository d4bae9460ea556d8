"""Build 03_Knowledge_Generation/Knowledge_Generation.ipynb (stored without outputs).

    python tools/notebooks/build_03_knowledge_generation.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_step_notebook

TARGET = Path(__file__).resolve().parents[2] / "03_Knowledge_Generation" / "Knowledge_Generation.ipynb"

CELLS = [
    new_markdown_cell(
        "# Step 03 — Knowledge generation\n\n"
        "Expands the seed chunks of step 02 (`output/step_02/seed_data.jsonl`) into Q&A training data with "
        "the teacher model, through four generators that share one engine:\n\n"
        "| generator | what the teacher writes | `document` of a row |\n"
        "|---|---|---|\n"
        "| `extractive_summary` | N summaries quoting the chunk, questions about each, answers from it | the summary |\n"
        "| `detailed_summary` | N summaries covering every point, questions, answers | the summary |\n"
        "| `key_facts_to_qa` | atomic self-contained facts, then Q&A per fact | the fact list |\n"
        "| `document_based_qa` | Q&A straight from the chunk | the chunk |\n\n"
        "Every teacher answer is stored (`output/step_03/responses.sqlite`) before it is used: if the kernel "
        "dies or you interrupt a cell (■ / Ctrl+C), **run the same cell again** — it sends only the requests "
        "never answered and produces the same files as an uninterrupted run.\n\n"
        "Settings come from `.env` (this folder, then the repository root); the parameters below override "
        "them when set. With no teacher endpoint configured, the embedded SmolLM2-135M teacher is started "
        "locally (small and weak: expect rough data; judges are off for it by default — see README)."
    ),
    new_code_cell(
        "# Parameters (papermill overrides these). None / \"\" = take the value from .env or the default.\n"
        "GENERATORS = \"all\"            # or e.g. \"document_based_qa,key_facts_to_qa\"\n"
        "NUMBER_OF_SUMMARIES = None     # summaries per chunk (.env NUMBER_OF_SUMMARIES, default 5)\n"
        "QUESTIONS_PER_CHUNK = 3        # questions per summary / Q&A pairs per chunk\n"
        "MAX_CONCURRENCY = None         # requests in flight for the whole run (default 16)\n"
        "SEED_DATA_SUBSAMPLE = None     # use only the first N chunks\n"
        "ENABLE_REASONING = None        # ask the teacher to think; reasoning kept per row\n"
        "CUSTOMISATION_PROMPT = None    # extra instructions added to every generator prompt\n"
        "TEMPERATURE = None             # teacher sampling temperature (default 0.7)\n"
        "MAX_TOKENS = None              # max tokens per teacher answer (default 1024)\n"
        "JUDGES = \"auto\"                # \"auto\" (off for the embedded teacher), \"on\" or \"off\"\n"
        "TOKEN_BUDGET = None            # stop cleanly after this many tokens sent (.env TOKEN_BUDGET)\n"
        "MAX_COST = None                # stop cleanly once this much money is spent (needs TEACHER_PRICE_*)\n"
        "RETRY_FAILED = False           # re-run chunks that failed in an earlier run\n"
        "ALLOW_PARTIAL = False          # True: end normally even when the run is not complete\n"
        "DRY_RUN = True                 # first run 1-2 chunks through every stage and estimate the cost\n"
        "RUN_FULL = True                # then run all chunks",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "import pandas as pd\n"
        "from IPython.display import Markdown, display\n\n"
        "from ktools.config import find_repo_root, load_settings\n"
        "from ktools.generate import generation_options, generation_step, load_seed_rows, sample_rows\n"
        "from ktools.llm.client import TeacherClient\n"
        "from ktools.paths import OutputPaths\n\n"
        "REPO = find_repo_root()\n"
        "settings = load_settings(\n"
        "    step_dir=REPO / \"03_Knowledge_Generation\", repo_root=REPO,\n"
        "    number_of_summaries=NUMBER_OF_SUMMARIES, max_concurrency=MAX_CONCURRENCY,\n"
        "    seed_data_subsample=SEED_DATA_SUBSAMPLE, enable_reasoning=ENABLE_REASONING,\n"
        "    customisation_prompt=CUSTOMISATION_PROMPT, temperature=TEMPERATURE, max_tokens=MAX_TOKENS,\n"
        "    token_budget=TOKEN_BUDGET, max_cost=MAX_COST,\n"
        ")\n"
        "paths = OutputPaths.from_settings(settings, repo_root=REPO)\n"
        "# The same step-03 calls as `ktools generate` and the Kubeflow component (ktools.generate.step).\n"
        "options = generation_options(settings, generators=GENERATORS, questions_per_chunk=QUESTIONS_PER_CHUNK,\n"
        "                             judges=JUDGES, retry_failed=RETRY_FAILED)\n"
        "pd.DataFrame(settings.as_table())  # the API key is shown masked"
    ),
    new_markdown_cell("## Teacher and seed data"),
    new_code_cell(
        "client = TeacherClient.from_settings(settings)  # starts the embedded teacher if no endpoint is set\n"
        "seed = load_seed_rows(paths.seed_data, options.subsample)\n"
        "display(Markdown(f\"Teacher: `{client.model}` · {len(seed)} chunks from `{paths.seed_data.name}` \"\n"
        "                 f\"({len({r['source'] for r in seed})} documents)\"))\n"
        "pd.DataFrame(seed)[[\"chunk_id\", \"source\", \"document\"]].head()"
    ),
    new_markdown_cell(
        "## Dry run\n\n"
        "One or two chunks through every stage of every generator: a few sample rows, and the requests and "
        "tokens (and, with `TEACHER_PRICE_INPUT` / `_OUTPUT` set, the money) the full run will need. Its "
        "answers are stored, so the full run re-uses them. If every request fails (teacher down, wrong key), "
        "the cell raises with the teacher's error."
    ),
    new_code_cell(
        "if DRY_RUN:\n"
        "    dry = generation_step(settings, options.replace(dry_run=True), client=client, seed=seed, paths=paths)\n"
        "    if dry.status == \"failed\":  # every dry-run request failed: nothing to estimate, nothing to run\n"
        "        raise RuntimeError(f\"dry run failed: {dry.status_reason}\")\n"
        "    display(dry.estimate_table())\n"
        "    display(dry.samples_table())"
    ),
    new_markdown_cell(
        "## Generate\n\n"
        "The bar counts chunks × generators; its postfix shows requests sent, answered from the store, "
        "failed, and tokens. A chunk whose requests fail (after the client's retries) is recorded and "
        "skipped; set `RETRY_FAILED = True` to retry those."
    ),
    new_code_cell(
        "report = generation_step(settings, options, client=client, seed=seed, paths=paths) if RUN_FULL else None\n"
        "display(Markdown(report.summary() if report else \"RUN_FULL is False: nothing generated.\"))"
    ),
    new_markdown_cell(
        "## Yield report\n\n"
        "Per generator: chunks done / rejected-all / failed / pending, items parsed at each stage "
        "(and how many teacher answers could not be parsed or were truncated), rows rejected by the judges, "
        "and rows kept. Saved as `output/step_03/report.json`."
    ),
    new_code_cell("report.table() if report else None"),
    new_code_cell(
        "display(report.documents_table() if report else None)  # rows per source document\n"
        "if report and report.endpoints:  # several teacher endpoints: requests, errors, latency per endpoint\n"
        "    display(report.endpoints_table())\n"
        "report.failures_table() if report else None"
    ),
    new_markdown_cell("## Sample rows"),
    new_code_cell("# NBVAL_CHECK_OUTPUT\nsample_rows(paths.step(3), options.generators, n=2)"),
    new_markdown_cell(
        "Rows the judges rejected, and teacher answers that could not be parsed (with the raw text), are "
        "in each generator's `rejected.jsonl`.\n\n## Files written"
    ),
    new_code_cell("client.close()\nreport.files_table() if report else None"),
    new_markdown_cell(
        "## Status\n\n"
        "A run is `complete` only when every chunk of every generator ran and every generator kept rows. "
        "Otherwise (`partial`, `failed`, `empty`, `budget_reached`, ...) this cell raises with the reason, "
        "after the report above, so a batch run (`ktools run`, papermill) stops here instead of mixing "
        "what is missing; `ktools run` runs this step again next time. Re-run the Generate cell to resume, "
        "or set `ALLOW_PARTIAL = True` to go on with what there is."
    ),
    new_code_cell(
        "if report is not None and report.status != \"complete\" and not ALLOW_PARTIAL:\n"
        "    raise RuntimeError(f\"generation {report.status}: {report.status_reason}\")\n"
        "report.status if report else None"
    ),
    new_markdown_cell("Next: [04_Knowledge_Mixing](../04_Knowledge_Mixing/README.md) builds training mixes "
                      "from these four datasets."),
]


if __name__ == "__main__":
    write_step_notebook(CELLS, TARGET, "generation")
