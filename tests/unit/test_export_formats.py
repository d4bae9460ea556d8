"""Alpaca, messages and qna.yaml exports: golden cases and round trips."""

from __future__ import annotations

import json

import pytest
import yaml

from ktools.export import (
    alpaca_fields_record,
    alpaca_text_record,
    dump_qna_yaml,
    messages_record,
    qna_yaml_document,
)
from ktools.io import write_jsonl

# Copied verbatim from the Training Data Generator's README (reference/training_data_generator.md).
REFERENCE_ALPACA_LINES = [
    '{"text": "Below is an instruction that describes a task. Write a response that appropriately completes '
    'the request.\\n\\n### Instruction:\\nWhat is the purpose of the NZISM?\\n\\n### Response:\\nThe NZISM '
    'details processes and controls essential for protecting all New Zealand Government information and '
    'systems."}',
    '{"text": "Below is an instruction that describes a task. Write a response that appropriately completes '
    'the request.\\n\\n### Instruction:\\nWho is encouraged to use the NZISM?\\n\\n### Response:\\nNew Zealand '
    'Government departments, agencies, Crown entities, local government, and private sector organisations are '
    'encouraged to use the NZISM."}',
]
PAIRS = [
    {"question": "What is the purpose of the NZISM?",
     "answer": "The NZISM details processes and controls essential for protecting all New Zealand Government "
               "information and systems.",
     "source_file": "/data/documents/NZISM.pdf", "file_name": "NZISM.pdf", "file_type": ".pdf",
     "chunk_id": "0_0", "chunk_index": 0, "chunk_start": 0, "chunk_end": 971,
     "source_text": "1 Version_3.9__April-2025\nThe NZISM details processes..."},
    {"question": "Who is encouraged to use the NZISM?",
     "answer": "New Zealand Government departments, agencies, Crown entities, local government, and private "
               "sector organisations are encouraged to use the NZISM.",
     "source_file": "/data/documents/NZISM.pdf", "file_name": "NZISM.pdf", "file_type": ".pdf",
     "chunk_id": "0_1", "chunk_index": 1, "chunk_start": 900, "chunk_end": 1800,
     "source_text": "Agencies: all departments...\n\n  indented: yes # not a comment"},
]


def test_alpaca_text_matches_reference_lines_exactly():
    produced = [json.dumps(alpaca_text_record(p), ensure_ascii=False) for p in PAIRS]
    assert produced == REFERENCE_ALPACA_LINES


def test_alpaca_fields_form_and_optional_context():
    assert alpaca_fields_record(PAIRS[0]) == {
        "instruction": PAIRS[0]["question"], "input": "", "output": PAIRS[0]["answer"]}
    assert alpaca_fields_record(PAIRS[0], with_context=True)["input"] == PAIRS[0]["source_text"]
    # ktools step-03 rows say "response" instead of "answer"
    assert alpaca_fields_record({"question": "Q?", "response": " A. "})["output"] == "A."


def test_messages_records_load_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [messages_record(p, system_message="You know the NZISM.") for p in PAIRS]
    rows.append(messages_record({"question": "Q without provenance?", "answer": "A."}))
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    ds = datasets.load_dataset("json", data_files=str(path), split="train",
                               cache_dir=str(tmp_path / "hf_cache"))
    assert len(ds) == 3
    assert [m["role"] for m in ds[0]["messages"]] == ["system", "user", "assistant"]
    assert ds[0]["messages"][2]["content"] == PAIRS[0]["answer"]
    assert ds[1]["metadata"]["chunk_id"] == "0_1" and ds[2]["metadata"]["chunk_index"] is None
    assert [m["role"] for m in ds[2]["messages"]] == ["user", "assistant"]


def test_qna_yaml_round_trips_and_uses_block_scalars():
    tricky = {"question": 'Does "quote": work, with #hash and: colon?', "answer": "Yes.\nSecond line\n  indented",
              "chunk_id": "0_1", "source_text": PAIRS[1]["source_text"]}
    doc = {"metadata": {"file_name": "NZISM.pdf", "source_file": "/data/documents/NZISM.pdf",
                        "domain": "security", "document_outline": "NZ Information Security Manual"},
           "training_pairs": [PAIRS[0], PAIRS[1], tricky]}
    data = qna_yaml_document(doc)
    text = dump_qna_yaml(data)
    loaded = yaml.safe_load(text)
    assert loaded == data
    assert loaded["version"] == 3 and loaded["created_by"] == "ktools"
    assert loaded["domain"] == "security"
    assert loaded["document_outline"] == "NZ Information Security Manual"
    assert loaded["document"] == {"repo": "/data/documents", "commit": "", "patterns": ["NZISM.pdf"]}
    # one seed example per chunk, pairs grouped under their context
    assert len(loaded["seed_examples"]) == 2
    assert loaded["seed_examples"][1]["context"] == PAIRS[1]["source_text"].strip()
    assert [qa["question"] for qa in loaded["seed_examples"][1]["questions_and_answers"]] == \
        [PAIRS[1]["question"], tricky["question"]]
    assert "context: |" in text  # multi-line text as block scalars, readable for review


def test_qna_yaml_defaults_without_metadata():
    data = qna_yaml_document({"training_pairs": [{"question": "Q one two?", "answer": "A"}]},
                             domain="ops", created_by="me")
    loaded = yaml.safe_load(dump_qna_yaml(data))
    assert loaded["domain"] == "ops" and loaded["created_by"] == "me"
    assert loaded["seed_examples"][0]["questions_and_answers"] == [{"question": "Q one two?", "answer": "A"}]
