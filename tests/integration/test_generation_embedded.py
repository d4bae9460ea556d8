"""All four generators with the real embedded SmolLM2-135M teacher on sections of the sample document.

The hard test of the prompts and parsers: a 135M model is often off-format. With the
default options for the embedded teacher (judges auto = off, answers capped), the run
must yield rows, and every generator that yields none must say why (its rejected rows,
with stage and reason), as the yield report promises.

Not "every generator yields rows": on a few chunks that is a coin toss with this model.
Measured on 2 chunks over seeds 1-6, every seed left some generator empty (a summary
whose questions all copied the example, a fact list about "the document" sharing no word
with it); the server's batching makes the draw differ between machines even for one
seed. On 3 chunks, 5 seeds gave 3-4 generators with rows and 11-17 rows in all.
A private teacher is started on a free port and stopped afterwards.
"""

from __future__ import annotations

import re
import socket

import pytest

from ktools.generate import GenerationOptions, run_generation
from ktools.io import read_json, read_jsonl
from ktools.llm.client import TeacherClient
from ktools.llm.local import lifecycle
from ktools.paths import GENERATORS

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_seeds(repo_root, k: int) -> list[dict]:
    text = (repo_root / "assets" / "sample" / "sample_document.md").read_text(encoding="utf-8")
    sections = [s.strip() for s in re.split(r"\n(?=### )", text) if 80 <= len(s.split()) <= 220]
    return [{"document": body, "chunk_id": f"sample_document-{i:04d}", "source": "sample_document.md",
             "document_outline": "OEFA Operating Regulations", "domain": "ferry regulations",
             "icl_document": "Vehicles longer than 6 metres must be booked at least 24 hours before departure.",
             "icl_query_1": "How long in advance must vehicles longer than 6 metres be booked?",
             "icl_query_2": "Which vehicles must be booked in advance?", "icl_query_3": ""}
            for i, body in enumerate(sections[:k])]


@pytest.fixture(scope="module")
def teacher_url():
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    lifecycle.ensure_local_teacher(url, timeout=600)
    try:
        yield url
    finally:
        lifecycle.stop("127.0.0.1", port)


def test_all_generators_yield_rows_with_the_embedded_teacher(repo_root, teacher_url, tmp_path):
    seeds = sample_seeds(repo_root, 3)
    assert len(seeds) == 3
    client = TeacherClient(teacher_url, "SmolLM2-135M-Instruct", provider="local", max_concurrency=16,
                           timeout=900, max_retries=1)
    options = GenerationOptions(number_of_summaries=2, questions_per_chunk=2, facts_per_chunk=4, qa_per_fact=1,
                                embedded_max_tokens=200, seed=7, show_progress=False)
    try:
        report = run_generation(seeds, options, client, tmp_path)
    finally:
        client.close()
    # Every chunk ran; "partial" only when the 135M teacher left a generator without rows (checked
    # below: such a generator explains itself in rejected.jsonl).
    assert not report.failures and report.status in {"complete", "partial"}, report.summary()
    assert report.status == "complete" or any(g["rows"] == 0 for g in report.generators.values())
    assert not any(j["enabled"] for j in report.judges.values())  # auto: off for the embedded teacher
    yielding = []
    for g in GENERATORS:
        rows = read_jsonl(tmp_path / g / "gen.jsonl")
        assert report.generators[g]["chunks"]["done"] + report.generators[g]["chunks"]["rejected_all"] == 3
        assert all(r["question"].strip() and r["response"].strip() for r in rows)
        assert all(r["raw_document"] in {s["document"] for s in seeds} for r in rows)
        if rows:
            yielding.append(g)
            continue
        # An empty generator explains itself: each lost answer is in rejected.jsonl with its stage and reason.
        rejected = read_jsonl(tmp_path / g / "rejected.jsonl")
        assert rejected and all(r["stage"] and r["reason"] for r in rejected), (g, report.generators[g])
    assert len(yielding) >= 2 and report.rows >= 6, report.summary()
    saved = read_json(tmp_path / "report.json")
    assert saved["rows"] == report.rows
    # Every teacher answer is accounted for: parsed into items, or counted unparsable/ungrounded.
    for g, data in saved["generators"].items():
        for stage, counts in data["stages"].items():
            assert counts["samples"] >= counts["unparsable"], (g, stage, counts)
