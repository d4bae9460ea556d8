"""Parsers against the formats real teachers (and the embedded 135M model) return."""

from __future__ import annotations

import pytest

from ktools.generate.parsing import (
    parse_answer,
    parse_judge,
    parse_list,
    parse_qa_pairs,
    parse_questions,
    parse_text,
    strip_reasoning,
)


@pytest.mark.parametrize("text", [
    "Question: What is the fee?\nAnswer: Ten euros.\nQuestion: Who pays the fee?\nAnswer: The applicant.",
    "Sure! Here are the pairs:\n\nQ1: What is the fee?\nA1: Ten euros.\n\nQ2: Who pays the fee?\nA2: The applicant.",
    "1. **Question 1:** What is the fee?\n**Answer:** Ten euros.\n2. **Question 2:** Who pays the fee?\n**Answer:** The applicant.",
    "[QUESTION] What is the fee? [ANSWER] Ten euros. [END]\n[QUESTION] Who pays the fee? [ANSWER] The applicant.",
    "### Question\nWhat is the fee?\n### Answer\nTen euros.\n### Question\nWho pays the fee?\n### Answer\nThe applicant.",
    "1. What is the fee? Ten euros.\n2. Who pays the fee? The applicant.",
    'Here you go:\n```json\n[{"question": "What is the fee?", "answer": "Ten euros."},\n'
    ' {"question": "Who pays the fee?", "answer": "The applicant."}]\n```',
    '{"pairs": [{"Question": "What is the fee?", "Response": "Ten euros."}, '
    '{"Question": "Who pays the fee?", "Response": "The applicant."}]}',
    "```\nQuestion: What is the fee? Answer: Ten euros.\nQuestion: Who pays the fee? Answer: The applicant.\n```",
])
def test_qa_pairs_in_many_styles(text):
    pairs = parse_qa_pairs(text)
    assert [p["question"] for p in pairs] == ["What is the fee?", "Who pays the fee?"]
    assert [p["response"] for p in pairs] == ["Ten euros.", "The applicant."]


def test_qa_pairs_question_without_answer_is_dropped_and_truncation_drops_last():
    text = "Question: What is the fee?\nAnswer: Ten euros.\nQuestion: Who pays the fee?\nAnswer: The appl"
    assert len(parse_qa_pairs(text)) == 2
    assert len(parse_qa_pairs(text, truncated=True)) == 1
    assert parse_qa_pairs("Question: What is the fee?") == []
    assert parse_qa_pairs("I cannot help with that.") == []
    assert parse_qa_pairs("") == [] and parse_qa_pairs(None) == []


@pytest.mark.parametrize("text", [
    "1. What is the fee?\n2. Who pays the fee?\n3. When is the fee due?",
    "Here are three questions:\n1) What is the fee?\n2) Who pays the fee?\n3) When is the fee due?",
    "- Q1: What is the fee?\n- Q2: Who pays the fee?\n- Q3: When is the fee due?",
    "What is the fee? Who pays the fee? When is the fee due?",
    "[QUESTION] What is the fee? [END] [QUESTION] Who pays the fee? [END] [QUESTION] When is the fee due?",
    "1. What is the fee? It is ten euros.\n2. Who pays the fee?\n3. when is the fee due",
    "First question: What is the fee?\nSecond question: Who pays the fee?\nThird question: When is the fee due?",
])
def test_questions_in_many_styles(text):
    assert parse_questions(text) == ["What is the fee?", "Who pays the fee?", "When is the fee due?"]


def test_questions_dedupe_and_reject_prose():
    assert parse_questions("1. What is the fee?\n2. What is the fee?") == ["What is the fee?"]
    assert parse_questions("The document talks about fees.") == []


@pytest.mark.parametrize("text", [
    "1. The fee is ten euros.\n2. The applicant pays the fee.",
    "Facts:\n- The fee is ten euros.\n- The applicant pays the fee.",
    "Fact 1: The fee is ten euros.\nFact 2: The applicant pays the fee.",
    "The fee is ten euros. The applicant pays the fee.",
    "1.\nThe fee is ten euros.\n2.\nThe applicant pays the fee.",
])
def test_lists_in_many_styles(text):
    assert parse_list(text) == ["The fee is ten euros.", "The applicant pays the fee."]


def test_list_continuation_lines_and_truncation():
    text = "1. The fee is ten\n   euros per year.\n2. The applicant pays the fee.\n3. The office closes at"
    assert parse_list(text)[0] == "The fee is ten euros per year."
    assert parse_list(text, truncated=True) == ["The fee is ten euros per year.", "The applicant pays the fee."]


def test_text_and_answer():
    assert parse_text("Summary: The fee is ten euros and is paid by the applicant.") == [
        "The fee is ten euros and is paid by the applicant."]
    assert parse_text("ok") == []
    assert parse_answer("Answer: Ten euros.\nQuestion: What else is there?") == ["Ten euros."]
    assert parse_answer("<|im_end|>") == []


def test_reasoning_is_split_off():
    assert strip_reasoning("<think>let me see</think>Ten euros.") == ("Ten euros.", "let me see")
    answer, reasoning = strip_reasoning("<think>never closed because of max_tokens")
    assert answer == "" and reasoning == "never closed because of max_tokens"
    assert strip_reasoning("plain") == ("plain", None)


@pytest.mark.parametrize("text, scale, score", [
    ("Score: 1\nReason: supported", 1, 1.0),
    ("Score: 0\nReason: the fee is not mentioned", 1, 0.0),
    ("**Score:** 2 - fully answers", 2, 1.0),
    ("Score: 1", 2, 0.5),
    ("YES. Every claim is supported.", 1, 1.0),
    ("No, the answer invents a date.", 1, 0.0),
    ("I would rate this 2/2.", 2, 1.0),
    ("1", 1, 1.0),
    ("<think>hmm</think>Score: 1", 1, 1.0),
])
def test_judge_scores(text, scale, score):
    assert parse_judge(text, scale)[0] == score


def test_judge_unparsable_and_reason():
    assert parse_judge("The answer seems fine to me.", 1)[0] is None
    assert parse_judge("Score: 7", 2)[0] is None  # out of scale: not trusted
    assert parse_judge("Score: 0\nReason: the date is wrong", 1)[1] == "the date is wrong"
