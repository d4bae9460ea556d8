"""The engine with an in-process scripted teacher: contract, resume, failures, judges, budget."""

from __future__ import annotations

import asyncio
import json

import pytest

from ktools.generate import GenerationOptions, arun_generation, load_seed_rows, run_generation
from ktools.io import JsonlError, read_json, read_jsonl
from ktools.paths import GENERATORS
from ktools.testing.scripted import ScriptedClient, reply_for

CONTRACT = {"question", "response", "document", "raw_document", "document_outline", "domain", "chunk_id",
            "source", "generator", "item_id", "reasoning", "truncated", "judge_question",
            "judge_faithfulness", "judge_relevancy"}


def seeds(k=3):
    return [{"document": f"Chunk {i}: the Orvane harbour levy is {i + 3} euros per berth and is due each March.",
             "chunk_id": f"doc.md#{i}", "source": "doc.md", "document_outline": "Harbour rules",
             "domain": "regulation", "icl_document": "Ships dock at pier 4.", "icl_query_1": "Where do ships dock?"}
            for i in range(k)]


def opts(**kw):
    base = dict(number_of_summaries=2, questions_per_chunk=2, show_progress=False,
                judge_question=False, judge_faithfulness=False, judge_relevancy=False)
    base.update(kw)
    return GenerationOptions(**base)


def outputs(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.jsonl"))}


def test_all_four_generators_write_the_contract(tmp_path):
    client = ScriptedClient()
    report = run_generation(seeds(), opts(), client, tmp_path)
    assert report.status == "complete" and report.ok
    for g in GENERATORS:
        rows = read_jsonl(tmp_path / g / "gen.jsonl")
        assert rows, g
        assert all(CONTRACT <= set(r) for r in rows)
        assert all(r["generator"] == g and r["raw_document"].startswith("Chunk") for r in rows)
        assert [r["chunk_id"] for r in rows] == sorted(r["chunk_id"] for r in rows)  # seed order
    es = read_jsonl(tmp_path / "extractive_summary" / "gen.jsonl")
    assert len(es) == 3 * 2 * 2  # chunks x summaries x questions
    assert {r["item_id"] for r in es if r["chunk_id"] == "doc.md#0"} == {"doc.md#0/summary/0", "doc.md#0/summary/1"}
    assert all(r["document"].startswith("Summary") for r in es)
    kf = read_jsonl(tmp_path / "key_facts_to_qa" / "gen.jsonl")
    assert kf[0]["item_id"] == "doc.md#0/fact/0" and kf[0]["key_fact"] in kf[0]["document"]
    assert kf[0]["document"].startswith("1. ")
    dq = read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")
    assert dq[0]["document"] == dq[0]["raw_document"] and dq[0]["item_id"] == "doc.md#0/document"
    rep = read_json(tmp_path / "report.json")
    assert rep["rows"] == report.rows == sum(len(read_jsonl(tmp_path / g / "gen.jsonl")) for g in GENERATORS)
    assert rep["generators"]["extractive_summary"]["stages"]["summaries"]["parsed"] == 6
    assert rep["documents"]["doc.md"]["document_based_qa"] == len(dq)
    assert client.max_in_flight <= client.max_concurrency
    # The few-shot ICL example reached the question prompt.
    assert any("Where do ships dock?" in m[-1]["content"] for m, _, _ in client.requests)


def test_rerun_replays_everything_and_writes_identical_files(tmp_path):
    run_generation(seeds(), opts(), ScriptedClient(), tmp_path)
    first = outputs(tmp_path)
    again = ScriptedClient()
    report = run_generation(seeds(), opts(), again, tmp_path)
    assert again.requests == [] and report.requests["sent"] == 0 and report.requests["cached"] > 0
    assert outputs(tmp_path) == first


def test_changing_one_prompt_reasks_exactly_its_requests(tmp_path):
    first = ScriptedClient()
    run_generation(seeds(), opts(), first, tmp_path)
    doc_qa_calls = sum(1 for m, _, _ in first.requests if "question and answer pairs about the document" in
                       m[-1]["content"])
    custom = tmp_path / "my_template.txt"
    custom.write_text("Write {{ n_pairs }} question and answer pairs about the document below, briefly.\n"
                      "Question: ...\nAnswer: ...\n\nDocument:\n{{ document }}")
    second = ScriptedClient()
    run_generation(seeds(), opts(prompt_overrides={"document_qa": custom}), second, tmp_path)
    assert len(second.requests) == doc_qa_calls == 3
    # A sampling change re-asks everything of the generators it touches.
    third = ScriptedClient()
    run_generation(seeds(), opts(generators=("key_facts_to_qa",), temperature=0.1), third, tmp_path)
    assert third.requests and all(p.temperature == 0.1 for _, p, _ in third.requests)


def test_missing_samples_only_are_asked_again(tmp_path):
    client = ScriptedClient(fewer=2)  # a provider that ignores n beyond 2
    # The scripted teacher asks the same questions about every summary: no de-duplication here.
    run_generation(seeds(1), opts(generators=("detailed_summary",), number_of_summaries=5, dedup_threshold=None),
                   client, tmp_path)
    summary_calls = [n for m, _, n in client.requests if m[-1]["content"].endswith("Detailed summary:")]
    assert summary_calls == [5, 3, 1]  # 2 + 2 + 1 samples
    rows = read_jsonl(tmp_path / "detailed_summary" / "gen.jsonl")
    assert len({r["item_id"] for r in rows}) == 5
    more = ScriptedClient()
    run_generation(seeds(1), opts(generators=("detailed_summary",), number_of_summaries=7, dedup_threshold=None),
                   more, tmp_path)
    assert [n for m, _, n in more.requests if m[-1]["content"].endswith("Detailed summary:")] == [2]


def test_failed_chunk_is_isolated_recorded_and_retried_on_request(tmp_path):
    def fail(user):
        return "HTTP 500 from teacher" if user.startswith("List the key facts") and "Chunk 1:" in user else None

    report = run_generation(seeds(), opts(), ScriptedClient(fail=fail), tmp_path)
    assert report.status == "partial" and not report.ok
    assert report.status_reason.startswith("1 of 12 chunk runs failed (first: HTTP 500 from teacher)")
    assert report.generators["key_facts_to_qa"]["status"] == "partial"
    assert report.generators["document_based_qa"]["status"] == "complete"
    assert report.failures == [{"generator": "key_facts_to_qa", "chunk_id": "doc.md#1", "source": "doc.md",
                                "error": "HTTP 500 from teacher"}]
    assert report.generators["key_facts_to_qa"]["chunks"]["failed"] == 1
    assert report.generators["document_based_qa"]["chunks"]["done"] == 3
    assert "retry" in report.resume_hint
    kf = read_jsonl(tmp_path / "key_facts_to_qa" / "gen.jsonl")
    assert {r["chunk_id"] for r in kf} == {"doc.md#0", "doc.md#2"}
    # A plain resume does not hammer the failing chunk again...
    quiet = ScriptedClient()
    report = run_generation(seeds(), opts(), quiet, tmp_path)
    assert quiet.requests == [] and len(report.failures) == 1
    # ...retry_failed re-runs only it.
    retry = ScriptedClient()
    report = run_generation(seeds(), opts(retry_failed=True), retry, tmp_path)
    assert report.ok and retry.requests
    assert all("Chunk 1:" in m[-1]["content"] or "Chunk" not in m[-1]["content"] for m, _, _ in retry.requests)
    assert {r["chunk_id"] for r in read_jsonl(tmp_path / "key_facts_to_qa" / "gen.jsonl")} == {
        "doc.md#0", "doc.md#1", "doc.md#2"}


def test_unparsable_output_goes_to_rejected_with_raw_text(tmp_path):
    def reply(user, i):
        if user.startswith("List the key facts"):
            return "Sure!"
        return reply_for(user, i)

    report = run_generation(seeds(1), opts(generators=("key_facts_to_qa",)), ScriptedClient(reply=reply), tmp_path)
    rejected = read_jsonl(tmp_path / "key_facts_to_qa" / "rejected.jsonl")
    assert rejected[0]["stage"] == "facts" and rejected[0]["reason"] == "unparsable"
    assert rejected[0]["raw"] == "Sure!"
    g = report.generators["key_facts_to_qa"]
    assert g["chunks"]["rejected_all"] == 1 and g["stages"]["facts"]["unparsable"] == 1 and g["rows"] == 0


def test_judges_filter_with_thresholds_and_reasons(tmp_path):
    def reply(user, i):
        if "Does the document support every claim" in user:
            ok = "item one of" in user
            return "Score: 1\nReason: supported" if ok else "Score: 0\nReason: invents a number"
        return reply_for(user, i)

    o = opts(generators=("document_based_qa",), judge_question=True, judge_faithfulness=True, judge_relevancy=True)
    report = run_generation(seeds(1), o, ScriptedClient(reply=reply), tmp_path)
    kept = read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")
    rejected = read_jsonl(tmp_path / "document_based_qa" / "rejected.jsonl")
    assert len(kept) == 1 and len(rejected) == 1
    assert kept[0]["judge_faithfulness"] == 1.0 and kept[0]["judge_relevancy"] == 1.0
    assert rejected[0]["stage"] == "judge_faithfulness" and rejected[0]["reason"] == "invents a number"
    assert rejected[0]["question"] and rejected[0]["judge_faithfulness"] == 0.0
    assert report.generators["document_based_qa"]["judge_rejections"] == {"faithfulness": 1}
    # Faithfulness is judged against the RAW chunk.
    # Lenient threshold keeps both.
    o2 = o.replace(faithfulness_threshold=0.0)
    run_generation(seeds(1), o2, ScriptedClient(reply=reply), tmp_path)
    assert len(read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")) == 2


def test_judges_auto_off_for_embedded_teacher_on_for_others(tmp_path):
    auto = dict(judge_question=None, judge_faithfulness=None, judge_relevancy=None)
    emb = ScriptedClient(model="SmolLM2-135M-Instruct")
    report = run_generation(seeds(1), opts(generators=("document_based_qa",), **auto), emb, tmp_path / "a")
    assert not any("Score" in m[-1]["content"] for m, _, _ in emb.requests)
    assert report.options["few_shot_in_effect"] is False
    assert {p.max_tokens for _, p, _ in emb.requests} == {320}  # the embedded model's cap
    assert report.judges["faithfulness"]["auto_off_for_embedded_teacher"] is True
    real = ScriptedClient(model="gpt-4o")
    run_generation(seeds(1), opts(generators=("document_based_qa",), **auto), real, tmp_path / "b")
    judge_texts = [m[-1]["content"] for m, _, _ in real.requests if "Score" in m[-1]["content"]]
    assert {p.max_tokens for m, p, _ in real.requests if "Score" not in m[-1]["content"]} == {1024}
    assert len(judge_texts) == 3 * 2
    assert all("Chunk 0: the Orvane" in t for t in judge_texts if "support every claim" in t)


def test_stage_caps_apply_to_their_stage_only_and_reask_only_its_requests(tmp_path):
    gens = ("extractive_summary", "document_based_qa")
    emb = ScriptedClient(model="SmolLM2-135M-Instruct")
    report = run_generation(seeds(1), opts(generators=gens), emb, tmp_path / "emb")
    # The embedded teacher: summaries at their own default cap, every other stage at 320.
    caps = [p.max_tokens for _, p, _ in emb.requests]
    assert caps.count(192) == 1 and set(caps) == {192, 320}  # one summaries request (n=2)
    assert report.options["stage_max_tokens_in_effect"] == {"summaries": 192}

    real = ScriptedClient(model="gpt-4o")
    run_generation(seeds(1), opts(generators=gens), real, tmp_path / "real")
    assert {p.max_tokens for _, p, _ in real.requests} == {1024}  # a real teacher: no default stage cap
    before = outputs(tmp_path / "real")
    again = ScriptedClient(model="gpt-4o")
    report = run_generation(seeds(1), opts(generators=gens, stage_max_tokens={"summaries": 50}), again,
                            tmp_path / "real")
    # Only the summary requests carry new params; everything else replays from the store.
    assert again.requests and {p.max_tokens for _, p, _ in again.requests} == {50}
    assert report.requests["sent"] == len(again.requests) == 1
    assert outputs(tmp_path / "real") == before  # the scripted teacher answers the same
    with pytest.raises(ValueError, match="stage_max_tokens.*integer >= 1"):
        opts(stage_max_tokens={"summaries": 0})
    with pytest.raises(ValueError, match="unknown stage.*summary; stages: answers, facts"):
        opts(stage_max_tokens={"summary": 100})  # a typo would otherwise cap nothing, silently


def test_truncated_outputs_are_flagged(tmp_path):
    def reply(user, i):
        text = reply_for(user, i)
        return {"text": text, "finish_reason": "length"} if user.startswith("Answer the question") else text

    run_generation(seeds(1), opts(generators=("extractive_summary",)), ScriptedClient(reply=reply), tmp_path)
    rows = read_jsonl(tmp_path / "extractive_summary" / "gen.jsonl")
    assert rows and all(r["truncated"] for r in rows)


def test_reasoning_is_kept(tmp_path):
    def reply(user, i):
        text = reply_for(user, i)
        return f"<think>checking the fact</think>{text}" if "question and answer pairs" in user else text

    run_generation(seeds(1), opts(generators=("document_based_qa",), enable_reasoning=True),
                   ScriptedClient(reply=reply), tmp_path)
    rows = read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")
    assert rows[0]["reasoning"] == "checking the fact" and "<think>" not in rows[0]["question"]


def test_token_budget_stops_cleanly_and_resume_finishes(tmp_path):
    report = run_generation(seeds(6), opts(token_budget=400, max_concurrency=1), ScriptedClient(), tmp_path)
    assert report.status == "budget_reached"
    assert 0 < report.requests["prompt_tokens"] + report.requests["completion_tokens"] < 1500
    pending = sum(g["chunks"]["pending"] for g in report.generators.values())
    assert pending > 0 and "resume" in report.resume_hint
    report = run_generation(seeds(6), opts(), ScriptedClient(), tmp_path)
    assert report.status == "complete"
    full = tmp_path / "fresh"
    run_generation(seeds(6), opts(), ScriptedClient(), full)
    assert {k: v for k, v in outputs(tmp_path).items() if not k.startswith("fresh/")} == outputs(full)


def test_dry_run_estimates_and_writes_no_dataset(tmp_path):
    report = run_generation(seeds(10), opts(dry_run=True, dry_run_chunks=2), ScriptedClient(), tmp_path)
    assert report.status == "dry_run"
    assert report.estimate["chunks"] == 10
    per = report.estimate["generators"]["extractive_summary"]
    assert per["requests_per_chunk"] == 1 + 2 + 4 and per["requests"] == 70
    assert report.estimate["tokens"] > 0
    assert all(report.samples[g] for g in GENERATORS)
    assert not (tmp_path / "extractive_summary" / "gen.jsonl").exists()


def test_cancel_mid_run_then_resume_gives_identical_output(tmp_path):
    async def interrupted():
        client = ScriptedClient(latency=0.01)
        task = asyncio.create_task(arun_generation(seeds(4), opts(), client, tmp_path))
        while len(client.requests) < 30:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    assert read_json(tmp_path / "report.json")["status"] == "interrupted"
    resumed = ScriptedClient()
    run_generation(seeds(4), opts(), resumed, tmp_path)
    fresh = ScriptedClient()
    run_generation(seeds(4), opts(), fresh, tmp_path / "fresh")
    assert 0 < len(resumed.requests) < len(fresh.requests)
    got = outputs(tmp_path)
    assert {k: v for k, v in got.items() if not k.startswith("fresh/")} == outputs(tmp_path / "fresh")


def test_identical_prompts_in_flight_are_sent_once(tmp_path):
    same = [{"document": "The same chunk text about the Orvane harbour levy of five euros.", "chunk_id": f"c{i}"}
            for i in range(4)]
    client = ScriptedClient(latency=0.01)
    run_generation(same, opts(generators=("document_based_qa",), dedup_threshold=None), client, tmp_path)
    assert len(client.requests) == 1
    assert len(read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")) == 4 * 2


def test_seed_validation_names_record_and_field(tmp_path):
    path = tmp_path / "seed.jsonl"
    path.write_text(json.dumps({"document": "x", "chunk_id": "a"}) + "\n" + json.dumps({"document": "y"}) + "\n")
    with pytest.raises(JsonlError, match=r"seed.jsonl, record 2: missing or empty field 'chunk_id'"):
        load_seed_rows(path)
    with pytest.raises(FileNotFoundError, match="step 02"):
        load_seed_rows(tmp_path / "nope.jsonl")
    assert len(load_seed_rows(seeds(5), subsample=2)) == 2
    with pytest.raises(ValueError, match="unknown generator"):
        GenerationOptions(generators=("summaries",))


def test_copied_few_shot_questions_and_ungrounded_facts_are_kept_aside(tmp_path):
    def reply(user, i):
        if "different questions about the text" in user:
            return "1. Where do ships dock?\n2. What does the Orvane levy cost per berth?"
        if user.startswith("List the key facts"):
            return "1. I am a helpful assistant named SmolLM.\n2. The Orvane harbour levy is due each March."
        return reply_for(user, i)

    def seed_summary_reply(user, i):
        return reply(user, i)

    report = run_generation(seeds(1), opts(generators=("detailed_summary", "key_facts_to_qa"),
                                           number_of_summaries=1),
                            ScriptedClient(reply=seed_summary_reply), tmp_path)
    ds = read_jsonl(tmp_path / "detailed_summary" / "gen.jsonl")
    assert [r["question"] for r in ds] == ["What does the Orvane levy cost per berth?"]
    assert report.generators["detailed_summary"]["stages"]["questions"]["copied"] == 1
    kf = read_jsonl(tmp_path / "key_facts_to_qa" / "gen.jsonl")
    assert {r["key_fact"] for r in kf} == {"The Orvane harbour levy is due each March."}
    rejected = read_jsonl(tmp_path / "key_facts_to_qa" / "rejected.jsonl")
    assert rejected[0]["parsed"] == "I am a helpful assistant named SmolLM." and "grounded" in rejected[0]["reason"]


def test_run_generation_works_inside_a_running_event_loop(tmp_path):
    """As in a Jupyter cell: the blocking wrapper runs its own loop in a worker thread."""
    async def cell():
        return run_generation(seeds(1), opts(generators=("document_based_qa",)), ScriptedClient(), tmp_path)

    report = asyncio.run(cell())
    assert report.status == "complete" and report.rows == 2


def test_finished_units_replay_in_order_and_an_edited_chunk_is_asked_again(tmp_path):
    """A re-run replays finished units item by item (no task each); a chunk whose text changed under
    the same chunk_id finds nothing stored, asks the teacher, and ends up as in a fresh run."""
    options = opts(judge_question=True, judge_faithfulness=True, judge_relevancy=True)
    run_generation(seeds(), options, ScriptedClient(), tmp_path / "a")
    edited = seeds()
    edited[1]["document"] = "Chunk 1: the Orvane harbour levy is 9 euros per berth and is due each May."
    again = ScriptedClient()
    report = run_generation(edited, options, again, tmp_path / "a")
    assert report.status == "complete" and again.requests
    assert any("9 euros" in json.dumps(m) for m, _, _ in again.requests)
    fresh = ScriptedClient()
    run_generation(edited, options, fresh, tmp_path / "b")
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")
    assert len(again.requests) < len(fresh.requests) / 2  # only the edited chunk's requests went out
