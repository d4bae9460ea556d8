"""The eval split holds out whole families of paraphrases and never leaves training empty."""

from __future__ import annotations

from ktools.mixing.split import normalise_question, split_eval
from ktools.testing.synthetic_generated import ALL_GENERATORS, SyntheticShape, generate_rows


def _datasets(n_chunks=30, seed=0):
    shape = SyntheticShape(n_chunks=n_chunks, summaries_per_chunk=4, qa_per_summary=3, facts_per_chunk=3,
                           qa_per_fact=3, doc_qa_per_chunk=4, words_per_chunk=30, words_per_summary=10)
    return {g: generate_rows(g, shape, seed) for g in ALL_GENERATORS}


def test_groups_are_held_out_whole():
    data = _datasets()
    result = split_eval(data, eval_share=0.2, seed=1)
    for generator, train in result.train.items():
        held = [e for e in result.eval_rows if e["generator"] == generator]
        assert held, generator
        if generator == "document_based_qa":
            key = "chunk_id"  # 30 chunks: grouped by whole chunk
            assert result.report.grouping[generator] == "chunk"
        else:
            key = "item_id"
        held_keys = {e[key] for e in held}
        assert not held_keys & {r[key] for r in train}, generator
        # Every row of a held-out group is in eval, none left behind.
        assert sum(1 for r in data[generator] if r[key] in held_keys) == len(held)
    share = result.report.held_out_groups["key_facts_to_qa"] / result.report.groups["key_facts_to_qa"]
    assert abs(share - 0.2) < 0.05


def test_split_is_deterministic_and_seed_dependent():
    data = _datasets()
    ids = [e["id"] for e in split_eval(data, 0.1, seed=3).eval_rows]
    assert ids == [e["id"] for e in split_eval(data, 0.1, seed=3).eval_rows]
    assert ids != [e["id"] for e in split_eval(data, 0.1, seed=4).eval_rows]
    assert len(set(ids)) == len(ids)


def test_few_chunks_hold_out_items_and_keep_training_data():
    data = _datasets(n_chunks=2)
    result = split_eval(data, eval_share=0.1, seed=0)
    assert result.report.grouping["document_based_qa"] == "question (few chunks)"
    assert any("only 2 chunks" in n for n in result.report.notes)
    doc_eval = [e for e in result.eval_rows if e["generator"] == "document_based_qa"]
    assert doc_eval and len(doc_eval) < 4  # single questions, not a whole chunk's 4
    for generator in ALL_GENERATORS:
        assert result.train[generator], generator
        assert {r["chunk_id"] for r in result.train[generator]} == {"doc_0.md#0000", "doc_1.md#0001"}
    assert result.report.eval_rows  # something was held out even with tiny data


def test_duplicate_questions_across_generators_are_removed_from_training():
    data = _datasets()
    result0 = split_eval(data, 0.1, seed=2)
    victim = result0.eval_rows[0]
    # Put the held-out question, re-cased and re-punctuated, into another generator's training rows.
    other = next(g for g in ALL_GENERATORS if g != victim["generator"])
    data[other][0] = {**data[other][0], "question": victim["question"].upper().replace("?", " ?!")}
    result = split_eval(data, 0.1, seed=2)
    assert result.report.removed_duplicate_questions >= 1
    held = {normalise_question(e["question"]) for e in result.eval_rows}
    for rows in result.train.values():
        assert not any(normalise_question(r["question"]) in held for r in rows)


def test_zero_share_and_placeholders():
    data = _datasets(n_chunks=3)
    assert split_eval(data, 0.0).eval_rows == []
    for r in data["key_facts_to_qa"]:
        r["question"] = "<question>"
    result = split_eval(data, 0.5, seed=0)
    assert not [e for e in result.eval_rows if e["generator"] == "key_facts_to_qa"]
