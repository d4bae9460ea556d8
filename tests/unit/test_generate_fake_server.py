"""The engine through the real TeacherClient against the scripted fake server, with faults."""

from __future__ import annotations

import pytest

from ktools.generate import GenerationOptions, run_generation
from ktools.io import read_jsonl
from ktools.llm.client import TeacherClient
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.scripted import ScriptedClient, scripted_responder


def seeds(k=2):
    return [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth, due each March.",
             "chunk_id": f"c{i}", "source": "doc.md"} for i in range(k)]


def opts(**kw):
    base = dict(generators=("document_based_qa", "key_facts_to_qa"), questions_per_chunk=2, show_progress=False,
                judge_question=False, judge_faithfulness=False, judge_relevancy=False)
    base.update(kw)
    return GenerationOptions(**base)


def client_for(server, **kw):
    return TeacherClient(server.base_url, "fake-model", max_concurrency=4, max_retries=kw.pop("max_retries", 3),
                         timeout=kw.pop("timeout", 5.0), **kw)


def test_transient_faults_are_retried_and_the_output_matches_a_clean_run(tmp_path):
    with FakeOpenAIServer(responder=scripted_responder) as clean:
        run_generation(seeds(), opts(), client_for(clean), tmp_path / "clean")
    faults = ["429:0", "500", "reset", "empty", "garbage", "503", "ok", "429ms:50"]
    with FakeOpenAIServer(responder=scripted_responder, faults=faults) as server:
        client = client_for(server)
        report = run_generation(seeds(), opts(), client, tmp_path / "faulty")
        assert report.ok and client.stats["retries"] >= 6
    for g in ("document_based_qa", "key_facts_to_qa"):
        assert (tmp_path / "faulty" / g / "gen.jsonl").read_bytes() == (tmp_path / "clean" / g / "gen.jsonl").read_bytes()


def test_a_request_failing_for_good_fails_only_its_chunk(tmp_path):
    def responder(body, index):
        return scripted_responder(body, index)

    # Enough 500s in a row to exhaust one request's retries; later requests are fine.
    with FakeOpenAIServer(responder=responder, faults=["500"] * 3) as server:
        report = run_generation(seeds(), opts(generators=("document_based_qa",), max_concurrency=1),
                                client_for(server, max_retries=2), tmp_path)
    assert len(report.failures) == 1 and report.failures[0]["chunk_id"] == "c0"
    assert "500" in report.failures[0]["error"]
    assert [r["chunk_id"] for r in read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")] == ["c1", "c1"]
    with FakeOpenAIServer(responder=scripted_responder) as server:
        report = run_generation(seeds(), opts(generators=("document_based_qa",), retry_failed=True),
                                client_for(server), tmp_path)
        assert report.ok and len(server.requests) == 1  # only the failed chunk's request


def test_truncated_and_malformed_replies_are_flagged_and_kept_aside(tmp_path):
    def responder(body, index):
        text = scripted_responder(body, index)
        user = body["messages"][-1]["content"]
        if user.startswith("List the key facts"):
            return "<<<malformed>>> [QUESTION [ANSWER"
        return {"text": text, "finish_reason": "length"}

    with FakeOpenAIServer(responder=responder) as server:
        report = run_generation(seeds(1), opts(), client_for(server), tmp_path)
    dq = read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")
    assert dq and all(r["truncated"] for r in dq)
    assert len(dq) == 1  # the last pair of a truncated answer may be cut: dropped
    rejected = read_jsonl(tmp_path / "key_facts_to_qa" / "rejected.jsonl")
    # Parsed liberally into one "fact", which shares no word with the chunk: kept aside as ungrounded.
    assert rejected[0]["reason"].startswith("not grounded") and "malformed" in rejected[0]["raw"]
    assert report.generators["key_facts_to_qa"]["stages"]["facts"]["ungrounded"] == 1
    assert report.generators["key_facts_to_qa"]["chunks"]["rejected_all"] == 1


def test_n_samples_survive_a_provider_that_ignores_n(tmp_path):
    with FakeOpenAIServer(responder=scripted_responder, supports_n=False) as server:
        # The scripted teacher asks the same questions about every summary: no de-duplication here.
        run_generation(seeds(1), opts(generators=("detailed_summary",), number_of_summaries=3, dedup_threshold=None),
                       client_for(server), tmp_path)
    rows = read_jsonl(tmp_path / "detailed_summary" / "gen.jsonl")
    assert {r["item_id"] for r in rows} == {"c0/summary/0", "c0/summary/1", "c0/summary/2"}


def test_chunks_are_pipelined_not_staged(tmp_path):
    """With one slot, a chunk's later stages go before the next chunk's first stage: no stage barrier."""
    client = ScriptedClient(max_concurrency=1, latency=0.05)
    run_generation(seeds(3), opts(generators=("extractive_summary",), number_of_summaries=2, max_concurrency=1),
                   client, tmp_path)
    order = [next(k for k in range(3) if f"Chunk {k}" in m[-1]["content"]) for m, _, _ in client.requests]
    assert len(order) == 3 * (1 + 2 + 4)
    last_of_chunk0 = max(i for i, k in enumerate(order) if k == 0)
    # Chunk 0 is answered through all its stages before chunk 2 even gets its summary: a stage
    # barrier would have sent every chunk's summary request first.
    assert last_of_chunk0 < order.index(2)
    assert client.max_in_flight == 1


@pytest.mark.parametrize("concurrency", [3])
def test_global_concurrency_limit_holds_across_generators(tmp_path, concurrency):
    with FakeOpenAIServer(responder=scripted_responder, latency=0.02) as server:
        run_generation(seeds(3), opts(generators=("document_based_qa", "key_facts_to_qa", "detailed_summary"),
                                      number_of_summaries=2),
                       TeacherClient(server.base_url, "fake-model", max_concurrency=concurrency), tmp_path)
        assert server.max_in_flight <= concurrency
