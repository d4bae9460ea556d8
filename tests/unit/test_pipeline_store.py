"""The Kubeflow generation step with a response store that outlives the pod.

Runs `ktools.kubeflow.steps.run_knowledge_generation` (what the component calls; no
kfp needed) against the scripted OpenAI-compatible server on 127.0.0.1: a first
attempt whose teacher starts refusing requests fails the step but keeps every answer
it got in `response_store_dir`; the second attempt resends only the rest and leaves
the same files as a run that never failed.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from ktools.kubeflow import steps
from ktools.testing.fake_openai import FakeOpenAIServer
from ktools.testing.scripted import scripted_responder

ANSWERED_BEFORE_THE_FAULTS = 6


def _step_02(tmp_path):
    folder = tmp_path / "step_02_artifact"
    folder.mkdir()
    rows = [{"document": f"Section {i}: the Orvane ferry carries {20 + i} cars and sails every {i + 1} hours.",
             "chunk_id": f"doc.md#{i}", "source": "doc.md", "document_outline": "Ferry rules",
             "domain": "transport", "icl_document": "Ships dock at pier 4.", "icl_query_1": "Where do ships dock?",
             "icl_query_2": "", "icl_query_3": ""} for i in range(2)]
    (folder / "seed_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _generate(step_02, out, server, store_dir=""):
    return steps.run_knowledge_generation(
        step_02, out, number_of_summaries=2, questions_per_chunk=2, judges="off", max_concurrency=4,
        teacher_provider="openai", teacher_base_url=server.base_url, teacher_model_name="fake-model",
        response_store_dir=str(store_dir))


def _stored(store):
    with sqlite3.connect(store) as db:
        return db.execute("SELECT COUNT(DISTINCT request_hash) FROM responses").fetchone()[0]  # requests, not samples


def _datasets(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("gen.jsonl"))}


@pytest.fixture(autouse=True)
def _key(monkeypatch, tmp_path):
    monkeypatch.setenv("TEACHER_MODEL_API_KEY", "sk-test-not-a-secret")
    monkeypatch.setenv("TEACHER_MAX_RETRIES", "0")
    monkeypatch.setenv("KTOOLS_OUTPUT_DIR", str(tmp_path / "unused"))


def test_a_failed_attempt_keeps_its_answers_and_the_next_resends_only_the_rest(tmp_path):
    step_02 = _step_02(tmp_path)
    with FakeOpenAIServer(responder=scripted_responder) as server:
        clean = _generate(step_02, tmp_path / "clean", server)
    total = clean["requests_sent"]
    assert total > ANSWERED_BEFORE_THE_FAULTS + 4

    store_dir = tmp_path / "volume"
    faults = ["ok"] * ANSWERED_BEFORE_THE_FAULTS + ["400"] * 10_000
    with FakeOpenAIServer(responder=scripted_responder, faults=faults) as server, \
            pytest.raises(steps.PipelineStepError, match=r"answers received are kept in .*volume.*resends only"):
        _generate(step_02, tmp_path / "attempt_1", server, store_dir)
    assert not (tmp_path / "attempt_1").exists()  # a failed step publishes nothing
    answered = _stored(store_dir / "responses.sqlite")
    assert answered == ANSWERED_BEFORE_THE_FAULTS

    with FakeOpenAIServer(responder=scripted_responder) as server:
        second = _generate(step_02, tmp_path / "attempt_2", server, store_dir)
        resent = len(server.requests)
    assert second["status"] == "complete"
    assert resent == second["requests_sent"] == total - answered  # nothing answered is asked again
    assert _datasets(tmp_path / "attempt_2") == _datasets(tmp_path / "clean")
    # The artifact carries a consistent copy of the store, as without a volume.
    assert _stored(tmp_path / "attempt_2" / "responses.sqlite") == _stored(tmp_path / "clean" / "responses.sqlite")


def test_without_a_volume_the_failure_says_how_to_keep_answers(tmp_path):
    step_02 = _step_02(tmp_path)
    with FakeOpenAIServer(responder=scripted_responder, faults=["400"] * 10_000) as server, \
            pytest.raises(steps.PipelineStepError, match="Set response_store_dir to a mounted volume"):
        _generate(step_02, tmp_path / "out", server)
