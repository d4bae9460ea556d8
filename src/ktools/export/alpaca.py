"""Alpaca training records.

`alpaca_text_record` is the Training Data Generator's `{document}_trainingdata.jsonl` line,
word for word: `{"text": "Below is an instruction ...\\n\\n### Instruction:\\n<q>\\n\\n### Response:\\n<a>"}`.
`alpaca_fields_record` is the instruction/input/output form most trainers also accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktools.training_rows import alpaca_fields

ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n{response}"
)


def _question_answer(pair: Mapping[str, Any]) -> tuple[str, str]:
    answer = pair.get("answer", pair.get("response"))
    return str(pair["question"]).strip(), str(answer).strip()


def alpaca_text(instruction: str, response: str) -> str:
    return ALPACA_TEMPLATE.format(instruction=instruction, response=response)


def alpaca_text_record(pair: Mapping[str, Any]) -> dict[str, str]:
    question, answer = _question_answer(pair)
    return {"text": alpaca_text(question, answer)}


def alpaca_fields_record(pair: Mapping[str, Any], *, with_context: bool = False) -> dict[str, str]:
    """`input` is empty (closed-book knowledge tuning) unless `with_context` puts the chunk there."""
    question, answer = _question_answer(pair)
    context = str(pair.get("source_text") or "").strip() if with_context else ""
    return alpaca_fields(question, context, answer)
