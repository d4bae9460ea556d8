"""Structured output: JSON schemas where the provider honours them, the tag parsers as the fallback
when a server ignores them; the real client over HTTP against the scripted server."""

from __future__ import annotations

import pytest

from ktools.generate import GenerationOptions, run_generation
from ktools.generate.structured import parse_structured, parse_structured_judge
from ktools.io import read_jsonl
from ktools.llm.client import TeacherClient
from ktools.paths import GENERATORS
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.provider_fakes import json_schema_honoured
from ktools.testing.scripted import scripted_responder

SEEDS = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March "
                      "to the harbour office.", "chunk_id": f"c{i}", "source": "doc.md"} for i in range(2)]


def run(tmp_path, responder, provider="vllm", mode="auto"):
    options = GenerationOptions(number_of_summaries=2, questions_per_chunk=2, facts_per_chunk=3, show_progress=False,
                                judge_question=True, judge_faithfulness=True, judge_relevancy=True,
                                structured_output=mode)
    with FakeOpenAIServer(responder=responder) as server:
        client = TeacherClient(server.base_url, "m", provider=provider, api_key="k", max_retries=0)
        report = run_generation(SEEDS, options, client, tmp_path)
        client.close()
    return report, server.requests


def questions(folder):
    return {g: [r["question"] for r in read_jsonl(folder / g / "gen.jsonl")] for g in GENERATORS}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    report, requests = run(folder, scripted_responder, mode="off")
    assert not any("response_format" in b for b in requests)  # off: requests as before
    return report, questions(folder)


def test_a_server_honouring_the_schema_gives_the_same_rows_read_as_json(plain, tmp_path):
    report, requests = run(tmp_path, json_schema_honoured(scripted_responder))
    assert report.status == "complete" and questions(tmp_path) == plain[1]
    schemas = {b["response_format"]["json_schema"]["name"] for b in requests if "response_format" in b}
    assert schemas == {"questions", "facts", "qa_pairs", "judge_score"}
    unschema = [b["messages"][-1]["content"] for b in requests if "response_format" not in b]
    assert unschema and all(u.rstrip().endswith("summary:") or u.startswith("Answer the question") for u in unschema)
    stages = {name: s for g in report.generators.values() for name, s in g["stages"].items()}
    assert stages["questions"]["structured"] > 0 and stages["qa_pairs"]["structured"] > 0
    assert all(s["unparsable"] == 0 for s in stages.values())


def test_a_server_ignoring_the_schema_falls_back_to_the_tag_parsers(plain, tmp_path):
    report, requests = run(tmp_path, scripted_responder)
    assert any("response_format" in b for b in requests)
    assert report.status == "complete" and questions(tmp_path) == plain[1]
    assert all(s.get("structured", 0) == 0 for g in report.generators.values() for s in g["stages"].values())


def test_auto_sends_no_schema_to_a_provider_without_one(tmp_path):
    report, requests = run(tmp_path, scripted_responder, provider="anthropic")
    assert report.status == "complete" and not any("response_format" in b for b in requests)


def test_parsing_structured_answers():
    assert parse_structured("questions", '{"questions": ["A?", " ", "B?"]}') == ["A?", "B?"]
    assert parse_structured("qa_pairs", '```json\n{"pairs": [{"question": "Q?", "answer": "A."}]}\n```') == \
        [{"question": "Q?", "response": "A."}]
    assert parse_structured("list", "1. a fact") is None  # not JSON: the fallback parser's job
    assert parse_structured("list", '{"facts": [') is None
    assert parse_structured_judge('{"score": 2, "reason": "fine"}', 2) == (1.0, "fine")
    assert parse_structured_judge('{"score": 3, "reason": "x"}', 2) is None
