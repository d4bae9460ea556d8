"""LLM judge: the teacher scores an answer 1–5 against the reference, with a short reason.

Small or busy teachers reply off-format ("4/5", "**Rating**: 3", prose); the parser
takes the most explicit score it finds and returns None when there is none. A failed
request or an unparsable reply is recorded on the item and never fails the evaluation.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ktools.llm.types import SamplingParams

log = logging.getLogger(__name__)

JUDGE_SYSTEM = "You are a strict grader. You compare a candidate answer with a reference answer."
JUDGE_TEMPLATE = """Question: {question}

Reference answer: {reference}

Candidate answer: {answer}

Rate how well the candidate answer agrees with the reference answer:
5 = correct and complete, 4 = correct but missing a detail, 3 = partly correct,
2 = mostly wrong, 1 = wrong, empty or unrelated.
Reply in exactly this form:
Score: <1-5>
Reason: <one short sentence>"""

_NUM = r"([1-5](?:\.\d+)?)"
_PATTERNS = [
    re.compile(r"(?:score|rating|grade)\W{0,6}(?:is\s*|of\s*)?" + _NUM + r"(?!\d)", re.IGNORECASE),
    re.compile(_NUM + r"\s*(?:/|out\s+of)\s*5\b", re.IGNORECASE),
    re.compile(r"^\W*" + _NUM + r"\W*$", re.MULTILINE),  # a line holding only the number
]
_REASON = re.compile(r"(?:reason|explanation|justification)\W{0,6}(.+)", re.IGNORECASE | re.DOTALL)


@dataclass
class JudgeVerdict:
    score: float | None
    reason: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_judge_reply(text: str | None) -> tuple[float | None, str]:
    """(score 1–5 or None, reason) from a judge reply in whatever form it came."""
    text = (text or "").strip()
    score = None
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            score = float(match.group(1))
            break
    reason_match = _REASON.search(text)
    reason = reason_match.group(1) if reason_match else text
    reason = " ".join(reason.replace("*", "").split())[:300]
    return score, reason


def judge_messages(question: str, reference: str, answer: str) -> list[dict[str, str]]:
    body = JUDGE_TEMPLATE.format(question=question, reference=reference, answer=answer.strip() or "(empty)")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": body}]


async def ajudge(client: Any, questions: Sequence[str], references: Sequence[str], answers: Sequence[str], *,
                 max_tokens: int = 80, progress: Any = None) -> list[JudgeVerdict]:
    """One verdict per answer; the client bounds concurrency and retries."""
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)

    async def one(q: str, r: str, a: str) -> JudgeVerdict:
        try:
            result = await client.achat(judge_messages(q, r, a), params)
            text = result.choices[0].text if result.choices else ""
            score, reason = parse_judge_reply(text)
            verdict = JudgeVerdict(score, reason, None if score is not None else "no score in the reply")
        except Exception as exc:  # noqa: BLE001 - a judge failure is recorded, never fatal
            verdict = JudgeVerdict(None, "", f"{type(exc).__name__}: {exc}"[:300])
        if progress is not None:
            progress.update(1)
        return verdict

    return list(await asyncio.gather(*(one(q, r, a) for q, r, a in zip(questions, references, answers,
                                                                         strict=True))))


def judge_answers(client: Any, questions: Sequence[str], references: Sequence[str], answers: Sequence[str],
                  **kwargs: Any) -> list[JudgeVerdict]:
    """Synchronous wrapper (works inside Jupyter's running loop)."""
    from ktools.llm import run_sync

    verdicts = run_sync(ajudge(client, questions, references, answers, **kwargs))
    failed = sum(v.score is None for v in verdicts)
    if failed:
        log.warning("judge gave no score for %d of %d answers (recorded per question)", failed, len(verdicts))
    return verdicts
