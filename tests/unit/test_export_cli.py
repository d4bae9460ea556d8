"""`ktools combine` / `ktools convert` in-process: exit codes and what they tell the user."""

from __future__ import annotations

from ktools.cli import main
from ktools.export import write_qa_file
from ktools.io import read_json, read_jsonl


def qa_doc(name: str) -> dict:
    return {"metadata": {"file_name": f"{name}.pdf", "source_file": f"/d/{name}.pdf"}, "status": "completed",
            "training_pairs": [{"question": f"What is {name} about?", "answer": f"{name} is about ports."}]}


def test_combine_and_convert_report_bad_files_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENERATOR_OUTPUT_FILE", str(tmp_path / "env_default.json"))
    qa = tmp_path / "qa"
    write_qa_file(qa / "A_qa.json", qa_doc("A"))
    (qa / "B_qa.json").write_text('{"metadata": {}}')

    assert main(["combine", "--qa-dir", str(qa)]) == 1
    out = capsys.readouterr()
    assert "1 Q&A pairs from 1 documents" in out.out and "env_default.json" in out.out
    assert "B_qa.json: missing field 'training_pairs'" in out.err
    assert read_json(tmp_path / "env_default.json")["metadata"]["total_qa_pairs"] == 1

    assert main(["convert", str(qa), "--output-dir", str(tmp_path / "t"), "--format", "alpaca-fields"]) == 1
    out = capsys.readouterr()
    assert "A_alpaca.jsonl (1 records)" in out.out and "B_qa.json" in out.err
    assert read_jsonl(tmp_path / "t" / "A_alpaca.jsonl")[0]["output"] == "A is about ports."

    (qa / "B_qa.json").unlink()
    assert main(["convert", str(qa), "--output-dir", str(tmp_path / "t")]) == 0
    assert main(["convert", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "t")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
