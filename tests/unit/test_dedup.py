"""Near-duplicate questions across chunks and generators (ktools.generate.dedup, in step 03's output)."""

from __future__ import annotations

import random

import pytest

from ktools.generate import GenerationOptions, run_generation
from ktools.generate.dedup import find_duplicates, jaccard, normalise, shingles
from ktools.io import read_jsonl
from ktools.testing.scripted import ScriptedClient, reply_for


def test_equal_normalised_text_and_near_duplicates_go_distinct_questions_stay():
    questions = [
        "What is the harbour levy per berth?",                                   # 0 kept
        "what is the harbour levy per berth",                                    # 1 = 0
        "What is the fee for cars?",                                             # 2 kept
        "What is the fee for bikes?",                                            # 3 kept: one content word
        "According to the rules, what is the harbour levy per berth each March?",  # 4 kept
        "According to the rules what is the harbour levy per berth each March in total?",  # 5 ~ 4
    ]
    found = {d.index: (d.kept, d.similarity) for d in find_duplicates(questions, 0.8)}
    assert found[1] == (0, 1.0)
    assert found[5][0] == 4 and 0.8 <= found[5][1] < 1.0
    assert set(found) == {1, 5}
    assert {d.index for d in find_duplicates(questions, 1.0)} == {1}  # 1.0: equal text only


def test_prefix_filtering_finds_exactly_what_comparing_every_pair_finds():
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(30)]
    base = [" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 12))) for _ in range(60)]
    questions = base + [q.replace(q.split()[-1], rng.choice(vocab), 1) for q in base[:60]]
    rng.shuffle(questions)
    for threshold in (0.5, 0.7, 0.9):
        kept: list[int] = []
        expected = set()
        sets = [shingles(normalise(q)) for q in questions]
        for i in range(len(questions)):
            if any(normalise(questions[i]) == normalise(questions[j]) or jaccard(sets[i], sets[j]) >= threshold
                   for j in kept):
                expected.add(i)
            else:
                kept.append(i)
        assert {d.index for d in find_duplicates(questions, threshold)} == expected, threshold


def test_bad_threshold():
    with pytest.raises(ValueError):
        find_duplicates(["a"], 0.0)


def same_question_everywhere(user, index):
    if "question and answer pairs" in user:
        return ("Question: What is the harbour levy?\nAnswer: It is a fee per berth.\n"
                f"Question: What does chunk {abs(hash(user)) % 1000} add?\nAnswer: Detail {index}.")
    return reply_for(user, index)


SEEDS = [{"document": f"Chunk {i}: the harbour levy is a fee per berth, chunk {i} adds detail {i}.",
          "chunk_id": f"c{i}", "source": "doc.md"} for i in range(5)]


def test_step_03_drops_repeats_across_chunks_counts_them_and_resumes_identically(tmp_path):
    options = GenerationOptions(generators=("document_based_qa",), questions_per_chunk=2, show_progress=False,
                                judge_question=False, judge_faithfulness=False, judge_relevancy=False)
    report = run_generation(SEEDS, options, ScriptedClient(reply=same_question_everywhere), tmp_path)
    g = report.generators["document_based_qa"]
    assert g["duplicates"] == 4 and g["rows"] == 6 and report.dedup == {"threshold": 0.9, "dropped": 4, "kept": 6}
    rows = read_jsonl(tmp_path / "document_based_qa" / "gen.jsonl")
    assert [r["question"] for r in rows].count("What is the harbour levy?") == 1
    assert rows[0]["chunk_id"] == "c0"  # the first occurrence in seed order stays
    dups = read_jsonl(tmp_path / "document_based_qa" / "duplicates.jsonl")
    assert len(dups) == 4 and all(d["duplicate_of"] == rows[0]["item_id"] for d in dups)
    assert "duplicates" in report.table().columns
    before = (tmp_path / "document_based_qa" / "gen.jsonl").read_bytes()
    again = run_generation(SEEDS, options, ScriptedClient(reply=same_question_everywhere), tmp_path)
    assert again.requests["sent"] == 0 and (tmp_path / "document_based_qa" / "gen.jsonl").read_bytes() == before
    off = run_generation(SEEDS, options.replace(dedup_threshold=None), ScriptedClient(reply=same_question_everywhere),
                         tmp_path / "off")
    assert off.rows == 10
