"""A real teacher rewrites the rule-built exam questions into natural ones.

Only a teacher that can write well is asked: the embedded 135M model returns
fragments more often than questions (its drafts are what `documents/seed.py` falls
back from), so with it the rule questions stay as they are. A rewrite is kept only
when `exam._accept_rephrase` finds it a question that does not give the answer away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_INSTRUCTION = (
    "Rewrite the quiz question below as one natural, self-contained exam question. Keep every name "
    "that identifies the subject (the organisation, document, route or product) so the question can be "
    "answered without seeing the text. The answer must be exactly: {answer}. Do not include the answer "
    "in the question. Reply with the question only.\n\nSentence: {sentence}\nQuiz question: {question}")


def teacher_rephraser(settings: Any, max_tokens: int = 120) -> Callable[[str, str, str], str | None] | None:
    """A rephrase function for `build_exam` (call its `.close()` when done), or None when the
    teacher is the embedded one."""
    if getattr(settings, "uses_embedded_teacher", True):
        return None
    from ktools.llm.client import TeacherClient
    from ktools.llm.types import SamplingParams

    client = TeacherClient.from_settings(settings)
    params = SamplingParams(temperature=0.2, max_tokens=max_tokens)

    def rephrase(question: str, sentence: str, answer: str) -> str | None:
        prompt = _INSTRUCTION.format(answer=answer, sentence=sentence, question=question)
        try:
            result = client.chat([{"role": "user", "content": prompt}], params)
        except Exception as exc:  # noqa: BLE001 - the rule question stays; the reason is logged
            log.warning("exam question kept as written by rule: the teacher failed (%s)", exc)
            return None
        return result.choices[0].text if result.choices else None

    rephrase.close = client.close  # type: ignore[attr-defined]  # the caller closes it after step 04
    return rephrase
