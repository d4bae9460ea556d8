"""`ktools prepare` / `convert-docs` / `chunk` / `seed` end to end (given ICL values, no model)."""

from __future__ import annotations

import yaml
from docfixtures import make_report_pdf

from ktools.cli import main
from ktools.io import read_json, read_jsonl

ICL = {"domain": "harbours", "document_outline": "A harbour report.",
       "icl_document": "The Harbour Board met on 14 March 2023.",
       "icl_queries": ["When did the Harbour Board meet?", "Which board met?", "In which year did it meet?"]}


def test_prepare_converts_chunks_and_seeds_and_lists_the_bad_file(tmp_path, tmp_output, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    make_report_pdf(folder / "report.pdf")
    (folder / "notes.md").write_text("# Notes\n\n" + "The pier opens at 06:00 every day. " * 80, encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    icl = tmp_path / "icl.yaml"
    icl.write_text(yaml.safe_dump({"report": ICL, "notes": {**ICL, "domain": "piers"}}), encoding="utf-8")
    code = main(["prepare", str(folder), "--icl-file", str(icl), "--max-tokens", "128", "--overlap-tokens", "16",
                 "--min-tokens", "32"])
    out, err = capsys.readouterr()
    assert code == 1, err  # one source failed …
    assert "seed row(s)" in out, err
    assert "empty.txt: the file is empty" in err
    manifest = read_json(tmp_output / "step_02" / "converted" / "manifest.json")  # … the others went on
    assert sorted(d["output"] for d in manifest["documents"]) == ["notes.md", "report_pdf.md"]
    chunks = read_jsonl(tmp_output / "step_02" / "chunks.jsonl")
    seed = read_jsonl(tmp_output / "step_02" / "seed_data.jsonl")
    assert len(seed) == len(chunks) > 2
    assert all(c["n_tokens"] <= 128 for c in chunks)
    pdf_chunks = [c for c in chunks if c["source"] == "report_pdf.md"]
    assert pdf_chunks[0]["pages"][0] == 1 and pdf_chunks[-1]["pages"][-1] == 2
    assert {r["domain"] for r in seed if r["source"] == "notes.md"} == {"piers"}
    assert "seed row(s)" in out


def test_seed_without_icl_values_fails_clearly(tmp_path, tmp_output, capsys):
    """`--icl-mode given` insists on the user's values (the default, auto, drafts what is missing)."""
    src = tmp_path / "a.md"
    src.write_text("# A\n\nSome text about ferries and tides.\n", encoding="utf-8")
    assert main(["convert-docs", str(src)]) == 0
    assert main(["chunk"]) == 0
    capsys.readouterr()
    assert main(["seed", "--icl-mode", "given", "--domain", "ferries"]) == 1
    err = capsys.readouterr().err
    assert "a.md" in err and "no value for document_outline" in err and "ICL mode 'teacher'" in err
    assert not (tmp_output / "step_02" / "seed_data.jsonl").exists()


def test_chunk_before_convert_says_what_to_run(tmp_output, capsys):
    assert main(["chunk"]) == 1
    assert "ktools convert-docs" in capsys.readouterr().err
