"""Chat / GPT-OSS / Alpaca / eval row formats and the GPT-OSS cleaning."""

from __future__ import annotations

import pytest

from ktools.mixing.formats import (
    clean_answer,
    question_problem,
    row_problem,
    to_alpaca,
    to_chat_row,
    to_eval_row,
)

ROW = {"question": " What is the fee? ", "response": "[ANSWER] It is 5 crowns. [END]", "document": "Summary text.\n",
       "raw_document": "The chunk.", "document_outline": "Harbour Rules", "chunk_id": "c1", "source": "a.md",
       "generator": "detailed_summary", "item_id": "c1/summary/0", "domain": "law", "reasoning": None,
       "truncated": False}


def test_chat_row_with_document_in_context():
    row = to_chat_row(ROW, with_document=True)
    user, assistant = row.record["messages"]
    assert user == {"role": "user", "content": "Harbour Rules\nSummary text.\n\nWhat is the fee?"}
    assert assistant == {"role": "assistant", "content": "It is 5 crowns."}
    assert row.context == "Harbour Rules\nSummary text."
    assert row.record["unmask"] is True
    assert row.record["metadata"]["document"] == "Summary text.\n"
    assert set(row.record["metadata"]) == {"generator", "chunk_id", "source", "item_id", "domain", "document",
                                           "key_fact"}


def test_key_facts_row_has_outline_prefix_and_no_document():
    row = to_chat_row({**ROW, "generator": "key_facts_to_qa"}, with_document=False)
    assert row.record["messages"][0]["content"] == "In Harbour Rules, What is the fee?"
    assert row.context is None


def test_thinking_only_with_reasoning_and_always_in_gpt_oss():
    with_reasoning = {**ROW, "reasoning": "Because rule 4."}
    assert to_chat_row(with_reasoning, with_document=True).record["messages"][1]["thinking"] == "Because rule 4."
    assert "thinking" not in to_chat_row(ROW, with_document=True).record["messages"][1]
    gpt = to_chat_row(ROW, with_document=True, gpt_oss=True).record["messages"]
    assert gpt[0]["thinking"] is None and gpt[1]["thinking"] == ""


@pytest.mark.parametrize("question,problem", [
    ("", "placeholder"), ("...", "placeholder"), ("<question>", "placeholder"), ("[QUESTION]", "placeholder"),
    ("Question:", "placeholder"), ("What is {{ topic }}?", "template leftover"),
    ("Explain {question}", "template leftover"), ("What does the rule say about...", "truncated question"),
    ("What is the fee?", None), ("Which fees apply … and when?", None),
])
def test_question_problems(question, problem):
    assert question_problem(question) == problem


def test_row_problem_and_answer_markers():
    assert row_problem(ROW) is None
    assert row_problem({**ROW, "truncated": True}) == "truncated answer"
    assert row_problem({**ROW, "response": "[END]"}) == "empty answer"
    assert clean_answer("<answer>Yes</answer>\n[END]") == "Yes"


def test_alpaca_and_eval_rows():
    assert to_alpaca(ROW, with_document=True) == {"instruction": "What is the fee?",
                                                  "input": "Harbour Rules\nSummary text.", "output": "It is 5 crowns."}
    assert to_alpaca(ROW, with_document=False)["input"] == ""
    ev = to_eval_row(ROW, "x/1")
    assert ev["answer"] == "It is 5 crowns." and ev["document"] == "The chunk." and ev["id"] == "x/1"
