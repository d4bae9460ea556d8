"""build_mixes end to end on synthetic step-03 data: files, leak-freedom, datasets round trip, CLI."""

from __future__ import annotations

import json

import pytest

from ktools.io import read_jsonl, write_jsonl
from ktools.mixing import MixingInputError, MixOptions, build_mixes
from ktools.mixing.tokens import reference_count
from ktools.paths import OutputPaths
from ktools.testing.synthetic_generated import SyntheticShape, write_synthetic_step03

# These tests are about step 03's rows; the knowledge components have their own tests.
# Synthetic step-03 rows, mixed as they are (their random words are not in their chunks).
STEP03_ONLY = {"components": (), "corpus_exam": False, "drop_invented": False}
SHAPE = SyntheticShape(n_chunks=5, summaries_per_chunk=6, qa_per_summary=3, words_per_chunk=120,
                       words_per_summary=40, reasoning_share=0.3)


@pytest.fixture(scope="module")
def tokenizer():
    from ktools.models import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def built(tmp_output, tokenizer):
    write_synthetic_step03(tmp_output, SHAPE, seed=1)
    paths = OutputPaths(tmp_output)
    options = MixOptions(**STEP03_ONLY, cut_sizes=[2, 4, 50], qa_per_doc=2, save_gpt_oss_format=True, save_alpaca=True,
                         eval_share=0.15, seed=3)
    return build_mixes(options, paths, tokenizer=tokenizer, progress=False), paths


def test_files_counts_and_token_lengths(built, tokenizer):
    report, paths = built
    assert report.cuts == [2, 4]
    assert {r["cut"]: r["status"] for r in report.feasibility}[50] == "dropped"
    for cut in (2, 4):
        rows = read_jsonl(paths.training_mix(cut))
        assert rows and all(set(r) == {"messages", "metadata", "unmask", "token_length"} for r in rows)
        for generator in ("extractive_summary", "detailed_summary"):
            per_chunk: dict[str, set] = {}
            for r in rows:
                if r["metadata"]["generator"] == generator:
                    per_chunk.setdefault(r["metadata"]["chunk_id"], set()).add(r["metadata"]["item_id"])
            assert max(len(v) for v in per_chunk.values()) == cut
        # Every row's stored count is the apply_chat_template count.
        assert all(r["token_length"] == reference_count(tokenizer, r["messages"]) for r in rows)
        assert (paths.training_mix_dir / "gpt_oss" / f"combined_cut_{cut}x.jsonl").is_file()
        assert (paths.training_mix_dir / "alpaca" / f"combined_cut_{cut}x.jsonl").is_file()
    stats = json.loads(paths.mix_stats.read_text())
    assert stats["cuts"] == [2, 4] and stats["token_counting"]["strategy"] == "bytelevel"
    assert {r["cut"] for r in report.per_cut()} == {2, 4}


def test_held_out_rows_never_appear_in_any_mix(built):
    report, paths = built
    eval_rows = read_jsonl(paths.eval_set)
    assert eval_rows
    assert all({"id", "question", "answer", "generator", "chunk_id", "source", "item_id", "document"} <= set(e)
               for e in eval_rows)
    grouping = report.split["grouping"]
    assert grouping["document_based_qa"] == "question (few chunks)"  # 5 chunks only

    def family(generator, item_id, chunk_id, question):
        if grouping[generator] == "chunk":
            return (generator, chunk_id)
        return (generator, question) if grouping[generator].startswith("question") else (generator, item_id)

    held = {family(e["generator"], e["item_id"], e["chunk_id"], e["question"]) for e in eval_rows}
    held_questions = {e["question"] for e in eval_rows}
    assert {e["generator"] for e in eval_rows} == set(grouping)
    for path in paths.training_mix_dir.rglob("*.jsonl"):
        for row in read_jsonl(path):
            if "messages" in row:
                meta, user = row["metadata"], row["messages"][0]["content"]
                question = next((q for q in held_questions if user.endswith(q)), None)
                assert question is None, (path, question)
                assert family(meta["generator"], meta["item_id"], meta["chunk_id"], "") not in held, path
            else:  # alpaca
                assert row["instruction"] not in held_questions, path


def test_every_output_loads_with_datasets(built):
    datasets = pytest.importorskip("datasets")
    report, paths = built
    files = [f["path"] for f in report.files if f["path"].endswith(".jsonl")]
    assert len(files) == 7  # 2 cuts x (chat, gpt_oss, alpaca) + eval
    for path in files:
        ds = datasets.load_dataset("json", data_files=path, split="train")
        assert len(ds) == len(read_jsonl(path)), path
        if "messages" in ds.column_names:
            assert ds[0]["messages"][0]["role"] == "user"
            assert isinstance(ds[0]["token_length"], int)


def test_gpt_oss_cleaning_and_max_seq_len(tmp_output, tokenizer):
    write_synthetic_step03(tmp_output, SHAPE, seed=2)
    paths = OutputPaths(tmp_output)
    gen = paths.generated("detailed_summary")
    rows = read_jsonl(gen)
    rows[0]["question"], rows[1]["truncated"] = "<question>", True
    rows[2]["response"] = "[ANSWER] Fine. [END]"
    write_jsonl(gen, rows)
    report = build_mixes(MixOptions(**STEP03_ONLY, cut_sizes=[6], qa_per_doc=3, save_gpt_oss_format=True, eval_share=0.0,
                                    max_seq_len=250), paths, tokenizer=tokenizer, progress=False)
    chat = read_jsonl(paths.training_mix(6))
    gpt = read_jsonl(paths.training_mix_dir / "gpt_oss" / "combined_cut_6x.jsonl")
    assert all(r["token_length"] <= 250 for r in chat + gpt)
    too_long = sum(d["rows"] for d in report.dropped if d["reason"] == "too long" and d["format"] == "chat")
    assert too_long > 0 and report.per_cut()[0]["dropped_too_long"] == too_long
    cleaned = sum(d["rows"] for d in report.dropped if d["reason"] == "gpt-oss cleaning")
    assert cleaned == 2
    assert all("<question>" not in r["messages"][0]["content"] for r in gpt)
    assert all("[END]" not in r["messages"][1]["content"] for r in chat + gpt)
    assert all("thinking" in m for r in gpt for m in r["messages"])


def test_a_max_seq_len_that_drops_every_row_is_an_error_and_keeps_the_old_mix(tmp_output, tokenizer):
    write_synthetic_step03(tmp_output, SHAPE, seed=2)
    paths = OutputPaths(tmp_output)
    build_mixes(MixOptions(**STEP03_ONLY, cut_sizes=[2], eval_share=0.0), paths, tokenizer=tokenizer, progress=False)
    before = paths.training_mix(2).read_bytes()
    with pytest.raises(MixingInputError, match=r"combined_cut_2x.jsonl: cut 2 \(chat\) would hold no rows.*"
                                               r"too long.*Raise MAX_SEQ_LEN \(now 8\)"):
        build_mixes(MixOptions(**STEP03_ONLY, cut_sizes=[2], eval_share=0.0, max_seq_len=8), paths, tokenizer=tokenizer,
                    progress=False)
    assert paths.training_mix(2).read_bytes() == before


def test_missing_datasets_are_reported_and_none_is_an_error(tmp_output, tokenizer):
    paths = OutputPaths(tmp_output)
    with pytest.raises(MixingInputError, match="Run step 03"):
        build_mixes(MixOptions(**STEP03_ONLY), paths, tokenizer=tokenizer, progress=False)
    write_synthetic_step03(tmp_output, SHAPE, seed=1, generators=("key_facts_to_qa",))
    report = build_mixes(MixOptions(**STEP03_ONLY, cut_sizes=[5, 50]), paths, tokenizer=tokenizer, progress=False)
    assert report.cuts == [5]
    assert any("missing step-03 datasets" in n and "detailed_summary" in n for n in report.notes)


def test_bad_record_names_file_record_and_field(tmp_output, tokenizer):
    write_synthetic_step03(tmp_output, SHAPE, seed=1, generators=("detailed_summary",))
    paths = OutputPaths(tmp_output)
    rows = read_jsonl(paths.generated("detailed_summary"))
    del rows[3]["response"]
    write_jsonl(paths.generated("detailed_summary"), rows)
    with pytest.raises(MixingInputError, match=r"gen.jsonl, record 4: missing field 'response'"):
        build_mixes(MixOptions(**STEP03_ONLY), paths, tokenizer=tokenizer, progress=False)


def test_cli_mix(tmp_output, capsys):
    from ktools.cli import main

    write_synthetic_step03(tmp_output, SHAPE, seed=1)
    assert main(["mix", "--cut-sizes", "3", "--qa-per-doc", "1", "--alpaca", "--eval-share", "0.2",
                 "--components", "none", "--keep-invented"]) == 0  # synthetic rows: random words
    out = capsys.readouterr().out
    assert "cut    3x" in out and "eval set:" in out
    paths = OutputPaths(tmp_output)
    assert paths.training_mix(3).is_file() and paths.eval_set.is_file() and paths.mix_stats.is_file()
    assert main(["mix", "--cut-sizes", "x"]) == 2


def test_failed_run_leaves_previous_outputs_untouched(tmp_output, tokenizer):
    write_synthetic_step03(tmp_output, SHAPE, seed=1)
    paths = OutputPaths(tmp_output)
    build_mixes(MixOptions(**STEP03_ONLY, cut_sizes=[3]), paths, tokenizer=tokenizer, progress=False)
    before = {p: p.read_bytes() for p in (paths.training_mix(3), paths.eval_set, paths.mix_stats)}
    rows = read_jsonl(paths.generated("key_facts_to_qa"))
    rows[-1]["question"] = None
    write_jsonl(paths.generated("key_facts_to_qa"), rows)
    with pytest.raises(MixingInputError, match="key_facts_to_qa/gen.jsonl"):
        build_mixes(MixOptions(**STEP03_ONLY, cut_sizes=[3], eval_share=0.3, seed=9), paths, tokenizer=tokenizer, progress=False)
    assert {p: p.read_bytes() for p in before} == before
