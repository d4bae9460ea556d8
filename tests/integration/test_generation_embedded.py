"""All four generators with the real embedded SmolLM2-135M teacher on sections of the sample document.

The hard test of the prompts and parsers: a 135M model is often off-format. With the
default options for the embedded teacher (judges auto = off, answers capped), every
generator must still yield rows, and the yield report must account for every stage.
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
    seeds = sample_seeds(repo_root, 2)
    assert len(seeds) == 2
    client = TeacherClient(teacher_url, "SmolLM2-135M-Instruct", provider="local", max_concurrency=16,
                           timeout=900, max_retries=1)
    options = GenerationOptions(number_of_summaries=2, questions_per_chunk=2, facts_per_chunk=4, qa_per_fact=1,
                                embedded_max_tokens=200, seed=7, show_progress=False)
    try:
        report = run_generation(seeds, options, client, tmp_path)
    finally:
        client.close()
    assert report.status == "complete" and not report.failures, report.summary()
    assert not any(j["enabled"] for j in report.judges.values())  # auto: off for the embedded teacher
    for g in GENERATORS:
        rows = read_jsonl(tmp_path / g / "gen.jsonl")
        assert rows, f"{g}: no rows; yield: {report.generators[g]}"
        assert all(r["question"].strip() and r["response"].strip() for r in rows)
        assert all(r["raw_document"] in {s["document"] for s in seeds} for r in rows)
    saved = read_json(tmp_path / "report.json")
    assert saved["rows"] == report.rows
    # Every teacher answer is accounted for: parsed into items, or counted unparsable/ungrounded.
    for g, data in saved["generators"].items():
        for stage, counts in data["stages"].items():
            assert counts["samples"] >= counts["unparsable"], (g, stage, counts)
