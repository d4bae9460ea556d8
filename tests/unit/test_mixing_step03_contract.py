"""Mixing reads what step 03's engine really writes (in-process scripted teacher, no network)."""

from __future__ import annotations

import pytest

from ktools.io import read_jsonl
from ktools.mixing import MixOptions, build_mixes
from ktools.mixing.tokens import reference_count
from ktools.paths import GENERATORS, OutputPaths

generate = pytest.importorskip("ktools.generate")
scripted = pytest.importorskip("ktools.testing.scripted")


def test_build_mixes_on_real_step03_output(tmp_output):
    from ktools.models import load_tokenizer

    seeds = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March.",
              "chunk_id": f"doc.md#{i}", "source": "doc.md", "document_outline": "Harbour rules",
              "domain": "regulation", "icl_document": "Ships dock at pier 4.", "icl_query_1": "Where do ships dock?"}
             for i in range(4)]
    options = generate.GenerationOptions(number_of_summaries=3, questions_per_chunk=2, show_progress=False,
                                         judge_question=False, judge_faithfulness=False, judge_relevancy=False)
    generate.run_generation(seeds, options, scripted.ScriptedClient(), tmp_output / "step_03")
    paths = OutputPaths(tmp_output)
    tokenizer = load_tokenizer()
    report = build_mixes(MixOptions(cut_sizes=[2], eval_share=0.2, seed=1, components=(), corpus_exam=False), paths, tokenizer=tokenizer,
                         progress=False)
    assert {r["generator"] for r in report.inputs if r["status"] == "ok"} == set(GENERATORS)
    rows = read_jsonl(paths.training_mix(2))
    assert {r["metadata"]["generator"] for r in rows} == set(GENERATORS)
    assert all(r["token_length"] == reference_count(tokenizer, r["messages"]) for r in rows)
    assert read_jsonl(paths.eval_set)
