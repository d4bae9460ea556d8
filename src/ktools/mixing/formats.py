"""Row formats of step 04: chat rows (standard and GPT-OSS), Alpaca rows, eval rows.

Chat row (`combined_cut_{N}x.jsonl`; what TRL's SFT trainer reads from `messages`):

    {"messages": [{"role": "user", "content": ...},
                  {"role": "assistant", "content": ..., "thinking": ...}],
     "metadata": {"generator", "chunk_id", "source", "item_id", "domain", "document", "key_fact"},
     "unmask": true, "token_length": 812}

- With the document in context (summaries, document-based Q&A) the user turn is
  ``"{outline}\\n{document}\\n\\n{question}"``; without (key-facts Q&A) it is
  ``"In {outline}, {question}"``.
- `thinking` is present only when the generator stored reasoning; the GPT-OSS
  format always carries it (``""`` when there is none), as its chat template expects.
- `unmask` is true: knowledge rows train on the whole sequence, not just the answer.

GPT-OSS cleaning (`clean_for_gpt_oss`) drops rows whose question is a placeholder or
cut off and rows marked `truncated`. Answer markers (``[ANSWER]``, ``[END]``, …) are
stripped in every format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ktools.training_rows import alpaca_fields, chat_messages

ANSWER_MARKERS = re.compile(r"\[(?:/?ANSWER|END|/?QUESTION)\]|</?answer>|</?response>", re.IGNORECASE)
_PLACEHOLDER_QUESTION = re.compile(
    r"""^\s*(?:
        [.…\s]*                                   # empty or only dots
      | <\s*/?\s*question\s*>.*                   # <question> tag leftovers
      | \[\s*question\s*\].*                      # [QUESTION]
      | (?:question|q)\s*\d*\s*[:.]?\s*           # "Question:" with nothing after it
    )$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_TEMPLATE_LEFTOVER = re.compile(r"\{\{.*?\}\}|\{question\}|\{\s*\w+\s*\}|<question>|</question>", re.IGNORECASE)


def clean_answer(text: str) -> str:
    """The answer without generation markers and surrounding whitespace."""
    return ANSWER_MARKERS.sub("", text or "").strip()


def question_problem(question: str) -> str | None:
    """Why a question is unusable for GPT-OSS training (placeholder, truncated), or None."""
    q = (question or "").strip()
    if _PLACEHOLDER_QUESTION.match(q):
        return "placeholder"
    if _TEMPLATE_LEFTOVER.search(q):
        return "template leftover"
    if q.endswith(("...", "…")):
        return "truncated question"
    return None


def row_problem(row: dict[str, Any]) -> str | None:
    """Why GPT-OSS cleaning drops this generated row, or None to keep it."""
    if row.get("truncated"):
        return "truncated answer"
    problem = question_problem(row.get("question", ""))
    if problem:
        return problem
    if not clean_answer(row.get("response", "")):
        return "empty answer"
    return None


@dataclass(frozen=True)
class ChatRow:
    """A formatted training row plus what token counting needs."""

    record: dict[str, Any]
    context: str | None  # the part of the user turn that repeats across rows (for count caching)


def context_text(row: dict[str, Any]) -> str:
    """Outline + document, as put in front of the question (stripped: clean text, safe cache cuts)."""
    outline = (row.get("document_outline") or "").strip()
    document = (row.get("document") or "").strip()
    return f"{outline}\n{document}" if outline else document


def user_turn(row: dict[str, Any], with_document: bool) -> tuple[str, str | None]:
    question = (row.get("question") or "").strip()
    if with_document:
        context = context_text(row)
        return f"{context}\n\n{question}", context
    outline = (row.get("document_outline") or "").strip()
    return (f"In {outline}, {question}" if outline else question), None


def metadata(row: dict[str, Any]) -> dict[str, Any]:
    # The same keys in every row, so `datasets` infers one schema for the file.
    return {
        "generator": row.get("generator"),
        "chunk_id": row.get("chunk_id"),
        "source": row.get("source"),
        "item_id": row.get("item_id"),
        "domain": row.get("domain"),
        "document": row.get("document"),
        "key_fact": row.get("key_fact"),
    }


def to_chat_row(row: dict[str, Any], *, with_document: bool, gpt_oss: bool = False) -> ChatRow:
    user_content, context = user_turn(row, with_document)
    messages = chat_messages(user_content, clean_answer(row.get("response", "")),
                             thinking=row.get("reasoning") or None, gpt_oss=gpt_oss)
    record = {"messages": messages, "metadata": metadata(row), "unmask": True, "token_length": None}
    return ChatRow(record, context)


def to_alpaca(row: dict[str, Any], *, with_document: bool) -> dict[str, Any]:
    """Alpaca: instruction = question (outline-prefixed without document), input = the context."""
    question = (row.get("question") or "").strip()
    if with_document:
        instruction, context = question, context_text(row)
    else:
        instruction, context = user_turn(row, False)[0], ""
    return alpaca_fields(instruction, context, clean_answer(row.get("response", "")))


def to_eval_row(row: dict[str, Any], row_id: str) -> dict[str, Any]:
    """An eval-set row (same shape as the exam: `question`, `answer`, plus provenance).

    `document` is the source chunk (`raw_document`): the ground truth a judge can read.
    """
    return {
        "id": row_id,
        "question": (row.get("question") or "").strip(),
        "answer": clean_answer(row.get("response", "")),
        "generator": row.get("generator"),
        "chunk_id": row.get("chunk_id"),
        "source": row.get("source"),
        "item_id": row.get("item_id"),
        "document": row.get("raw_document") or row.get("document"),
    }
