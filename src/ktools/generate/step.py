"""Step 03 in two calls: what notebook 03, `ktools generate` and the Kubeflow component all run.

    options = generation_options(settings, generators="all", questions_per_chunk=3, judges="auto")
    report = generation_step(settings, options)        # step 02's seed_data.jsonl -> output/step_03
    report = generation_step(settings, options.replace(dry_run=True), client=client)

As `documents.pipeline` is for step 02 and `evaluate.steps` for 01/06: the callers differ in
where the parameters come from (a notebook cell, flags and GENERATOR_* variables, pipeline
parameters) and in what they show or write around the run (tables; the Training Data
Generator's per-document files; the pipeline artifact), never in how the rows are made. So
the same seed, settings and teacher give byte-identical `gen.jsonl` files whichever runs it
(tests/notebooks/test_03_knowledge_generation.py checks notebook against CLI).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ktools.generate.options import GenerationOptions, normalise_generators
from ktools.generate.report import GenerationReport
from ktools.generate.run import load_seed_rows, run_generation
from ktools.paths import OutputPaths

log = logging.getLogger(__name__)

# The notebook's JUDGES / the pipeline's judges / `ktools generate --judges` (None: auto, i.e.
# on for a real teacher and off for the embedded one).
JUDGE_MODES: dict[str | bool | None, bool | None] = {"auto": None, "on": True, "off": False,
                                                     None: None, True: True, False: False}


def generation_options(settings: Any, *, generators: str | Iterable[str] | None = "all",
                       questions_per_chunk: int | None = None, judges: str | bool | None = "auto",
                       **overrides: Any) -> GenerationOptions:
    """Options from the settings (.env, environment) and the step's parameters; `overrides` are
    any other `GenerationOptions` fields (None: the settings' value stays)."""
    if judges not in JUDGE_MODES:
        raise ValueError(f"judges must be 'auto', 'on' or 'off', got {judges!r}")
    judge = JUDGE_MODES[judges]
    return GenerationOptions.from_settings(
        settings, generators=normalise_generators(generators), questions_per_chunk=questions_per_chunk,
        judge_question=judge, judge_faithfulness=judge, judge_relevancy=judge, **overrides)


def generation_step(settings: Any, options: GenerationOptions, *, client: Any = None,
                    seed: str | Path | Iterable[dict[str, Any]] | None = None, out_dir: str | Path | None = None,
                    cache_path: str | Path | None = None, paths: OutputPaths | None = None) -> GenerationReport:
    """Run the generators of `options` over the seed rows; the report (see `ktools.generate`).

    `seed`: rows or a seed JSONL (default: step 02's `seed_data.jsonl`); `out_dir`: default
    `output/step_03` of `paths` (default: from the settings); `client`: a teacher client, else
    one is built from the settings (starting the embedded teacher when no endpoint is set) and
    closed afterwards; `cache_path`: the response store, when it must live elsewhere (a volume
    that outlives a pipeline pod). Ctrl+C raises `GenerationInterrupted`; re-running resumes.
    """
    paths = paths or OutputPaths.from_settings(settings)
    rows = load_seed_rows(paths.seed_data if seed is None else seed, options.subsample)
    own_client = client is None
    if own_client:
        from ktools.llm.client import TeacherClient

        client = TeacherClient.from_settings(settings)
    out = Path(out_dir) if out_dir is not None else paths.step(3)
    log.info("step 03: %d seed chunks, generators %s, teacher %s -> %s", len(rows), ", ".join(options.generators),
             getattr(client, "model", "?"), out)
    try:
        return run_generation(rows, options, client, out, cache_path=cache_path)
    finally:
        if own_client:
            close_client(client)


def close_client(client: Any) -> None:
    """Close a teacher client once the generation worker thread is done with it.

    run_generation returns before its worker thread has closed that thread's event loop;
    closing the client meanwhile waits 10 s on that loop. Let the worker finish first.
    """
    for thread in threading.enumerate():
        if thread.name == "ktools-generation" and thread is not threading.current_thread():
            thread.join(timeout=5)
    closer = getattr(client, "close", None)
    if closer is not None:
        closer()
