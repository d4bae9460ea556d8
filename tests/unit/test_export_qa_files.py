"""Per-document `_qa.json`, combined `training_data.json`, step-03 grouping, convert, bad inputs."""

from __future__ import annotations

import json

import pytest
import yaml

from ktools.compat.training_data_generator.qa_files import file_metadata, qa_file_name, training_pair
from ktools.export import QAInputError, build_qa_document, combine_qa_dir, load_qa_input, write_qa_file
from ktools.export.qa_formats import ConvertOptions, convert_qa
from ktools.io import read_json, read_jsonl, write_jsonl

QA_KEYS = ["metadata", "processing_info", "qa_generation_info", "training_pairs", "status",
           "completed_chunks", "failed_chunks", "summary", "completion_time"]
PAIR_KEYS = ["question", "answer", "source_file", "file_name", "file_type", "chunk_id", "chunk_index",
             "chunk_start", "chunk_end", "source_text"]


def make_doc(name: str, n_pairs: int = 2, status: str = "completed") -> dict:
    meta = file_metadata(f"/data/documents/{name}.pdf", processed_at="2025-08-23T10:30:45")
    pairs = [training_pair(f"Question {i} about {name}?", f"Answer {i}.", metadata=meta,
                           chunk={"chunk_id": f"0_{i}", "chunk_index": i, "start": i * 100,
                                  "end": i * 100 + 99, "text": f"chunk {i} text"})
             for i in range(n_pairs)]
    return build_qa_document(
        metadata=meta,
        processing_info={"splitting_strategy": "recursive", "chunk_size": 1000, "chunk_overlap": 200,
                         "total_chunks": n_pairs + 1},
        qa_generation_info={"provider": "local", "model": "qwen3:14b", "questions_per_chunk": 1,
                            "temperature": 0.3, "max_tokens": 2000, "generated_at": "2025-08-23T11:15:30"},
        training_pairs=pairs, total_chunks=n_pairs + 1, completed_chunks=list(range(n_pairs)),
        failed_chunks=[n_pairs], status=status,
        failures=[{"chunk_index": n_pairs, "chunk_id": f"0_{n_pairs}", "reason": "TeacherError: 500"}])


def test_per_document_layout_matches_reference():
    doc = make_doc("Policy")
    assert list(doc)[: len(QA_KEYS)] == QA_KEYS
    assert list(doc["metadata"]) == ["file_name", "source_file", "file_type", "file_size", "processed_at"]
    assert doc["metadata"]["file_type"] == ".pdf" and doc["metadata"]["file_name"] == "Policy.pdf"
    assert list(doc["training_pairs"][0]) == PAIR_KEYS
    assert doc["summary"] == {"total_chunks": 3, "completed_chunks": 2, "failed_chunks": 1, "total_qa_pairs": 2}
    assert doc["completed_chunks"] == [0, 1] and doc["failed_chunks"] == [2]
    assert qa_file_name("/data/documents/NZISM-ISM Document-V.-3.9-April-2025.pdf") == \
        "NZISM-ISM Document-V.-3.9-April-2025_qa.json"
    assert qa_file_name("https://example.org/policies/leave.html") == "leave_qa.json"


def test_combine_folder_lists_bad_files_and_keeps_the_others(tmp_path):
    qa_dir = tmp_path / "qa"
    write_qa_file(qa_dir / "A_qa.json", make_doc("A", 2))
    write_qa_file(qa_dir / "B_qa.json", make_doc("B", 3))
    write_qa_file(qa_dir / "C_qa.json", make_doc("C", 1, status="in_progress"))
    (qa_dir / "D_qa.json").write_text('{"metadata": {}, "status": "completed"}')
    (qa_dir / "E_qa.json").write_text('{"training_pairs": [')
    bad_pair = make_doc("F", 2)
    del bad_pair["training_pairs"][1]["answer"]
    write_qa_file(qa_dir / "F_qa.json", bad_pair)

    result = combine_qa_dir(qa_dir, tmp_path / "out" / "training_data.json")
    combined = read_json(tmp_path / "out" / "training_data.json")
    assert combined == result.combined
    meta = combined["metadata"]
    assert meta["generated_by"] == "qa_combiner"
    assert meta["total_qa_pairs"] == 5 and meta["num_documents"] == 2
    assert meta["source_qa_files"] == ["A_qa.json", "B_qa.json"]
    assert meta["processing_config"] == {
        "chunk_size": 1000, "chunk_overlap": 200, "splitting_strategy": "recursive", "questions_per_chunk": 1,
        "temperature": 0.3, "max_tokens": 2000, "llm_provider": "local", "model_used": "qwen3:14b"}
    assert list(combined["documents"][0]) == ["file_info", "processing_info", "qa_generation_info", "summary",
                                              "qa_pairs_count", "source_file"]
    assert combined["documents"][1]["qa_pairs_count"] == 3
    assert len(combined["training_pairs"]) == 5

    errors = dict((p.rsplit("/", 1)[-1], reason) for p, reason in result.errors)
    assert set(errors) == {"C_qa.json", "D_qa.json", "E_qa.json", "F_qa.json"}
    assert "missing field 'training_pairs'" in errors["D_qa.json"] and "ktools generate" in errors["D_qa.json"]
    assert "not valid JSON at line 1" in errors["E_qa.json"]
    assert "training_pairs[1]" in errors["F_qa.json"] and "'answer'" in errors["F_qa.json"]
    assert "in_progress" in errors["C_qa.json"] and "--allow-partial" in errors["C_qa.json"]

    with_incomplete = combine_qa_dir(qa_dir, tmp_path / "all.json", include_incomplete=True)
    assert with_incomplete.combined["metadata"]["num_documents"] == 3


def test_combine_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "X_qa.json").write_text("[]")
    with pytest.raises(QAInputError, match="X_qa.json: expected a JSON object"):
        combine_qa_dir(tmp_path, tmp_path / "t.json")
    with pytest.raises(QAInputError, match="missing: no such file or folder"):
        combine_qa_dir(tmp_path / "missing", tmp_path / "t.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QAInputError, match="no Q&A files found"):
        combine_qa_dir(tmp_path / "empty", tmp_path / "t.json")


def step03_tree(root):
    """A small ktools output/ tree: step_02 chunks and two generators' gen.jsonl."""
    chunks = [
        {"document": "Alpha chunk zero.", "source": "alpha.md", "chunk_id": "alpha-0", "start": 0, "end": 17},
        {"document": "Alpha chunk one.", "source": "alpha.md", "chunk_id": "alpha-1", "start": 17, "end": 33},
        {"document": "Beta only chunk.", "source": "https://ex.org/beta.html", "chunk_id": "beta-0",
         "start": 0, "end": 16},
    ]
    write_jsonl(root / "step_02" / "chunks.jsonl", chunks)

    def row(gen, chunk, q):
        return {"question": q, "response": f"Answer to {q}", "document": "summary", "raw_document": chunk["document"],
                "document_outline": "Alpha handbook", "domain": "ops", "chunk_id": chunk["chunk_id"],
                "source": chunk["source"], "generator": gen, "item_id": f"{chunk['chunk_id']}/x/0"}

    write_jsonl(root / "step_03" / "detailed_summary" / "gen.jsonl",
                [row("detailed_summary", chunks[1], "What does alpha one say?"),
                 row("detailed_summary", chunks[2], "What does beta say?")])
    write_jsonl(root / "step_03" / "document_based_qa" / "gen.jsonl",
                [row("document_based_qa", chunks[0], "What does alpha zero say?")])
    return chunks


def test_step03_output_grouped_by_source(tmp_path):
    step3_chunks = step03_tree(tmp_path)
    loaded = load_qa_input(tmp_path / "step_03")
    assert loaded.kind == "step03" and not loaded.errors
    docs = dict(loaded.documents)
    assert set(docs) == {"alpha_qa.json", "beta_qa.json"}
    alpha = docs["alpha_qa.json"]
    assert alpha["metadata"]["file_name"] == "alpha.md" and alpha["metadata"]["file_type"] == ".md"
    assert alpha["metadata"]["domain"] == "ops"
    # pairs keep their chunk provenance, numbered from step 02's chunk order
    by_q = {p["question"]: p for p in alpha["training_pairs"]}
    zero = by_q["What does alpha zero say?"]
    assert zero["chunk_index"] == 0 and zero["chunk_start"] == 0 and zero["chunk_end"] == 17
    assert zero["source_text"] == step3_chunks[0]["document"] and zero["answer"].startswith("Answer to")
    assert by_q["What does alpha one say?"]["chunk_index"] == 1
    assert alpha["summary"]["total_chunks"] == 2 and alpha["completed_chunks"] == [0, 1]
    assert docs["beta_qa.json"]["metadata"]["source_file"] == "https://ex.org/beta.html"

    result = combine_qa_dir(tmp_path / "step_03", tmp_path / "training_data.json")
    assert result.combined["metadata"]["total_qa_pairs"] == 3

    # the engine's report.json adds model/params and the failed chunks
    (tmp_path / "step_03" / "report.json").write_text(json.dumps({
        "status": "complete", "model": "teacher-x", "options": {"temperature": 0.2, "max_tokens": 900,
                                                               "questions_per_chunk": 3},
        "failures": [{"generator": "key_facts_to_qa", "chunk_id": "alpha-1", "source": "alpha.md",
                      "error": "TeacherError: 500"}]}))
    alpha = dict(load_qa_input(tmp_path / "step_03").documents)["alpha_qa.json"]
    assert alpha["qa_generation_info"]["model"] == "teacher-x" and alpha["qa_generation_info"]["max_tokens"] == 900
    assert alpha["failed_chunks"] == [1] and alpha["failures"][0]["reason"] == "TeacherError: 500"


def test_convert_folder_to_every_format(tmp_path):
    qa_dir = tmp_path / "qa"
    write_qa_file(qa_dir / "A_qa.json", make_doc("A", 2))
    write_qa_file(qa_dir / "B_qa.json", make_doc("B", 1))
    (qa_dir / "Z_qa.json").write_text("not json")
    out = tmp_path / "training"

    result = convert_qa(qa_dir, out, "alpaca")
    assert sorted(p.name for p, _ in result.written) == ["A_trainingdata.jsonl", "B_trainingdata.jsonl"]
    assert [e[0].rsplit("/", 1)[-1] for e in result.errors] == ["Z_qa.json"]
    first = read_jsonl(out / "A_trainingdata.jsonl")[0]
    assert list(first) == ["text"] and "### Instruction:\nQuestion 0 about A?\n\n### Response:\nAnswer 0." in \
        first["text"]

    convert_qa(qa_dir / "A_qa.json", out, "alpaca-fields")
    assert read_jsonl(out / "A_alpaca.jsonl")[1] == {"instruction": "Question 1 about A?", "input": "",
                                                     "output": "Answer 1."}
    one = convert_qa(qa_dir, out, "messages", output_file="all.jsonl",
                     options=ConvertOptions(system_message="sys"))
    assert one.written == [(out / "all.jsonl", 3)]
    assert read_jsonl(out / "all.jsonl")[2]["messages"][0] == {"role": "system", "content": "sys"}

    convert_qa(qa_dir, out, "qna-yaml")
    data = yaml.safe_load((out / "B_qna.yaml").read_text())
    assert data["seed_examples"][0]["questions_and_answers"][0]["answer"] == "Answer 0."
    with pytest.raises(QAInputError, match="qna.yaml describes one document"):
        convert_qa(qa_dir, out, "qna-yaml", output_file="qna.yaml")
    single = convert_qa(qa_dir / "B_qa.json", out, "qna-yaml", output_file="qna.yaml")
    assert single.written[0][0] == out / "qna.yaml"


def test_convert_combined_training_data_splits_per_document(tmp_path):
    qa_dir = tmp_path / "qa"
    write_qa_file(qa_dir / "A_qa.json", make_doc("A", 2))
    write_qa_file(qa_dir / "B_qa.json", make_doc("B", 1))
    combine_qa_dir(qa_dir, tmp_path / "training_data.json")
    result = convert_qa(tmp_path / "training_data.json", tmp_path / "out", "alpaca")
    assert sorted((p.name, n) for p, n in result.written) == [("A_trainingdata.jsonl", 2),
                                                              ("B_trainingdata.jsonl", 1)]


def test_step03_rows_missing_fields_are_named(tmp_path):
    path = tmp_path / "step_03" / "document_based_qa" / "gen.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"question": "Q one two?", "response": "A"}) + "\n"
                    + json.dumps({"question": "Q two three?"}) + "\n")
    loaded = load_qa_input(tmp_path / "step_03")
    assert not loaded.documents
    assert "line 2: field 'response' (or 'answer') is missing" in loaded.errors[0][1]
