"""`ktools generate` → `combine` → `convert` end to end, as subprocesses, against the scripted fake server.

Settings come the way Training Data Generator users give them: GENERATOR_* / OLLAMA_*
environment variables, `--provider local` meaning Ollama because OLLAMA_BASE_URL is set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from ktools.io import read_json, read_jsonl
from ktools.testing.chunk_files import write_chunker_file

pytestmark = pytest.mark.slow

SECRET = "sk-test-DO-NOT-PRINT-123456"


def responder(body, index):
    prompt = body["messages"][-1]["content"]
    if 'Reply with "Score:' in prompt:
        return ("Score: 2" if '"Score: 2"' in prompt else "Score: 1") + "\nReason: supported by the document."
    document = prompt.split("Document:")[-1]
    words = re.findall(r"[A-Za-z]{6,}", document) or ["content"]
    return "\n".join(f"Question: What does the document say about {w.lower()}?\nAnswer: It describes {w}."
                     for w in words[:2])


def write_chunks(folder):
    folder.mkdir()
    texts = ["# Harbour Rules\nVessels must reserve berths fourteen days ahead.",
             "Tankers require licensed pilots inside the basin.",
             "Dredging happens every spring, surveys follow in summer."]
    write_chunker_file(folder, "Harbour Rules.pdf", texts, file_size=4321, offset_step=60)
    (folder / "ferries.md").write_text("Ferries depart hourly from the northern terminal building.")
    (folder / "corrupt_chunks.json").write_text('{"chunks": [{"text": "unterminated')


def ktools(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "ktools", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=240)


def test_generate_resume_combine_convert(tmp_path):
    from ktools.testing.fake_openai import FakeOpenAIServer

    write_chunks(tmp_path / "chunks")
    qa = tmp_path / "qa_results"
    with FakeOpenAIServer(responder=responder) as server:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "KTOOLS_OUTPUT_DIR": str(tmp_path / "output"),
               "GENERATOR_PROVIDER": "local", "GENERATOR_MODEL": "fake-model",
               "OLLAMA_BASE_URL": server.base_url.removesuffix("/v1"), "OLLAMA_TOP_K": "40",
               "GENERATOR_QUESTIONS_PER_CHUNK": "2", "GENERATOR_OUTPUT_DIR": str(qa)}
        cmd = ["generate", "--chunks-dir", str(tmp_path / "chunks"), "--temperature", "0.3",
               "--api-key", SECRET, "--no-progress"]
        first = ktools(cmd, env, tmp_path)
        output = first.stdout + first.stderr
        assert first.returncode == 1, output  # one bad chunk file: listed, the others done
        assert SECRET not in output
        assert "corrupt_chunks.json" in first.stderr and "not valid JSON" in first.stderr
        assert "2/3 documents done" in first.stdout and "8 Q&A pairs" in first.stdout
        sent = server.requests
        generation = [b for b in sent if 'Reply with "Score:' not in b["messages"][-1]["content"]]
        assert len(generation) == 4 and len(sent) == 4 + 8 * 3  # + three judges per pair
        assert all(b["model"] == "fake-model" and b.get("top_k") == 40 and b["temperature"] == 0.3
                   for b in generation)

        harbour = read_json(qa / "Harbour Rules_qa.json")
        assert harbour["status"] == "completed" and harbour["summary"]["total_qa_pairs"] == 6
        assert harbour["qa_generation_info"]["provider"] == "ollama"
        assert [p["chunk_id"] for p in harbour["training_pairs"]] == ["0_0", "0_0", "0_1", "0_1", "0_2", "0_2"]
        summary = read_json(qa / "qa_generation_summary.json")
        assert summary["successful_files"] == 2 and summary["failed_files"] == 1

        second = ktools(cmd, env, tmp_path)  # resume is the default
        assert second.returncode == 1, second.stdout + second.stderr
        assert len(server.requests) == len(sent), "a resumed run must not re-send answered requests"
        assert read_json(qa / "Harbour Rules_qa.json")["training_pairs"] == harbour["training_pairs"]

    combined_path = tmp_path / "results" / "training_data.json"
    combine = ktools(["combine", "--qa-dir", str(qa), "--output-file", str(combined_path)], env, tmp_path)
    assert combine.returncode == 0, combine.stdout + combine.stderr
    combined = read_json(combined_path)
    assert combined["metadata"]["total_qa_pairs"] == 8 and combined["metadata"]["num_documents"] == 2
    assert combined["metadata"]["source_qa_files"] == ["Harbour Rules_qa.json", "ferries_qa.json"]

    training = tmp_path / "training"
    convert = ktools(["convert", str(qa), "--output-dir", str(training)], env, tmp_path)
    assert convert.returncode == 0, convert.stdout + convert.stderr
    lines = read_jsonl(training / "Harbour Rules_trainingdata.jsonl")
    assert len(lines) == 6 and lines[0]["text"].startswith(
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nWhat does the document say about")
    review = ktools(["convert", str(qa / "ferries_qa.json"), "--output-dir", str(training), "--format", "qna-yaml"],
                    env, tmp_path)
    assert review.returncode == 0, review.stderr
    data = yaml.safe_load((training / "ferries_qna.yaml").read_text())
    assert data["seed_examples"][0]["context"].startswith("Ferries depart hourly")
    step03 = ktools(["convert", str(qa), "--output-dir", str(training / "msgs"), "--format", "messages",
                     "--output-file", "all.jsonl"], env, tmp_path)
    assert step03.returncode == 0 and len(read_jsonl(training / "msgs" / "all.jsonl")) == 8
