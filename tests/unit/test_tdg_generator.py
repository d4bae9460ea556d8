"""QAGenerator over a chunks folder with a scripted in-process teacher: files, failures, resume, templates."""

from __future__ import annotations

import re

import pytest

from ktools.compat.training_data_generator.generator import (
    FAILURES_FILE,
    SUMMARY_FILE,
    QAGenerator,
    TDGError,
    convert_tdg_template,
    engine_parses_json_pairs,
)
from ktools.io import read_json, read_jsonl
from ktools.llm.types import ChatResult, Choice, SamplingParams, TeacherError, Usage
from ktools.testing.chunk_files import write_chunker_file


class ScriptedTeacher:
    """Answers the document_qa prompt with well-formed Question/Answer pairs; fails on chunks containing `fail_on`."""

    model = "scripted-teacher"
    max_concurrency = 4

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on
        self.prompts: list[str] = []

    async def achat(self, messages, params: SamplingParams | None = None, n=1):
        text = messages[-1]["content"]
        self.prompts.append(text)
        if self.fail_on and self.fail_on in text:
            raise TeacherError("HTTP 500: scripted failure", status=500)
        words = re.findall(r"[A-Za-z]{5,}", text.split("Document:")[-1]) or ["thing"]
        pairs = "\n".join(f"Question: What does the text say about {w.lower()} here?\nAnswer: It mentions {w}."
                          for w in words[:2])
        return ChatResult(choices=[Choice(text=pairs, finish_reason="stop") for _ in range(n)],
                          model=self.model, usage=Usage(prompt_tokens=50, completion_tokens=20), requests_sent=1)


def make_chunks(folder):
    folder.mkdir(parents=True, exist_ok=True)
    texts = ["# Harbour Rules\nVessels must book berths forty days ahead.",
             "Pilots are mandatory for tankers entering the basin.",
             "POISON chunk about dredging schedules and surveys."]
    write_chunker_file(folder, "Harbour.pdf", texts, file_size=999, offset_step=10)
    (folder / "ferry.txt").write_text("Ferries leave hourly from the northern terminal building.")
    (folder / "broken_chunks.json").write_text("{oops")


def generator(tmp_path, teacher, **kwargs):
    return QAGenerator(chunks_dir=tmp_path / "chunks", qa_dir=tmp_path / "qa", client=teacher, judges=False,
                       show_progress=False, environ={}, repo_root=tmp_path, questions_per_chunk=2, **kwargs)


def test_generates_files_summary_and_failure_log(tmp_path):
    make_chunks(tmp_path / "chunks")
    teacher = ScriptedTeacher(fail_on="POISON")
    summary = generator(tmp_path, teacher).generate_qa_for_all_documents(resume=True)
    qa = tmp_path / "qa"

    harbour = read_json(qa / "Harbour_qa.json")
    assert harbour["metadata"]["file_size"] == 999 and harbour["processing_info"]["chunk_size"] == 500
    info = harbour["qa_generation_info"]
    assert (info["model"], info["questions_per_chunk"], info["generators"]) == \
        ("scripted-teacher", 2, ["document_based_qa"])
    assert harbour["status"] == "partial"  # a failed chunk: never "completed"
    assert harbour["completed_chunks"] == [0, 1] and harbour["failed_chunks"] == [2]
    assert harbour["summary"] == {"total_chunks": 3, "completed_chunks": 2, "failed_chunks": 1, "total_qa_pairs": 4}
    pair = harbour["training_pairs"][0]
    assert pair["chunk_id"] == "0_0" and pair["chunk_start"] == 0 and pair["file_name"] == "Harbour.pdf"
    assert pair["source_text"].startswith("# Harbour Rules") and pair["generator"] == "document_based_qa"
    assert harbour["failures"][0]["chunk_id"] == "0_2" and "scripted failure" in harbour["failures"][0]["reason"]
    ferry = read_json(qa / "ferry_qa.json")
    assert ferry["summary"]["total_qa_pairs"] == 2 and ferry["metadata"]["file_name"] == "ferry.txt"

    assert summary == read_json(qa / SUMMARY_FILE)
    assert read_json(qa / "ferry_qa.json")["status"] == "completed"
    assert (summary["total_files"], summary["successful_files"], summary["failed_files"]) == (3, 1, 2)
    assert summary["status"] == "partial" and "1 of 4 chunk runs failed" in summary["status_reason"]
    assert (summary["chunks_completed"], summary["chunks_failed"], summary["chunks_pending"]) == (3, 1, 0)
    assert summary["total_qa_pairs"] == 6 and summary["success_rate"] == 0.75
    assert summary["requests_sent"] == 3 and summary["tokens"] == 3 * 70  # the failed request raised
    assert sorted(summary["qa_files_created"]) == ["Harbour_qa.json", "ferry_qa.json"]
    assert summary["bad_input_files"][0]["file"].endswith("broken_chunks.json")

    failures = read_jsonl(qa / FAILURES_FILE)
    chunk_failure = next(f for f in failures if f["kind"] == "chunk")
    assert chunk_failure["chunk_id"] == "0_2" and chunk_failure["chunk_index"] == 2
    assert chunk_failure["chunk_file"] == "Harbour_chunks.json" and "POISON" in chunk_failure["chunk_text_start"]
    assert "scripted failure" in chunk_failure["reason"]
    assert any(f["kind"] == "input" and "not valid JSON" in f["reason"] for f in failures)


def test_resume_sends_nothing_new_and_retry_failed_only_the_failed_chunk(tmp_path):
    make_chunks(tmp_path / "chunks")
    generator(tmp_path, ScriptedTeacher(fail_on="POISON")).generate_qa_for_all_documents()
    first = read_json(tmp_path / "qa" / "Harbour_qa.json")["training_pairs"]

    again = ScriptedTeacher()
    summary = generator(tmp_path, again).generate_qa_for_all_documents(resume=True)
    assert again.prompts == [] and summary["requests_sent"] == 0 and summary["chunks_failed"] == 1
    assert read_json(tmp_path / "qa" / "Harbour_qa.json")["training_pairs"] == first

    retry = ScriptedTeacher()
    summary = generator(tmp_path, retry).generate_qa_for_all_documents(retry_failed=True)
    assert len(retry.prompts) == 1 and "POISON" in retry.prompts[0]
    assert summary["chunks_failed"] == 0 and summary["total_qa_pairs"] == 8
    assert read_json(tmp_path / "qa" / "Harbour_qa.json")["failed_chunks"] == []


def test_no_resume_keeps_a_backup_and_starts_over(tmp_path):
    make_chunks(tmp_path / "chunks")
    generator(tmp_path, ScriptedTeacher()).generate_qa_for_all_documents()
    fresh = ScriptedTeacher()
    summary = generator(tmp_path, fresh).generate_qa_for_all_documents(resume=False)
    assert len(fresh.prompts) == 4
    backup = tmp_path / "qa" / summary["backup_dir"].rsplit("/", 1)[-1]
    assert (backup / "Harbour_qa.json").is_file() and (backup / "responses.sqlite").is_file()


def test_reference_prompt_template_is_converted(tmp_path, caplog):
    make_chunks(tmp_path / "chunks")
    template = tmp_path / "custom_template.txt"
    template.write_text("Write {num_questions} pairs. {extra_instructions}\nText to analyze:\n{text}\n"
                        'Return ONLY a valid JSON array: [{{"question": "...", "answer": "..."}}]')
    teacher = ScriptedTeacher()
    generator(tmp_path, teacher, qa_prompt_template_file=template,
              qa_extra_instructions="Focus on dates.").generate_qa_for_all_documents()
    prompt = next(p for p in teacher.prompts if "Ferries" in p)
    assert prompt.startswith("Write 2 pairs. Focus on dates.\nText to analyze:\nFerries leave hourly")
    assert '[{"question": "...", "answer": "..."}]' in prompt
    # the template asks for JSON: the user is told when the engine's parser cannot read it
    assert ("asks the teacher for JSON" in caplog.text) == (not engine_parses_json_pairs())


def test_template_conversion_and_errors():
    assert convert_tdg_template("{text}") == "{{ document }}"
    assert convert_tdg_template("{{ document }} is already Jinja") == "{{ document }} is already Jinja"
    with pytest.raises(TDGError, match=r"unknown placeholder \{chunk\}"):
        convert_tdg_template("Use {chunk}", "t.txt")
    with pytest.raises(TDGError, match="t.txt: not a valid template"):
        convert_tdg_template("a } b {text}", "t.txt")


def test_needs_an_input(tmp_path):
    with pytest.raises(TDGError, match="no input"):
        QAGenerator(qa_dir=tmp_path, environ={}, repo_root=tmp_path)


def test_dry_run_estimates_and_writes_no_qa_files(tmp_path):
    make_chunks(tmp_path / "chunks")
    teacher = ScriptedTeacher()
    summary = generator(tmp_path, teacher).generate_qa_for_all_documents(dry_run=True)
    assert summary["status"] == "dry_run" and summary["total_chunks"] == 4
    assert summary["estimate"]["requests"] == 4 and len(teacher.prompts) == 2
    assert summary["samples"]["document_based_qa"][0]["question"].startswith("What does the text say")
    assert not list((tmp_path / "qa").glob("*_qa.json"))


def test_stage_caps_reach_the_teacher_and_bad_cli_values_are_refused(tmp_path):
    import argparse

    from ktools.cli.generate import _stage_cap

    class Recording(ScriptedTeacher):
        def __init__(self):
            super().__init__()
            self.max_tokens = []

        async def achat(self, messages, params=None, n=1):
            self.max_tokens.append(params.max_tokens)
            return await super().achat(messages, params, n)

    make_chunks(tmp_path / "chunks")
    teacher = Recording()
    generator(tmp_path, teacher, max_tokens=900, stage_max_tokens={"qa_pairs": 77}).generate_qa_for_all_documents()
    assert teacher.max_tokens and set(teacher.max_tokens) == {77}
    assert _stage_cap("summaries=400") == ("summaries", 400)
    for bad in ("summary=400", "summaries=0", "summaries", "questions=many"):
        with pytest.raises(argparse.ArgumentTypeError, match="STAGE=N with STAGE one of answers, facts"):
            _stage_cap(bad)


def test_seed_mode_runs_all_four_generators_and_exports_step03(tmp_path):
    from ktools.export import combine_qa_dir, load_qa_input
    from ktools.io import write_jsonl
    from ktools.testing.scripted import ScriptedClient

    seed_rows = [{"document": f"Section {i}: the harbour master sets berth fees and pilot duties, rule {i}.",
                  "source": "harbour.md" if i < 2 else "ferry.md", "chunk_id": f"c{i}", "start": 80 * i,
                  "end": 80 * i + 70, "document_outline": "Harbour rules", "domain": "ports",
                  "icl_document": "Example.", "icl_query_1": "Q1?", "icl_query_2": "Q2?", "icl_query_3": "Q3?"}
                 for i in range(3)]
    seed = write_jsonl(tmp_path / "seed.jsonl", seed_rows)
    out = tmp_path / "step_03"
    client = ScriptedClient()
    summary = QAGenerator(seed=seed, qa_dir=out, client=client, judges=False, show_progress=False, environ={},
                          repo_root=tmp_path, summaries=2).generate_qa_for_all_documents()
    assert summary["generators"] == ["extractive_summary", "detailed_summary", "key_facts_to_qa",
                                     "document_based_qa"]
    assert summary["chunks_completed"] == 3 and summary["documents_done"] == 2
    harbour = read_json(out / "harbour_qa.json")
    assert {p["generator"] for p in harbour["training_pairs"]} == set(summary["generators"])
    assert harbour["metadata"]["domain"] == "ports" and harbour["completed_chunks"] == [0, 1]
    assert harbour["training_pairs"][0]["chunk_id"] == "c0" and harbour["qa_generation_info"]["number_of_summaries"] == 2

    # the same run seen through its step-03 files (what `ktools combine --qa-dir output/step_03` reads
    # when there are no _qa.json files) gives the same pairs
    from_gen = dict(load_qa_input(out / "document_based_qa").documents)
    assert len(from_gen["harbour_qa.json"]["training_pairs"]) == \
        sum(p["generator"] == "document_based_qa" for p in harbour["training_pairs"])
    combined = combine_qa_dir(out, tmp_path / "training_data.json").combined
    assert combined["metadata"]["total_qa_pairs"] == summary["total_qa_pairs"]


class InterruptingTeacher(ScriptedTeacher):
    """Sends Ctrl+C (SIGINT to the main thread) while its `at`-th request is in flight."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at
        self.fired = False

    async def achat(self, messages, params: SamplingParams | None = None, n=1):
        import asyncio
        import signal

        if len(self.prompts) + 1 == self.at:
            self.prompts.append(messages[-1]["content"])
            self.fired = True
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(30)  # cancelled by the clean stop
        return await super().achat(messages, params, n)


def test_ctrl_c_writes_what_is_done_and_a_rerun_finishes(tmp_path):
    import signal

    from ktools.generate import GenerationInterrupted

    # Ctrl+C as a terminal delivers it: a test run started in the background by a shell
    # without job control inherits SIGINT ignored, and the interrupt would be lost.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    make_chunks(tmp_path / "chunks")
    teacher = InterruptingTeacher(at=3)
    try:
        with pytest.raises(GenerationInterrupted):
            generator(tmp_path, teacher, max_concurrency=1).generate_qa_for_all_documents()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert teacher.fired
    summary = read_json(tmp_path / "qa" / SUMMARY_FILE)
    assert summary["status"] == "interrupted" and summary["chunks_pending"] >= 1
    assert read_json(tmp_path / "qa" / "Harbour_qa.json")["status"] == "interrupted"

    rest = ScriptedTeacher()
    summary = generator(tmp_path, rest).generate_qa_for_all_documents()
    assert summary["status"] == "complete" and summary["chunks_completed"] == 4
    assert len(rest.prompts) == 4 - 2  # only what was not answered before the interrupt
