"""Step 03: the four generators over one resumable, pipelined engine.

The step's entry point (notebook 03, `ktools generate` and the Kubeflow component call it;
`ktools.generate.step`)::

    options = generation_options(settings, generators="all", questions_per_chunk=3, judges="auto")
    report = generation_step(settings, options, client=None, seed=None, out_dir=None)

Engine API underneath (stable)::

    from ktools.generate import GenerationOptions, run_generation, arun_generation

    options = GenerationOptions(
        generators=("extractive_summary", "detailed_summary", "key_facts_to_qa", "document_based_qa"),
        number_of_summaries=5, questions_per_chunk=3, facts_per_chunk=10, qa_per_fact=2,
        temperature=0.7, max_tokens=1024, top_p=None, stop=None, seed=None,
        extra_sampling={"top_k": 40, "repeat_penalty": 1.1},   # provider knobs, sent as extra_body
        system_message=None,              # replaces the generator prompts' system message
        extra_instructions="",            # CUSTOMISATION_PROMPT / --qa-extra-instructions
        prompt_overrides_dir=None,        # folder with <prompt>.yaml replacing built-ins
        prompt_overrides={},              # {"document_qa": "my_template.txt"} (--qa-prompt-template-file)
        judge_question=None, judge_faithfulness=None, judge_relevancy=None,  # None = auto
        question_threshold=1.0, faithfulness_threshold=1.0, relevancy_threshold=0.5,
        max_concurrency=None, subsample=None, retry_failed=False,
        dry_run=False, dry_run_chunks=2, token_budget=None, enable_reasoning=False,
        few_shot=None,                    # None = auto (off for the embedded teacher)
        embedded_max_tokens=320,          # answer cap applied only to the embedded teacher
        stage_max_tokens={},              # per-stage caps for any teacher, e.g. {"questions": 200}
        embedded_stage_max_tokens={"summaries": 192},  # per-stage caps for the embedded teacher only
        show_progress=True,
    )
    report = run_generation(seed, options, client=None, out_dir=None)   # blocking, Jupyter-safe
    report = await arun_generation(seed, options, client, out_dir)      # in async code

- `seed`: path of a seed JSONL (`output/step_02/seed_data.jsonl`) or an iterable of
  dicts with at least `document` and a unique `chunk_id` (optional: `source`,
  `document_outline`, `domain`, `icl_document`, `icl_query_1..3`). `load_seed_rows`
  validates them.
- `client`: a `ktools.llm.client.TeacherClient` (anything with `model`, optional
  `max_concurrency` and `async achat(messages, params, n) -> ChatResult`). None: one
  is built from the settings (.env / environment) and closed afterwards.
- `out_dir`: the step-03 folder (default `output/step_03`). Writes
  `<generator>/gen.jsonl`, `<generator>/rejected.jsonl`, `report.json` and keeps the
  response store `responses.sqlite` there (`cache_path=` to put it elsewhere).
- Returns a `GenerationReport`: `.status` (complete | incomplete | interrupted |
  budget_reached | dry_run), `.rows`, `.requests` (sent / cached / failed / tokens),
  `.generators` (per stage counts, chunk statuses, judge rejections), `.documents`,
  `.failures`, `.files`, `.estimate` + `.samples` (dry run), `.table()`,
  `.documents_table()`, `.summary()`, `.to_dict()` (= report.json).
- Ctrl+C: `run_generation` raises `GenerationInterrupted` (a KeyboardInterrupt) with
  `.report`; what was answered is stored, outputs are rebuilt from finished chunks, and
  running the same call again resumes.

Judges default to "auto": on for a real teacher, off for the embedded SmolLM2-135M,
which cannot judge (it scores nearly everything the same, so judges would only
discard data at random); switch them on explicitly to override. For the same model
the few-shot example in the question prompt is off by default (it copies the example
questions verbatim instead of asking its own) and answers are capped at 320 tokens.

Row fields of gen.jsonl: question, response, document, raw_document,
document_outline, domain, chunk_id, source, generator, item_id, reasoning, truncated,
judge_question, judge_faithfulness, judge_relevancy (+ key_fact for key_facts_to_qa).
"""

from __future__ import annotations

from ktools.generate.flows import FLOWS, Flow, Step
from ktools.generate.options import JUDGES, GenerationOptions, normalise_generators
from ktools.generate.report import GenerationReport, sample_rows
from ktools.generate.run import GenerationInterrupted, arun_generation, load_seed_rows, run_generation
from ktools.generate.status import failed_chunks, status_counts
from ktools.generate.step import generation_options, generation_step
from ktools.generate.store import ResponseStore, request_hash, response_key

__all__ = [
    "FLOWS",
    "JUDGES",
    "Flow",
    "GenerationInterrupted",
    "GenerationOptions",
    "GenerationReport",
    "ResponseStore",
    "Step",
    "arun_generation",
    "failed_chunks",
    "generation_options",
    "generation_step",
    "load_seed_rows",
    "normalise_generators",
    "request_hash",
    "response_key",
    "run_generation",
    "sample_rows",
    "status_counts",
]
