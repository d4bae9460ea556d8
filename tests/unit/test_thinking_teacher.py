"""A teacher that thinks 300-800 tokens before every answer, in each form servers send it:
all four generators and the judges keep (nearly) the rows they keep without thinking.
Real TeacherClient over HTTP against the scripted server; judges on, default caps (the
judges' 256-token cap is exactly what a thinking teacher overruns)."""

from __future__ import annotations

import pytest

from ktools.generate import GenerationOptions, run_generation
from ktools.io import read_jsonl
from ktools.llm.client import TeacherClient
from ktools.paths import GENERATORS
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.provider_fakes import THINK_STYLES, thinking
from ktools.testing.scripted import scripted_responder

SEEDS = [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March "
                      "to the harbour office, and late payers lose their berth.",
          "chunk_id": f"c{i}", "source": "doc.md"} for i in range(2)]


def run(tmp_path, responder, model="fake-model", **kw):
    options = GenerationOptions(number_of_summaries=2, questions_per_chunk=2, facts_per_chunk=3, show_progress=False,
                                judge_question=True, judge_faithfulness=True, judge_relevancy=True, **kw)
    with FakeOpenAIServer(responder=responder) as server:
        client = TeacherClient(server.base_url, model, provider="vllm", max_concurrency=16, max_retries=1)
        report = run_generation(SEEDS, options, client, tmp_path)
        client.close()
    return report, server


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    report, _ = run(tmp_path_factory.mktemp("plain"), scripted_responder)
    assert report.status == "complete"
    return report


@pytest.mark.parametrize("style", THINK_STYLES)
def test_a_thinking_teacher_keeps_at_least_95_percent_of_the_rows(plain, tmp_path, style):
    model = "openai/gpt-oss-20b" if style == "harmony" else "fake-model"
    report, server = run(tmp_path, thinking(scripted_responder, style), model=model)
    assert report.status == "complete", report.status_reason
    for g in GENERATORS:
        kept, before = report.generators[g]["rows"], plain.generators[g]["rows"]
        assert before > 0 and kept >= 0.95 * before, (g, kept, before)
        for row in read_jsonl(tmp_path / g / "gen.jsonl"):
            text = row["question"] + row["response"]
            assert "think" not in text and "Okay, let me think" not in text and "<|" not in text
            assert row["reasoning"] is None  # not asked for (ENABLE_REASONING off)
    # The judges' 256-token cap was overrun and retried with a larger one, not silently rejected.
    judge_caps = {b["max_tokens"] for b in server.requests if "Score" in b["messages"][-1]["content"]}
    assert judge_caps == {256, 1024}
    assert sum(s.get("retried", 0) for g in report.generators.values() for s in g["stages"].values()) > 0


def test_reasoning_is_kept_when_asked_and_the_judges_get_a_thinking_cap(tmp_path):
    report, server = run(tmp_path, thinking(scripted_responder, "think_tags"), enable_reasoning=True)
    assert report.status == "complete"
    rows = read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")
    assert rows and all(r["reasoning"].startswith("Okay, let me think") for r in rows)
    judge_caps = {b["max_tokens"] for b in server.requests if "Score" in b["messages"][-1]["content"]}
    assert judge_caps == {1024}  # sized for a thinking teacher up front: no retries needed
    assert all(b["chat_template_kwargs"] == {"enable_thinking": True} for b in server.requests
               if "Score" not in b["messages"][-1]["content"])


def test_a_cap_too_small_even_after_the_retry_is_recorded_as_truncated(tmp_path):
    report, _ = run(tmp_path, thinking(scripted_responder, "reasoning_content", tokens=(3000, 3000)),
                    generators=("document_based_qa",), truncation_retry_max_tokens=2048)
    assert report.status == "empty"
    assert "truncated" in report.status_reason
    stages = report.generators["document_based_qa"]["stages"]["qa_pairs"]
    assert stages["truncated"] == 2 and stages["retried"] == 2 and stages["unparsable"] == 0
    rejected = read_jsonl(tmp_path / "document_based_qa" / "rejected.jsonl")
    assert rejected and all(r["reason"].startswith("truncated") for r in rejected)


def test_thinking_is_turned_off_per_stage_with_the_servers_knob(tmp_path):
    report, server = run(tmp_path, scripted_responder, generators=("document_based_qa",),
                         stage_thinking={"judges": "off", "qa_pairs": "on"})
    assert report.status == "complete"
    for body in server.requests:
        judge = "Score" in body["messages"][-1]["content"]
        assert body["chat_template_kwargs"] == {"enable_thinking": not judge}


def test_reasoning_effort_for_openai_style_providers(tmp_path):
    options = GenerationOptions(generators=("document_based_qa",), questions_per_chunk=1, show_progress=False,
                                judge_question=True, judge_faithfulness=False, judge_relevancy=False,
                                stage_thinking={"judges": "minimal"})
    with FakeOpenAIServer(responder=scripted_responder) as server:
        client = TeacherClient(server.base_url, "o4-mini", provider="openai", api_key="sk-test", max_retries=0)
        run_generation(SEEDS[:1], options, client, tmp_path)
        client.close()
    efforts = {("Score" in b["messages"][-1]["content"], b.get("reasoning_effort")) for b in server.requests}
    assert efforts == {(True, "minimal"), (False, None)}


def test_without_the_retry_cut_off_judges_make_an_empty_run_that_says_why(tmp_path):
    # Issue 13's first case: judges cut off at 256 tokens by a thinking teacher rejected every pair
    # and the run still said "complete". Now (with the retry turned off to reproduce it) it says empty.
    report, _ = run(tmp_path, thinking(scripted_responder, "reasoning_content"), generators=("document_based_qa",),
                    truncation_retry_factor=1)
    assert report.status == "empty" and report.rows == 0
    assert "rejected by the question judge" in report.status_reason
    assert report.generators["document_based_qa"]["stages"]["judge_question"]["truncated"] > 0
    rejected = read_jsonl(tmp_path / "document_based_qa" / "rejected.jsonl")
    assert rejected and all(r["reason"] == "judge reply truncated" for r in rejected)
