"""Build 02_Data_Processing/Data_Processing.ipynb (stored without outputs).

    python tools/notebooks/build_02_data_processing.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_step_notebook

TARGET = Path(__file__).resolve().parents[2] / "02_Data_Processing" / "Data_Processing.ipynb"

CELLS = [
    new_markdown_cell(
        "# Step 02 — Data processing\n\n"
        "Your documents → markdown → token chunks → the seed dataset of step 03.\n\n"
        "1. **Convert** files (`.md .txt .html .pdf .docx`), folders (recursive) and http(s) URLs to markdown "
        "(`output/step_02/converted/`, with `manifest.json`). A bad file is listed at the end; it never stops "
        "the others.\n"
        "2. **Chunk** by tokens of the student's tokenizer, at headings/paragraphs/list items/table rows, with "
        "overlap (`output/step_02/chunks.jsonl`).\n"
        "3. **Seed**: every chunk gets `document_outline`, `domain`, `icl_document`, `icl_query_1..3` — given by "
        "you (the parameters below or a YAML file) or drafted by the teacher (cached in `icl_drafts.json`) — "
        "`ICL_MODE = \"auto\"` takes your values where they are complete and drafts the rest, `\"given\"` "
        "insists on yours, `\"teacher\"` drafts every field you left empty → `output/step_02/seed_data.jsonl`.\n\n"
        "Settings come from `.env` (this folder, then the repository root); the parameters below override them."
    ),
    new_code_cell(
        "# Parameters (papermill overrides these). Relative paths are relative to the repository root.\n"
        "SOURCES = [\"assets/sample/sample_document.md\"]  # files, folders or http(s) URLs\n"
        "CONVERTER_BACKEND = \"auto\"     # \"auto\" (default converters) or \"docling\" (optional, HTML/DOCX)\n"
        "CHUNK_MAX_TOKENS = 768               # tokens per chunk at most\n"
        "CHUNK_OVERLAP_TOKENS = 64            # tokens shared by consecutive chunks\n"
        "CHUNK_MIN_TOKENS = 128               # no tail chunk smaller than this\n"
        "TOKENIZER_MODEL_NAME = \"\"      # default: the student's tokenizer (embedded SmolLM2)\n"
        "ICL_MODE = \"auto\"              # \"auto\" (yours where complete, else drafted), \"given\" or \"teacher\"\n"
        "ICL_FILE = \"02_Data_Processing/sample_document.icl.yaml\"  # YAML {source: fields}; \"\" for none\n"
        "ICL_DOMAIN = \"\"                # these four override the file for every source when set\n"
        "ICL_OUTLINE = \"\"\n"
        "ICL_DOCUMENT = \"\"\n"
        "ICL_QUERIES = []               # exactly three questions answered by ICL_DOCUMENT\n"
        "REFRESH_DRAFTS = False         # teacher mode: re-ask even if drafts are cached",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "import pandas as pd\n"
        "from IPython.display import Markdown, display\n\n"
        "from ktools.config import find_repo_root, load_settings\n"
        "from ktools.documents import step\n"
        "from ktools.documents.errors import format_errors\n\n"
        "REPO = find_repo_root()\n"
        "settings = load_settings(step_dir=REPO / \"02_Data_Processing\", repo_root=REPO,\n"
        "                         tokenizer_model_name=TOKENIZER_MODEL_NAME or None)\n"
        "sources = step.resolve_sources(SOURCES, REPO)\n"
        "icl_file = step.resolve_sources([ICL_FILE], REPO)[0] if ICL_FILE else None\n"
        "given = step.given_from_parameters(ICL_DOMAIN, ICL_OUTLINE, ICL_DOCUMENT, ICL_QUERIES)\n"
        "step.sources_table(sources, REPO)"
    ),
    new_markdown_cell("## 1. Convert to markdown"),
    new_code_cell(
        "conversion = step.convert_step(sources, settings, backend=CONVERTER_BACKEND)\n"
        "display(step.documents_table(conversion))\n"
        "warnings = [w for d in conversion.documents for w in d.warnings]\n"
        "if warnings or conversion.errors:\n"
        "    display(Markdown(\"\\n\".join(f\"- ⚠ {w}\" for w in warnings)))\n"
        "    print(format_errors(conversion.errors))"
    ),
    new_markdown_cell("## 2. Chunk by tokens\n\nBreaks fall before headings where possible, never inside a "
                      "table row or code line; each chunk keeps its heading path and `start`/`end` offsets "
                      "into the converted file."),
    new_code_cell(
        "chunked = step.chunk_step(settings, max_tokens=CHUNK_MAX_TOKENS, overlap_tokens=CHUNK_OVERLAP_TOKENS,\n"
        "                          min_tokens=CHUNK_MIN_TOKENS)\n"
        "for warning in chunked.warnings:\n"
        "    display(Markdown(f\"- ⚠ {warning}\"))\n"
        "step.documents_table(conversion, chunks=chunked.rows)"
    ),
    new_code_cell("# NBVAL_CHECK_OUTPUT\nstep.chunks_table(chunked.rows)"),
    new_code_cell("fig = step.chunk_histogram(chunked.rows, CHUNK_MAX_TOKENS)"),
    new_markdown_cell("## 3. Seed dataset with ICL fields\n\n`origin` says where each value came from: "
                      "`given` (you), `drafted` (the teacher), `excerpt` (chosen from the document, not "
                      "written by a model) or `fallback` (the teacher's reply was unusable). Review them; "
                      "to change one, give it in `ICL_FILE` or the parameters and re-run this cell."),
    new_code_cell(
        "seeded = step.seed_step(settings, mode=ICL_MODE, given=given, icl_file=icl_file, refresh=REFRESH_DRAFTS)\n"
        "for source, fields in seeded.icl.items():\n"
        "    for note in fields.notes:\n"
        "        display(Markdown(f\"- {source}: {note}\"))\n"
        "with pd.option_context(\"display.max_colwidth\", 300):\n"
        "    display(step.icl_table(seeded.icl))"
    ),
    new_markdown_cell("## Files written"),
    new_code_cell("step.written_files(settings)"),
]


if __name__ == "__main__":
    write_step_notebook(CELLS, TARGET, "data-processing")
