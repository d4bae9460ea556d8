"""Chunk folders as a document chunker writes them: formats, ICL synthesis, bad files."""

from __future__ import annotations

import json
import logging

import pytest

from ktools.compat.training_data_generator.chunk_files import ChunkFileError, read_chunks_dir
from ktools.testing.chunk_files import write_chunker_file


def chunker_file(path, name="Policy.pdf", texts=("# Staff Policy\n## Leave\nStaff get 20 days of annual leave a year.",
                                                  "Sick leave needs a doctor's note after three days.")):
    return write_chunker_file(path.parent, name, texts, file_size=1234, offset_step=100,
                              source_dir="/data/documents", chunk_size=1000, chunk_overlap=200,
                              chunk_file=path.name)


def test_reads_every_chunk_format(tmp_path, caplog):
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    chunker_file(chunks / "Staff-Policy_chunks.json")
    (chunks / "list.json").write_text(json.dumps([
        {"page_content": "LangChain style chunk about harbour fees and tariffs.",
         "metadata": {"source": "harbour.md", "start_index": 5}}]))
    rows = [{"document": "Seed chunk one about the quorum rules.", "source": "rules.md", "chunk_id": "r-0",
             "start": 0, "end": 38, "document_outline": "Club rules", "domain": "governance",
             "icl_document": "Example text.", "icl_query_1": "Q1?", "icl_query_2": "Q2?", "icl_query_3": "Q3?"},
            {"document": "Seed chunk two about votes.", "source": "rules.md", "chunk_id": "r-1",
             "start": 38, "end": 65, "document_outline": "Club rules", "domain": "governance",
             "icl_document": "Example text.", "icl_query_1": "Q1?", "icl_query_2": "Q2?", "icl_query_3": "Q3?"}]
    (chunks / "seed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (chunks / "manual_chunk_002.txt").write_text("Second part of the manual: berth booking.")
    (chunks / "manual_chunk_001.txt").write_text("## Berths\nFirst part of the manual: berth sizes.")
    (chunks / "notes.md").write_text("A lone markdown note about pilots.")
    (chunks / "Old_qa.json").write_text("{}")  # our own output: ignored
    (chunks / "image.png").write_bytes(b"\x89PNG")

    with caplog.at_level(logging.INFO, logger="ktools.compat.training_data_generator.chunk_files"):
        load = read_chunks_dir(chunks)
    assert not load.errors
    docs = {d.source: d for d in load.documents}
    assert set(docs) == {"/data/documents/Policy.pdf", "harbour.md", "rules.md", "manual.txt", "notes.md"}

    policy = docs["/data/documents/Policy.pdf"]
    assert policy.qa_name == "Staff-Policy_qa.json"  # named after the chunk file, as the reference tool does
    assert policy.metadata["file_size"] == 1234 and policy.processing_info["chunk_size"] == 1000
    first = policy.rows[0]
    assert first["chunk_id"] == "Policy#0_0" and first["tdg_chunk_id"] == "0_0"
    assert (first["chunk_index"], first["start"], first["end"]) == (0, 0, len(first["document"]))
    # ICL synthesized from the document itself (as `ktools seed` does without a model), and said so
    assert policy.icl_synthesized and first["document_outline"] == "Staff Policy — sections: Leave"
    assert first["icl_query_1"] == 'What does the document state in the passage beginning "Staff get 20 days of annual leave"?'
    assert first["icl_document"].startswith("# Staff Policy") and first["domain"] == "Staff Policy"
    assert docs["notes.md"].rows[0]["document_outline"] == "notes"  # no title: the file name
    assert "carry no ICL fields" in caplog.text and "Staff-Policy_chunks.json" in caplog.text

    rules = docs["rules.md"]
    assert not rules.icl_synthesized and rules.rows[1]["icl_query_2"] == "Q2?"
    assert [r["chunk_index"] for r in rules.rows] == [0, 1] and rules.rows[1]["tdg_chunk_id"] == "r-1"
    assert docs["harbour.md"].rows[0]["start"] == 5
    manual = docs["manual.txt"]
    assert [r["chunk_index"] for r in manual.rows] == [1, 2] and manual.rows[0]["document"].startswith("## Berths")
    assert len({r["chunk_id"] for r in load.rows}) == len(load.rows) == 8


def test_one_bad_file_is_listed_and_the_others_load(tmp_path):
    chunker_file(tmp_path / "Good_chunks.json", name="Good.pdf")
    (tmp_path / "Broken_chunks.json").write_text('{"chunks": [')
    (tmp_path / "NoText_chunks.json").write_text(json.dumps({"chunks": [{"text": "ok text"}, {"body": "x"}]}))
    (tmp_path / "Unfinished_chunks.json").write_text(json.dumps({"chunks": [{"text": "t"}], "status": "in_progress"}))
    (tmp_path / "lines.jsonl").write_text('{"text": "fine"}\n{"text": \n{"text": "last"}\n')
    load = read_chunks_dir(tmp_path)
    assert [d.qa_name for d in load.documents] == ["Good_qa.json"]
    errors = {p.rsplit("/", 1)[-1]: reason for p, reason in load.errors}
    assert set(errors) == {"Broken_chunks.json", "NoText_chunks.json", "Unfinished_chunks.json", "lines.jsonl"}
    assert "not valid JSON at line 1" in errors["Broken_chunks.json"]
    assert "chunks[1]: no chunk text" in errors["NoText_chunks.json"] and "found fields: body" in \
        errors["NoText_chunks.json"]
    assert "status is 'in_progress'" in errors["Unfinished_chunks.json"]
    assert "line 2" in errors["lines.jsonl"]


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(ChunkFileError, match="does not exist"):
        read_chunks_dir(tmp_path / "nope")
    with pytest.raises(ChunkFileError, match="no chunk files found"):
        read_chunks_dir(tmp_path)
